"""Simulated history of a chunk of users: item choice, practice, signals, mastery records.

One chunk of U users is simulated day by day; within a day, "step" j handles the j-th event
of every user still active that day, as one vectorised batch (a user appears at most once
per step, so fancy-index updates of the state never collide). :func:`practice` is the one
place where an event changes latent state; :class:`kt.sim.env.LearnerEnv` calls it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kt.sim import dynamics as dyn
from kt.sim.dynamics import DAY
from kt.sim.world import Catalog, UserChunk, sample_in_groups, sample_popular

SESSION_START = (6 * 3600.0, 20 * 3600.0)  # a day's session starts between 06:00 and 20:00 UTC
DAY_MARGIN = 2 * 3600.0  # no new event within 2 h of midnight, so a day never spills into the next
MAX_GAP = 600.0


@dataclass
class LearnerState:
    """Latent state of U users over K topics (value of m_k as of time last_k).

    m: (U, K) float mastery at ``last``; last: (U, K) float seconds; n_practice: (U, K) int32;
    floor: (U, K) the forgetting floor (long-term knowledge).
    clock: (U,) time of the user's latest event (or day 0); n_events: (U,) events emitted so far.
    """

    m: np.ndarray
    last: np.ndarray
    n_practice: np.ndarray
    floor: np.ndarray
    clock: np.ndarray
    n_events: np.ndarray

    @classmethod
    def initial(cls, m0: np.ndarray, cfg) -> LearnerState:
        u, k = m0.shape
        return cls(
            m=m0.astype(np.float64).copy(),
            last=np.zeros((u, k)),
            n_practice=np.zeros((u, k), dtype=np.int32),
            floor=dyn.initial_floor(m0.astype(np.float64), cfg),
            clock=np.zeros(u),
            n_events=np.zeros(u, dtype=np.int64),
        )

    def mastery_at(self, rows: np.ndarray, t: np.ndarray | float, cfg) -> np.ndarray:
        """(len(rows), K) mastery of the given users at time t (decay applied, state unchanged)."""
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), (len(rows),))[:, None]
        return dyn.decay(self.m[rows], self.last[rows], self.n_practice[rows], self.floor[rows], t, cfg)

    def copy(self) -> LearnerState:
        return LearnerState(*(a.copy() for a in (self.m, self.last, self.n_practice, self.floor, self.clock, self.n_events)))


@dataclass
class Practice:
    """Outcome of N events: latent p and s, signals, and mastery after the event."""

    p: np.ndarray
    s: np.ndarray
    read_fraction: np.ndarray
    dwell: np.ndarray
    n_highlights: np.ndarray
    quiz: np.ndarray
    topic: np.ndarray
    topic2: np.ndarray
    m_after: np.ndarray
    m2_after: np.ndarray  # NaN where the item has no second topic


def prerequisite_gate(cat: Catalog, st: LearnerState, rows: np.ndarray, topics: np.ndarray, t: np.ndarray):
    """(N,) gate G of the prerequisites of ``topics`` for users ``rows`` at times ``t``."""
    cfg = cat.config
    pre = cat.prereq[topics]  # (N, 3)
    valid = pre >= 0
    pc = np.where(valid, pre, 0)
    r2 = rows[:, None]
    pm = dyn.decay(st.m[r2, pc], st.last[r2, pc], st.n_practice[r2, pc], st.floor[r2, pc], t[:, None], cfg)
    return dyn.gate(dyn.readiness(pm, valid, cfg), cfg)


def success_probability(cat: Catalog, st: LearnerState, rows: np.ndarray, items: np.ndarray, t: np.ndarray):
    cfg = cat.config
    k = cat.item_topic[items]
    mk = dyn.decay(st.m[rows, k], st.last[rows, k], st.n_practice[rows, k], st.floor[rows, k], t, cfg)
    g = prerequisite_gate(cat, st, rows, k, t)
    return dyn.success_probability(mk, cat.difficulty[items], g, cfg)


def practice(
    cat: Catalog, st: LearnerState, rows: np.ndarray, items: np.ndarray, t: np.ndarray, rng: np.random.Generator
) -> Practice:
    """Users ``rows`` (distinct) consume ``items`` at times ``t``: draw success, signals, learn."""
    cfg = cat.config
    n = len(rows)
    k, k2, d = cat.item_topic[items], cat.item_topic2[items], cat.difficulty[items]
    mk = dyn.decay(st.m[rows, k], st.last[rows, k], st.n_practice[rows, k], st.floor[rows, k], t, cfg)
    g = prerequisite_gate(cat, st, rows, k, t)
    p = dyn.success_probability(mk, d, g, cfg)
    s = rng.random(n) < p
    full = cat.kind_seconds()[cat.item_kind[items]]
    rf, dwell, nh, quiz = dyn.signals(rng, s, full, cfg)
    dwell = np.minimum(dwell, 3.0 * full)
    m_after = dyn.learn(mk, d, g, s, cfg.eta, cfg)
    st.m[rows, k] = m_after
    st.last[rows, k] = t
    st.n_practice[rows, k] += 1
    st.floor[rows, k] = dyn.consolidate(st.floor[rows, k], m_after, cfg)
    # the second topic learns at a lower rate, under the same (primary topic's) readiness
    m2_after = np.full(n, np.nan)
    sel = np.flatnonzero(k2 >= 0)
    if len(sel):
        r, kk = rows[sel], k2[sel]
        m2 = dyn.decay(st.m[r, kk], st.last[r, kk], st.n_practice[r, kk], st.floor[r, kk], t[sel], cfg)
        m2_after[sel] = dyn.learn(m2, d[sel], g[sel], s[sel], cfg.eta_secondary, cfg)
        st.m[r, kk] = m2_after[sel]
        st.last[r, kk] = t[sel]
        st.n_practice[r, kk] += 1
        st.floor[r, kk] = dyn.consolidate(st.floor[r, kk], m2_after[sel], cfg)
    return Practice(p, s, rf, dwell, nh, quiz, k, k2, m_after, m2_after)


def choose_items(
    cat: Catalog, users: UserChunk, st: LearnerState, rows: np.ndarray, ends: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Each user in ``rows`` picks an item: from an interest topic in one of their languages
    (the better-suited of two candidates, judged by difficulty near their mastery), from one of
    their folders, or from the popular pool. Returns (items, local folder index or -1)."""
    cfg = cat.config
    n, n_lang = len(rows), len(cat.languages)
    total = cfg.p_interest + cfg.p_folder + cfg.p_popular
    u = rng.random(n) * total
    n_f = users.folder_ptr[rows + 1] - users.folder_ptr[rows]
    from_folder = (u >= cfg.p_interest) & (u < cfg.p_interest + cfg.p_folder) & (n_f > 0)
    from_popular = u >= cfg.p_interest + cfg.p_folder

    # interest picks
    j = (rng.random(n) * users.n_interests[rows]).astype(np.int64)
    topic = users.interests[rows, j]
    topic = np.where(rng.random(n) < cfg.p_explore, rng.integers(0, cat.n_topics, n), topic)
    lang = np.where((users.lang2[rows] >= 0) & (rng.random(n) < 0.3), users.lang2[rows], users.lang1[rows])
    groups = topic * n_lang + lang
    c1, ok1 = sample_in_groups(cat, rng, groups, ends)
    c2, _ = sample_in_groups(cat, rng, groups, ends)
    target = st.m[rows, topic] + cfg.zpd_delta
    closer2 = np.abs(cat.difficulty[c2] - target) < np.abs(cat.difficulty[c1] - target)
    items = np.where(closer2, c2, c1)
    from_popular |= ~ok1 & ~from_folder

    # folder picks
    f = users.folder_ptr[rows] + (rng.random(n) * n_f).astype(np.int64)
    f = np.minimum(f, max(len(users.folder_topic) - 1, 0))
    folder = np.where(from_folder, f, -1)
    if len(users.folder_items):
        fsize = users.folder_item_ptr[f + 1] - users.folder_item_ptr[f]
        pos = users.folder_item_ptr[f] + (rng.random(n) * np.maximum(fsize, 1)).astype(np.int64)
        items = np.where(from_folder, users.folder_items[np.minimum(pos, len(users.folder_items) - 1)], items)
    pop = sample_popular(cat, rng, n)
    items = np.where(from_popular & ~from_folder, pop, items)
    return items, folder


def folder_topics_matrix(users: UserChunk) -> np.ndarray:
    """(U, max folders) topic of each folder of each user, -1 padded."""
    n_f = np.diff(users.folder_ptr)
    width = max(int(n_f.max(initial=0)), 1)
    out = np.full((users.n, width), -1, dtype=np.int64)
    owner = np.repeat(np.arange(users.n), n_f)
    slot = np.arange(len(owner)) - users.folder_ptr[owner]
    out[owner, slot] = users.folder_topic
    return out


@dataclass
class ChunkHistory:
    """A block of one chunk's history sorted by (user, time); E events, R true-mastery rows.

    user, item, folder (-1 or local folder index), t, read_fraction, dwell, n_highlights, quiz,
    seq (per-user event number): (E,). tm_user, tm_topic, tm_t, tm_mastery: (R,) per-event
    mastery after the event, plus the snapshots (every user x every topic at each snapshot time).
    """

    user: np.ndarray
    item: np.ndarray
    folder: np.ndarray
    t: np.ndarray
    read_fraction: np.ndarray
    dwell: np.ndarray
    n_highlights: np.ndarray
    quiz: np.ndarray
    seq: np.ndarray
    tm_user: np.ndarray
    tm_topic: np.ndarray
    tm_t: np.ndarray
    tm_mastery: np.ndarray


def snapshot_times(cfg) -> list[float]:
    every = cfg.snapshot_every_days
    days = list(range(every, cfg.days + 1, every)) if every > 0 else []
    if not days or days[-1] != cfg.days:
        days.append(cfg.days)
    return [d * DAY for d in days]


FLUSH_EVERY_DAYS = 7


def simulate_chunk(
    cat: Catalog, users: UserChunk, chunk_index: int, emit: Callable[[ChunkHistory], None]
) -> LearnerState:
    """Simulate the whole period for one chunk of users; returns their final latent state.

    The history is handed to ``emit`` block by block (at each snapshot day, every
    ``FLUSH_EVERY_DAYS`` days and at the end), so memory does not grow with the period.
    """
    cfg = cat.config
    rng = np.random.default_rng([cfg.seed, 3, chunk_index])
    st = LearnerState.initial(users.m0, cfg)
    ftop = folder_topics_matrix(users)
    snaps = set(snapshot_times(cfg))
    all_rows = np.arange(users.n)
    ev, tm = _new_buffers()
    for day in range(cfg.days):
        day_start, day_end = day * DAY, (day + 1) * DAY
        ends = cat.available_end(day_start)  # items created today become visible tomorrow
        active = rng.random(users.n) < users.activity
        n_ev = np.where(active, 1 + rng.poisson(max(cfg.events_per_day - 1.0, 0.0), users.n), 0)
        st.clock = np.maximum(st.clock, day_start + rng.uniform(*SESSION_START, users.n))
        for j in range(int(n_ev.max(initial=0))):
            rows = np.flatnonzero((n_ev > j) & (st.clock < day_end - DAY_MARGIN))
            if len(rows) == 0:
                break
            t = st.clock[rows].copy()
            items, folder = choose_items(cat, users, st, rows, ends, rng)
            pr = practice(cat, st, rows, items, t, rng)
            # file highlighted items into the user's folder on the item's topic, when there is one
            match = ftop[rows] == pr.topic[:, None]
            file_it = (folder < 0) & (pr.n_highlights > 0) & match.any(axis=1) & (rng.random(len(rows)) < cfg.file_prob)
            folder = np.where(file_it, users.folder_ptr[rows] + match.argmax(axis=1), folder)
            gap = np.minimum(rng.exponential(60.0, len(rows)), MAX_GAP) + 1.0
            st.clock[rows] = t + pr.dwell + gap
            for key, val in (("user", rows), ("item", items), ("folder", folder), ("t", t), ("rf", pr.read_fraction),
                             ("dwell", pr.dwell), ("nh", pr.n_highlights), ("quiz", pr.quiz)):  # fmt: skip
                ev[key].append(val)
            has2 = pr.topic2 >= 0
            tm["user"] += [rows, rows[has2]]
            tm["topic"] += [pr.topic, pr.topic2[has2]]
            tm["t"] += [t, t[has2]]
            tm["m"] += [pr.m_after, pr.m2_after[has2]]
        if day_end in snaps:
            m_snap = st.mastery_at(all_rows, day_end, cfg)  # (U, K)
            tm["user"].append(np.repeat(all_rows, cat.n_topics))
            tm["topic"].append(np.tile(np.arange(cat.n_topics), users.n))
            tm["t"].append(np.full(m_snap.size, day_end))
            tm["m"].append(m_snap.ravel())
        if day_end in snaps or (day + 1) % FLUSH_EVERY_DAYS == 0 or day == cfg.days - 1:
            emit(_block(ev, tm, st, users.n))
            ev, tm = _new_buffers()
    st.clock = np.maximum(st.clock, cfg.days * DAY)
    return st


def _new_buffers() -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]]]:
    ev: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "item", "folder", "t", "rf", "dwell", "nh", "quiz")}
    tm: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "topic", "t", "m")}
    return ev, tm


def _block(ev: dict, tm: dict, st: LearnerState, n_users: int) -> ChunkHistory:
    """One block of history sorted by (user, time); numbers events on from ``st.n_events``."""

    def cat_(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    user, t = cat_(ev["user"], np.int64), cat_(ev["t"], np.float64)
    order = np.lexsort((t, user))
    user, t = user[order], t[order]
    first = np.searchsorted(user, user, side="left")
    seq = st.n_events[user] + np.arange(len(user)) - first
    st.n_events += np.bincount(user, minlength=n_users)
    tm_user, tm_t = cat_(tm["user"], np.int64), cat_(tm["t"], np.float64)
    tm_order = np.lexsort((tm_t, tm_user))
    return ChunkHistory(
        user=user, item=cat_(ev["item"], np.int64)[order], folder=cat_(ev["folder"], np.int64)[order], t=t,
        read_fraction=cat_(ev["rf"], np.float64)[order], dwell=cat_(ev["dwell"], np.float64)[order],
        n_highlights=cat_(ev["nh"], np.int64)[order], quiz=cat_(ev["quiz"], np.float64)[order], seq=seq,
        tm_user=tm_user[tm_order], tm_topic=cat_(tm["topic"], np.int64)[tm_order], tm_t=tm_t[tm_order],
        tm_mastery=cat_(tm["m"], np.float64)[tm_order],
    )  # fmt: skip
