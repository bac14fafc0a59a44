from pathlib import Path

import pytest
import torch

from kt.data.sequences import Vocab
from kt.models.base import build_model
from kt.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint


def test_round_trip_without_training_state(tmp_path):
    torch.manual_seed(0)
    model = build_model("dkt", num_items=5, num_concepts=5, dim=8, hidden=8)
    path = save_checkpoint(tmp_path / "m.pt", model, concept_vocab=Vocab(["a", "b", "c", "d", "e"]),
                           meta={"data": "x"}, save_rng=False)
    loaded = load_checkpoint(path)
    assert loaded.item_vocab is None and loaded.concept_vocab.index("c") == 3
    assert loaded.meta["meta"] == {"data": "x"} and loaded.meta["model_name"] == "dkt"
    assert not loaded.model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k])
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file


def test_unreadable_files_name_the_path(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="missing model_config, model_name, state_dict"):
        read_checkpoint(other)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.pt")


def test_training_records_the_outcome_rule_and_serving_refuses_another(tiny_splits, tmp_path):
    import dataclasses

    from kt.data.outcome import OutcomeRule
    from kt.models.checkpoint import OutcomeRuleMismatch, check_outcome_rule
    from kt.train.trainer import TrainConfig, train

    strict = OutcomeRule(read_understood=0.9, ambiguous="zero")
    splits = dataclasses.replace(tiny_splits, meta={**tiny_splits.meta, "outcome_rule": strict.to_dict()})
    cfg = TrainConfig(model="dkt", model_params={"dim": 8, "hidden": 8}, max_epochs=1, device="cpu", amp=False,
                      progress=False)
    loaded = load_checkpoint(train(cfg, splits, checkpoint_dir=tmp_path).checkpoint_path)
    assert loaded.meta["meta"]["outcome_rule"] == strict.to_dict()
    check_outcome_rule(loaded, strict)  # the rule it was trained with
    with pytest.raises(OutcomeRuleMismatch) as err:
        check_outcome_rule(loaded, OutcomeRule())
    msg = str(err.value)
    assert "read_understood 0.9 in training, 0.8 now" in msg and "ambiguous 'zero' in training, 'drop' now" in msg
    assert "KT_OUTCOME_RULE" in msg
    # response logs (pyKT data) carry no rule: nothing to compare
    bare = load_checkpoint(save_checkpoint(tmp_path / "bare.pt", build_model("dkt", num_items=5, num_concepts=5,
                                                                                dim=8, hidden=8)))
    check_outcome_rule(bare, OutcomeRule(read_understood=0.5))


def test_a_failed_save_leaves_no_temp_file_and_the_old_checkpoint(tmp_path, monkeypatch):
    import errno

    model = build_model("dkt", num_items=5, num_concepts=5, dim=8, hidden=8)
    path = save_checkpoint(tmp_path / "last.pt", model, epoch=1)

    def disk_full(obj, f, *args, **kwargs):  # the disk fills half-way through the write
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, model, epoch=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    monkeypatch.undo()
    assert read_checkpoint(path)["epoch"] == 1
