"""Catalog changes reach every worker process: two apps on one store stand in for two uvicorn
workers (each has its own in-memory planner world); items added, edited or filed through one
are planned with by the other."""

from __future__ import annotations

import dataclasses
import time

import pandas as pd
import pytest
from api_helpers import API_KEY, make_settings

from kt.store.schema import PRUNED


@pytest.fixture
def second_worker(served_home, loaded_db, client):
    from fastapi.testclient import TestClient

    from kt.api import create_app

    app = create_app(make_settings(served_home[0], loaded_db))
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": API_KEY}) as c:
        yield c


def _user(client) -> str:
    return client.app.state.services.store.events_frame()["user_id"].value_counts().index[0]


def test_item_added_through_one_worker_is_planned_by_the_other(client, second_worker):
    user = _user(client)
    topics = client.app.state.services.store.read_table("topics")["topic_id"].tolist()
    assert second_worker.get(f"/v1/users/{user}/path", params={"lang": "eo"}).status_code == 422  # no eo items yet
    new = [{"content_id": f"sync-{i}", "title": f"S {i}", "url": f"https://example.org/s{i}", "language": "eo",
            "topics": [topics[i % len(topics)]], "difficulty": 0.1 + 0.03 * i, "kind": "article"} for i in range(24)]
    assert client.put("/v1/items", json={"items": new}).json()["new"] == 24
    got = [it["content_id"] for b in second_worker.get(f"/v1/users/{user}/path", params={"lang": "eo"}).json()["bundles"]
           for it in b["items"]]
    assert got and all(c.startswith("sync-") for c in got)
    other = second_worker.app.state.services
    assert other.world.seq == client.app.state.services.world.seq == other.store.catalog_seq()
    # the second worker's mastery tracker knows the new items' topics as well
    assert other.models.current.extras["tracker"].catalog.item_topic["sync-0"] == topics[0]


def test_item_edits_reach_the_planner_of_every_worker(client, second_worker):
    store = client.app.state.services.store
    topics = store.read_table("topics")["topic_id"].tolist()
    row = store.read_table("items").iloc[0]
    target = next(t for t in topics if t != row["topics"].split("|")[0])
    edited = {"content_id": row["content_id"], "title": row["title"], "url": row["url"], "language": "eo",
              "topics": [target], "difficulty": 0.99, "kind": row["kind"]}
    user = _user(client)
    before = second_worker.get(f"/v1/users/{user}/path").headers["X-Path-Cache"]
    assert client.put("/v1/items", json={"items": [edited]}).json() == {"upserted": 1, "new": 0, "errors": []}
    # the other worker replays the log before its next path, and the edit expired its cached paths
    assert before == "miss" and second_worker.get(f"/v1/users/{user}/path").headers["X-Path-Cache"] == "miss"
    for c in (client, second_worker):
        services = c.app.state.services
        cat = services.world.planner.catalog
        i = int(cat.index_of([row["content_id"]])[0])
        assert cat.topics.tokens[int(cat.primary_topic[i])] == target and cat.difficulty[i] == pytest.approx(0.99)
        assert cat.languages.tokens[int(cat.language[i])] == "eo"
        assert i in cat.topic_items(cat.topics.get(target), cat.language_codes(["eo"])).tolist()
        assert services.models.current.extras["tracker"].catalog.item_topic[row["content_id"]] == target


def test_folder_links_reach_the_other_workers_graph(client, second_worker):
    items = client.app.state.services.store.read_table("items")["content_id"].tolist()[:4]
    graph = second_worker.app.state.services.world.planner.graph
    edges = graph.n_edges
    body = {"folders": [{"folder_id": "sync-folder", "user_id": "u00000", "name": "Shared", "items": items}]}
    assert client.put("/v1/folders", json=body).json()["new"] == 1
    second_worker.get(f"/v1/users/{_user(client)}/path")  # the other worker replays the log before planning
    assert graph.n_edges == edges + 4
    assert client.put("/v1/folders", json=body).json()["new"] == 0  # nothing new: nothing logged, no edge twice
    second_worker.get(f"/v1/users/{_user(client)}/path")
    assert graph.n_edges == edges + 4


def test_a_path_planned_during_a_catalog_update_is_not_cached_stale(client):
    """A request arriving while new items are being applied waits for the whole update (planner
    and tracker) and is stamped with the catalog version that covers what it read."""
    import threading

    services = client.app.state.services
    user = _user(client)
    topics = services.store.read_table("topics")["topic_id"].tolist()
    tracker_catalog = services.models.current.extras["tracker"].catalog
    add = tracker_catalog.add_items
    racing: list = []

    def slow_add(items):  # another request comes in halfway through the update
        t = threading.Thread(target=lambda: racing.append(
            client.get(f"/v1/users/{user}/path", params={"bundles": 2, "size": 4, "lang": ["eo"]})))
        t.start()
        t.join(0.5)
        racing.append(t)
        add(items)

    tracker_catalog.add_items = slow_add
    new = [{"content_id": f"mid-{i}", "title": f"M {i}", "url": f"https://example.org/m{i}", "language": "eo",
            "topics": [topics[i % len(topics)]], "difficulty": 0.1 + 0.03 * i, "kind": "article"} for i in range(24)]
    try:
        assert client.put("/v1/items", json={"items": new}).status_code == 200
    finally:
        tracker_catalog.add_items = add
    racing[0].join(60)
    cached = client.get(f"/v1/users/{user}/path", params={"bundles": 2, "size": 4, "lang": ["eo"]})
    services.paths.clear()
    fresh = client.get(f"/v1/users/{user}/path", params={"bundles": 2, "size": 4, "lang": ["eo"]})
    assert fresh.headers["X-Path-Cache"] == "miss" and cached.content == fresh.content
    assert b"mid-" in fresh.content and b"null" not in fresh.content  # every new item has a prediction


def test_folder_link_to_an_item_this_worker_never_saw(client):
    """An item written to the store without a change entry (as `kt store load` does) and then
    filed in a folder through the API: the worker fetches it and keeps serving."""
    services = client.app.state.services
    row = services.store.read_table("items").iloc[0].to_dict()
    services.store.upsert("items", [{**row, "content_id": "loader-only"}])
    body = {"folders": [{"folder_id": "late", "user_id": "u00000", "name": "Late", "items": ["loader-only"]}]}
    assert client.put("/v1/folders", json=body).status_code == 200
    assert client.get(f"/v1/users/{_user(client)}/path").status_code == 200
    world = services.world
    i = int(world.planner.catalog.index_of(["loader-only"])[0])
    assert i >= 0 and world.planner.graph.item_degree[i] == 1
    assert world.seq == services.store.catalog_seq()


def test_identical_re_put_logs_nothing_and_keeps_cached_paths(client):
    services = client.app.state.services
    row = services.store.read_table("items").iloc[0]
    same = {"content_id": row["content_id"], "title": row["title"], "url": row["url"], "language": row["language"],
            "topics": row["topics"].split("|"), "difficulty": float(row["difficulty"]), "kind": row["kind"]}
    user = _user(client)
    client.get(f"/v1/users/{user}/path")
    seq = services.store.catalog_seq()
    assert client.put("/v1/items", json={"items": [same]}).json() == {"upserted": 1, "new": 0, "errors": []}
    assert services.store.catalog_seq() == seq  # nothing changed, nothing logged
    assert client.get(f"/v1/users/{user}/path").headers["X-Path-Cache"] == "hit"
    stored = services.store.get_rows("items", [row["content_id"]])[0]["created_at"]
    assert _as_utc(stored) == _as_utc(row["created_at"])  # an edit without created_at keeps the stored one
    assert client.put("/v1/items", json={"items": [{**same, "title": "renamed"}]}).status_code == 200
    assert services.store.catalog_seq() > seq
    edited = services.store.get_rows("items", [row["content_id"]])[0]
    assert edited["title"] == "renamed" and _as_utc(edited["created_at"]) == _as_utc(row["created_at"])
    assert client.get(f"/v1/users/{user}/path").headers["X-Path-Cache"] == "miss"


def _as_utc(value):
    import pandas as pd

    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts


def test_a_worker_idle_past_the_log_retention_reloads_the_catalog(client, second_worker):
    """Entries the second worker never applied are pruned: it sees the marker and reloads
    the whole catalog, so the items (and folder links) written meanwhile still reach it."""
    services = client.app.state.services
    topics = services.store.read_table("topics")["topic_id"].tolist()
    new = [{"content_id": f"idle-{i}", "title": f"I {i}", "url": f"https://example.org/i{i}", "language": "eo",
            "topics": [topics[0]], "difficulty": 0.2, "kind": "article"} for i in range(4)]
    other = second_worker.app.state.services
    seq_before = other.world.seq
    assert client.put("/v1/items", json={"items": new}).status_code == 200
    body = {"folders": [{"folder_id": "idle-folder", "user_id": "u00000", "name": "Idle", "items": ["idle-0", "idle-1"]}]}
    assert client.put("/v1/folders", json=body).status_code == 200
    assert services.store.prune_catalog_changes(before=time.time() + 1) > 0
    assert other.world.seq == seq_before  # it applied none of them
    edges = other.world.planner.graph.n_edges
    assert second_worker.get(f"/v1/users/{_user(client)}/path").status_code == 200
    cat = other.world.planner.catalog
    assert (cat.index_of([f"idle-{i}" for i in range(4)]) >= 0).all()
    assert other.world.planner.graph.n_edges == edges + 2 and other.world.seq == services.store.catalog_seq()
    assert other.models.current.extras["tracker"].catalog.item_topic["idle-3"] == topics[0]


def test_catalog_writes_prune_the_log_at_most_every_so_often(client, monkeypatch):
    services = client.app.state.services
    monkeypatch.setattr(services, "_pruned_at", float("-inf"))
    monkeypatch.setattr(services, "config", dataclasses.replace(services.config, catalog_log_retention_s=0.0))
    row = services.store.read_table("items").iloc[1]
    edit = {"content_id": row["content_id"], "title": "pruned soon", "url": row["url"], "language": row["language"],
            "topics": row["topics"].split("|"), "difficulty": float(row["difficulty"]), "kind": row["kind"]}
    assert client.put("/v1/items", json={"items": [edit]}).status_code == 200
    kinds = [k for _, k, *_ in services.store.catalog_changes_since(0)]
    assert kinds == [PRUNED]  # everything up to this write was older than a zero retention
    assert client.put("/v1/items", json={"items": [{**edit, "title": "again"}]}).status_code == 200
    assert [k for _, k, *_ in services.store.catalog_changes_since(0)] == [PRUNED, "item"]  # not pruned again yet


def test_a_reload_skips_folder_links_to_items_the_store_does_not_hold(client, second_worker):
    """A full reload reads folder links before items; a link whose item it cannot find (a loader
    wrote it, or it landed between the two reads) is skipped, not a failed request."""
    services = client.app.state.services
    now = pd.Timestamp.now(tz="UTC")
    services.store.upsert("folder_items", [{"folder_id": "orphan-folder", "content_id": "no-such-item", "added_at": now}])
    row = services.store.read_table("items").iloc[2]
    edit = {"content_id": row["content_id"], "title": "reloaded", "url": row["url"], "language": row["language"],
            "topics": row["topics"].split("|"), "difficulty": float(row["difficulty"]), "kind": row["kind"]}
    assert client.put("/v1/items", json={"items": [edit]}).status_code == 200
    assert services.store.prune_catalog_changes(before=time.time() + 1) > 0
    assert second_worker.get(f"/v1/users/{_user(client)}/path").status_code == 200
    other = second_worker.app.state.services.world
    assert other.seq == services.store.catalog_seq()
    assert other.planner.catalog.index_of(["no-such-item"])[0] < 0


def test_a_path_computed_by_one_worker_is_served_by_the_other(client, second_worker):
    """The shared level of the path cache: the second process answers from the store, byte for
    byte, until the user's events or the catalog move on."""
    services = client.app.state.services
    user = _user(client)
    first = client.get(f"/v1/users/{user}/path")
    assert first.headers["X-Path-Cache"] == "miss"
    shared = second_worker.get(f"/v1/users/{user}/path")
    assert shared.headers["X-Path-Cache"] == "shared" and shared.content == first.content
    assert second_worker.get(f"/v1/users/{user}/path").headers["X-Path-Cache"] == "hit"  # now in its own LRU too
    topic = services.store.read_table("topics")["topic_id"].iloc[0]
    item = {"content_id": "shared-new", "title": "N", "url": "https://example.org/sn", "language": "en",
            "topics": [topic], "difficulty": 0.3, "kind": "article"}
    assert client.put("/v1/items", json={"items": [item]}).status_code == 200
    assert second_worker.get(f"/v1/users/{user}/path").headers["X-Path-Cache"] == "miss"  # the catalog moved on
    assert client.get(f"/v1/users/{user}/path").headers["X-Path-Cache"] == "shared"  # computed by the other


def test_a_store_load_clears_the_shared_paths(client, served_home):
    """`kt store load` changes the catalog without change-log entries: paths computed before it
    must not be served after it (by this process's LRU neither, once it restarts)."""
    from kt.store.loader import load_world_into_store

    services = client.app.state.services
    user = _user(client)
    client.get(f"/v1/users/{user}/path")
    assert services.store.cached_path(services.paths._digest((user, 3, 5, _langs(services, user), ()))) is not None
    load_world_into_store(services.store, served_home[1])
    services.paths.clear(shared=False)  # as a restarted worker
    assert client.get(f"/v1/users/{user}/path").headers["X-Path-Cache"] == "miss"


def _langs(services, user):
    return tuple(services.user_languages(user) or ())
