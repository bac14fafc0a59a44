"""``kt recommend``: clear error without a model; a learning path with reasons with one."""

from __future__ import annotations

import torch

from kt.cli import main
from kt.data.sequences import Vocab
from kt.models.base import build_model
from kt.models.checkpoint import save_checkpoint


def test_recommend_without_a_model_says_what_to_run(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KT_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    user = str(tiny["world"].events["user_id"].iloc[0])
    rc = main(["recommend", "--user", user, "--world", str(tiny["dir"])])
    err = capsys.readouterr().err
    assert rc == 2 and "kt train" in err and "Traceback" not in err


def test_recommend_prints_a_path_with_reasons(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KT_HOME", str(tmp_path))
    world = tiny["world"]
    torch.manual_seed(0)
    items = Vocab(sorted(world.items["content_id"].astype(str)))
    topics = Vocab(sorted(world.topics["topic_id"].astype(str)))
    model = build_model("dkt", num_items=len(items), num_concepts=len(topics), dim=8, hidden=8)
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, model, item_vocab=items, concept_vocab=topics)
    user = str(world.events["user_id"].value_counts().index[0])
    rc = main(["recommend", "--user", user, "--world", str(tiny["dir"]), "--checkpoint", str(ckpt),
               "--bundles", "2", "--size", "3"])
    out = capsys.readouterr().out
    assert rc == 0 and f"Learning path for user {user}" in out
    assert "predicted success" in out and "found by" in out
    rc = main(["recommend", "--user", "nobody", "--world", str(tiny["dir"]), "--checkpoint", str(ckpt)])
    assert rc == 2 and "not in" in capsys.readouterr().err
    goal = str(world.topics["topic_id"].iloc[-1])
    rc = main(["recommend", "--user", user, "--world", str(tiny["dir"]), "--checkpoint", str(ckpt), "--goal", goal, "--json"])
    out = capsys.readouterr().out
    assert rc == 0 and f'"{goal}"' in out and '"bundles"' in out
    # a language no item is in would filter nothing without a word
    rc = main(["recommend", "--user", user, "--world", str(tiny["dir"]), "--checkpoint", str(ckpt), "--lang", "zz"])
    assert rc == 2 and "no items in zz" in capsys.readouterr().err
    rc = main(["recommend", "--user", user, "--world", str(tiny["dir"]), "--checkpoint", str(ckpt), "--band", "0.9", "0.1"])
    assert rc == 2 and "--band LO HI must satisfy 0 <= LO <= HI <= 1 (got 0.9 0.1)" in capsys.readouterr().err


def test_recommend_refuses_a_model_trained_with_another_outcome_rule(tiny, tmp_path, monkeypatch, capsys):
    from kt.data.outcome import OutcomeRule

    monkeypatch.setenv("KT_HOME", str(tmp_path))
    world = tiny["world"]
    items = Vocab(sorted(world.items["content_id"].astype(str)))
    topics = Vocab(sorted(world.topics["topic_id"].astype(str)))
    model = build_model("dkt", num_items=len(items), num_concepts=len(topics), dim=8, hidden=8)
    ckpt = save_checkpoint(tmp_path / "model.pt", model, item_vocab=items, concept_vocab=topics,
                           meta={"data": "world", "outcome_rule": OutcomeRule().to_dict()})
    user = str(world.events["user_id"].value_counts().index[0])
    args = ["recommend", "--user", user, "--world", str(tiny["dir"]), "--checkpoint", str(ckpt), "--size", "3"]
    assert main(args) == 0  # served with the rule it was trained with
    capsys.readouterr()
    (tmp_path / "rule.yaml").write_text("read_understood: 0.6\n")
    monkeypatch.setenv("KT_OUTCOME_RULE", str(tmp_path / "rule.yaml"))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "read_understood 0.8 in training, 0.6 now" in err and "Traceback" not in err
