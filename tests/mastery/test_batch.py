"""Batch scoring: schema, chunking invariance, agreement with the tracker, 2-process sharding."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from kt.cli import main
from kt.mastery import MasteryConfig, MasteryTracker, TopicCatalog, score_world
from kt.mastery.batch import OUTPUT_SCHEMA

KEY = ["user_id", "topic_id"]


def _read(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path).drop(columns="updated_at")
    return df.sort_values(KEY, ignore_index=True)


def test_schema_chunking_and_tracker_agreement(tmp_path, world, trained, items, topics, interactions):
    _, loaded = trained
    model, iv, cv = loaded.model, loaded.item_vocab, loaded.concept_vocab
    cat = TopicCatalog.build(model, iv, cv, items, topics)
    one = score_world(model, cat, world, tmp_path / "one.parquet", chunk_users=10_000, batch_users=512)
    many = score_world(model, cat, world, tmp_path / "many.parquet", chunk_users=40, batch_users=16)
    assert one.n_buckets == 1 and many.n_buckets > 3
    assert pq.read_schema(tmp_path / "one.parquet").equals(OUTPUT_SCHEMA)
    a, b = _read(tmp_path / "one.parquet"), _read(tmp_path / "many.parquet")
    pd.testing.assert_frame_equal(a, b, atol=1e-6)
    n_users = interactions["user_id"].nunique()
    assert len(a) == n_users * len(topics) and a["user_id"].nunique() == n_users
    assert a["n_obs"].sum() == len(interactions)
    assert set(a["stage"]) <= {"new", "learning", "needs_review", "mastered"}

    # the online tracker, fed the same events, reports the same rows at the same as-of time
    tracker = MasteryTracker(model, iv, cv, cat, MasteryConfig())
    users = sorted(interactions["user_id"].unique())[:5]
    tracker.observe_many(interactions[interactions["user_id"].isin(users)].rename(columns={"t": "timestamp"}))
    now = pd.Timestamp(one.as_of)
    for u in users:
        online = tracker.topic_mastery(u, now=now)
        batch = a[a["user_id"] == u].drop(columns="user_id").reset_index(drop=True)
        online = online.sort_values("topic_id", ignore_index=True)[batch.columns]
        pd.testing.assert_frame_equal(online, batch, atol=1e-6, check_dtype=False)


def test_cli_score_and_sharded_union(tmp_path, world, trained):
    ckpt, _ = trained
    single = tmp_path / "single.parquet"
    assert main(["mastery", "score", "--world", str(world), "--checkpoint", str(ckpt), "--out", str(single), "--device", "cpu"]) == 0
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "part-2.parquet").write_bytes(single.read_bytes())  # left by an earlier run with 3 ranks
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "kt.cli", "mastery", "score", "--world", str(world), "--checkpoint", str(ckpt),
           "--out", str(shards), "--device", "cpu", "--chunk-users", "50"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parts = sorted(shards.glob("part-*.parquet"))
    assert [p.name for p in parts] == ["part-0.parquet", "part-1.parquet"]
    r0, r1 = (_read(p) for p in parts)
    assert len(r0) and len(r1) and not set(r0["user_id"]) & set(r1["user_id"])  # disjoint shards
    union = pd.concat([r0, r1]).sort_values(KEY, ignore_index=True)
    pd.testing.assert_frame_equal(union, _read(single), atol=1e-6)


def test_cli_errors_are_one_line(tmp_path, capsys, trained):
    ckpt, _ = trained
    assert main(["mastery", "score", "--world", str(tmp_path), "--checkpoint", str(ckpt), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "not a world directory" in capsys.readouterr().err
    # a device name torch does not know, or CUDA on a machine without it: one line, not torch's error
    assert main(["mastery", "score", "--world", str(tmp_path), "--checkpoint", str(ckpt), "--out", str(tmp_path / "x.parquet"),
                 "--device", "gpu"]) == 2
    assert "device 'gpu': expected auto, cpu, cuda" in capsys.readouterr().err


def _free_port() -> int:
    from kt.train.distributed import free_port

    return free_port()


def test_empty_user_filter_gives_no_rows(tmp_path, world, trained, items, topics):
    # a shard that happens to own no users still writes a valid (empty) part file
    _, loaded = trained
    cat = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, topics)
    s = score_world(loaded.model, cat, world, tmp_path / "p.parquet", rank=0, world_size=1_000_000)
    df = pd.read_parquet(tmp_path / "p.parquet")
    assert s.n_rows == len(df) == 0 and s.n_users == 0
    assert pq.read_schema(tmp_path / "p.parquet").equals(OUTPUT_SCHEMA)


def test_decay_check_only_adds_review_stages(trained, items, topics, interactions):
    from kt.mastery import score_interactions

    _, loaded = trained
    cat = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, topics)
    some = interactions[interactions["user_id"].isin(interactions["user_id"].unique()[:30])]
    cfg = MasteryConfig()
    with_check = score_interactions(loaded.model, cat, some, cfg, decay_check=True)
    without = score_interactions(loaded.model, cat, some, cfg, decay_check=False)
    np.testing.assert_allclose(with_check["mastery"], without["mastery"])
    differ = with_check["stage"] != without["stage"]
    assert differ.any()  # the check finds something here (2 of 360 rows when measured)
    assert (with_check.loc[differ, "stage"] == "needs_review").all()


def test_events_that_break_the_contract_are_kept_aside_not_scored(tmp_path, world, trained, items, topics,
                                                                  monkeypatch):
    import shutil

    _, loaded = trained
    cat = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, topics)
    clean = score_world(loaded.model, cat, world, tmp_path / "clean.parquet")
    assert clean.n_rejected == 0 and clean.rejected_path is None
    bad_world = tmp_path / "w"
    shutil.copytree(world, bad_world)
    events = pd.read_parquet(bad_world / "events")
    first = events.iloc[[0]]
    extra = pd.concat([
        first,  # the same event_id again: counted once
        first.assign(event_id="bad-dwell", dwell_seconds=-50.0),
        first.assign(event_id="bad-item", content_id="c-no-such-item"),
    ], ignore_index=True)
    extra.to_parquet(bad_world / "events" / "zz-extra.parquet", index=False)
    summary = score_world(loaded.model, cat, bad_world, tmp_path / "bad.parquet")
    assert summary.n_rejected == 3 and summary.n_interactions == clean.n_interactions
    kept = pd.read_csv(summary.rejected_path)
    assert sorted(kept["_field"]) == ["content_id", "dwell_seconds", "event_id"]
    assert "c-no-such-item" in set(kept["content_id"])
    # another rank skips the same events, counts them, and leaves the file to rank 0
    rank1 = score_world(loaded.model, cat, bad_world, tmp_path / "r1.parquet", rank=1, world_size=2)
    assert rank1.n_rejected == 3 and rank1.rejected_path is None
    assert not (tmp_path / "r1.rejected.csv").exists()
    # a run that fails half-way leaves the last complete run's output and rejected file whole
    import kt.mastery.batch as batch

    before = pd.read_parquet(summary.out)
    real, calls = batch.score_interactions, []

    def fails_on_the_second_bucket(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "score_interactions", fails_on_the_second_bucket)
    with pytest.raises(RuntimeError, match="out of memory"):
        score_world(loaded.model, cat, bad_world, tmp_path / "bad.parquet", chunk_users=10)
    assert len(calls) == 2
    pd.testing.assert_frame_equal(pd.read_parquet(summary.out), before)
    assert len(pd.read_csv(summary.rejected_path)) == 3
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith(".")) == []  # no scratch files left
    # a later clean run into the same file has no rejected file beside it
    monkeypatch.undo()
    again = score_world(loaded.model, cat, world, tmp_path / "bad.parquet")
    assert again.n_rejected == 0 and not Path(summary.rejected_path).exists()


def test_a_csv_world_scores_like_its_parquet_original(tmp_path, world, trained, items, topics):
    # the data contract allows CSV tables; batch scoring types them through the same checks
    _, loaded = trained
    cat = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, topics)
    csv_world = tmp_path / "csv_world"
    csv_world.mkdir()
    for name in ("topics", "items", "users", "folders"):  # without folders, every folder_id is unknown
        pd.read_parquet(world / f"{name}.parquet").to_csv(csv_world / f"{name}.csv", index=False)
    events = pd.read_parquet(world / "events")
    events.assign(timestamp=events["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")).to_csv(
        csv_world / "events.csv", index=False)
    parquet = score_world(loaded.model, cat, world, tmp_path / "pq.parquet")
    from_csv = score_world(loaded.model, cat, csv_world, tmp_path / "csv.parquet")
    assert from_csv.n_rejected == 0 and from_csv.n_interactions == parquet.n_interactions > 0
    pd.testing.assert_frame_equal(_read(tmp_path / "csv.parquet"), _read(tmp_path / "pq.parquet"), atol=1e-6)
    assert main(["mastery", "score", "--world", str(csv_world), "--checkpoint", str(trained[0]),
                 "--out", str(tmp_path / "cli.parquet"), "--device", "cpu"]) == 0


def test_scoring_rejects_what_the_validator_rejects_with_file_and_row(tmp_path, world, trained, items, topics):
    """Over two CSV parts: a future event, an unknown user, a bad value, an unparsable row, and the
    events of a user whose own row the users table rejects: kept aside as `kt data validate` keeps
    them (same files, rows, codes), the rest scored as if they were not there."""
    from kt.data.io import load_world

    _, loaded = trained
    cat = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, topics)
    csv_world = tmp_path / "csv_world"
    (csv_world / "events").mkdir(parents=True)
    for name in ("topics", "prerequisites", "items", "users", "folders", "folder_items"):
        pd.read_parquet(world / f"{name}.parquet").to_csv(csv_world / f"{name}.csv", index=False)
    events = pd.read_parquet(world / "events")
    events = events.assign(timestamp=events["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    half = len(events) // 2
    lines = [events.iloc[:half].to_csv(index=False), events.iloc[half:].to_csv(index=False)]
    for i, text in enumerate(lines):
        (csv_world / "events" / f"part-{i}.csv").write_text(text)
    clean = score_world(loaded.model, cat, csv_world, tmp_path / "clean.parquet")
    user, item = str(events["user_id"].iloc[0]), str(events["content_id"].iloc[0])
    bad0 = [f"x-future,{user},{item},2099-01-01T00:00:00Z,,0.9,100,2,",
            f"x-nobody,no-such-user,{item},2024-01-01T00:00:00Z,,0.9,100,2,"]
    bad1 = [f"x-extra,{user},{item},2024-01-01T00:00:00Z,,0.9,100,2,,surplus",
            f"x-value,{user},{item},2024-01-01T00:00:00Z,,1.7,100,2,"]
    for i, bad in enumerate((bad0, bad1)):
        (csv_world / "events" / f"part-{i}.csv").write_text(lines[i] + "\n".join(bad) + "\n")
    summary = score_world(loaded.model, cat, csv_world, tmp_path / "bad.parquet")
    assert summary.n_rejected == 4 and summary.n_interactions == clean.n_interactions
    pd.testing.assert_frame_equal(_read(tmp_path / "bad.parquet"), _read(tmp_path / "clean.parquet"), atol=1e-6)
    kept = pd.read_csv(summary.rejected_path)  # one header for rows of both parts, with and without _extra
    assert list(kept.columns[-5:]) == ["_file", "_row", "_field", "_code", "_reason"]
    n0, n1 = half, len(events) - half
    part = [str(csv_world / "events" / f"part-{i}.csv") for i in (0, 1)]
    assert sorted(zip(kept["_file"], kept["_row"], kept["_field"], kept["_code"], strict=True)) == [
        (part[0], n0 + 1, "timestamp", "bad_timestamp"), (part[0], n0 + 2, "user_id", "unknown_id"),
        (part[1], n1 + 1, "-", "malformed_row"), (part[1], n1 + 2, "read_fraction", "out_of_range")]
    assert kept.loc[kept["_code"] == "malformed_row", "_extra"].tolist() == ["surplus"]

    def same_as_validator(kept: pd.DataFrame, quarantine) -> None:
        load_world(csv_world, quarantine_dir=quarantine)
        validated = pd.read_csv(quarantine / "events.rejected.csv")
        assert sorted(zip(validated["_file"], validated["_row"], validated["_code"], strict=True)) == sorted(
            zip(kept["_file"], kept["_row"], kept["_code"], strict=True))

    same_as_validator(kept, tmp_path / "q")
    # a user the users table rejects (bad languages) is unknown to the events, as in load_world
    users = pd.read_csv(csv_world / "users.csv", dtype=str)
    users.loc[users["user_id"] == user, "languages"] = "ENGLISH"
    users.to_csv(csv_world / "users.csv", index=False)
    again = score_world(loaded.model, cat, csv_world, tmp_path / "bad2.parquet")
    kept2 = pd.read_csv(again.rejected_path)
    assert again.n_rejected == len(kept2) == int((events["user_id"] == user).sum()) + 4  # its events + the 4 bad rows
    same_as_validator(kept2, tmp_path / "q2")
