"""``kt train`` / ``kt evaluate`` / ``kt promote`` end to end on a tiny pyKT-format dataset.

The dataset is an ``assist2015_pykt`` look-alike written into tmp_path (synthetic, concept-only,
5 folds, test and test_window files) so the real loader and the pyKT protocol code run.
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_sequences

from kt.cli import main
from kt.data.formats import write_pykt_file


@pytest.fixture(scope="module")
def kt_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    d = root / "datasets" / "assist2015_pykt"
    d.mkdir(parents=True)
    n = 6
    train_valid = synthetic_sequences(100, n_concepts=n, items_per_concept=1, seed=11)
    train_valid = replace(train_valid, has_item_ids=False, folds=np.arange(len(train_valid)) % 5)
    test = replace(synthetic_sequences(30, n_concepts=n, items_per_concept=1, seed=12), has_item_ids=False)
    test = replace(test, eval_mask=np.ones(test.num_interactions, bool))
    window = test.windows(20)
    write_pykt_file(d / "train_valid_sequences.csv", train_valid)
    write_pykt_file(d / "test_sequences.csv", test)
    write_pykt_file(d / "test_window_sequences.csv", window)
    (d / "keyid2idx.json").write_text(json.dumps({"concepts": {str(i): i for i in range(n)}, "uid": {}}))
    return root


@pytest.fixture
def env(kt_env, monkeypatch):
    monkeypatch.setenv("KT_HOME", str(kt_env / "home"))
    monkeypatch.setenv("KT_DATASETS_DIR", str(kt_env / "datasets"))
    monkeypatch.setenv("KT_REGISTERED_MODEL", "ktpath-cli-test")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return kt_env


def _train(env, fold, extra=()):
    out = env / "runs" / f"fold{fold}"
    rc = main(["train", "--data", "assist2015", "--model", "dkt", "--fold", str(fold), "--epochs", "2",
               "--device", "cpu", "--out", str(out), "--no-progress", "--batch-size", "16",
               "--set", "model_params.dim=8", "--set", "model_params.hidden=8", "--set", "max_len=20", *extra])
    return rc, out


def test_train_evaluate_promote(env, capsys):
    rc, out = _train(env, 0)
    assert rc == 0
    printed = capsys.readouterr().out
    assert "mlflow run id:" in printed and "registered: models:/ktpath-cli-test/1" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["test"]) == {"test", "test_window"} and report["fold"] == 0
    assert (out / "best.pt").is_file() and (out / "reliability_test.png").is_file()
    # the report says where and when it ran, and the bench's run report shows it
    import os
    import sys

    assert report["system"]["cpu_count"] == os.cpu_count() and report["finished_at"].startswith("20")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.kt_run_report import machine_line

    assert f"{os.cpu_count()} CPUs" in machine_line(report) and report["finished_at"] in machine_line(report)
    assert "not recorded" in machine_line({k: v for k, v in report.items() if k != "system"})
    # the run's params say what was trained: the built model's fields, not only the overrides
    from kt.config import Settings
    from kt.train.tracking import _client

    run_id = printed.split("mlflow run id:")[1].split()[0]
    params = _client(Settings.from_env()).get_run(run_id).data.params
    assert params["model_params.dim"] == "8" and params["model.dim"] == "8" and params["model.hidden"] == "8"
    # defaults and data sizes too
    assert params["model.num_layers"] == "1" and params["model.num_concepts"] == "6"

    rc, _ = _train(env, 1, ["--no-register"])
    assert rc == 0
    capsys.readouterr()

    assert main(["promote"]) == 0
    assert "-> version 1" in capsys.readouterr().out
    # no version trained on that data: say so and list the tags there are (was "no run metric")
    assert main(["promote", "--best-by", "test_auc", "--data", "assist2009"]) == 2
    assert "tagged data='assist2009'; the data tags are: 'assist2015'" in capsys.readouterr().err

    # one checkpoint
    assert main(["evaluate", "--data", "assist2015", "--checkpoint", str(out / "best.pt"), "--out",
                 str(env / "eval0.json")]) == 0
    single = json.loads((env / "eval0.json").read_text())
    assert single["fold"] == 0
    assert single["results"]["test"]["auc"] == pytest.approx(report["test"]["test"]["auc"])
    # the champion by URI
    assert main(["evaluate", "--data", "assist2015", "--model-uri", "models:/ktpath-cli-test@champion",
                 "--out", str(env / "evalc.json")]) == 0
    champ = json.loads((env / "evalc.json").read_text())
    assert champ["results"]["test"]["auc"] == pytest.approx(single["results"]["test"]["auc"])
    # all folds: mean ± std over the two fold models
    capsys.readouterr()
    assert main(["evaluate", "--data", "assist2015", "--all-folds", str(env / "runs"), "--out",
                 str(env / "evalall.json")]) == 0
    table = capsys.readouterr().out
    assert "±" in table and "test_window" in table
    summary = json.loads((env / "evalall.json").read_text())
    assert sorted(summary["folds"]) == ["0", "1"]
    aucs = [summary["folds"][f]["test"]["auc"] for f in ("0", "1")]
    assert summary["summary"]["test"]["auc"]["mean"] == pytest.approx(np.mean(aucs))
    assert summary["summary"]["test"]["auc"]["std"] == pytest.approx(np.std(aucs))


def test_resume_through_the_cli(env, capsys):
    out = env / "resume"
    base = ["train", "--data", "assist2015", "--model", "dkt", "--device", "cpu", "--out", str(out),
            "--no-progress", "--no-mlflow", "--set", "model_params.dim=8", "--set", "max_len=20"]
    assert main([*base, "--epochs", "1"]) == 0
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in report["history"]] == [0, 1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "nope", "--no-mlflow"], "unknown dataset"),
        (["train", "--data", "assist2015", "--model", "nope", "--no-mlflow"], "unknown model"),
        (["train", "--data", "assist2015", "--set", "epochs=3", "--no-mlflow"], "unknown training option"),
        (["train", "--data", "assist2015", "--set", "lr=abc", "--no-mlflow"], "lr must be float (got 'abc')"),
        (["train", "--data", "assist2015", "--set", "scheduler=cos", "--no-mlflow"], "scheduler must be"),
        (["train", "--data", "assist2015", "--set", "model_params.dimm=3", "--no-mlflow", "--epochs", "1"],
         "no hyper-parameter"),
        (["evaluate", "--data", "assist2015", "--checkpoint", "/nonexistent.pt"], "not found"),
        (["train", "--data", "assist2015", "--patience", "0", "--no-mlflow"], "patience must be > 0 (got 0)"),
        (["train", "--data", "assist2015", "--set", "model_params.dim=abc", "--no-mlflow"],
         "model_params.dim must be an int > 0, got 'abc'"),
        (["train", "--data", "assist2015", "--model", "sakt", "--set", "model_params.num_heads=0",
          "--no-mlflow"],
         "model_params.num_heads must be an int > 0, got 0"),
        (["train", "--data", "assist2015", "--model", "sakt", "--set", "model_params.use_items=no",
          "--no-mlflow"],
         "model_params.use_items must be a bool (true or false), got 'no'"),
        (["evaluate", "--data", "assist2015", "--checkpoint", "/nonexistent.pt", "--device", "gpu"],
         "device 'gpu': expected auto, cpu, cuda, cuda:N or mps"),
        (["evaluate", "--data", "assist2015", "--model-uri", "garbage"],
         "'garbage' is not a model URI; use models:/NAME/VERSION, models:/NAME@ALIAS"),
        (["promote", "--data", "x"], "--best-by"),
    ],
)
def test_bad_input_gives_one_line_errors(env, capsys, argv, message, tmp_path):
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "o"), "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_config_file(env, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: dkt\nmax_epochs: 1\nmodel_params:\n  dim: 8\n  hidden: 8\nmax_len: 20\n")
    out = tmp_path / "o"
    assert main(["train", "--data", "assist2015", "--config", str(cfg), "--device", "cpu", "--out", str(out),
                 "--no-mlflow", "--no-progress"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["config"]["model_params"] == {"dim": 8, "hidden": 8} and report["epochs_run"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    assert main(["train", "--data", "assist2015", "--config", str(bad), "--no-mlflow"]) == 2
    assert "cannot parse config" in capsys.readouterr().err


def test_cuda_without_cuda_is_a_one_line_error(env, capsys, monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["train", "--data", "assist2015", "--device", "cuda", "--no-mlflow", "--out", str(tmp_path / "o")]
    assert main(argv) == 2  # was an AssertionError (exit 1)
    err = capsys.readouterr().err
    assert "cuda requested but not available" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def worlds(kt_env):
    """Three tiny worlds: ``sim`` (the home's world) and ``twin`` have the same item/topic ids
    (simulator presets name them c000, c001, ...), ``small`` has fewer items; a DKT trained on sim."""
    from kt.config import Settings
    from kt.sim import generate_world, preset

    home = kt_env / "world_home"
    sim = Settings(home=home).world_dir
    generate_world(preset("tiny", n_users=40, days=7, seed=1), sim)
    generate_world(preset("tiny", n_users=40, days=7, seed=2), kt_env / "twin")
    generate_world(preset("tiny", n_users=40, days=7, n_items=250, seed=3), kt_env / "small")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KT_HOME", str(home))
        out = home / "run"
        assert main(["train", "--data", "sim", "--model", "dkt", "--epochs", "1", "--device", "cpu",
                     "--out", str(out), "--no-progress", "--no-mlflow", "--set", "model_params.dim=8",
                     "--set", "model_params.hidden=8", "--set", "max_len=20"]) == 0
    return home, out / "best.pt"


def test_evaluate_refuses_a_checkpoint_trained_on_other_data(env, worlds, capsys, monkeypatch):
    home, ckpt = worlds
    monkeypatch.setenv("KT_HOME", str(home))
    capsys.readouterr()
    # same ids, so every index is in range: this was scored without complaint
    assert main(["evaluate", "--data", str(env / "twin"), "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert f"trained on 'sim' ({home / 'data' / 'world'}), not on '{env / 'twin'}' (another dataset)" in err
    # fewer items: in range too, but index 7 is another item
    assert main(["evaluate", "--data", str(env / "small"), "--checkpoint", str(ckpt)]) == 2
    assert "item vocabulary differs: 300 ids vs 250, 250 in common" in capsys.readouterr().err
    # benchmark data, where only names can be compared
    assert main(["evaluate", "--data", "assist2015", "--checkpoint", str(ckpt)]) == 2
    assert "not on 'assist2015' (another dataset)" in capsys.readouterr().err
    # its own world, however the path is typed
    monkeypatch.chdir(home)
    assert main(["evaluate", "--data", "data/world", "--checkpoint", str(ckpt),
                 "--out", str(home / "e.json")]) == 0


def test_a_fold_other_than_0_on_a_world_is_refused(env, worlds, capsys, monkeypatch, tmp_path):
    home, ckpt = worlds
    monkeypatch.setenv("KT_HOME", str(home))
    # was ignored: a run named fold7 reporting the one split's numbers
    assert main(["train", "--data", "sim", "--fold", "7", "--device", "cpu", "--no-mlflow",
                 "--out", str(tmp_path / "o")]) == 2
    assert "fold 7: a world has one train/valid/test split by users (fold 0 only)" in capsys.readouterr().err
    assert main(["evaluate", "--data", "sim", "--checkpoint", str(ckpt), "--fold", "3"]) == 2
    assert "fold 3: a world has one" in capsys.readouterr().err
