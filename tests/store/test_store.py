"""EventStore on SQLite and PostgreSQL: idempotent ingest, history order, catalog upsert."""

from __future__ import annotations

import sqlite3
import time

import pandas as pd
import pytest

from kt.store import EventStore
from kt.store.schema import PRUNED


def _event(i: int, user: str = "u1", content: str = "c1", minute: int | None = None, **kw) -> dict:
    ev = {
        "event_id": f"e{i}",
        "user_id": user,
        "content_id": content,
        "timestamp": pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=i if minute is None else minute),
        "folder_id": None,
        "read_fraction": 0.9,
        "dwell_seconds": 30.0,
        "n_highlights": 2,
        "quiz_correct": None,
        "outcome": 1,
    }
    ev.update(kw)
    return ev


def test_ingest_is_idempotent(store):
    batch = [_event(i) for i in range(5)]
    first = store.insert_events(batch)
    assert first.inserted == [f"e{i}" for i in range(5)] and first.duplicates == []
    second = store.insert_events(batch)
    assert second.inserted == [] and sorted(second.duplicates) == sorted(first.inserted)
    assert store.counts()["events"] == 5


def test_duplicates_inside_one_batch_count_once(store):
    res = store.insert_events([_event(1), _event(2), _event(1, outcome=0)])
    assert res.inserted == ["e1", "e2"] and res.duplicates == ["e1"]
    # the first write of an id wins
    assert store.user_events("u1")[0]["outcome"] == 1


def test_user_history_in_time_order_and_recent_limit(store):
    store.insert_events([_event(i, minute=10 - i) for i in range(5)] + [_event(9, user="u2")])
    hist = store.user_events("u1")
    assert [e["event_id"] for e in hist] == ["e4", "e3", "e2", "e1", "e0"]
    assert [e["event_id"] for e in store.user_events("u1", limit=2)] == ["e1", "e0"]
    assert store.user_event_count("u1") == 5 and store.user_event_count("nobody") == 0
    e = hist[0]
    assert e["timestamp"].tzinfo is not None and e["timestamp"] == pd.Timestamp("2026-01-01 00:06", tz="UTC")
    assert e["read_fraction"] == 0.9 and e["n_highlights"] == 2 and e["quiz_correct"] is None
    assert store.existing_ids("events", ["e1", "e9", "zz"]) == {"e1", "e9"}


def test_event_log_streams_by_user(store):
    store.insert_events([_event(i, user=f"u{i % 3}") for i in range(30)])
    parts = list(store.iter_events(batch_size=7))
    assert len(parts) == 5
    df = pd.concat(parts)
    assert len(df) == 30 and list(df["user_id"]) == sorted(df["user_id"])
    assert len(store.events_frame(user_ids=["u1"])) == 10


def test_user_ids_cover_the_log_and_the_users_table(store):
    assert store.user_ids() == []
    store.insert_events([_event(i, user=f"u{i % 3}") for i in range(6)])
    store.upsert("users", [{"user_id": "u9", "languages": "en", "created_at": pd.Timestamp("2026-01-01", tz="UTC")},
                           {"user_id": "u1", "languages": "fr", "created_at": pd.Timestamp("2026-01-01", tz="UTC")}])
    assert store.user_ids() == ["u0", "u1", "u2", "u9"]  # each once, sorted


def test_catalog_upsert_updates_by_key(store):
    item = {
        "content_id": "c1", "title": "Intro", "url": "https://x/1", "language": "en", "topics": "T1|T2",
        "difficulty": 0.3, "kind": "article", "created_at": pd.Timestamp("2026-01-01", tz="UTC"),
    }
    assert store.upsert("items", [item]) == 1
    store.upsert("items", [{**item, "title": "Intro v2"}, {**item, "content_id": "c2"}])
    items = store.read_table("items").set_index("content_id")
    assert items.loc["c1", "title"] == "Intro v2" and len(items) == 2
    assert str(items["created_at"].dt.tz) == "UTC"
    store.upsert("prerequisites", [{"topic_id": "T2", "prerequisite_id": "T1"}] * 2)
    assert store.counts()["prerequisites"] == 1
    assert [r["content_id"] for r in store.get_rows("items", ["c2", "nope"])] == ["c2"]


def test_catalog_change_log_is_pruned_behind_a_marker(store):
    item = {
        "content_id": "c1", "title": "Intro", "url": "https://x/1", "language": "en", "topics": "T1",
        "difficulty": 0.3, "kind": "article", "created_at": pd.Timestamp("2026-01-01", tz="UTC"),
    }
    for i in range(3):
        store.upsert("items", [{**item, "content_id": f"c{i}"}], changes=[("item", f"c{i}", None)])
    seqs = [s for s, *_ in store.catalog_changes_since(0)]
    assert len(seqs) == 3 and store.prune_catalog_changes(before=0.0) == 0  # nothing that old
    assert store.prune_catalog_changes(before=time.time() + 1) == 3  # two dropped, the newest marked
    assert store.catalog_changes_since(0) == [(seqs[-1], PRUNED, "", None)]
    assert store.catalog_seq() == seqs[-1]  # change numbers never go back
    store.upsert("items", [{**item, "content_id": "c9"}], changes=[("item", "c9", None)])
    later = store.catalog_changes_since(seqs[-1])
    assert [k for _, k, *_ in later] == ["item"] and later[0][0] > seqs[-1]
    assert store.prune_catalog_changes(before=0.0) == 0 and len(store.catalog_changes_since(0)) == 2


def test_store_reopens_with_data(db_url):
    s = EventStore(db_url)
    s.insert_events([_event(1)])
    s.close()
    s2 = EventStore(db_url)
    assert s2.user_event_count("u1") == 1 and s2.ping()
    s2.close()


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path):
    s = EventStore(f"sqlite:///{tmp_path / 'kt.db'}")
    s.insert_events([_event(1)])
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    s.close()
    # a committed event is visible to an independent reader
    with sqlite3.connect(tmp_path / "kt.db") as raw:
        assert raw.execute("select count(*) from events").fetchone()[0] == 1


def test_unsupported_url_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="mysql|unsupported|No module"):
        EventStore("mysql://nobody@localhost/x")


def test_shared_path_is_not_replaced_by_one_planned_from_older_stamps(store):
    assert store.put_cached_path("k", n_events=5, catalog_seq=10, model_version=2, body=b"new")
    assert not store.put_cached_path("k", n_events=4, catalog_seq=10, model_version=2, body=b"fewer events")
    assert not store.put_cached_path("k", n_events=5, catalog_seq=9, model_version=2, body=b"older catalog")
    assert store.cached_path("k") == (5, 10, 2, b"new")
    assert store.put_cached_path("k", n_events=5, catalog_seq=10, model_version=1, body=b"champion rolled back")
    assert store.cached_path("k") == (5, 10, 1, b"champion rolled back")
    assert store.put_cached_path("k", n_events=6, catalog_seq=11, model_version=1, body=b"newer")
    assert store.cached_path("k") == (6, 11, 1, b"newer")
