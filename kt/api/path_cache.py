"""Learning paths kept until something they depend on changes.

A plan is a pure function of the user's events (their count in the log: events are only ever
appended, and every one moves mastery, the walk's seeds or the consumed set), the
catalog (the change number :attr:`kt.api.world.ServingWorld.seq`), the served champion (its version)
and the request's parameters: the planner's random walk is seeded by the user id, and mastery is
read as of the user's last event, not the wall clock. So a path computed once can be served
again, byte for byte, until one of those changes; the key carries the parameters and the entry
carries the three stamps it was computed under, checked on every read.

Entries hold the encoded JSON body (a few kB), not response objects, and the least recently
read ones go first. Each worker process has its own LRU; with a ``store`` behind it, every
computed path is also written to the store's ``path_cache`` table (compressed), and a local miss
reads it from there, so a path computed by one worker process (or before a restart) is served by
all of them. The stamps make both levels correct without any coordination. The catalog stamp is
the store's catalog change number the world has applied (:attr:`ServingWorld.seq`), the same in
every process that has caught up. Two processes at the same stamps may compute different but
equally valid plans (their catalogs index items in different orders); whichever was stored is
served.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

from kt.store import EventStore

log = logging.getLogger("kt.api")

PathKey = tuple[str, int, int, tuple[str, ...], tuple[str, ...]]  # user, bundles, size, languages, goals


@dataclass(frozen=True)
class PathEntry:
    n_events: int
    catalog_version: int
    model_version: int
    body: bytes


class PathCache:
    """A bounded LRU of encoded learning paths, optionally backed by the store's shared table;
    ``capacity`` 0 turns both off."""

    def __init__(self, capacity: int = 20_000, store: EventStore | None = None, namespace: str = "") -> None:
        self.capacity = capacity
        self.store = store
        # what else a plan depends on (code version, planner settings...): part of the shared key,
        # so a deploy that changes them never serves the paths of the one before
        self.namespace = namespace
        self._entries: OrderedDict[PathKey, PathEntry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: PathKey, n_events: int, catalog_version: int, model_version: int,
            local_only: bool = False, max_behind: int = 0) -> tuple[PathEntry, str] | None:
        """(entry, "hit" from this process | "shared" from the store) if ``key`` was computed
        under these stamps. Failing that, with ``max_behind`` > 0: the newest entry of either
        level planned under the same catalog and champion from at most that many fewer of the
        user's events, as (entry, "stale"). Else None. ``local_only`` leaves the store out of
        both."""
        stamps = (n_events, catalog_version, model_version)
        with self._lock:
            local = self._entries.get(key)
            if local is not None and _stamps(local) == stamps:
                self._entries.move_to_end(key)
                return local, "hit"
        shared = None
        if not local_only and self.store is not None and self.capacity > 0:
            try:
                row = self.store.cached_path(self._digest(key))
                if row is not None and (row[:3] == stamps or (max_behind > 0 and row[1:3] == stamps[1:])):
                    shared = PathEntry(*row[:3], zlib.decompress(row[3]))
            except Exception:  # the shared level is an optimisation: a store hiccup or a bad row is a miss
                log.exception("reading the shared path cache failed")
            if shared is not None and _stamps(shared) == stamps:
                self._remember(key, shared)
                return shared, "shared"
        usable = [e for e in (local, shared) if e is not None and e.catalog_version == catalog_version
                  and e.model_version == model_version and 0 < n_events - e.n_events <= max_behind]
        if not usable:
            return None
        return max(usable, key=lambda e: e.n_events), "stale"

    def put(self, key: PathKey, entry: PathEntry, share: bool = True) -> None:
        """Keep ``entry`` in this process, and with ``share`` in the store as well (the API
        defers that write to :meth:`share`, after the response)."""
        if self.capacity <= 0:
            return
        self._remember(key, entry)
        if share:
            self.share(key, entry)

    def share(self, key: PathKey, entry: PathEntry) -> None:
        """Write ``entry`` to the store's shared table (a no-op without one); errors are logged."""
        try:
            self.write_shared(key, entry)
        except Exception:
            log.exception("writing the shared path cache failed")

    def write_shared(self, key: PathKey, entry: PathEntry) -> bool:
        """:meth:`share`, with store errors raised (for jobs whose point is the write); False
        when there is no store, or it kept a path planned from newer stamps instead."""
        if self.store is None or self.capacity <= 0:
            return False
        return self.store.put_cached_path(self._digest(key), entry.n_events, entry.catalog_version,
                                          entry.model_version, zlib.compress(entry.body, 1))

    def clear(self, shared: bool = True) -> None:
        """Forget every entry of this process, and with ``shared`` the store's as well."""
        with self._lock:
            self._entries.clear()
        if shared and self.store is not None:
            self.store.clear_cached_paths()

    def _digest(self, key: PathKey) -> str:
        """The shared table's key: user ids and topic ids may be long, the digest is not."""
        return hashlib.sha256(repr((self.namespace, key)).encode()).hexdigest()

    def _remember(self, key: PathKey, entry: PathEntry) -> None:
        with self._lock:
            kept = self._entries.get(key)
            # the store's rule: a path planned from more events or a later catalog is not replaced
            # by one a slower request planned from older stamps
            if kept is not None and (kept.n_events > entry.n_events or kept.catalog_version > entry.catalog_version):
                return
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def _stamps(entry: PathEntry) -> tuple[int, int, int]:
    return entry.n_events, entry.catalog_version, entry.model_version
