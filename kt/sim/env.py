"""LearnerEnv: simulated learners to evaluate mastery estimates and learning-path policies on.

The environment holds every user's latent state (mastery, last practice, practice counts,
forgetting floor) and applies exactly the dynamics the world generator used
(:func:`kt.sim.simulate.practice`). A policy shows a user a bundle with :meth:`consume`; the
user reads it in order, learns, and emits events in the data contract. :meth:`fork` gives an
independent copy, so several policies can start from the same state; randomness is drawn per
(user, call number) from the seed, so a user's outcome does not depend on other users' calls.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kt.sim import tables as tb
from kt.sim.config import SimConfig
from kt.sim.generate import start_micros
from kt.sim.simulate import LearnerState, practice, success_probability
from kt.sim.world import Catalog, chunk_bounds, id_width, make_catalog, make_users, topic_ids, user_ids

TimeLike = float | int | str | datetime | pd.Timestamp | None


class LearnerEnv:
    """Simulated learners over a catalog. Times are UTC timestamps (or seconds since day 0)."""

    def __init__(self, catalog: Catalog, state: LearnerState, seed: int | None = None):
        self.catalog = catalog
        self.config: SimConfig = catalog.config
        self.seed = self.config.seed if seed is None else seed
        self.state = state
        self._initial = state.copy()
        self._calls = np.zeros(len(state.clock), dtype=np.int64)
        self._start_us = start_micros(self.config)
        self.topic_ids: list[str] = topic_ids(self.catalog.n_topics)
        self._topic_index = {t: i for i, t in enumerate(self.topic_ids)}

    # construction -----------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: SimConfig, seed: int | None = None) -> LearnerEnv:
        """Users in their initial state (day 0, before any simulated history)."""
        cat = make_catalog(config)
        parts = [make_users(cat, lo, hi, c).m0 for c, (lo, hi) in enumerate(chunk_bounds(config))]
        return cls(cat, LearnerState.initial(np.concatenate(parts), config), seed)

    @classmethod
    def from_world(cls, world_dir: str | Path, seed: int | None = None) -> LearnerEnv:
        """Users as they stand at the end of a generated world's history (``learner_state/``)."""
        world = Path(world_dir)
        meta_path = world / "world.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path}: not found (generate a world with `kt sim`)")
        meta = json.loads(meta_path.read_text())
        if "config" not in meta:
            raise ValueError(f"{meta_path}: field 'config' missing; not a simulator world")
        config = SimConfig.from_dict(meta["config"])
        cat = make_catalog(config)
        parts = sorted((world / "learner_state").glob("part-*.parquet"))
        if not parts:
            raise FileNotFoundError(f"{world / 'learner_state'}: no part files")
        k = config.n_topics
        cols: dict[str, list[np.ndarray]] = {c: [] for c in ("mastery", "last_practice", "n_practice", "floor")}
        scalars: dict[str, list[np.ndarray]] = {"n_events": [], "clock": []}
        for p in parts:
            t = pq.read_table(p)
            for c in cols:
                cols[c].append(t.column(c).combine_chunks().flatten().to_numpy().reshape(-1, k))
            for c in scalars:
                scalars[c].append(t.column(c).to_numpy())
        state = LearnerState(
            m=np.concatenate(cols["mastery"]), last=np.concatenate(cols["last_practice"]),
            n_practice=np.concatenate(cols["n_practice"]).astype(np.int32), floor=np.concatenate(cols["floor"]),
            clock=np.concatenate(scalars["clock"]), n_events=np.concatenate(scalars["n_events"]).astype(np.int64),
        )  # fmt: skip
        if len(state.clock) != config.n_users:
            raise ValueError(f"{world / 'learner_state'}: {len(state.clock)} users, world.json says {config.n_users}")
        return cls(cat, state, seed)

    # copies -------------------------------------------------------------------------------
    def fork(self) -> LearnerEnv:
        """An independent copy: same state, same future randomness, shared (read-only) catalog."""
        other = LearnerEnv.__new__(LearnerEnv)
        other.__dict__.update(self.__dict__)
        other.state = self.state.copy()
        other._calls = self._calls.copy()
        return other

    def reset(self, user_id: str | None = None) -> None:
        """Restore one user (or everyone) to the state the environment was built with."""
        rows = slice(None) if user_id is None else self.user_index(user_id)
        for name in ("m", "last", "n_practice", "floor", "clock", "n_events"):
            getattr(self.state, name)[rows] = getattr(self._initial, name)[rows]
        self._calls[rows] = 0

    # ids and time -------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.state.clock)

    @property
    def n_topics(self) -> int:
        return self.catalog.n_topics

    def user_ids(self) -> list[str]:
        return user_ids(np.arange(self.n_users), self.n_users)

    def user_index(self, user_id: str) -> int:
        return _parse_id(user_id, "u", self.n_users, "user_id")

    def item_index(self, content_id: str) -> int:
        return _parse_id(content_id, "c", self.config.n_items, "content_id")

    def topic_index(self, topic_id: str) -> int:
        if topic_id not in self._topic_index:
            raise KeyError(f"topic_id {topic_id!r}: unknown topic")
        return self._topic_index[topic_id]

    def seconds(self, at: TimeLike, user: int | None = None) -> float:
        """A time as seconds since day 0; None means the user's clock (their latest activity)."""
        if at is None:
            return float(self.state.clock[user]) if user is not None else float(self.state.clock.max())
        if isinstance(at, int | float | np.floating | np.integer):
            return float(at)
        ts = pd.Timestamp(at)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return (ts.value // 1000 - self._start_us) / 1e6

    def timestamp(self, seconds: float) -> pd.Timestamp:
        return pd.Timestamp(self._start_us + round(seconds * 1e6), unit="us", tz="UTC")

    # catalog accessors --------------------------------------------------------------------
    @property
    def prerequisites(self) -> dict[str, list[str]]:
        """topic_id -> its prerequisite topic ids."""
        return {self.topic_ids[t]: [self.topic_ids[p] for p in row if p >= 0] for t, row in enumerate(self.catalog.prereq)}

    def topics(self) -> pd.DataFrame:
        par = self.catalog.parent
        return pd.DataFrame(
            {"topic_id": self.topic_ids, "name": self.catalog.topic_names,
             "parent_id": [self.topic_ids[p] if p >= 0 else None for p in par], "layer": self.catalog.layer}
        )  # fmt: skip

    def item_topics(self, content_ids: Sequence[str]) -> list[list[str]]:
        idx = [self.item_index(c) for c in content_ids]
        t1, t2 = self.catalog.item_topic[idx], self.catalog.item_topic2[idx]
        return [[self.topic_ids[a]] + ([self.topic_ids[b]] if b >= 0 else []) for a, b in zip(t1, t2, strict=True)]

    def difficulty(self, content_ids: Sequence[str]) -> np.ndarray:
        return self.catalog.difficulty[[self.item_index(c) for c in content_ids]]

    # learner state ------------------------------------------------------------------------
    def true_mastery(self, user_id: str, at: TimeLike = None) -> np.ndarray:
        """(K,) the user's latent mastery of every topic at ``at`` (forgetting applied).

        ``at`` may not precede the user's latest practice: the state only runs forward. For
        times inside a generated history, read the recorded trajectory (:func:`read_true_mastery`).
        """
        u = self.user_index(user_id)
        t = self.seconds(at, u)
        self._not_in_the_past("true_mastery", user_id, u, t)
        return self.state.mastery_at(np.array([u]), t, self.config)[0]

    def _not_in_the_past(self, what: str, user_id: str, u: int, t: float) -> None:
        """The state only runs forward: a time before the user's latest practice is an error."""
        latest = float(self.state.last[u].max())
        if t < latest - 1.0:  # 1 s of slack for timestamps rounded on their way through other layers
            raise ValueError(
                f"{what}({user_id!r}, at={self.timestamp(t)}): before the user's latest practice "
                f"({self.timestamp(latest)}); the state only runs forward (past mastery: "
                "kt.sim.env.read_true_mastery)"
            )

    def set_mastery(self, user_id: str, mastery: np.ndarray, at: TimeLike = None) -> None:
        """Overwrite a user's latent mastery (floor lowered where needed); for experiments and tests."""
        u = self.user_index(user_id)
        mastery = np.asarray(mastery, dtype=np.float64)
        if mastery.shape != (self.n_topics,) or np.any((mastery < 0) | (mastery > 1)):
            raise ValueError(f"mastery must be ({self.n_topics},) values in [0, 1]")
        self.state.m[u] = mastery
        self.state.last[u] = self.seconds(at, u)
        self.state.floor[u] = np.minimum(self.state.floor[u], mastery)

    def success_probability(self, user_id: str, content_ids: Sequence[str], at: TimeLike = None) -> np.ndarray:
        """(n,) probability the user understands each item now (no state change)."""
        u = self.user_index(user_id)
        items = np.array([self.item_index(c) for c in content_ids], dtype=np.int64)
        at_s = self.seconds(at, u)
        self._not_in_the_past("success_probability", user_id, u, at_s)  # it would answer for a later time
        t = np.full(len(items), at_s)
        return success_probability(self.catalog, self.state, np.full(len(items), u), items, t)

    def consume(
        self, user_id: str, content_ids: Sequence[str], now: TimeLike = None
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """The user reads ``content_ids`` in order starting at ``now`` (default: their clock).

        Returns the emitted events (contract columns of ``events/``) and the user's mastery
        vector (K,) right after the last item.
        """
        u = self.user_index(user_id)
        items = [self.item_index(c) for c in content_ids]
        # checked before anything changes: a bad ``now`` must not advance the call counter (forks
        # replay identical draws by it) nor leave a practice dated before the user's last
        t = self.seconds(now, u)
        self._not_in_the_past("consume", user_id, u, t)
        rng = np.random.default_rng([self.seed, 4, u, int(self._calls[u])])
        self._calls[u] += 1
        rows = np.array([u])
        rec: dict[str, list] = {k: [] for k in ("t", "rf", "dwell", "nh", "quiz")}
        for i in items:
            pr = practice(self.catalog, self.state, rows, np.array([i]), np.array([t]), rng)
            for key, val in (("t", t), ("rf", pr.read_fraction[0]), ("dwell", pr.dwell[0]),
                             ("nh", pr.n_highlights[0]), ("quiz", pr.quiz[0])):  # fmt: skip
                rec[key].append(val)
            t = t + float(pr.dwell[0]) + 1.0 + float(rng.exponential(30.0))
        self.state.clock[u] = max(float(self.state.clock[u]), t)
        n0 = int(self.state.n_events[u])
        self.state.n_events[u] += len(items)
        n = len(items)
        table = pa.table(
            {"event_id": [f"e{u}-{n0 + j}" for j in range(n)], "user_id": [user_id] * n,
             "content_id": list(content_ids), "timestamp": tb.timestamps(self._start_us, np.array(rec["t"])),
             "folder_id": pa.nulls(n, pa.string()), "read_fraction": np.array(rec["rf"], dtype=np.float64),
             "dwell_seconds": np.array(rec["dwell"], dtype=np.float64),
             "n_highlights": np.array(rec["nh"], dtype=np.int64),
             "quiz_correct": pa.array(np.array(rec["quiz"], dtype=np.float64), from_pandas=True)},
            schema=tb.EVENTS,
        )  # fmt: skip
        return table.to_pandas(), self.true_mastery(user_id, t)


def read_true_mastery(world_dir: str | Path, user_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The recorded true-mastery trajectory (``true_mastery/``), optionally for some users only:
    per-event rows (mastery of the event's topics right after it) and the full snapshots."""
    path = Path(world_dir) / "true_mastery"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not found (generate a world with `kt sim`)")
    filters = [("user_id", "in", list(user_ids))] if user_ids is not None else None
    return pq.read_table(path, filters=filters).to_pandas()


def _parse_id(value: str, prefix: str, n: int, field: str) -> int:
    s = str(value)
    width = id_width(n)
    if len(s) != width + 1 or s[0] != prefix or not s[1:].isdigit() or int(s[1:]) >= n:
        raise KeyError(f"{field} {value!r}: unknown (expected {prefix}{'0' * width}..{prefix}{n - 1:0{width}d})")
    return int(s[1:])
