"""Recommendation policies compared in the simulator: ours and the baselines.

Every policy answers the same request (user, learner model, history, languages, goal topics,
bundle size) with an ordered list of content ids. The baselines get the goal too: they pick
among items of the target topics (the goal and its prerequisite ancestors), so the comparison
isolates *how* items are chosen, not *whether* the policy knows what the user is aiming for.

* ``random``: uniformly random unseen items of the target topics.
* ``popularity``: the most consumed items (world history) of the target topics.
* ``pixie``: Pixie walk candidates of the target topics by boosted visits, no KT (topped up by
  popularity when the walk finds too few).
* ``kt_greedy``: the KT model without the prerequisite graph: the target topic with the lowest
  KT mastery (largest headroom), items closest to the middle of the difficulty band.
* ``planner``: :class:`kt.planner.path.Planner` (prerequisites, band, MMR, review).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from kt.planner.calibration import DifficultyAdjusted
from kt.planner.catalog import Catalog
from kt.planner.path import Planner
from kt.planner.protocol import LearnerModel


@dataclass
class Request:
    user_id: str
    history: pd.DataFrame  # content_id, timestamp
    languages: list[str]
    goal_topics: list[str]
    target_topics: list[str]  # goal topics and their prerequisite ancestors
    size: int
    at: float | None = None  # simulator seconds the bundle will be read at (for policies that read the simulator)


class Policy(Protocol):
    name: str
    uses_learner: bool

    def recommend(self, req: Request, learner: LearnerModel | None, rng: np.random.Generator) -> list[str]: ...


def target_items(catalog: Catalog, req: Request) -> np.ndarray:
    """Unseen items whose primary topic is a target topic, in the user's languages."""
    langs = catalog.language_codes(req.languages) if req.languages else None
    topics = [t for t in (catalog.topics.get(x) for x in req.target_topics) if t >= 0]
    parts = [catalog.topic_items(t, langs) for t in topics]
    items = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    items = items[np.isin(catalog.primary_topic[items], topics)]
    seen = catalog.index_of(req.history["content_id"].astype(str).to_numpy()) if len(req.history) else np.zeros(0, np.int64)
    return items[~np.isin(items, seen)]


class RandomPolicy:
    name, uses_learner = "random", False

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def recommend(self, req: Request, learner, rng) -> list[str]:
        items = target_items(self.catalog, req)
        pick = rng.choice(items, size=min(req.size, len(items)), replace=False) if len(items) else items
        return self.catalog.content_ids[pick].tolist()


class PopularityPolicy:
    name, uses_learner = "popularity", False

    def __init__(self, catalog: Catalog, consumed_counts: pd.Series) -> None:
        self.catalog = catalog
        counts = consumed_counts.reindex(pd.Index(catalog.content_ids)).fillna(0).to_numpy()
        self.popularity = counts  # (n_items,)

    def recommend(self, req: Request, learner, rng) -> list[str]:
        items = target_items(self.catalog, req)
        order = np.lexsort((items, -self.popularity[items]))
        return self.catalog.content_ids[items[order[: req.size]]].tolist()


class PixieOnlyPolicy:
    name, uses_learner = "pixie", False

    def __init__(self, planner: Planner, popularity: PopularityPolicy) -> None:
        self.planner = planner
        self.popularity = popularity

    def recommend(self, req: Request, learner, rng) -> list[str]:
        cat = self.planner.catalog
        walk = self.planner.candidates(req.user_id, req.history, req.languages)
        allowed = set(target_items(cat, req).tolist())
        picked = [int(i) for i in walk.items if int(i) in allowed][: req.size]
        out = cat.content_ids[picked].tolist() if picked else []
        if len(out) < req.size:  # top up from the popular items of the targets
            for c in self.popularity.recommend(req, None, rng):
                if c not in out:
                    out.append(c)
                if len(out) == req.size:
                    break
        return out


class KTGreedyPolicy:
    name, uses_learner = "kt_greedy", True

    def __init__(self, catalog: Catalog, band: tuple[float, float] = (0.70, 0.85), pool: int = 48,
                 difficulty_slope: float = 8.0) -> None:
        self.catalog = catalog
        self.band = band
        self.pool = pool
        self.difficulty_slope = difficulty_slope

    def recommend(self, req: Request, learner: LearnerModel, rng) -> list[str]:
        cat = self.catalog
        if self.difficulty_slope > 0:  # the same item-level refinement the planner uses
            learner = DifficultyAdjusted(learner, cat, self.difficulty_slope)
        frame = learner.topic_mastery(req.user_id)
        m = dict(zip(frame["topic_id"].astype(str), frame["mastery"].astype(float), strict=True))
        items = target_items(cat, req)
        if len(items) == 0:
            return []
        topics = sorted({cat.topics.tokens[int(t)] for t in cat.primary_topic[items]}, key=lambda t: (m.get(t, 0.0), t))
        topic = cat.topics.get(topics[0])  # largest headroom, prerequisites ignored
        cand = items[cat.primary_topic[items] == topic]
        if len(cand) > self.pool:  # stratified by difficulty, as the planner samples its topic pools
            cand = cand[np.argsort(cat.difficulty[cand], kind="stable")]
            cand = cand[np.linspace(0, len(cand) - 1, self.pool).round().astype(np.int64)]
        p = np.nan_to_num(np.asarray(learner.predict_success(req.user_id, cat.content_ids[cand].tolist()), float), nan=0.0)
        centre = sum(self.band) / 2
        order = np.argsort(np.abs(p - centre), kind="stable")[: req.size]
        chosen = cand[order][np.argsort(-p[order], kind="stable")]
        return cat.content_ids[chosen].tolist()


class PlannerPolicy:
    name, uses_learner = "planner", True

    def __init__(self, planner: Planner, name: str = "planner") -> None:
        self.planner = planner
        self.name = name

    def recommend(self, req: Request, learner: LearnerModel, rng) -> list[str]:
        bundle = self.planner.next_bundle(req.user_id, learner, req.history, req.size, req.languages, req.goal_topics)
        return bundle.content_ids if bundle is not None else []


def baseline_policies(planner: Planner, consumed_counts: pd.Series) -> list:
    """random, popularity, pixie and kt_greedy (with the planner's band and difficulty slope)."""
    pop = PopularityPolicy(planner.catalog, consumed_counts)
    kt = KTGreedyPolicy(planner.catalog, planner.config.band, planner.config.topic_pool, planner.config.difficulty_slope)
    return [RandomPolicy(planner.catalog), pop, PixieOnlyPolicy(planner, pop), kt]
