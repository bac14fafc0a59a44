"""The served learner model: the champion's :class:`MasteryTracker`, kept coherent with the event log.

Mastery states are a cache of the event log. Before a user's mastery is read, the number of
their interactions in the log (events with a non-ambiguous outcome) is compared with the
number the stored state has absorbed and with the model version it was built by:

* same version, state behind, and every missing interaction newer than the state's last one
  (the usual case: events arrived since): absorb just those (``observe_many``);
* anything else (a new champion, events that arrived out of order, a state ahead of the log
  after a crash or a lost concurrent update): rebuild the user from the whole log.

After a crash nothing else is needed: states are caught up lazily, user by user. The check
costs one indexed count query; the per-user mastery table is cached in memory until the
user's interaction count changes. Per-user locks (striped) keep concurrent requests of one
process from updating a user's state twice.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import ExitStack

import numpy as np
import pandas as pd

from kt.data.times import series_to_seconds
from kt.mastery.tracker import MasteryTracker
from kt.store import EventStore

INTERACTION_COLUMNS = ["user_id", "content_id", "topic_id", "outcome", "timestamp"]


class ServedLearner:
    """A :class:`kt.planner.LearnerModel` over the served tracker and the event log."""

    def __init__(self, tracker: MasteryTracker, store: EventStore, version: int, cache_size: int = 50_000,
                 n_locks: int = 64) -> None:
        self.tracker = tracker
        self.store = store
        self.version = version
        self.cache_size = cache_size
        self._mastery: OrderedDict[tuple[str, int], pd.DataFrame] = OrderedDict()
        self._synced: dict[str, int] = {}  # user -> interaction count their stored state is known to hold
        self._cache_lock = threading.Lock()
        self._locks = [threading.Lock() for _ in range(n_locks)]

    def _lock_of(self, user_id: str) -> threading.Lock:
        return self._locks[zlib.crc32(user_id.encode()) % len(self._locks)]

    # ------------------------------------------------------------------ coherence with the log
    def sync(self, user_id: str, n_log: int | None = None) -> int:
        """Make the user's state match the event log; returns their interaction count.
        ``n_log``: that count, when the caller has just read it (saves a query)."""
        user_id = str(user_id)
        known = self._synced.get(user_id)
        if known is not None:
            if n_log is None:
                n_log = self.store.user_interaction_count(user_id)
            if known == n_log:
                return n_log
        with self._lock_of(user_id):
            n_log = self.store.user_interaction_count(user_id)
            rec = self.tracker.store.load(user_id)
            if rec is None or rec.meta.model_version != self.tracker.model_version or rec.meta.n_events > n_log:
                if n_log or rec is not None:
                    self.rebuild(user_id)
            elif rec.meta.n_events < n_log:
                tail = self._interactions(self.store.user_events(user_id, limit=n_log - rec.meta.n_events, labelled=True))
                last = rec.meta.last_event_at if rec.meta.last_event_at is not None else -math.inf
                if len(tail) == n_log - rec.meta.n_events and (series_to_seconds(tail["timestamp"]) > last).all():
                    self.tracker.observe_many(tail)
                else:
                    self.rebuild(user_id)
            self._synced[user_id] = n_log
        return n_log

    def _interactions(self, events: list[dict] | pd.DataFrame) -> pd.DataFrame:
        """Events -> interactions with their primary topic (from the store's catalog)."""
        df = pd.DataFrame(events)
        if not len(df):
            return pd.DataFrame(columns=INTERACTION_COLUMNS)
        df = df[df["outcome"].notna()]
        topics = self.store.item_topics(df["content_id"].unique())
        df = df.assign(
            topic_id=df["content_id"].map(lambda c: topics.get(c, "").split("|", 1)[0].strip() or None),
            outcome=df["outcome"].astype(int),
        )
        # an item that has left the catalog has no topic: its interactions cannot be traced
        return df.loc[df["topic_id"].notna(), INTERACTION_COLUMNS]

    def rebuild(self, user_id: str) -> None:
        """Replay the user's whole interaction history from the event log."""
        self.tracker.rebuild(user_id, self._interactions(self.store.user_events(user_id, labelled=True)))

    def after_ingest(self, new_events: pd.DataFrame) -> None:
        """Absorb newly stored events (any outcome) for users whose state is exactly one batch
        behind; other users are left to the lazy check of their next read."""
        inter = self._interactions(new_events)
        if not len(inter):
            return
        users = sorted(inter["user_id"].astype(str).unique())
        stripes = sorted({id(self._lock_of(u)): self._lock_of(u) for u in users}.items())
        with ExitStack() as stack:
            for _, lock in stripes:
                stack.enter_context(lock)
            counts = self.store.interaction_counts(users)
            recs = self.tracker.store.load_many(users)
            t = series_to_seconds(inter["timestamp"])
            ok = []
            for u, idx in inter.groupby("user_id").indices.items():
                rec, n_log = recs.get(u), counts.get(u, 0)
                if rec is None:
                    fits = n_log == len(idx)
                else:
                    last = rec.meta.last_event_at if rec.meta.last_event_at is not None else -math.inf
                    fits = (rec.meta.model_version == self.tracker.model_version
                            and rec.meta.n_events + len(idx) == n_log and bool((t[idx] > last).all()))
                if fits:
                    ok.append(u)
                else:
                    self._synced.pop(u, None)
            if ok:
                self.tracker.observe_many(inter[inter["user_id"].isin(ok)])
                for u in ok:
                    self._synced[u] = counts[u]

    # ------------------------------------------------------------------ LearnerModel protocol
    def topic_mastery(self, user_id: str, now=None) -> pd.DataFrame:
        user_id = str(user_id)
        n = self.sync(user_id)
        if now is not None:
            return self.tracker.topic_mastery(user_id, now=now)
        key = (user_id, n)
        with self._cache_lock:
            frame = self._mastery.get(key)
            if frame is not None:
                self._mastery.move_to_end(key)
                return frame
        frame = self.tracker.topic_mastery(user_id)
        self._remember(key, frame)
        return frame

    def _remember(self, key: tuple[str, int], frame: pd.DataFrame) -> None:
        with self._cache_lock:
            self._mastery[key] = frame
            while len(self._mastery) > self.cache_size:
                self._mastery.popitem(last=False)

    def predict_success(self, user_id: str, content_ids: Sequence[str]) -> np.ndarray:
        self.sync(user_id)
        return self.tracker.predict_success(str(user_id), content_ids)

    def pinned(self, user_id: str, n_log: int | None = None) -> tuple[PinnedLearner, int]:
        """Sync once, then a learner for this one request that does not re-check the log
        (a plan reads mastery and predictions; one count query is enough)."""
        n = self.sync(user_id, n_log)
        return PinnedLearner(self, str(user_id), n), n


class PinnedLearner:
    """One request's view of one user: mastery from the cache, predictions from the state."""

    def __init__(self, learner: ServedLearner, user_id: str, n_events: int) -> None:
        self.learner, self.user_id, self.n_events = learner, user_id, n_events
        self._state = None  # the user's stored state, read once on first use

    def _user_state(self):
        if self._state is None:
            self._state = self.learner.tracker.load_state(self.user_id)
        return self._state

    def topic_mastery(self, user_id: str, now=None) -> pd.DataFrame:
        lr = self.learner
        if str(user_id) != self.user_id or now is not None:
            return lr.topic_mastery(user_id, now)
        key = (self.user_id, self.n_events)
        with lr._cache_lock:
            frame = lr._mastery.get(key)
        if frame is None:
            frame = lr.tracker.topic_mastery_of(self._user_state())
            lr._remember(key, frame)
        return frame

    def predict_success(self, user_id: str, content_ids: Sequence[str]) -> np.ndarray:
        if str(user_id) != self.user_id:
            return self.learner.predict_success(user_id, content_ids)
        return self.learner.tracker.predict_success_of(self._user_state(), content_ids)
