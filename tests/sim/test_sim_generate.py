"""World generation: determinism and the data contract (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from kt.sim import generate_world, preset
from kt.sim import tables as tb
from kt.sim.simulate import snapshot_times

CONTRACT = {
    "topics.parquet": tb.TOPICS,
    "prerequisites.parquet": tb.PREREQUISITES,
    "items.parquet": tb.ITEMS,
    "folders.parquet": tb.FOLDERS,
    "folder_items.parquet": tb.FOLDER_ITEMS,
    "users.parquet": tb.USERS,
    "events": tb.EVENTS,
    "true_mastery": tb.TRUE_MASTERY,
}


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_different_seed_differs(tmp_path):
    cfg = preset("tiny", user_chunk=20)  # several chunks, so part files and chunk streams are exercised
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_world(cfg, a)
    generate_world(cfg, b)
    generate_world(cfg.with_overrides(seed=1), c)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert len([f for f in fa if f.startswith("events/")]) == 3
    assert fa.keys() == fb.keys()
    for name in fa:
        assert fa[name] == fb[name], name
    assert fa["events/part-00000.parquet"] != fc["events/part-00000.parquet"]
    assert fa["items.parquet"] != fc["items.parquet"]


def test_regenerating_into_the_same_directory_replaces_old_parts(tmp_path):
    generate_world(preset("tiny", user_chunk=10), tmp_path)
    generate_world(preset("tiny"), tmp_path)
    assert len(list((tmp_path / "events").glob("*.parquet"))) == 1


def test_tables_follow_the_contract(tiny_world):
    out, summary = tiny_world
    for name, schema in CONTRACT.items():
        table = pq.read_table(out / name)
        assert table.schema.names == schema.names, name
        for f in schema:
            assert table.schema.field(f.name).type == f.type, (name, f.name)
    meta = json.loads((out / "world.json").read_text())
    assert meta["config"] == preset("tiny").to_dict()
    assert meta["counts"]["events"] == summary.n_events > 0


def test_world_is_internally_consistent(tiny_world):
    out, summary = tiny_world
    cfg = preset("tiny")
    topics = pd.read_parquet(out / "topics.parquet")
    pre = pd.read_parquet(out / "prerequisites.parquet")
    items = pd.read_parquet(out / "items.parquet")
    users = pd.read_parquet(out / "users.parquet")
    folders = pd.read_parquet(out / "folders.parquet")
    fitems = pd.read_parquet(out / "folder_items.parquet")
    ev = pd.read_parquet(out / "events")
    tm = pd.read_parquet(out / "true_mastery")
    assert len(topics) == cfg.n_topics and len(items) == cfg.n_items and len(users) == cfg.n_users
    tids = set(topics.topic_id)
    assert set(pre.topic_id) | set(pre.prerequisite_id) <= tids
    assert set(topics.parent_id.dropna()) <= tids
    assert pre.groupby("topic_id").size().max() <= 3
    # every prerequisite edge points from an earlier topic: a DAG by construction
    assert (pre.prerequisite_id < pre.topic_id).all()
    assert set(items.topics.str.split("|").explode()) <= tids
    assert items.difficulty.between(0, 1).all()
    assert set(items.language) <= set(cfg.languages) and set(items.kind) <= set(cfg.kinds)
    start = pd.Timestamp(cfg.start, tz="UTC")
    new = items.created_at > start
    assert 0 < new.mean() < 0.5  # new items keep arriving during the period
    # deeper topics (with prerequisites) carry harder items
    depth_has_pre = items.topics.str.split("|").str[0].isin(set(pre.topic_id))
    assert items.difficulty[depth_has_pre].mean() > items.difficulty[~depth_has_pre].mean()
    assert set(folders.user_id) <= set(users.user_id)
    assert not fitems.duplicated(["folder_id", "content_id"]).any()
    # events
    assert ev.event_id.is_unique and len(ev) == summary.n_events
    assert set(ev.content_id) <= set(items.content_id)
    assert set(ev.folder_id.dropna()) <= set(folders.folder_id)
    # a folder holds what its owner filed into it, from the first filing on
    filed = ev.dropna(subset=["folder_id"]).groupby(["folder_id", "content_id"]).timestamp.min().rename("first_filed")
    links = filed.reset_index().merge(fitems, on=["folder_id", "content_id"], how="left")
    assert links.added_at.notna().all()
    assert (links.added_at <= links.first_filed).all()
    grown = fitems.added_at > start
    assert grown.any() and set(fitems[grown].set_index(["folder_id", "content_id"]).index) <= set(filed.index)
    assert ev.groupby("user_id").timestamp.apply(lambda s: s.is_monotonic_increasing and s.is_unique).all()
    created = items.set_index("content_id").created_at
    assert (ev.timestamp.to_numpy() >= created.loc[ev.content_id].to_numpy()).all()  # no reading the future
    assert ev.read_fraction.between(0, 1).all() and (ev.dwell_seconds >= 0).all() and (ev.n_highlights >= 0).all()
    assert set(ev.quiz_correct.dropna()) <= {0.0, 1.0}
    assert 0.15 < ev.quiz_correct.notna().mean() < 0.45
    # true mastery: per-event rows plus full snapshots
    assert tm.mastery.between(cfg.floor, 1).all()
    end = start + pd.Timedelta(days=cfg.days)
    final = tm[tm.timestamp == end]
    assert len(final) == cfg.n_users * cfg.n_topics
    assert tm.timestamp.nunique() > len(snapshot_times(cfg))


def test_world_loads_through_the_data_layer_with_no_rejected_rows(tiny_world):
    from kt.data.io import load_world

    out, summary = tiny_world
    world = load_world(out)
    assert world.n_rejected == 0
    assert len(world.events) == summary.n_events


def test_signals_recover_the_latent_outcome(tiny_world):
    """Where a quiz answer exists (the latent success), the signal-only rule mostly agrees with it."""
    out, _ = tiny_world
    ev = pd.read_parquet(out / "events")
    rf, dwell, nh, quiz = ev.read_fraction, ev.dwell_seconds, ev.n_highlights, ev.quiz_correct
    label = np.full(len(ev), np.nan)
    label[(rf < 0.2) | (dwell < 15)] = 0.0
    label[(rf >= 0.8) | ((nh >= 2) & (dwell >= 60))] = 1.0
    both = quiz.notna().to_numpy() & ~np.isnan(label)
    assert both.sum() > 50
    assert (label[both] == quiz.to_numpy()[both]).mean() > 0.85
