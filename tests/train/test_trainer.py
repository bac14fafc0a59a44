"""Trainer behaviour on tiny synthetic data with the real registered models (CPU, seconds)."""

import re

import numpy as np
import pytest
import torch

from kt.models.checkpoint import load_checkpoint, read_checkpoint
from kt.train.evaluate import evaluate, predict
from kt.train.trainer import TrainConfig, WeightAverage, train


def tiny_config(**kw) -> TrainConfig:
    base = dict(model="dkt", model_params={"dim": 16, "hidden": 16}, lr=1e-2, batch_size=16, max_epochs=4,
                patience=10, device="cpu", max_len=30, seed=7, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _numbers(history):
    return [{k: v for k, v in h.items() if "seconds" not in k and "per_second" not in k} for h in history]


def test_loss_goes_down_and_beats_the_majority_baseline(tiny_splits, tmp_path):
    res = train(tiny_config(max_epochs=6), tiny_splits, checkpoint_dir=tmp_path)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0] - 0.02
    # majority-class baseline: AUC 0.5, ACC = max(pos_rate, 1 - pos_rate)
    test = res.test_metrics["test"]
    assert test["auc"] > 0.65  # the generating model itself reaches ~0.75 here
    assert test["acc"] > max(test["pos_rate"], 1 - test["pos_rate"])
    assert set(res.history[0]) >= {"train_loss", "valid_auc", "valid_acc", "epoch_seconds", "train_interactions_per_second"}


def test_same_seed_same_metrics(tiny_splits, tmp_path):
    a = train(tiny_config(max_epochs=2), tiny_splits, checkpoint_dir=tmp_path / "a")
    b = train(tiny_config(max_epochs=2), tiny_splits, checkpoint_dir=tmp_path / "b")
    c = train(tiny_config(max_epochs=2, seed=8), tiny_splits, checkpoint_dir=tmp_path / "c")
    assert _numbers(a.history) == _numbers(b.history)
    assert a.test_metrics == b.test_metrics
    assert _numbers(a.history) != _numbers(c.history)


def test_best_epoch_weights_are_restored_and_saved(tiny_splits, tmp_path):
    res = train(tiny_config(max_epochs=5, patience=2), tiny_splits, checkpoint_dir=tmp_path)
    aucs = [h["valid_auc"] for h in res.history]
    assert res.best_epoch == int(np.argmax(aucs))
    assert res.best_valid_auc == pytest.approx(max(aucs))
    # the returned model is the best epoch's, and so is best.pt
    again = evaluate(res.model, tiny_splits.valid, 64, device="cpu")
    assert again["auc"] == pytest.approx(res.best_valid_auc, abs=1e-9)
    ck = read_checkpoint(res.checkpoint_path)
    assert ck["epoch"] == res.best_epoch
    assert ck["meta"]["test_metrics"]["test"]["auc"] == pytest.approx(res.test_metrics["test"]["auc"])
    for k, v in res.model.state_dict().items():
        assert torch.equal(v, ck["state_dict"][k])


def test_early_stopping_respects_patience(tiny_splits, tmp_path):
    # lr 0 never improves after epoch 0, so training stops after 1 + patience epochs
    res = train(tiny_config(lr=0.0, max_epochs=20, patience=2), tiny_splits, checkpoint_dir=tmp_path)
    assert res.epochs_run == 3 and res.best_epoch == 0


def test_checkpoint_round_trip_gives_identical_predictions(tiny_splits, tmp_path):
    res = train(tiny_config(max_epochs=2), tiny_splits, checkpoint_dir=tmp_path)
    loaded = load_checkpoint(res.checkpoint_path)
    assert type(loaded.model) is type(res.model)
    assert loaded.item_vocab.tokens == tiny_splits.meta["item_vocab"].tokens
    assert loaded.concept_vocab.tokens == tiny_splits.meta["concept_vocab"].tokens
    assert loaded.meta["train_config"]["model_params"] == {"dim": 16, "hidden": 16}
    assert loaded.meta["ktpath_version"]
    y1, p1 = predict(res.model, tiny_splits.test, 64, device="cpu")
    y2, p2 = predict(loaded.model, tiny_splits.test, 64, device="cpu")
    assert np.array_equal(y1, y2) and np.array_equal(p1, p2)


def test_resume_continues_to_the_same_weights(tiny_splits, tmp_path):
    straight = train(tiny_config(max_epochs=4), tiny_splits, checkpoint_dir=tmp_path / "straight")
    train(tiny_config(max_epochs=2), tiny_splits, checkpoint_dir=tmp_path / "resumed")
    first = read_checkpoint(tmp_path / "resumed" / "last.pt")
    assert first["epoch"] == 1 and first["optimizer"]["state"]
    resumed = train(tiny_config(max_epochs=4), tiny_splits, checkpoint_dir=tmp_path / "resumed", resume=True)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2, 3]
    assert _numbers(resumed.history) == _numbers(straight.history)
    a = read_checkpoint(tmp_path / "straight" / "last.pt")
    b = read_checkpoint(tmp_path / "resumed" / "last.pt")
    assert b["epoch"] == 3
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert int(b["optimizer"]["state"][0]["step"]) == int(a["optimizer"]["state"][0]["step"])
    # resuming a finished run trains nothing more and still reports what validation scored
    again = train(tiny_config(max_epochs=4), tiny_splits, checkpoint_dir=tmp_path / "resumed", resume=True)
    assert again.valid_size == straight.valid_size > 0 and len(again.history) == 4


def test_weight_average_moves_toward_the_live_weights_and_swaps_back():
    lin = torch.nn.Linear(2, 1)
    start = lin.weight.detach().clone()
    avg = WeightAverage(lin, decay=0.75)
    with torch.no_grad():
        lin.weight.add_(4.0)
    avg.update()  # avg = 0.75 start + 0.25 (start + 4)
    with avg.swapped_in():
        assert torch.allclose(lin.weight, start + 1.0)
    assert torch.allclose(lin.weight, start + 4.0)  # the live weights are back


def test_resume_refuses_a_different_batch_plan(tiny_splits, tmp_path):
    train(tiny_config(max_epochs=1, batching="windows"), tiny_splits, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="batching='windows'"):
        train(tiny_config(max_epochs=2), tiny_splits, checkpoint_dir=tmp_path, resume=True)
    # a run saved before `batching` existed used fixed window counts
    last = tmp_path / "last.pt"
    state = torch.load(last, weights_only=False)
    del state["train_config"]["batching"]
    torch.save(state, last)
    with pytest.raises(ValueError, match="batching='windows'"):
        train(tiny_config(max_epochs=2), tiny_splits, checkpoint_dir=tmp_path, resume=True)
    resumed = train(tiny_config(max_epochs=2, batching="windows"), tiny_splits, checkpoint_dir=tmp_path, resume=True)
    assert [h["epoch"] for h in resumed.history] == [0, 1]


def test_weight_averaging_keeps_and_resumes_the_average(tiny_splits, tmp_path):
    plain = train(tiny_config(max_epochs=3), tiny_splits, checkpoint_dir=tmp_path / "plain")
    averaged = train(tiny_config(max_epochs=3, ema_decay=0.9), tiny_splits, checkpoint_dir=tmp_path / "avg")
    # same seed and batches, so the live weights are the plain run's; validation scored the average
    assert [h["train_loss"] for h in averaged.history] == [h["train_loss"] for h in plain.history]
    assert [h["valid_auc"] for h in averaged.history] != [h["valid_auc"] for h in plain.history]
    again = evaluate(averaged.model, tiny_splits.valid, 64, device="cpu")
    assert again["auc"] == pytest.approx(averaged.best_valid_auc, abs=1e-9)  # the kept model is the best average
    best = read_checkpoint(averaged.checkpoint_path)
    for k, v in averaged.model.state_dict().items():
        assert torch.equal(v, best["state_dict"][k])
    # resuming carries the average on: the same numbers as one straight run
    train(tiny_config(max_epochs=2, ema_decay=0.9), tiny_splits, checkpoint_dir=tmp_path / "resumed")
    assert read_checkpoint(tmp_path / "resumed" / "last.pt")["meta"]["ema_state"]
    resumed = train(tiny_config(max_epochs=3, ema_decay=0.9), tiny_splits, checkpoint_dir=tmp_path / "resumed", resume=True)
    assert _numbers(resumed.history) == _numbers(averaged.history)


def test_token_budget_and_scheduler_options_train(tiny_splits, tmp_path):
    res = train(tiny_config(max_epochs=2, token_budget=400, scheduler="cosine", grad_clip=1.0), tiny_splits,
                checkpoint_dir=tmp_path)
    assert res.history[1]["lr"] < res.history[0]["lr"]
    assert np.isfinite(res.history[-1]["train_loss"])


def test_bad_options_give_clear_errors(tiny_splits, tmp_path):
    with pytest.raises(ValueError, match="no hyper-parameter"):
        train(tiny_config(model_params={"dimm": 3}), tiny_splits, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="scheduler"):
        train(tiny_config(scheduler="step"), tiny_splits, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="batching"):
        train(tiny_config(batching="buckets"), tiny_splits, checkpoint_dir=tmp_path)


@pytest.mark.parametrize("name", ["sakt", "akt", "simplekt", "dkt_forget"])
def test_other_registered_models_train(name, tiny_splits, tmp_path):
    from kt.models.base import available_models

    assert name in available_models()  # every model the registry promises is found by name
    res = train(tiny_config(model=name, model_params={"dim": 16}, max_epochs=2), tiny_splits, checkpoint_dir=tmp_path)
    assert np.isfinite(res.history[-1]["train_loss"])
    loaded = load_checkpoint(res.checkpoint_path)
    _, p1 = predict(res.model, tiny_splits.test, 64, device="cpu")
    _, p2 = predict(loaded.model, tiny_splits.test, 64, device="cpu")
    assert np.array_equal(p1, p2)


def test_evaluate_honours_eval_mask(tiny_splits, tmp_path):
    from dataclasses import replace

    res = train(tiny_config(max_epochs=1), tiny_splits, checkpoint_dir=tmp_path)
    test = tiny_splits.test
    full = evaluate(res.model, test, 64, device="cpu")
    # windows of max_len=30, each scored from its second position (pyKT)
    assert full["n"] == int((test.windows(30).lengths - 1).sum())
    mask = np.zeros(test.num_interactions, bool)
    mask[test.offsets[1:] - 1] = True  # only each sequence's last interaction (pyKT window style)
    masked = replace(test, eval_mask=mask)
    last_only = evaluate(res.model, masked, 64, device="cpu")
    w = masked.windows(30)
    expected = sum(int(w.eval_mask[w.offsets[i] + 1 : w.offsets[i + 1]].sum()) for i in range(len(w)))
    assert last_only["n"] == expected > 0.9 * len(test)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"patience": 0}, "patience must be > 0 (got 0)"),  # trained nothing and exited 0
        ({"patience": -1}, "patience must be > 0"),
        ({"max_epochs": 0}, "max_epochs must be > 0"),
        ({"token_budget": 0}, "token_budget must be > 0 when set (got 0)"),
        ({"grad_clip": -1.0}, "grad_clip must be >= 0"),
        ({"num_workers": -1}, "num_workers must be >= 0"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
        ({"lr": float("nan")}, "lr must be >= 0 (got nan)"),
        ({"ema_decay": 1.0}, "ema_decay must be in [0, 1)"),
        ({"bucket_chunk_batches": 0}, "bucket_chunk_batches must be > 0"),
        # was torch's RuntimeError listing every device type it knows
        ({"device": "gpu"}, "device 'gpu': expected auto, cpu, cuda, cuda:N or mps"),
    ],
)
def test_option_ranges_are_checked(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny_config(**options)


def test_cuda_on_a_machine_without_it_is_one_clear_error(tiny_splits, tmp_path, monkeypatch):
    from kt.config import usable_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="cuda requested but not available"):  # was an AssertionError
        train(tiny_config(device="cuda"), tiny_splits, checkpoint_dir=tmp_path)
    assert usable_device("auto") == "cpu" and usable_device("cpu") == "cpu"


def test_model_params_are_checked_by_name(tiny_splits, tmp_path):
    from kt.train.trainer import check_model_params

    with pytest.raises(ValueError, match=re.escape("model_params.dim must be an int > 0, got 'abc'")):
        check_model_params(tiny_config(model_params={"dim": "abc"}))
    message = "model_params.use_items must be a bool (true or false), got 'no'"  # was truthy: items used
    with pytest.raises(ValueError, match=re.escape(message)):
        train(tiny_config(model="sakt", model_params={"dim": 16, "use_items": "no"}), tiny_splits,
              checkpoint_dir=tmp_path)


def test_resume_refuses_changed_optimizer_or_model_settings(tiny_splits, tmp_path):
    train(tiny_config(max_epochs=1), tiny_splits, checkpoint_dir=tmp_path)
    refused = [
        # Adam's restored state would keep lr 1e-2 while the run recorded 0.5
        (dict(lr=0.5), "lr=0.01 (now 0.5)"),
        (dict(weight_decay=0.1), "weight_decay=0.0 (now 0.1)"),
        (dict(scheduler="cosine"), "scheduler='none' (now 'cosine')"),
        # was load_state_dict's raw "size mismatch"
        (dict(model_params={"dim": 32, "hidden": 16}), "model_params.dim=16 (now 32)"),
        (dict(model_params={"dim": 16, "hidden": 16, "dropout": 0.3}), "model_params.dropout=0.1 (now 0.3)"),
    ]
    for options, message in refused:
        with pytest.raises(ValueError, match=re.escape(message)) as info:
            train(tiny_config(max_epochs=2, **options), tiny_splits, checkpoint_dir=tmp_path, resume=True)
        assert "\n" not in str(info.value) and "size mismatch" not in str(info.value)
    # a cosine run's restored schedule keeps its length, so max_epochs may not change either
    train(tiny_config(max_epochs=1, scheduler="cosine"), tiny_splits, checkpoint_dir=tmp_path / "cos")
    with pytest.raises(ValueError, match=re.escape("max_epochs=1 (now 2)")):
        train(tiny_config(max_epochs=2, scheduler="cosine"), tiny_splits, checkpoint_dir=tmp_path / "cos",
              resume=True)


def test_resuming_from_an_unreadable_last_checkpoint_names_the_file(tiny_splits, tmp_path):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="last.pt: not a readable ktpath checkpoint"):
        train(tiny_config(max_epochs=2), tiny_splits, checkpoint_dir=tmp_path, resume=True)
