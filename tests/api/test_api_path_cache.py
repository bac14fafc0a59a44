"""Cached learning paths: served again byte for byte, recomputed when the user's events, the
catalog or the request change; the LRU bound and the off switch."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from api_helpers import API_KEY, make_settings

from kt.api.path_cache import PathCache, PathEntry


@contextlib.contextmanager
def _held(owner, name: str):
    """``owner.name`` blocks its callers until the block exits; yields the event set on the
    first call (the original is put back, and every held call released, on exit)."""
    original = getattr(owner, name)
    release, started = threading.Event(), threading.Event()

    def held(*args, **kwargs):
        started.set()
        release.wait(60)
        return original(*args, **kwargs)

    setattr(owner, name, held)
    try:
        yield started
    finally:
        release.set()
        setattr(owner, name, original)


def _read(cache: PathCache, *args, **kwargs) -> tuple[bytes, str] | None:
    """``cache.get`` as (body, level)."""
    found = cache.get(*args, **kwargs)
    return None if found is None else (found[0].body, found[1])


def _user(client) -> str:
    events = client.app.state.services.store.events_frame()
    return events["user_id"].value_counts().index[0]


def _path(client, user, **params):
    r = client.get(f"/v1/users/{user}/path", params={"bundles": 2, "size": 4, **params})
    assert r.status_code == 200, r.text
    return r.headers["X-Path-Cache"], r.content


def test_second_read_is_a_hit_and_equals_a_recompute(client):
    user = _user(client)
    first = _path(client, user)
    assert first[0] == "miss"
    assert _path(client, user) == ("hit", first[1])
    paths = client.app.state.services.paths
    paths.clear(shared=False)
    assert _path(client, user) == ("shared", first[1])  # this process forgot it; the store kept it
    paths.clear()
    assert _path(client, user) == ("miss", first[1])  # the plan is deterministic: the cache changes nothing
    assert _path(client, user, size=5)[0] == "miss"  # other parameters, other entry
    assert _path(client, user, size=5)[0] == "hit"


def _event(user: str, item: str, event_id: str) -> dict:
    return {"event_id": event_id, "user_id": user, "content_id": item, "timestamp": "2026-11-01T00:00:00Z",
            "read_fraction": 1.0, "dwell_seconds": 300.0, "n_highlights": 3, "quiz_correct": None}


def _wait_refreshed(client, timeout: float = 60.0) -> None:
    refresher = client.app.state.services.refresher
    deadline = time.monotonic() + timeout
    while not refresher.idle:
        assert time.monotonic() < deadline, "the background re-plan did not finish"
        time.sleep(0.01)


def _unseen(services, user: str) -> list[str]:
    consumed = set(services.store.events_frame(user_ids=[user])["content_id"])
    return [c for c in services.store.read_table("items")["content_id"] if c not in consumed]


def _items(body: bytes) -> list[str]:
    return [i["content_id"] for b in json.loads(body)["bundles"] for i in b["items"]]


def test_new_event_serves_the_path_stale_without_the_consumed_item_then_the_current_one(client):
    services = client.app.state.services
    user, other = services.store.events_frame()["user_id"].value_counts().index[:2]
    state, before = _path(client, user)
    _path(client, other)
    item = _items(before)[0]  # the user now reads an item of their path
    r = client.post("/v1/events", json={"events": [_event(user, item, "cache-ev-1")]})
    assert r.json()["accepted"] == 1, r.text
    r = client.get(f"/v1/users/{user}/path", params={"bundles": 2, "size": 4})
    assert r.headers["X-Path-Cache"] == "stale" and r.headers["X-Path-Events-Behind"] == "1"
    assert _items(r.content) == [c for c in _items(before) if c != item]  # the rest as planned, in order
    _wait_refreshed(client)
    state, current = _path(client, user)
    assert state == "hit" and item.encode() not in current  # re-planned in the background from every event
    assert _path(client, user, fresh="true") == ("hit", current)
    assert _path(client, other)[0] == "hit"  # other users keep theirs
    services.paths.clear()
    assert _path(client, user, fresh="true") == ("miss", current)  # what planning now gives, byte for byte
    metrics = client.get("/metrics").text
    assert 'ktpath_path_refreshes_total{result="planned"} 1.0' in metrics
    assert 'ktpath_path_reads_total{level="stale"} 1.0' in metrics


def test_fresh_reads_and_paths_too_far_behind_are_planned_for_the_request(client):
    services = client.app.state.services
    user = services.store.events_frame()["user_id"].value_counts().index[0]
    _path(client, user)
    unseen = _unseen(services, user)
    assert client.post("/v1/events", json={"events": [_event(user, unseen[0], "far-ev-0")]}).json()["accepted"] == 1
    assert _path(client, user, fresh="true")[0] == "miss"  # the client asked for the current path
    behind = services.config.path_max_stale_events + 1
    events = [_event(user, c, f"far-ev-{i + 1}") for i, c in enumerate(unseen[1:1 + behind])]
    assert client.post("/v1/events", json={"events": events}).json()["accepted"] == behind
    assert _path(client, user)[0] == "miss"  # more events than a stale path may miss
    metrics = client.get("/metrics").text
    assert 'level="stale"' not in metrics and "ktpath_path_refreshes_total{" not in metrics


def test_a_stale_read_with_languages_and_goals_is_re_planned_under_its_own_key(client):
    services = client.app.state.services
    user = services.store.events_frame()["user_id"].value_counts().index[0]
    topics = services.store.read_table("topics")["topic_id"].tolist()
    params = {"lang": ["en", "de"], "goal": topics[-1:]}
    state, before = _path(client, user, **params)
    _path(client, user)  # the default request: another key
    assert client.post("/v1/events", json={"events": [_event(user, _unseen(services, user)[0], "lg-ev")]}).status_code == 200
    assert _path(client, user, **params)[0] == "stale"
    _wait_refreshed(client)
    state, current = _path(client, user, **params)
    assert state == "hit" and json.loads(current)["languages"] == ["en", "de"]
    assert json.loads(current)["goal_topics"] == topics[-1:]
    assert _path(client, user)[0] == "stale"  # re-planning one key leaves the others as they were


def test_a_full_queue_drops_the_key_and_a_failed_re_plan_does_not_stop_the_refresher(client, monkeypatch):
    services = client.app.state.services
    user = services.store.events_frame()["user_id"].value_counts().index[0]
    _path(client, user)
    assert client.post("/v1/events", json={"events": [_event(user, _unseen(services, user)[0], "q-ev")]}).status_code == 200
    monkeypatch.setattr(services.refresher, "max_pending", 0)
    assert _path(client, user)[0] == "stale"
    assert 'ktpath_path_refreshes_total{result="dropped"} 1.0' in client.get("/metrics").text
    monkeypatch.undo()
    plan = services.world.planner.plan

    def broken(*args, **kwargs):
        raise RuntimeError("planner down")

    services.world.planner.plan = broken
    try:
        assert _path(client, user)[0] == "stale"  # the dropped key comes back with the next stale read
        _wait_refreshed(client)
    finally:
        services.world.planner.plan = plan
    assert 'ktpath_path_refreshes_total{result="failed"} 1.0' in client.get("/metrics").text
    assert _path(client, user)[0] == "stale"  # still stale: queued again, and the refresher still runs
    _wait_refreshed(client)
    assert _path(client, user)[0] == "hit"


def test_shutdown_waits_for_the_re_plan_in_progress(served_home, loaded_db):
    from fastapi.testclient import TestClient

    from kt.api import create_app

    app = create_app(make_settings(served_home[0], loaded_db))
    client = TestClient(app, headers={"X-API-Key": API_KEY}).__enter__()
    closing = threading.Thread(target=client.__exit__, args=(None, None, None))
    try:
        services = app.state.services
        user = services.store.events_frame()["user_id"].value_counts().index[0]
        _path(client, user)
        ev = _event(user, _unseen(services, user)[0], "sd-ev")
        assert client.post("/v1/events", json={"events": [ev]}).status_code == 200
        shares = []
        share = services.paths.share
        services.paths.share = lambda *a: (shares.append(a[0]), share(*a))
        with _held(services.world.planner, "plan") as started:
            assert _path(client, user)[0] == "stale"
            assert started.wait(60)
            closing.start()  # the lifespan's shutdown begins while the re-plan is held
            time.sleep(0.2)
            assert closing.is_alive()  # waiting for the plan, not closing the store under it
        closing.join(60)
    finally:
        if not closing.is_alive() and closing.ident is None:  # never started: close here
            client.__exit__(None, None, None)
    assert not closing.is_alive() and shares  # the plan finished, was shared, then the app closed


def test_stale_entries_need_the_same_catalog_and_champion_and_a_bounded_lag(tmp_path):
    from kt.store import EventStore

    store = EventStore(f"sqlite:///{tmp_path / 's.db'}")
    try:
        one, two = PathCache(capacity=4, store=store), PathCache(capacity=4, store=store)
        key = ("u1", 3, 5, (), ())
        one.put(key, PathEntry(3, 10, 2, b"three"))
        assert _read(one, key, 4, 10, 2) is None  # stale paths are opt-in
        assert _read(one, key, 4, 10, 2, max_behind=1) == (b"three", "stale")
        assert _read(two, key, 5, 10, 2, max_behind=2) == (b"three", "stale")  # from the store
        assert _read(two, key, 6, 10, 2, max_behind=2) is None  # too far behind
        assert _read(two, key, 4, 11, 2, max_behind=3) is None and _read(two, key, 4, 10, 3, max_behind=3) is None
        assert _read(two, key, 2, 10, 2, max_behind=3) is None  # planned from events this read has not seen
        two.put(key, PathEntry(4, 10, 2, b"four"), share=False)
        assert _read(two, key, 5, 10, 2, max_behind=2) == (b"four", "stale")  # the newest of the two levels
        one.put(key, PathEntry(5, 10, 2, b"five"))
        assert _read(two, key, 5, 10, 2, max_behind=2) == (b"five", "shared")  # current beats stale
    finally:
        store.close()


def test_catalog_changes_expire_every_path(client):
    services = client.app.state.services
    user = _user(client)
    _path(client, user)
    items = services.store.read_table("items")["content_id"].tolist()[:2]
    body = {"folders": [{"folder_id": "cache-folder", "user_id": user, "name": "More", "items": items}]}
    assert client.put("/v1/folders", json=body).status_code == 200
    assert _path(client, user)[0] == "miss"
    topic = services.store.read_table("topics")["topic_id"].iloc[0]
    item = {"content_id": "cache-new", "title": "New", "url": "https://example.org/n", "language": "en",
            "topics": [topic], "difficulty": 0.3, "kind": "article"}
    assert client.put("/v1/items", json={"items": [item]}).status_code == 200
    assert _path(client, user)[0] == "miss"
    assert _path(client, user)[0] == "hit"


def test_lru_bound_versions_and_off_switch():
    cache = PathCache(capacity=2)
    key = lambda u: (u, 3, 5, (), ())  # noqa: E731
    for u in ("a", "b", "c"):
        cache.put(key(u), PathEntry(1, 0, 7, u.encode()))
    assert len(cache) == 2 and _read(cache, key("a"), 1, 0, 7) is None  # the oldest went first
    assert _read(cache, key("b"), 1, 0, 7) == (b"b", "hit")
    assert _read(cache, key("b"), 2, 0, 7) is None  # the user has a new event
    assert _read(cache, key("b"), 1, 1, 7) is None  # the catalog changed
    assert _read(cache, key("b"), 1, 0, 8) is None  # another champion
    cache.put(key("d"), PathEntry(1, 0, 7, b"d"))
    assert _read(cache, key("b"), 1, 0, 7) == (b"b", "hit") and _read(cache, key("c"), 1, 0, 7) is None  # b was read last
    off = PathCache(capacity=0)
    off.put(key("a"), PathEntry(1, 0, 7, b"a"))
    assert len(off) == 0 and _read(off, key("a"), 1, 0, 7) is None


def test_plans_take_turns_under_concurrent_requests(client):
    """Planning is CPU-bound under the GIL: concurrent path requests of one process must plan
    one at a time (ApiConfig.plan_concurrency = 1), whatever the thread pool's size."""
    services = client.app.state.services
    planner = services.world.planner
    users = services.store.events_frame()["user_id"].unique()[:16].tolist()
    active, peak, lock = 0, 0, threading.Lock()
    plan = planner.plan

    def counting_plan(*args, **kwargs):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            threading.Event().wait(0.01)  # long enough for the other requests to pile up
            return plan(*args, **kwargs)
        finally:
            with lock:
                active -= 1

    def run() -> list[int]:
        services.paths.clear()
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda u: client.get(f"/v1/users/{u}/path").status_code, users))

    planner.plan = counting_plan
    try:
        codes = run()
        assert codes == [200] * len(users) and peak == 1
        services.plan_limiter.total_tokens = 4  # plan_concurrency = 4: the knob works
        peak = 0
        assert run() == [200] * len(users) and peak > 1
    finally:
        planner.plan = plan


def test_requests_waiting_for_a_plan_do_not_hold_up_probes_or_ingest(client):
    """Path requests queued behind a running plan wait on the event loop, not in the thread
    pool, so /healthz and other sync routes are still answered while they wait."""
    services = client.app.state.services
    users = services.store.events_frame()["user_id"].unique().tolist()
    with ThreadPoolExecutor(48) as pool:
        with _held(services.world.planner, "plan") as started:
            pending = [pool.submit(client.get, f"/v1/users/{users[i % len(users)]}/path", params={"size": 3 + i % 5})
                       for i in range(45)]
            assert started.wait(60)
            assert pool.submit(client.get, "/healthz").result(timeout=60).status_code == 200  # while 45 wait
            assert not all(f.done() for f in pending)
        assert [f.result(timeout=120).status_code for f in pending] == [200] * 45


def test_shared_level_keeps_entries_across_processes_and_checks_stamps(tmp_path):

    from kt.store import EventStore
    from kt.store.schema import path_cache

    store = EventStore(f"sqlite:///{tmp_path / 's.db'}")
    try:
        one, two = PathCache(capacity=4, store=store), PathCache(capacity=4, store=store)
        key = ("u1", 3, 5, ("en",), ("t1",))
        one.put(key, PathEntry(3, 10, 2, b'{"path": 1}'))
        assert _read(two, key, 3, 10, 2) == (b'{"path": 1}', "shared")  # another process's entry
        assert _read(two, key, 3, 10, 2) == (b'{"path": 1}', "hit")  # now in its own LRU
        assert _read(two, key, 4, 10, 2) is None and _read(two, key, 3, 11, 2) is None and _read(two, key, 3, 10, 3) is None
        assert _read(PathCache(capacity=4, store=store), ("u2", 3, 5, (), ()), 3, 10, 2) is None
        one.clear()
        assert _read(PathCache(capacity=4, store=store), key, 3, 10, 2) is None
        one.put(key, PathEntry(3, 10, 2, b'{"path": 1}'))
        assert _read(PathCache(capacity=4, store=store, namespace="other planner settings"), key, 3, 10, 2) is None
        with store.engine.begin() as conn:  # a row that does not decompress is a miss, not an error
            conn.execute(path_cache.update().values(body=b"not zlib"))
        assert _read(PathCache(capacity=4, store=store), key, 3, 10, 2) is None
        assert store.prune_cached_paths(before=0.0) == 0 and store.prune_cached_paths(before=time.time() + 1) == 1
        off = PathCache(capacity=0, store=store)
        off.put(key, PathEntry(3, 10, 2, b"x"))
        assert _read(off, key, 3, 10, 2) is None and store.clear_cached_paths() == 0  # an off cache writes nothing
    finally:
        store.close()


def test_cached_path_is_answered_while_another_users_plan_runs(client):
    """A cached read needs no planning turn: it does not queue behind a running plan."""
    services = client.app.state.services
    users = services.store.events_frame()["user_id"].unique()[:2].tolist()
    assert _path(client, users[0])[0] == "miss"  # now cached
    with ThreadPoolExecutor(2) as pool:
        with _held(services.world.planner, "plan") as started:
            planning = pool.submit(_path, client, users[1])
            assert started.wait(60)
            assert pool.submit(_path, client, users[0]).result(timeout=20)[0] == "hit"
            assert not planning.done()  # answered while the plan still held the only turn
        assert planning.result(timeout=60)[0] == "miss"


def test_lookups_stalled_on_the_store_do_not_hold_up_probes(client):
    """Path lookups have their own turns (ApiConfig.lookup_concurrency): lookups stuck on a
    slow store cannot take the threads that probes and ingest run in."""
    store = client.app.state.services.store
    users = store.events_frame()["user_id"].unique().tolist()
    with ThreadPoolExecutor(64) as pool:
        with _held(store, "user_event_counts") as started:
            pending = [pool.submit(client.get, f"/v1/users/{users[i % len(users)]}/path") for i in range(50)]
            assert started.wait(60)
            assert pool.submit(client.get, "/healthz").result(timeout=20).status_code == 200
            assert not any(f.done() for f in pending)
        assert [f.result(timeout=120).status_code for f in pending] == [200] * 50


def test_a_path_planned_from_older_stamps_does_not_replace_a_newer_one_in_the_lru():
    cache = PathCache(capacity=4)
    key = ("u1", 3, 5, (), ())
    cache.put(key, PathEntry(5, 10, 2, b"newer"), share=False)
    cache.put(key, PathEntry(4, 10, 2, b"older"), share=False)  # a slow request's plan
    assert _read(cache, key, 5, 10, 2) == (b"newer", "hit") and _read(cache, key, 4, 10, 2) is None
    cache.put(key, PathEntry(6, 11, 2, b"newest"), share=False)
    assert _read(cache, key, 6, 11, 2) == (b"newest", "hit")
