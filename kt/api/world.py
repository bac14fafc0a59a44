"""The planner's in-memory world (catalog, topic index, item-folder graph, prerequisites),
built from the store at startup and updated in place by the catalog routes.

Catalog updates replace numpy arrays inside :class:`kt.planner.Catalog`; a plan reading them
halfway through an update could see arrays of different lengths. A readers-writer lock lets
any number of plans run together and gives an update exclusive access for its few
milliseconds. Items added since startup are also kept (with a generation number) so a tracker
built for a newly promoted model can take in items that arrived while it was being built.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

from kt.planner import Catalog, ItemFolderGraph, Planner, PlannerConfig, PrerequisiteGraph
from kt.store import EventStore


class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers (no writer starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class ServingWorld:
    """A :class:`Planner` over the store's catalog, safe to update while serving."""

    def __init__(self, planner: Planner, items: pd.DataFrame) -> None:
        self.planner = planner
        self.lock = RWLock()
        self.items = items  # the catalog's items table (content_id, topics, ...) at startup
        self.added: list[tuple[int, pd.DataFrame]] = []  # (generation, items) added since startup
        self.generation = 0
        self.version = 0  # bumped by every catalog change (items or folder edges): cached paths expire

    @classmethod
    def from_store(cls, store: EventStore, config: PlannerConfig | None = None) -> ServingWorld:
        items = store.read_table("items")
        topics = store.read_table("topics")
        catalog = Catalog.from_frames(items, topics)
        graph = ItemFolderGraph.from_frames(store.read_table("folder_items"), catalog)
        prereq = PrerequisiteGraph.from_frame(store.read_table("prerequisites"), topics["topic_id"].tolist())
        return cls(Planner(catalog, graph, prereq, config), items[["content_id", "topics"]])

    def add_items(self, items: pd.DataFrame) -> None:
        with self.lock.write():
            self.planner.add_items(items)
            self.generation += 1
            self.version += 1
            self.added.append((self.generation, items[["content_id", "topics"]].copy()))

    def items_since(self, generation: int) -> pd.DataFrame | None:
        parts = [df for g, df in self.added if g > generation]
        return pd.concat(parts, ignore_index=True) if parts else None

    def add_folder_items(self, folder_items: pd.DataFrame) -> None:
        with self.lock.write():
            self.planner.graph.add_folder_items(folder_items, self.planner.catalog)
            self.version += 1

    def known_topics(self) -> set[str]:
        return set(self.planner.prerequisites.topics) | set(self.planner.catalog.topics.tokens)
