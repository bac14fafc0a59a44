"""Topic prerequisite graph: given by the catalog, or learned from interaction data.

``PrerequisiteGraph`` is a DAG over opaque topic ids (edge ``prerequisite -> topic``). When a
catalog ships no prerequisite edges, :func:`learn_prerequisites` estimates them from who practised
what, when, and how well:

* *within-user lift* (the main signal): for users who attempted B both before and after they
  mastered A (``m`` successes on A), their success rate on B after minus before. Comparing a user
  with themselves cancels general skill, which otherwise makes every pair look related;
* *between-user lift*: success on the first ``k`` attempts at B for users who had mastered A
  when they started B, minus the same for users who had not (added to the score);
* *precedence*: among users who practised both, the share who started A before B (a filter,
  off by default: in browsing logs people do not study in prerequisite order);
* optionally the catalog's *difficulty*: A -> B only if A's items are easier on average.

Edges with enough support (``min_support`` users for each statistic) and within-user lift above
``min_within_lift`` are inserted strongest first, skipping any that would close a cycle (so the weakest edge of every
cycle is the one dropped), at most ``max_parents`` per topic; then the transitive reduction
removes A -> C when A -> B -> C already explains it, because the statistics above also fire for
grand-parents. This is in the spirit of the ordering/performance heuristics surveyed for
prerequisite discovery (e.g. Chen et al., "Prerequisite-driven deep knowledge tracing", ICDM 2018,
which mines ordering pairs from performance data); the exact scores here are our own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd


class PrerequisiteGraph:
    """A DAG ``prerequisite -> topic`` over string topic ids, with per-edge scores."""

    def __init__(self, topics: Iterable[str], edges: Iterable[tuple[str, str]] = (), scores: dict | None = None):
        self.topics: list[str] = list(dict.fromkeys(str(t) for t in topics))
        known = set(self.topics)
        self.parents: dict[str, list[str]] = {t: [] for t in self.topics}
        self.children: dict[str, list[str]] = {t: [] for t in self.topics}
        self.scores: dict[tuple[str, str], float] = dict(scores or {})
        for pre, topic in edges:
            pre, topic = str(pre), str(topic)
            for t in (pre, topic):
                if t not in known:
                    known.add(t)
                    self.topics.append(t)
                    self.parents[t], self.children[t] = [], []
            if pre not in self.parents[topic] and pre != topic:
                self.parents[topic].append(pre)
                self.children[pre].append(topic)
        self._order = self._toposort()

    # ------------------------------------------------------------------ build
    @classmethod
    def from_frame(cls, prerequisites: pd.DataFrame, topics: Iterable[str] = ()) -> PrerequisiteGraph:
        """From the contract's ``prerequisites`` table (``topic_id, prerequisite_id``)."""
        for col in ("topic_id", "prerequisite_id"):
            if col not in prerequisites.columns:
                raise ValueError(f"prerequisites: missing column {col!r}")
        edges = list(zip(prerequisites["prerequisite_id"].astype(str), prerequisites["topic_id"].astype(str), strict=True))
        return cls(topics, edges)

    def _toposort(self) -> list[str]:
        indeg = {t: len(self.parents[t]) for t in self.topics}
        ready = [t for t in self.topics if indeg[t] == 0]
        order: list[str] = []
        while ready:
            t = ready.pop(0)
            order.append(t)
            for c in self.children[t]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    ready.append(c)
        if len(order) != len(self.topics):
            cyc = sorted(t for t in self.topics if indeg[t] > 0)[:5]
            raise ValueError(f"prerequisite graph has a cycle through topics {cyc}")
        return order

    # ------------------------------------------------------------------ queries
    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(p, t) for t in self.topics for p in self.parents[t]]

    def __len__(self) -> int:
        return len(self.topics)

    def ancestors(self, topic: str) -> set[str]:
        out: set[str] = set()
        stack = list(self.parents.get(topic, []))
        while stack:
            p = stack.pop()
            if p not in out:
                out.add(p)
                stack.extend(self.parents.get(p, []))
        return out

    def rank(self) -> dict[str, int]:
        """topic -> position in a fixed topological order."""
        return {t: i for i, t in enumerate(self._order)}

    def topological(self, topics: Iterable[str]) -> list[str]:
        """``topics`` sorted so every prerequisite comes before the topics needing it."""
        rank = self.rank()
        return sorted(set(topics), key=lambda t: (rank.get(t, -1), t))

    def to_frame(self) -> pd.DataFrame:
        rows = [(t, p, self.scores.get((p, t), np.nan)) for p, t in self.edges]
        return pd.DataFrame(rows, columns=["topic_id", "prerequisite_id", "score"])


# ---------------------------------------------------------------------- learning
@dataclass
class PrerequisiteLearningConfig:
    mastery_successes: int = 3  # successes on A that count as "A mastered"
    first_attempts: int = 5  # attempts at B whose success rate is compared
    min_support: int = 3  # users in each group (A mastered / not) before B
    min_precedence: float = 0.0
    min_lift: float = -1.0
    min_within_lift: float = 0.02
    max_parents: int = 3
    transitive_reduction: bool = True
    min_difficulty_gap: float = 0.05  # with topic_difficulty: d(A) + gap < d(B)


def _first_times(inter: pd.DataFrame, cfg: PrerequisiteLearningConfig):
    """Per (user, topic): first attempt time, mastery time (m-th success), success rate of the
    first ``k`` attempts."""
    g = inter.groupby(["user_id", "topic_id"], sort=False)
    first = g["timestamp"].min()
    rank = g.cumcount()
    early = inter[rank < cfg.first_attempts].groupby(["user_id", "topic_id"], sort=False)["outcome"].mean()
    succ = inter[inter["outcome"] > 0]
    succ_rank = succ.groupby(["user_id", "topic_id"], sort=False).cumcount()
    mastered = succ[succ_rank == cfg.mastery_successes - 1].set_index(["user_id", "topic_id"])["timestamp"]
    return first, mastered, early


def learn_prerequisites(
    interactions: pd.DataFrame,
    topics: Iterable[str] | None = None,
    config: PrerequisiteLearningConfig | None = None,
    topic_difficulty: dict[str, float] | None = None,
) -> PrerequisiteGraph:
    """Learn a prerequisite DAG from ``interactions`` (``user_id, topic_id, timestamp, outcome``).

    ``topic_difficulty`` (topic -> mean catalog difficulty of its items), when given, admits an
    edge A -> B only if A's items are easier on average than B's: prerequisites are the easier
    material, and this one catalog-level fact removes most of the direction errors of the
    interaction statistics."""
    cfg = config or PrerequisiteLearningConfig()
    for col in ("user_id", "topic_id", "timestamp", "outcome"):
        if col not in interactions.columns:
            raise ValueError(f"interactions: missing column {col!r}")
    inter = interactions[["user_id", "topic_id", "timestamp", "outcome"]].copy()
    inter["topic_id"] = inter["topic_id"].astype(str)
    inter["timestamp"] = pd.to_datetime(inter["timestamp"], utc=True).astype("int64")
    inter = inter.sort_values(["user_id", "timestamp"], kind="stable")
    topic_list = list(dict.fromkeys([*(str(t) for t in (topics if topics is not None else [])), *inter["topic_id"].unique().tolist()]))
    t_index = {t: i for i, t in enumerate(topic_list)}
    users = inter["user_id"].unique()
    u_index = pd.Index(users)
    n_u, n_t = len(users), len(topic_list)
    first_s, mastered_s, early_s = _first_times(inter, cfg)

    def to_matrix(s: pd.Series) -> np.ndarray:
        m = np.full((n_u, n_t), np.nan)
        if len(s):
            ui = u_index.get_indexer(s.index.get_level_values(0))
            ti = np.fromiter((t_index[t] for t in s.index.get_level_values(1)), np.int64, len(s))
            m[ui, ti] = s.to_numpy(np.float64)
        return m

    first, mastered, early = to_matrix(first_s), to_matrix(mastered_s), to_matrix(early_s)
    both = ~np.isnan(first)[:, :, None] & ~np.isnan(first)[:, None, :]  # (U, A, B)
    a_before_b = first[:, :, None] < first[:, None, :]
    n_both = both.sum(0)
    precedence = np.where(n_both > 0, (both & a_before_b).sum(0) / np.maximum(n_both, 1), 0.0)
    has_b = ~np.isnan(first)[:, None, :]  # (U, 1, B)
    with np.errstate(invalid="ignore"):
        had_a = (mastered[:, :, None] < first[:, None, :]) & has_b  # mastered A before starting B
    no_a = has_b & ~had_a
    eb = np.nan_to_num(early)[:, None, :]
    n1, n0 = had_a.sum(0), no_a.sum(0)
    lift = (had_a * eb).sum(0) / np.maximum(n1, 1) - (no_a * eb).sum(0) / np.maximum(n0, 1)
    within, n_within = _within_user_lift(inter, u_index, t_index, mastered)
    ok = (n1 >= cfg.min_support) & (n0 >= cfg.min_support) & (precedence >= cfg.min_precedence) & (lift >= cfg.min_lift)
    ok &= (n_within >= cfg.min_support) & (within >= cfg.min_within_lift)
    lift = lift + within
    if topic_difficulty is not None:
        td = np.array([topic_difficulty.get(t, np.nan) for t in topic_list])
        with np.errstate(invalid="ignore"):
            ok &= td[:, None] + cfg.min_difficulty_gap < td[None, :]
    np.fill_diagonal(ok, False)
    cand = [(float(lift[a, b]), topic_list[a], topic_list[b]) for a, b in zip(*np.nonzero(ok), strict=True)]
    cand.sort(key=lambda x: (-x[0], x[1], x[2]))
    return build_dag(topic_list, cand, cfg.max_parents, cfg.transitive_reduction)


def _within_user_lift(inter: pd.DataFrame, u_index: pd.Index, t_index: dict[str, int], mastered: np.ndarray):
    """(A, B) mean over users of [success rate on B after mastering A - before], counting only users
    with attempts at B on both sides of that moment (the user's general skill cancels out), and
    the number of such users."""
    ui = u_index.get_indexer(inter["user_id"])
    bi = np.fromiter((t_index[t] for t in inter["topic_id"]), np.int64, len(inter))
    t = inter["timestamp"].to_numpy(np.float64)
    y = inter["outcome"].to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        after = t[:, None] > mastered[ui]  # (N, A): this attempt at B comes after A was mastered
    k = mastered.shape[1]
    group = ui.astype(np.int64) * k + bi  # one group per (user, B)
    g, ginv = np.unique(group, return_inverse=True)
    n_g = len(g)

    def gsum(w: np.ndarray) -> np.ndarray:  # (N, A) -> (G, A)
        out = np.zeros((n_g, k))
        np.add.at(out, ginv, w)
        return out

    af = after.astype(np.float64)
    n_after, n_before = gsum(af), gsum(1.0 - af)
    y_after, y_before = gsum(af * y[:, None]), gsum((1.0 - af) * y[:, None])
    both = (n_after > 0) & (n_before > 0)
    diff = np.where(both, y_after / np.maximum(n_after, 1) - y_before / np.maximum(n_before, 1), 0.0)
    b_of_group = g % k
    total = np.zeros((k, k))
    count = np.zeros((k, k))
    for a in range(k):  # scatter (G,) per prerequisite candidate a into row a, columns B
        np.add.at(total[a], b_of_group, diff[:, a])
        np.add.at(count[a], b_of_group, both[:, a].astype(np.float64))
    return total / np.maximum(count, 1), count


def build_dag(
    topics: list[str], scored_edges: list[tuple[float, str, str]], max_parents: int = 3, reduce: bool = True
) -> PrerequisiteGraph:
    """Insert ``(score, pre, topic)`` edges strongest first, skipping cycle-closing ones."""
    parents: dict[str, list[str]] = {t: [] for t in topics}
    children: dict[str, list[str]] = {t: [] for t in topics}
    scores: dict[tuple[str, str], float] = {}

    def reaches(src: str, dst: str) -> bool:
        stack, seen = [src], set()
        while stack:
            x = stack.pop()
            if x == dst:
                return True
            if x not in seen:
                seen.add(x)
                stack.extend(children[x])
        return False

    for score, pre, topic in scored_edges:
        if len(parents[topic]) >= max_parents or reaches(topic, pre):
            continue
        parents[topic].append(pre)
        children[pre].append(topic)
        scores[(pre, topic)] = score
    edges = [(p, t) for t in topics for p in parents[t]]
    if reduce:
        graph = PrerequisiteGraph(topics, edges)
        edges = [(p, t) for p, t in edges if not _reachable_without(graph, p, t)]
    return PrerequisiteGraph(topics, edges, {e: scores[e] for e in edges})


def _reachable_without(graph: PrerequisiteGraph, pre: str, topic: str) -> bool:
    """Is ``topic`` reachable from ``pre`` by a path of length >= 2?"""
    stack = [c for c in graph.children[pre] if c != topic]
    seen: set[str] = set()
    while stack:
        x = stack.pop()
        if x == topic:
            return True
        if x not in seen:
            seen.add(x)
            stack.extend(graph.children[x])
    return False


def edge_precision_recall(learned: PrerequisiteGraph, true: PrerequisiteGraph) -> dict[str, float]:
    """Direct-edge precision/recall of ``learned`` against ``true``; ``chance_precision`` is the
    precision of a random ordered pair, and ``closure_precision`` counts a learned edge right
    when it is implied by the true DAG (the prerequisite is a true ancestor)."""
    t_edges, l_edges = set(true.edges), set(learned.edges)
    hit = len(t_edges & l_edges)
    n = len(set(true.topics) | set(learned.topics))
    implied = sum(1 for p, t in l_edges if p in true.ancestors(t))
    precision = hit / len(l_edges) if l_edges else 0.0
    recall = hit / len(t_edges) if t_edges else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "closure_precision": implied / len(l_edges) if l_edges else 0.0,
        "chance_precision": len(t_edges) / (n * (n - 1)) if n > 1 else 0.0,
        "n_learned": float(len(l_edges)),
        "n_true": float(len(t_edges)),
    }
