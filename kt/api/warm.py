"""Precomputed learning paths: the API's path function run ahead of the users' requests.

:func:`warm_paths` plans each user's default path (their languages, no goals, the API's
default size) through :func:`kt.api.paths.learning_path` and writes it to the store's shared
path cache, so the first read of a user whose events have not changed since is a store read
(about a millisecond) instead of a plan (about 11 ms at a million items). Precomputed paths stay
exact: their stamps (the user's event count, the catalog change number, the champion's version)
are checked on every read, so an event, a catalog edit or a new champion after the warm-up
makes the next read plan afresh. :func:`warm_store` splits the users over processes, each with
its own serving world, as ``kt serve --workers`` does.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue as queue_module
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fastapi import HTTPException

from kt.api.paths import learning_path
from kt.api.services import Services
from kt.config import Settings

log = logging.getLogger("kt.api")


@dataclass
class WarmStats:
    users: int = 0
    planned: int = 0  # planned now and written to the shared cache
    fresh: int = 0  # already cached under the current stamps (rewritten, so retention starts again)
    superseded: int = 0  # not written: the store already held a path planned from newer stamps
    skipped: int = 0  # users the endpoint would answer with a 4xx (no events, not in the users table)
    failed: int = 0  # a plan or the store write failed (logged with the user id)
    seconds: float = 0.0

    def merge(self, other: WarmStats) -> None:
        for f in ("users", "planned", "fresh", "superseded", "skipped", "failed"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.seconds = max(self.seconds, other.seconds)


def warm_paths(services: Services, users: Iterable[str], bundles: int = 3, size: int = 5,
               progress: Callable[[WarmStats], None] | None = None, every: int = 1000,
               max_failures_in_a_row: int = 20) -> WarmStats:
    """Plan each user's default path (their own languages, no goals) and write it to the shared
    path cache, synchronously: the write is the point, so its errors count as failures (the API
    only logs them). A user that fails is logged and the run goes on; ``max_failures_in_a_row``
    consecutive failures (the store is down) stop it with RuntimeError. Needs a served champion
    and the shared level (``ApiConfig.shared_path_cache``, ``path_cache_size`` > 0). ``progress``
    is called every ``every`` users."""
    if services.paths.store is None or services.paths.capacity <= 0:
        raise RuntimeError("the shared path cache is off (ApiConfig.shared_path_cache, path_cache_size): nothing to warm")
    stats, t0, in_a_row = WarmStats(), time.perf_counter(), 0
    for user_id in users:
        stats.users += 1
        served = services.models.current  # per user, as the route reads it per request
        if served is None:
            raise RuntimeError("no champion is served: train and promote a model first (kt train, kt promote)")
        try:
            result = learning_path(services, served, str(user_id), bundles, size)
            # a fresh entry is written again too: its row's retention clock starts over
            written = services.paths.write_shared(result.key, result.entry)
        except HTTPException as exc:
            log.warning("warm: skipped user %r: %s", user_id, exc.detail)
            stats.skipped += 1
            continue
        except Exception as exc:
            log.warning("warm: user %r failed: %s: %s", user_id, type(exc).__name__, exc)
            log.debug("warm: user %r failed", user_id, exc_info=True)
            stats.failed += 1
            in_a_row += 1
            if in_a_row >= max_failures_in_a_row:
                raise RuntimeError(f"{in_a_row} users in a row failed (last: {user_id!r}); see the log") from None
            continue
        in_a_row = 0
        if not written:  # the user's events moved on while this ran, and a newer path was stored
            stats.superseded += 1
        elif result.level == "miss":
            stats.planned += 1
        else:
            stats.fresh += 1
        if progress is not None and stats.users % every == 0:
            stats.seconds = time.perf_counter() - t0
            progress(stats)
    stats.seconds = time.perf_counter() - t0
    return stats


def _warm_share(settings: Settings, users: list[str], bundles: int, size: int, report, every: int = 1000) -> WarmStats:
    """One process's share: its own services (world, champion), closed at the end. Its own LRU
    holds one path: every path goes to the store, none is read again here."""
    from kt.api.metrics import ApiMetrics
    from kt.api.services import ApiConfig, build_services

    config = ApiConfig(require_model=True, champion_poll_seconds=3600.0, path_cache_size=1)
    services = build_services(settings, config, ApiMetrics())
    try:
        return warm_paths(services, users, bundles, size, progress=report, every=every)
    finally:
        services.close()


def _child(index: int, settings: Settings, users: list[str], bundles: int, size: int, every: int, queue) -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the children
    torch.set_num_threads(1)  # one plan at a time per process, as in the API
    try:
        stats = _warm_share(settings, users, bundles, size, lambda s: queue.put(("progress", index, s)), every)
        queue.put(("done", index, stats))
    except Exception as exc:  # reported by the parent as one line
        queue.put(("error", index, f"{type(exc).__name__}: {exc}"))


def warm_store(settings: Settings, processes: int = 1, limit: int | None = None, bundles: int = 3, size: int = 5,
               log: Callable[[str], None] = print, every: int = 1000) -> WarmStats:
    """Warm every user of the store (or the first ``limit`` by id) over ``processes`` processes
    (one: in this process); ``log`` gets a progress line every ``every`` users of each process.
    Raises RuntimeError when a process fails (the others are stopped)."""
    from kt.store import EventStore
    from kt.train.tracking import champion_version

    # here, once: it also creates a new MLflow store's tables, which processes starting together
    # would race on
    if champion_version(settings) is None:
        raise RuntimeError(f"no champion for {settings.registered_model!r} in {settings.mlflow_tracking_uri}: "
                           "train and promote a model first (kt train, kt promote)")
    store = EventStore(settings.db_url)
    try:
        users = store.user_ids()
    finally:
        store.close()
    users = users[:limit] if limit is not None else users
    processes = max(1, min(processes, len(users)))  # no process without users (each loads the whole world)
    log(f"{len(users)} users, {processes} process(es), {bundles} bundles x {size} items")
    if not users:
        return WarmStats()
    if processes == 1:
        return _warm_share(settings, users, bundles, size,
                           lambda s: log(f"{s.users}/{len(users)} users ({s.users / max(s.seconds, 1e-9):.0f}/s)"), every)
    ctx = mp.get_context("spawn")  # a clean interpreter per child: no inherited threads or connections
    queue = ctx.Queue()
    children = [ctx.Process(target=_child, args=(i, settings, users[i::processes], bundles, size, every, queue),
                            daemon=True) for i in range(processes)]
    total, seen, finished, died = WarmStats(), {}, set(), {}
    t0 = time.perf_counter()
    try:
        for c in children:
            c.start()
        while len(finished) < len(children):
            try:
                kind, index, payload = queue.get(timeout=1.0)
            except queue_module.Empty:
                kind = None
            if kind == "progress":
                seen[index] = payload.users
                n = sum(seen.values())
                log(f"{n}/{len(users)} users ({n / max(time.perf_counter() - t0, 1e-9):.0f}/s)")
            elif kind == "done":
                total.merge(payload)
                finished.add(index)
            elif kind == "error":
                raise RuntimeError(f"warm-up failed in process {index}: {payload}")
            for i, c in enumerate(children):
                # dead without a word (killed, out of memory): a few seconds of grace for a last
                # message still on its way through the pipe
                if i not in finished and not c.is_alive():
                    died.setdefault(i, time.perf_counter())
                    if time.perf_counter() - died[i] > 3.0:
                        raise RuntimeError(f"warm-up process {i} exited with status {c.exitcode} before finishing")
    finally:
        started = [c for c in children if c.pid is not None]  # a failed start leaves the rest unstarted
        for c in started:  # on success they have exited; on an error or Ctrl-C, stop the rest
            if c.is_alive():
                c.terminate()
        for c in started:
            c.join(timeout=10)
            if c.is_alive():
                c.kill()
                c.join(timeout=5)
    total.seconds = time.perf_counter() - t0
    return total
