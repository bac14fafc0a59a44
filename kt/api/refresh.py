"""Learning paths served stale and re-planned in the background (stale-while-revalidate).

A read whose cached path is at most ``ApiConfig.path_max_stale_events`` of the user's events
behind, under the same catalog and champion, is answered with it at once (``X-Path-Cache:
stale``, minus the items consumed since) and its key handed to the process's
:class:`PathRefresher`. The refresher plans the current path off the request path, one at a
time in the same planning turns reads use, and shares it in the store, so the user's next read
(in any worker process) is a hit. Without it, every read after an ingest plans while the client
waits: about 11 ms of CPU at a million items, and under load, with plans queueing behind each
other and sharing the GIL with the event loop, most of the latency tail.

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
from kt.api.paths import cached_path, path_request, plan_path

if TYPE_CHECKING:
    from kt.api.services import Services

log = logging.getLogger("kt.api")


class PathRefresher:
    """Re-plans the paths of keys submitted from the event loop, one at a time (:meth:`run` is
    the loop's background task)."""

    def __init__(self, services: Services, max_pending: int = 10_000) -> None:
        self.services = services
        self.max_pending = max_pending
        self._pending: OrderedDict[PathKey, None] = OrderedDict()
        self._wake = asyncio.Event()
        self._busy = False

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing being planned."""
        return not self._pending and not self._busy

    def submit(self, key: PathKey) -> None:
        """Queue ``key`` for a re-plan (on the event loop; a key already waiting is not repeated)."""
        if key in self._pending:
            return
        if len(self._pending) >= self.max_pending:
            self.services.metrics.path_refreshes.labels("dropped").inc()
            return
        self._pending[key] = None
        self._wake.set()

    async def run(self) -> None:
        """Plan queued keys until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                key, _ = self._pending.popitem(last=False)
                self._busy = True
                try:
                    result = await anyio.to_thread.run_sync(self.refresh, key, limiter=self.services.plan_limiter)
                except Exception:
                    log.exception("re-planning the learning path of %r failed", key[0])
                    result = "failed"
                finally:
                    self._busy = False
                self.services.metrics.path_refreshes.labels(result).inc()

    def refresh(self, key: PathKey) -> str:
        """Plan and share the current path for ``key``: "planned", or "current" when a path
        under the current stamps is already cached (another read or process planned it)."""
        services = self.services
        served = services.models.current
        if served is None:
            return "failed"
        user_id, bundles, size, languages, goal = key
        try:
            # the key's languages are the request's or the user's: passing them gives the same key
            req = path_request(services, user_id, bundles, size, list(languages) or None, list(goal) or None)
        except HTTPException:  # the request was valid when served; nothing to re-plan for it now
            return "failed"
        if cached_path(services, served, req) is not None:
            return "current"
        result = plan_path(services, served, req)
        if result.level == "miss":
            services.paths.share(result.key, result.entry)
        return "planned"
