"""The planner's in-memory world (catalog, topic index, item-folder graph, prerequisites),
built from the store at startup and kept in step with the store's catalog.

Catalog writes go to the store together with an entry in its ``catalog_changes`` log. Every
API process replays the log entries it has not applied yet (:meth:`ServingWorld.catch_up`):
the process that wrote them right after the write, before its response, so a new item is
recommendable at once; every other worker process before its next learning path. New items
join the catalog and topic index, edited ones have their attributes and topics replaced, and
new folder links join the item-folder graph.

Catalog updates replace numpy arrays inside :class:`kt.planner.Catalog`; a plan reading them
halfway through an update could see arrays of different lengths. A readers-writer lock lets
any number of plans run together and gives an update exclusive access for its few
milliseconds. Items added since startup are also kept (with a generation number) so a tracker
built for a newly promoted model can take in items that arrived while it was being built.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pandas as pd

from kt.planner import Catalog, ItemFolderGraph, Planner, PlannerConfig, PrerequisiteGraph
from kt.store import EventStore
from kt.store.schema import PRUNED
from kt.store.schema import items as ITEMS

log = logging.getLogger("kt.api")


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


# what the mastery tracker reads of an item: its topics, and its difficulty for the calibration
# offset (docs/mastery.md)
TRACKED_ITEM_COLUMNS = ["content_id", "topics", "difficulty"]


class ServingWorld:
    """A :class:`Planner` over the store's catalog, safe to update while serving."""

    def __init__(self, planner: Planner, items: pd.DataFrame, seq: int = 0) -> None:
        self.planner = planner
        self.lock = RWLock()
        self.items = items  # the catalog's items table (content_id, topics, ...) at startup
        self.added: list[tuple[int, pd.DataFrame]] = []  # (generation, items) added or edited since startup
        self.generation = 0
        # the last entry of the store's catalog change log applied here; cached paths carry it
        self.seq = seq
        self._catch_up_lock = threading.Lock()

    @classmethod
    def from_store(cls, store: EventStore, config: PlannerConfig | None = None) -> ServingWorld:
        # the log position first: a change landing while the tables are read is replayed later
        # (replaying a change already read is harmless: items are upserted, links deduplicated)
        seq = store.catalog_seq()
        items = store.read_table("items")
        topics = store.read_table("topics")
        catalog = Catalog.from_frames(items, topics)
        graph = ItemFolderGraph.from_frames(store.read_table("folder_items"), catalog)
        prereq = PrerequisiteGraph.from_frame(store.read_table("prerequisites"), topics["topic_id"].tolist())
        return cls(Planner(catalog, graph, prereq, config), items[TRACKED_ITEM_COLUMNS], seq)

    def items_since(self, generation: int) -> pd.DataFrame | None:
        parts = [df for g, df in self.added if g > generation]
        return pd.concat(parts, ignore_index=True) if parts else None

    def catch_up(self, store: EventStore, latest: int | None = None,
                 on_items: Callable[[pd.DataFrame], None] | None = None) -> None:
        """Apply the store's catalog changes made since :attr:`seq` (by any process).
        ``on_items`` gets the item rows applied (new or edited), inside the same write lock, so
        the mastery tracker changes along with the planner. One thread at a time;
        cheap when nothing changed (one indexed query, skipped when the caller passes the
        ``latest`` seq it just read).

        :attr:`seq` moves last: a request that reads the new seq before planning sees everything
        it covers (a request that read the old one caches its path under the old seq, which the
        next read recomputes)."""
        if (store.catalog_seq() if latest is None else latest) <= self.seq:
            return
        with self._catch_up_lock:
            changes = store.catalog_changes_since(self.seq)
            if not changes:
                return
            cat = self.planner.catalog
            pruned = any(kind == PRUNED for _, kind, _, _ in changes)
            if pruned:
                # entries this process had not applied were pruned from the log: reload it all
                log.warning("catalog change log pruned past this process (at %s): reloading the catalog", self.seq)
                # links first: an item linked after this read is already in the items read next
                # (items are never deleted); a link to an item still unknown is dropped below
                links = store.read_table("folder_items")[["folder_id", "content_id"]]
            else:
                links = pd.DataFrame([(f, c) for _, kind, c, f in changes if kind == "folder_item"],
                                     columns=["folder_id", "content_id"]).drop_duplicates()
            linked = links["content_id"].unique()
            unseen = linked[cat.index_of(linked) < 0]  # linked items this process has never seen
            if pruned:
                rows = store.read_table("items")
            else:
                # items of the log, and unseen linked ones (written to the store without a log
                # entry, e.g. by `kt store load` after this process started)
                wanted = list(dict.fromkeys([*(c for _, kind, c, _ in changes if kind == "item"), *unseen]))
                rows = pd.DataFrame(store.get_rows("items", wanted), columns=[c.name for c in ITEMS.columns])
            gone = sorted(set(unseen) - set(rows["content_id"]))
            if gone:  # the store has no such item: such a link cannot be placed in the graph
                log.warning("catalog changes up to %s: folder links to unknown items skipped: %s",
                            changes[-1][0], ", ".join(gone[:10]))
                links = links[~links["content_id"].isin(gone)]
            with self.lock.write():
                if len(rows):
                    known = cat.index_of(rows["content_id"]) >= 0
                    if (~known).any():
                        self.planner.add_items(rows[~known])
                    if known.any():
                        cat.update_items(rows[known])
                    self.generation += 1
                    self.added.append((self.generation, rows[TRACKED_ITEM_COLUMNS].copy()))
                    if on_items is not None:
                        on_items(rows)
                if len(links):
                    self.planner.graph.add_folder_items(links, cat)
                self.seq = changes[-1][0]

    def known_topics(self) -> set[str]:
        return set(self.planner.prerequisites.topics) | set(self.planner.catalog.topics.tokens)
