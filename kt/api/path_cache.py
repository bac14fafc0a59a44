"""Learning paths kept until something they depend on changes.

A plan is a pure function of the user's events (their count in the log: events are only ever
appended, and every one moves mastery, the walk's seeds or the consumed set), the
catalog (its version in :class:`kt.api.world.ServingWorld`), the served champion (its version)
and the request's parameters: the planner's random walk is seeded by the user id, and mastery is
read as of the user's last event, not the wall clock. So a path computed once can be served
again, byte for byte, until one of those changes; the key carries the parameters and the entry
carries the three versions it was computed under, checked on every read.

Entries hold the encoded JSON body (a few kB), not response objects, and the least recently
read ones go first. Each worker process has its own cache; the version check keeps them all
correct without any coordination.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

PathKey = tuple[str, int, int, tuple[str, ...], tuple[str, ...]]  # user, bundles, size, languages, goals


@dataclass(frozen=True)
class PathEntry:
    n_events: int
    catalog_version: int
    model_version: int
    body: bytes


class PathCache:
    """A bounded LRU of encoded learning paths; ``capacity`` 0 turns it off."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[PathKey, PathEntry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: PathKey, n_events: int, catalog_version: int, model_version: int) -> bytes | None:
        """The body stored for ``key`` if it was computed under these versions, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (entry.n_events, entry.catalog_version, entry.model_version) == (
                n_events, catalog_version, model_version):
                self._entries.move_to_end(key)
                return entry.body
            return None

    def put(self, key: PathKey, entry: PathEntry) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
