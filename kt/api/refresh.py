"""Learning paths served stale and re-planned in the background (stale-while-revalidate).

A read whose cached path is at most ``ApiConfig.path_max_stale_events`` of the user's events
behind, under the same catalog and champion, is answered with it at once (``X-Path-Cache:
stale``, minus the items consumed since) and its key handed to the process's
:class:`PathRefresher`. The refresher plans the current path off the request path, one at a
time in the planning turns reads use (and only when no read is waiting for one), and shares it
in the store, so the user's next read is a hit (``shared`` in other worker processes). Without
it, every read after an ingest plans while the client waits: about 11 ms of CPU at a million
items, and under load, with plans queueing behind each other and sharing the GIL with the event
loop, most of the latency tail.

Keys wait in a bounded, de-duplicated FIFO on the event loop. A key dropped because the queue is
full comes back with the user's next stale read; nothing is lost but freshness.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

import anyio
from fastapi import HTTPException

from kt.api.path_cache import PathKey
from kt.api.paths import PathRequest, cached_path, path_request, plan_path

if TYPE_CHECKING:
    from kt.api.services import Services

log = logging.getLogger("kt.api")

# while a request waits for a planning turn, the refresher checks again after this long
YIELD_SECONDS = 0.005


class PathRefresher:
    """Re-plans the paths of keys submitted from the event loop, one at a time. :meth:`run` is
    the loop's background task; :meth:`stop` ends it after the plan in progress."""

    def __init__(self, services: Services, max_pending: int = 10_000) -> None:
        self.services = services
        self.max_pending = max_pending
        self._pending: OrderedDict[PathKey, None] = OrderedDict()
        self._planning: PathKey | None = None  # the key being re-planned now
        self._wake = asyncio.Event()
        self._stopping = False

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing being planned (safe to read from another thread: a key
        is marked as being planned before it leaves the queue)."""
        return not self._pending and self._planning is None

    def submit(self, key: PathKey) -> None:
        """Queue ``key`` for a re-plan (on the event loop; a key waiting or being planned is not
        queued again)."""
        if key in self._pending or key == self._planning or self._stopping:
            return
        if len(self._pending) >= self.max_pending:
            self._count("dropped")
            return
        self._pending[key] = None
        self._wake.set()

    def stop(self) -> None:
        """Let :meth:`run` return once the plan in progress (if any) is done; queued keys are
        dropped (their users' next stale reads queue them again)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Plan queued keys until :meth:`stop`. A failing re-plan is logged and counted; the
        loop goes on."""
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and not self._stopping:
                key = next(iter(self._pending))
                self._planning = key  # before it leaves the queue: ``idle`` never reads a gap
                del self._pending[key]
                try:
                    self._count(await self.refresh(key))
                except Exception:
                    log.exception("re-planning the learning path of user %r failed", key[0])
                    self._count("failed")
                finally:
                    self._planning = None

    async def refresh(self, key: PathKey) -> str:
        """Plan and share the current path for ``key``. Returns "planned"; "current" when a path
        under the current stamps is already cached (another read or process planned it);
        "skipped" when there is no champion or the request is no longer valid."""
        services = self.services
        served = services.models.current
        if served is None:
            return "skipped"
        # the lookup takes a lookup turn, as a read does; the planning turn is for the plan alone
        req = await anyio.to_thread.run_sync(self._lookup, served, key, limiter=services.lookup_limiter)
        if isinstance(req, str):
            return req
        while services.plan_limiter.statistics().tasks_waiting:  # reads waiting to plan go first
            await asyncio.sleep(YIELD_SECONDS)
        result = await anyio.to_thread.run_sync(plan_path, services, served, req, limiter=services.plan_limiter)
        if result.level != "miss":  # a read of this process planned it while this one waited
            return "current"
        await anyio.to_thread.run_sync(services.paths.share, result.key, result.entry,
                                       limiter=services.lookup_limiter)
        return "planned"

    def _lookup(self, served, key: PathKey) -> PathRequest | str:
        """The request to plan for ``key``, or the outcome without a plan: "current" (its path
        is already cached under the current stamps) or "skipped" (the request is no longer
        valid)."""
        user_id, bundles, size, languages, goal = key
        try:
            # the key's languages are the request's or the user's: passing them gives the same key
            req = path_request(self.services, user_id, bundles, size, list(languages) or None, list(goal) or None)
        except HTTPException as exc:  # valid when it was served stale; e.g. a goal topic removed since
            log.info("not re-planning the path of user %r: %s", user_id, exc.detail)
            return "skipped"
        return "current" if cached_path(self.services, served, req) is not None else req

    def _count(self, result: str) -> None:
        self.services.metrics.path_refreshes.labels(result).inc()
