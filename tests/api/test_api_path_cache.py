"""Cached learning paths: served again byte for byte, recomputed when the user's events, the
catalog or the request change; the LRU bound and the off switch."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

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


def test_new_event_of_the_user_expires_their_path(client):
    services = client.app.state.services
    user, other = services.store.events_frame()["user_id"].value_counts().index[:2]
    _path(client, user), _path(client, other)
    consumed = set(services.store.events_frame(user_ids=[user])["content_id"])
    item = next(c for c in services.store.read_table("items")["content_id"] if c not in consumed)
    ev = {"event_id": "cache-ev-1", "user_id": user, "content_id": item, "timestamp": "2026-11-01T00:00:00Z",
          "read_fraction": 1.0, "dwell_seconds": 300.0, "n_highlights": 3, "quiz_correct": None}
    r = client.post("/v1/events", json={"events": [ev]})
    assert r.json()["accepted"] == 1, r.text
    state, body = _path(client, user)
    assert state == "miss"
    assert item.encode() not in body  # now consumed: the fresh plan leaves it out
    assert _path(client, other)[0] == "hit"  # other users keep theirs


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
    assert len(cache) == 2 and cache.get(key("a"), 1, 0, 7) is None  # the oldest went first
    assert cache.get(key("b"), 1, 0, 7) == (b"b", "hit")
    assert cache.get(key("b"), 2, 0, 7) is None  # the user has a new event
    assert cache.get(key("b"), 1, 1, 7) is None  # the catalog changed
    assert cache.get(key("b"), 1, 0, 8) is None  # another champion
    cache.put(key("d"), PathEntry(1, 0, 7, b"d"))
    assert cache.get(key("b"), 1, 0, 7) == (b"b", "hit") and cache.get(key("c"), 1, 0, 7) is None  # b was read last
    off = PathCache(capacity=0)
    off.put(key("a"), PathEntry(1, 0, 7, b"a"))
    assert len(off) == 0 and off.get(key("a"), 1, 0, 7) is None


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
    import time

    from kt.store import EventStore
    from kt.store.schema import path_cache

    store = EventStore(f"sqlite:///{tmp_path / 's.db'}")
    try:
        one, two = PathCache(capacity=4, store=store), PathCache(capacity=4, store=store)
        key = ("u1", 3, 5, ("en",), ("t1",))
        one.put(key, PathEntry(3, 10, 2, b'{"path": 1}'))
        assert two.get(key, 3, 10, 2) == (b'{"path": 1}', "shared")  # another process's entry
        assert two.get(key, 3, 10, 2) == (b'{"path": 1}', "hit")  # now in its own LRU
        assert two.get(key, 4, 10, 2) is None and two.get(key, 3, 11, 2) is None and two.get(key, 3, 10, 3) is None
        assert PathCache(capacity=4, store=store).get(("u2", 3, 5, (), ()), 3, 10, 2) is None
        one.clear()
        assert PathCache(capacity=4, store=store).get(key, 3, 10, 2) is None
        one.put(key, PathEntry(3, 10, 2, b'{"path": 1}'))
        assert PathCache(capacity=4, store=store, namespace="other planner settings").get(key, 3, 10, 2) is None
        with store.engine.begin() as conn:  # a row that does not decompress is a miss, not an error
            conn.execute(path_cache.update().values(body=b"not zlib"))
        assert PathCache(capacity=4, store=store).get(key, 3, 10, 2) is None
        assert store.prune_cached_paths(before=0.0) == 0 and store.prune_cached_paths(before=time.time() + 1) == 1
        off = PathCache(capacity=0, store=store)
        off.put(key, PathEntry(3, 10, 2, b"x"))
        assert off.get(key, 3, 10, 2) is None and store.clear_cached_paths() == 0  # an off cache writes nothing
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
    assert cache.get(key, 5, 10, 2) == (b"newer", "hit") and cache.get(key, 4, 10, 2) is None
    cache.put(key, PathEntry(6, 11, 2, b"newest"), share=False)
    assert cache.get(key, 6, 11, 2) == (b"newest", "hit")
