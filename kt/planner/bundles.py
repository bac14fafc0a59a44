"""Bundle assembly: a few items for one target topic, at the right difficulty, diverse, easy to hard.

1. *Desirable difficulty* (Bjork 1994): keep items whose KT-predicted success falls in a band
   (default 0.70-0.85); when fewer than the bundle size fall in it, widen the band by
   ``widen_step`` per side up to ``max_widen``, then fall back to the items nearest the band.
2. *Diversity*: maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998) over item features:
   relevance = closeness to the band's aim (``band_aim``: by default its hard edge, the most
   demanding items the learner is still predicted to handle) + normalised Pixie score +
   primary-topic bonus;
   similarity = weighted topic-set Jaccard, same kind, difficulty closeness, shared folder.
3. *Order*: easy to hard, i.e. predicted success descending.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from kt.planner.catalog import Catalog
from kt.planner.config import PlannerConfig
from kt.planner.graph import ItemFolderGraph

SOURCES = ("pixie", "topic_index", "fresh", "review")


@dataclass
class BundleItem:
    """One recommended item and why."""

    content_id: str
    topic_id: str
    stage: str
    predicted_success: float
    source: str  # pixie | topic_index | fresh (no folder edges yet) | review
    visits: int
    language: str
    kind: str
    difficulty: float
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Bundle:
    """Items for one target topic, ordered easy to hard."""

    topic_id: str
    topic_name: str
    source: str  # ready | review | goal
    stage: str
    mastery: float
    reason: str
    band: tuple[float, float]
    items: list[BundleItem] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["band"] = list(self.band)
        d["items"] = [i.to_dict() for i in self.items]
        return d

    @property
    def content_ids(self) -> list[str]:
        return [i.content_id for i in self.items]


def band_select(p: np.ndarray, band: tuple[float, float], size: int, step: float, max_widen: float):
    """Indices of ``p`` admitted by the (possibly widened) band, and the band used."""
    lo, hi = band
    widen = 0.0
    while True:
        idx = np.flatnonzero((p >= lo - widen) & (p <= hi + widen))
        if len(idx) >= size or widen >= max_widen - 1e-9:
            break
        widen = min(widen + step, max_widen)
    used = (max(lo - widen, 0.0), min(hi + widen, 1.0))
    if len(idx) < size:  # still short: the items nearest the band, and the band that holds them
        dist = np.maximum(used[0] - p, 0) + np.maximum(p - used[1], 0)
        idx = np.argsort(dist, kind="stable")[:size]
        if len(idx):
            used = (min(used[0], float(p[idx].min())), max(used[1], float(p[idx].max())))
    return idx, used


def band_aim(band: tuple[float, float], aim: float) -> float:
    """The predicted success a band aims at: ``aim`` 0 its low (hard) edge, 1 its high one."""
    return band[0] + aim * (band[1] - band[0])


def similarity_matrix(items: np.ndarray, catalog: Catalog, graph: ItemFolderGraph | None, weights) -> np.ndarray:
    """(P, P) similarity in [0, 1] of catalog items: weighted topic Jaccard, same kind,
    difficulty closeness and folder co-membership."""
    n = len(items)
    w_topic, w_kind, w_diff, w_folder = weights
    tsets = [catalog.item_topics(int(i)) for i in items]
    local = {t: j for j, t in enumerate(sorted({int(t) for ts in tsets for t in ts}))}
    tm = np.zeros((n, max(len(local), 1)))
    for r, ts in enumerate(tsets):
        tm[r, [local[int(t)] for t in ts]] = 1.0
    inter = tm @ tm.T
    size = tm.sum(1)
    jacc = inter / np.maximum(size[:, None] + size[None, :] - inter, 1.0)
    kind = catalog.kind[items]
    same_kind = (kind[:, None] == kind[None, :]).astype(np.float64)
    d = catalog.difficulty[items].astype(np.float64)
    close = 1.0 - np.abs(d[:, None] - d[None, :])
    shared = np.zeros((n, n))
    if graph is not None and w_folder > 0:
        fsets = [graph.folders_of(int(i)) for i in items]
        flocal = {f: j for j, f in enumerate(sorted({int(f) for fs in fsets for f in fs}))}
        if flocal:
            fm = np.zeros((n, len(flocal)))
            for r, fs in enumerate(fsets):
                fm[r, [flocal[int(f)] for f in fs]] = 1.0
            shared = ((fm @ fm.T) > 0).astype(np.float64)
    return w_topic * jacc + w_kind * same_kind + w_diff * close + w_folder * shared


def mmr(relevance: np.ndarray, sim: np.ndarray, k: int, lam: float) -> list[int]:
    """Greedy maximal marginal relevance: argmax lam * rel - (1 - lam) * max sim to picked."""
    picked: list[int] = []
    max_sim = np.zeros(len(relevance))
    avail = np.ones(len(relevance), bool)
    for _ in range(min(k, len(relevance))):
        score = np.where(avail, lam * relevance - (1 - lam) * max_sim, -np.inf)
        j = int(np.argmax(score))
        picked.append(j)
        avail[j] = False
        max_sim = np.maximum(max_sim, sim[j])
    return picked


def assemble_bundle(
    items: np.ndarray,
    p: np.ndarray,
    walk_score: np.ndarray,
    is_primary: np.ndarray,
    size: int,
    catalog: Catalog,
    graph: ItemFolderGraph | None,
    config: PlannerConfig,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Choose up to ``size`` of ``items`` (already filtered for language and consumption).

    Returns (chosen positions into ``items`` ordered easy to hard, their p, band used).
    """
    size = int(np.clip(size, config.min_bundle, config.max_bundle))
    if len(items) == 0:
        return np.zeros(0, np.int64), np.zeros(0), config.band
    admit, used = band_select(p, config.band, size, config.widen_step, config.max_widen)
    aim, width = band_aim(used, config.band_aim), max(used[1] - used[0], 1e-3)
    closeness = np.clip(1.0 - np.abs(p[admit] - aim) / (width + config.widen_step), 0.0, 1.0)
    ws = walk_score[admit]
    walk_norm = np.log1p(ws) / np.log1p(ws.max()) if ws.max() > 0 else np.zeros(len(ws))
    relevance = closeness + config.w_walk * walk_norm + 0.1 * is_primary[admit]
    if graph is not None and config.w_popularity > 0:
        # popularity prior within the band: how many folders filed the item (social proof that it
        # teaches; Pixie's own signal), log-scaled to [0, 1]
        deg = graph.item_degree[items[admit]].astype(np.float64)
        relevance = relevance + config.w_popularity * (np.log1p(deg) / np.log1p(deg.max()) if deg.max() > 0 else 0.0)
    sim = similarity_matrix(items[admit], catalog, graph, config.sim_weights)
    chosen = admit[mmr(relevance, sim, size, config.mmr_lambda)]
    order = np.argsort(-p[chosen], kind="stable")
    return chosen[order], p[chosen[order]], used
