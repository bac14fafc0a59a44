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
    planned: int = 0  # computed now and written to the shared cache
    fresh: int = 0  # already cached under the current stamps
    skipped: int = 0  # users the endpoint would answer with a 4xx (no events, not in the users table), logged
    seconds: float = 0.0

    def merge(self, other: WarmStats) -> None:
        for f in ("users", "planned", "fresh", "skipped"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.seconds = max(self.seconds, other.seconds)


def warm_paths(services: Services, users: Iterable[str], bundles: int = 3, size: int = 5,
               progress: Callable[[WarmStats], None] | None = None, every: int = 1000) -> WarmStats:
    """Plan each user's default path (their own languages, no goals) and write it to the shared
    path cache, synchronously (it is what the caller waits for). Needs a served champion and
    ``ApiConfig.shared_path_cache``. ``progress`` is called every ``every`` users."""
    served = services.models.current
    if served is None:
        raise RuntimeError("no champion is served: train and promote a model first (kt train, kt promote)")
    if services.paths.store is None:
        raise RuntimeError("the shared path cache is off (ApiConfig.shared_path_cache): nothing to warm")
    stats, t0 = WarmStats(), time.perf_counter()
    for user_id in users:
        stats.users += 1
        try:
            result = learning_path(services, served, str(user_id), bundles, size)
        except HTTPException as exc:
            log.warning("warm: skipped user %r: %s", user_id, exc.detail)
            stats.skipped += 1
            continue
        if result.entry is None:  # cached under the current stamps (a warm-up run before this one)
            stats.fresh += 1
        else:
            services.paths.share(result.key, result.entry)
            stats.planned += 1
        if progress is not None and stats.users % every == 0:
            stats.seconds = time.perf_counter() - t0
            progress(stats)
    stats.seconds = time.perf_counter() - t0
    return stats


def _warm_share(settings: Settings, users: list[str], bundles: int, size: int, report, every: int = 1000) -> WarmStats:
    """One process's share: its own services (world, champion, caches), closed at the end."""
    import torch

    from kt.api.metrics import ApiMetrics
    from kt.api.services import ApiConfig, build_services

    torch.set_num_threads(1)  # one plan at a time per process, as in the API
    services = build_services(settings, ApiConfig(require_model=True, champion_poll_seconds=3600.0), ApiMetrics())
    try:
        return warm_paths(services, users, bundles, size, progress=report, every=every)
    finally:
        services.close()


def _child(index: int, settings: Settings, users: list[str], bundles: int, size: int, every: int, queue) -> None:
    try:
        stats = _warm_share(settings, users, bundles, size, lambda s: queue.put(("progress", index, s)), every)
        queue.put(("done", index, stats))
    except Exception as exc:  # reported by the parent as one line
        queue.put(("error", index, f"{type(exc).__name__}: {exc}"))


def warm_store(settings: Settings, processes: int = 1, limit: int | None = None, bundles: int = 3, size: int = 5,
               log: Callable[[str], None] = print, every: int = 1000) -> WarmStats:
    """Warm every user of the store (or the first ``limit`` by id) over ``processes`` processes;
    ``log`` gets a progress line every ``every`` users of each process."""
    from kt.store import EventStore

    store = EventStore(settings.db_url)
    try:
        users = store.user_ids()
    finally:
        store.close()
    users = users[:limit] if limit is not None else users
    log(f"{len(users)} users, {processes} process(es), {bundles} bundles x {size} items")
    if processes == 1 or len(users) < 2:
        return _warm_share(settings, users, bundles, size,
                           lambda s: log(f"{s.users}/{len(users)} users ({s.users / max(s.seconds, 1e-9):.0f}/s)"), every)
    ctx = mp.get_context("spawn")  # a clean interpreter per child: no inherited threads or connections
    queue = ctx.Queue()
    shares = [users[i::processes] for i in range(processes)]
    children = [ctx.Process(target=_child, args=(i, settings, share, bundles, size, every, queue), daemon=True)
                for i, share in enumerate(shares)]
    for c in children:
        c.start()
    total, errors, seen = WarmStats(), [], {}
    t0 = time.perf_counter()
    finished: set[int] = set()
    quiet: dict[int, int] = {}
    while len(finished) < len(children):
        try:
            kind, index, payload = queue.get(timeout=5.0)
        except queue_module.Empty:
            # a child that died without a word (killed, out of memory); one quiet poll of grace,
            # for a last message still on its way through the pipe
            for i, c in enumerate(children):
                if i not in finished and not c.is_alive():
                    quiet[i] = quiet.get(i, 0) + 1
                    if quiet[i] > 1:
                        finished.add(i)
                        errors.append(f"process {i} exited with status {c.exitcode} before finishing")
            continue
        if kind == "progress":
            seen[index] = payload.users
            n = sum(seen.values())
            log(f"{n}/{len(users)} users ({n / max(time.perf_counter() - t0, 1e-9):.0f}/s)")
        elif kind == "done":
            total.merge(payload)
            finished.add(index)
        else:
            errors.append(payload)
            finished.add(index)
    for c in children:
        c.join()
    if errors:
        raise RuntimeError(f"warm-up failed in {len(errors)} process(es): {errors[0]}")
    total.seconds = time.perf_counter() - t0
    return total
