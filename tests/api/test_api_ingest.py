"""POST /v1/events: idempotency, per-item errors, limits, mastery updates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from kt.data.sequences import Vocab


def _items(client) -> list[str]:
    return client.app.state.services.store.read_table("items")["content_id"].tolist()


def _event(i: int, content_id: str, user: str = "api-user", minutes: int | None = None, **kw) -> dict:
    ts = pd.Timestamp("2026-02-01", tz="UTC") + pd.Timedelta(minutes=i if minutes is None else minutes)
    ev = {"event_id": f"api-{user}-{i}", "user_id": user, "content_id": content_id, "timestamp": ts.isoformat(),
          "folder_id": None, "read_fraction": 0.95, "dwell_seconds": 200.0, "n_highlights": 3, "quiz_correct": 1.0}
    ev.update(kw)
    return ev


def test_same_batch_twice_is_all_duplicates(client):
    items = _items(client)
    batch = {"events": [_event(i, items[i]) for i in range(5)]}
    first = client.post("/v1/events", json=batch)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 5 and first.json()["duplicates"] == 0 and first.json()["rejected"] == 0
    second = client.post("/v1/events", json=batch).json()
    assert second["accepted"] == 0 and second["duplicates"] == 5
    assert sorted(second["duplicate_ids"]) == sorted(e["event_id"] for e in batch["events"])
    assert client.app.state.services.store.user_event_count("api-user") == 5


def test_invalid_items_reported_valid_ones_stored(client):
    items = _items(client)
    batch = [
        _event(0, items[0]),
        _event(1, "no-such-item"),
        _event(2, items[1], read_fraction=1.7),
        _event(3, items[2], timestamp="not a time"),
        {"user_id": "x"},
        _event(4, items[3]),
        _event(0, items[0]),  # repeated inside the batch
    ]
    body = client.post("/v1/events", json={"events": batch}).json()
    assert body["accepted"] == 2 and body["rejected"] == 4 and body["duplicates"] == 1
    errors = {e["index"]: e for e in body["errors"]}
    assert set(errors) == {1, 2, 3, 4}
    assert errors[1]["field"] == "content_id" and "no-such-item" in errors[1]["reason"]
    assert errors[2]["field"] == "read_fraction"
    assert errors[3]["field"] == "timestamp"
    assert errors[4]["field"] == "event_id"
    stored = client.app.state.services.store.existing_ids("events", [e.get("event_id", "") for e in batch])
    assert stored == {"api-api-user-0", "api-api-user-4"}


def test_batch_length_and_body_size_limits(client):
    items = _items(client)
    too_many = {"events": [_event(i, items[0]) for i in range(1001)]}
    r = client.post("/v1/events", json=too_many)
    assert r.status_code == 422 and "1000" in r.json()["error"]
    r = client.post("/v1/events", content=b'{"events": [' + b" " * (1 << 20) + b"]}",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "error" in r.json()

    def streamed():  # chunked: no Content-Length to refuse up front, cut off while reading
        yield b'{"events": ['
        for _ in range(20):
            yield b" " * (1 << 16)
        yield b"]}"

    r = client.post("/v1/events", content=streamed(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["error"]
    assert client.app.state.services.store.user_event_count("api-user") == 0


def test_mastery_changes_after_new_events(client):
    store = client.app.state.services.store
    user = store.read_table("users")["user_id"].iloc[0]
    before = client.get(f"/v1/users/{user}/mastery")
    assert before.status_code == 200, before.text
    b = before.json()
    assert b["n_events"] == store.user_interaction_count(user) and b["topics"]
    # practise one topic a lot, all understood
    items = store.read_table("items")
    topic = b["topics"][0]["topic_id"]
    on_topic = items[items["topics"].str.split("|").str[0] == topic]["content_id"].tolist()
    batch = [_event(i, on_topic[i % len(on_topic)], user=user, minutes=60 * 24 * 60 + i) for i in range(20)]
    assert client.post("/v1/events", json={"events": batch}).json()["accepted"] == 20
    after = client.get(f"/v1/users/{user}/mastery").json()
    assert after["n_events"] == b["n_events"] + 20
    m_before = {t["topic_id"]: t for t in b["topics"]}[topic]
    m_after = {t["topic_id"]: t for t in after["topics"]}[topic]
    assert m_after["n_obs"] == m_before["n_obs"] + 20
    assert m_after["mastery"] != m_before["mastery"]
    # and it is what the library computes from the same log: a fresh tracker on the served model,
    # fed the stored events through the outcome rule, agrees topic by topic
    from kt.data.outcome import events_to_interactions
    from kt.mastery import MasteryTracker

    served = client.app.state.services.learner().tracker
    fresh = MasteryTracker(served.model, None, Vocab(served.catalog.topic_ids), served.catalog)
    inter, _ = events_to_interactions(store.events_frame(user_ids=[user]), items)
    fresh.observe_many(inter)
    expected = fresh.topic_mastery(user).set_index("topic_id")["mastery"]
    got = pd.Series({t["topic_id"]: t["mastery"] for t in after["topics"]})
    assert np.allclose(got.sort_index(), expected.loc[got.index].sort_index(), atol=1e-5)
    # and the topic's progress over its last practices, as the planner reads it
    progress = fresh.topic_mastery(user).set_index("topic_id")["progress"]
    assert m_after["progress"] is not None and abs(m_after["progress"] - progress[topic]) < 1e-5
    # the served tracker absorbed them on ingest: the stored state matches the log without a rebuild
    learner = client.app.state.services.learner()
    rec = learner.tracker.store.load(user)
    assert rec.meta.n_events == after["n_events"]


def test_nul_characters_are_rejected_per_item(client):
    items = _items(client)
    batch = [_event(0, items[0], user="nul\x00user", event_id="nul-0"), _event(1, items[1], folder_id="f\x00"), _event(2, items[2])]
    body = client.post("/v1/events", json={"events": batch}).json()
    assert body["accepted"] == 1 and body["rejected"] == 2
    assert {(e["index"], e["field"]) for e in body["errors"]} == {(0, "user_id"), (1, "folder_id")}
    assert client.get("/v1/users/a%00b/mastery").status_code == 422


def test_a_repeat_of_an_invalid_first_copy_is_stored_not_called_duplicate(client):
    # "duplicate" tells the client the event is stored; it must never cover an event that is not
    items = _items(client)
    cases = [
        (_event(20, items[0], read_fraction="bad"), _event(20, items[0])),
        (_event(21, "no-such-item"), _event(21, items[1])),
        (_event(22, items[2], folder_id="f\x00"), _event(22, items[2])),
    ]
    batch = [ev for pair in cases for ev in pair]
    body = client.post("/v1/events", json={"events": batch}).json()
    assert body["accepted"] == 3 and body["duplicates"] == 0 and body["rejected"] == 3
    assert sorted(e["index"] for e in body["errors"]) == [0, 2, 4]
    ids = [first["event_id"] for first, _ in cases]
    assert client.app.state.services.store.existing_ids("events", ids) == set(ids)
    # a repeat of a valid first copy is still an idempotent duplicate
    again = client.post("/v1/events", json={"events": [_event(23, items[3]), _event(23, items[3])]}).json()
    assert again["accepted"] == 1 and again["duplicates"] == 1 and again["duplicate_ids"] == ["api-api-user-23"]


def test_unknown_fields_oversized_counts_booleans_and_bad_text_are_rejected(client):
    items = _items(client)
    batch = [
        _event(30, items[0], quizCorrect=0),  # misspelt: quiz_correct would silently stay 1.0
        _event(31, items[0], n_highlights=10**20),  # would wrap around in int64
        _event(32, items[0], read_fraction=True),
        _event(33, items[0], event_id=True),
        _event(34, items[0], folder_id="f\ud800"),  # a lone surrogate: not UTF-8
        _event(35, items[0]),
        _event(36, items[0], user="line\nbreak"),
        _event(37, items[0], event_id="x" * 300),
    ]
    # the surrogate travels as a JSON escape (valid JSON text; decoded, not encodable as UTF-8)
    r = client.post("/v1/events", content=json.dumps({"events": batch}).encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    errors = {e["index"]: e for e in body["errors"]}
    assert body["accepted"] == 1 and set(errors) == {0, 1, 2, 3, 4, 6, 7}
    assert errors[0]["field"] == "quizCorrect" and "unknown field" in errors[0]["reason"]
    assert errors[1]["field"] == "n_highlights" and "integer" in errors[1]["reason"]
    assert errors[2]["field"] == "read_fraction"
    assert errors[3]["field"] == "event_id"
    assert errors[4]["field"] == "folder_id" and "UTF-8" in errors[4]["reason"]
    assert (errors[6]["field"], errors[7]["field"]) == ("event_id", "event_id")  # the id carries the user name
    assert "control characters" in errors[6]["reason"] and "128" in errors[7]["reason"]


def test_ids_follow_the_store_rule_on_every_backend(client):
    """Ids longer than the store's id column (or with control characters) are rejected per event;
    PostgreSQL would otherwise refuse the whole batch's INSERT and no event of it would be stored."""
    items = _items(client)
    batch = [_event(40, items[0], event_id="e" * 200), _event(41, items[0], user="u" * 129, event_id="ev-41"),
             _event(42, items[0], folder_id="del\x7f"), _event(43, items[0], event_id="x" * 128)]
    r = client.post("/v1/events", json={"events": batch})
    assert r.status_code == 200, r.text
    body = r.json()
    errors = {e["index"]: e for e in body["errors"]}
    assert body["accepted"] == 1 and set(errors) == {0, 1, 2}
    assert [errors[i]["field"] for i in (0, 1, 2)] == ["event_id", "user_id", "folder_id"]
    assert all("128" in errors[i]["reason"] for i in (0, 1, 2))
    assert client.app.state.services.store.existing_ids("events", ["x" * 128]) == {"x" * 128}


def test_an_element_that_is_not_an_object_is_rejected_alone(client):
    items = _items(client)
    r = client.post("/v1/events", json={"events": [_event(50, items[0]), 5, None, [1], "x"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1 and [e["index"] for e in body["errors"]] == [1, 2, 3, 4]
    assert all("not an event object" in e["reason"] for e in body["errors"])


def test_a_user_id_with_a_slash_is_readable_once_acknowledged(client):
    items = _items(client)
    user = "team/alice"
    assert client.post("/v1/events", json={"events": [_event(60, items[0], user=user, event_id="slash-1")]}).json()["accepted"] == 1
    for path in ("/v1/users/team%2Falice/mastery", "/v1/users/team/alice/mastery"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.json()["user_id"] == user and r.json()["n_events"] == 1
    assert client.get("/v1/users/team%2Falice/path").status_code == 200
