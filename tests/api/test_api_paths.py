"""Learning paths over HTTP: bundles with reasons, goals, cold start of a new item, folders."""

from __future__ import annotations

import pandas as pd


def _active_user(client) -> str:
    events = client.app.state.services.store.events_frame()
    return events["user_id"].value_counts().index[0]


def test_path_has_bundles_with_reasons(client):
    user = _active_user(client)
    r = client.get(f"/v1/users/{user}/path", params={"bundles": 2, "size": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == user and body["model_version"] >= 1
    assert 1 <= len(body["bundles"]) <= 2
    for b in body["bundles"]:
        assert b["reason"] and b["topic_id"] and b["source"] in ("ready", "review", "goal")
        assert 1 <= len(b["items"]) <= 4
        for it in b["items"]:
            assert it["reason"] and 0.0 <= it["predicted_success"] <= 1.0
    ids = [it["content_id"] for b in body["bundles"] for it in b["items"]]
    assert len(ids) == len(set(ids))
    consumed = set(client.app.state.services.store.events_frame(user_ids=[user])["content_id"])
    assert not consumed & set(ids)


def test_goal_topics_and_unknown_goal(client):
    user = _active_user(client)
    topic = client.app.state.services.store.read_table("topics")["topic_id"].iloc[-1]
    r = client.get(f"/v1/users/{user}/path", params={"goal": topic, "bundles": 3})
    assert r.status_code == 200 and r.json()["goal_topics"] == [topic]
    r = client.get(f"/v1/users/{user}/path", params={"goal": ["no-such-topic"]})
    # the shape of every request validation error: the query parameter and why
    assert r.status_code == 422 and r.json()["error"] == "invalid request"
    assert r.json()["details"][0]["loc"] == ["query", "goal"] and "no-such-topic" in r.json()["details"][0]["msg"]
    r = client.get(f"/v1/users/{user}/path", params={"lang": "english"})
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == ["query", "lang"]
    assert client.get("/v1/users/never-seen/path").status_code == 404


def test_bundle_size_outside_the_planners_limits_is_refused(client):
    # the planner clips sizes to its limits; a reply with fewer items than asked would mislead
    user = _active_user(client)
    for size in (2, 11, 50):  # one message whatever the size
        r = client.get(f"/v1/users/{user}/path", params={"size": size})
        detail = r.json()["details"][0]
        assert r.status_code == 422 and detail["loc"] == ["query", "size"] and "3..10" in detail["msg"]
    r = client.get(f"/v1/users/{user}/path", params={"size": 10, "bundles": 1})
    assert r.status_code == 200 and len(r.json()["bundles"][0]["items"]) <= 10


def test_new_item_is_recommendable_at_once(client):
    """Cold start: items in a language nobody has used yet, posted via the API, make up the path
    asked for in that language (topic index; no folder edges, no interactions)."""
    user = _active_user(client)
    topics = client.app.state.services.store.read_table("topics")["topic_id"].tolist()
    new = [{"content_id": f"fresh-{i}", "title": f"Fresh {i}", "url": f"https://example.org/{i}", "language": "eo",
            "topics": [topics[i % len(topics)]], "difficulty": 0.1 + 0.02 * i, "kind": "article"} for i in range(24)]
    before = client.get(f"/v1/users/{user}/path", params={"lang": "eo"})
    # no item in that language yet: said so, as kt recommend says it, rather than an empty path
    assert before.status_code == 422 and before.json()["details"][0]["loc"] == ["query", "lang"]
    assert "no items in eo; the catalog has " in before.json()["details"][0]["msg"]
    r = client.put("/v1/items", json={"items": new})
    assert r.status_code == 200 and r.json() == {"upserted": 24, "new": 24, "errors": []}
    again = client.post("/v1/items", json={"items": new[:2]}).json()
    assert again["upserted"] == 2 and again["new"] == 0
    after = client.get(f"/v1/users/{user}/path", params={"lang": "eo", "bundles": 2}).json()
    got = [it for b in after["bundles"] for it in b["items"]]
    assert got and all(it["content_id"].startswith("fresh-") for it in got)
    assert {it["source"] for it in got} <= {"fresh", "topic_index", "review"}
    # events on the new item are accepted at once and counted in mastery
    ev = {"event_id": "fresh-ev", "user_id": user, "content_id": "fresh-0", "timestamp": "2026-03-01T00:00:00Z",
          "read_fraction": 1.0, "dwell_seconds": 300.0, "n_highlights": 2, "quiz_correct": None}
    assert client.post("/v1/events", json={"events": [ev]}).json()["accepted"] == 1
    assert client.get(f"/v1/users/{user}/mastery").json()["n_events"] == (
        client.app.state.services.store.user_interaction_count(user))


def test_folders_link_items_into_the_graph(client):
    items = client.app.state.services.store.read_table("items")["content_id"].tolist()[:3]
    world = client.app.state.services.world
    edges = world.planner.graph.n_edges
    body = {"folders": [{"folder_id": "api-folder", "user_id": "u00000", "name": "Reading list", "items": items}]}
    r = client.put("/v1/folders", json=body)
    assert r.status_code == 200 and r.json()["new"] == 1
    assert world.planner.graph.n_edges == edges + 3
    r = client.put("/v1/folders", json=body)
    assert r.json()["new"] == 0
    assert client.app.state.services.store.counts()["folder_items"] >= 3


def test_empty_catalog_batches_are_fine(client):
    for path, key in (("/v1/items", "items"), ("/v1/folders", "folders")):
        for method in ("PUT", "POST"):
            r = client.request(method, path, json={key: []})
            assert r.status_code == 200 and r.json()["upserted"] == 0
    assert client.post("/v1/events", json={"events": []}).json()["accepted"] == 0


def test_re_putting_a_folder_keeps_its_created_at_and_its_links_added_at(client):
    store = client.app.state.services.store
    items = store.read_table("items")["content_id"].tolist()[:3]
    first = {"folder_id": "kept-folder", "user_id": "u00000", "name": "List", "created_at": "2026-01-05T00:00:00Z",
             "items": items[:2]}
    assert client.put("/v1/folders", json={"folders": [first]}).status_code == 200
    links = store.read_table("folder_items")
    links = links[links["folder_id"] == "kept-folder"].set_index("content_id")
    added = {c: links.loc[c, "added_at"] for c in items[:2]}
    again = {"folder_id": "kept-folder", "user_id": "u00000", "name": "Renamed", "items": [items[2]]}
    assert client.put("/v1/folders", json={"folders": [again]}).json() == {"upserted": 1, "new": 0, "errors": []}
    row = store.get_rows("folders", ["kept-folder"])[0]
    assert row["name"] == "Renamed" and pd.Timestamp(row["created_at"]).date().isoformat() == "2026-01-05"
    links = store.read_table("folder_items")
    links = links[links["folder_id"] == "kept-folder"].set_index("content_id")
    assert set(links.index) == set(items)  # filing adds; what was filed stays
    assert all(links.loc[c, "added_at"] == added[c] for c in items[:2])


def test_catalog_timestamps_follow_the_contract(client):
    topic = client.app.state.services.store.read_table("topics")["topic_id"].iloc[0]
    item = {"content_id": "old-item", "title": "t", "url": "https://x/o", "language": "en", "topics": [topic],
            "difficulty": 0.5}
    for when in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"):
        r = client.put("/v1/items", json={"items": [{**item, "created_at": when}]})
        assert r.status_code == 422 and r.json()["details"][0]["loc"][-1] == "created_at"
        r = client.put("/v1/folders", json={"folders": [{"folder_id": "old", "user_id": "u", "name": "n", "created_at": when}]})
        assert r.status_code == 422 and r.json()["details"][0]["loc"][-1] == "created_at"
    assert client.app.state.services.store.get_rows("items", ["old-item"]) == []
    # a naive time is UTC, as in files
    r = client.put("/v1/items", json={"items": [{**item, "created_at": "2026-01-05T10:00:00"}]})
    assert r.status_code == 200
    stored = pd.Timestamp(client.app.state.services.store.get_rows("items", ["old-item"])[0]["created_at"])
    assert (stored.tz_localize("UTC") if stored.tzinfo is None else stored) == pd.Timestamp("2026-01-05T10:00:00Z")


def test_unknown_top_level_keys_are_refused(client):
    # e.g. a "dry_run" the API does not have must not be ignored while the events are stored
    r = client.post("/v1/events", json={"events": [], "dry_run": True})
    assert r.status_code == 422 and ["body", "dry_run"] in [d["loc"] for d in r.json()["details"]]
    for path, key in (("/v1/items", "items"), ("/v1/folders", "folders")):
        assert client.put(path, json={key: [], "upsert": False}).status_code == 422
