"""Item-level refinement of a learner model that only knows topics.

Many KT models predict per concept (DKT) or learn almost nothing per item when item difficulty is
confounded with who chose the item (in highlight logs people pick what suits them, so success
hardly varies with difficulty). Their predicted success is then flat across the items of a topic,
and a difficulty band cannot tell a topic's easy items from its hard ones.

:class:`DifficultyAdjusted` wraps any :class:`~kt.planner.protocol.LearnerModel`: where the
model's logits for the items of one topic in a request spread less than ``flat_tol``, it spreads
them by the catalog's difficulty, Rasch-style, around the topic's median item:

    logit p_i = logit p_model(i) + slope * (median difficulty of the topic - difficulty_i)

Item-aware predictions (spread >= flat_tol) pass through unchanged, so the refinement never
double-counts what the model already knows. ``slope`` is in logits per unit of the catalog's
[0, 1] difficulty scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kt.planner.catalog import Catalog
from kt.planner.protocol import LearnerModel


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


class DifficultyAdjusted:
    """A :class:`LearnerModel` whose item predictions follow the catalog difficulty where the
    wrapped model's are flat within a topic. Other attributes (``observe_many`` ...) pass through."""

    def __init__(self, learner: LearnerModel, catalog: Catalog, slope: float = 8.0, flat_tol: float = 0.05) -> None:
        self.learner = learner
        self.catalog = catalog
        self.slope = slope
        self.flat_tol = flat_tol
        self._flat: dict[int, bool] = {}

    def __getattr__(self, name: str):
        return getattr(self.learner, name)

    def topic_mastery(self, user_id: str, now: pd.Timestamp | None = None) -> pd.DataFrame:
        return self.learner.topic_mastery(user_id, now=now)

    def predict_success(self, user_id: str, content_ids: Sequence[str]) -> np.ndarray:
        return self.predict_at(user_id, self.catalog.index_of(list(content_ids)), content_ids)

    def predict_at(self, user_id: str, idx: np.ndarray, content_ids: Sequence[str] | None = None) -> np.ndarray:
        """:meth:`predict_success` for catalog indices ``idx`` (-1: unknown), the planner's form."""
        cat = self.catalog
        if content_ids is None:
            content_ids = cat.content_ids[np.maximum(idx, 0)]
        p = np.asarray(self.learner.predict_success(user_id, content_ids), np.float64)
        if self.slope == 0 or len(p) == 0:
            return p
        known = (idx >= 0) & np.isfinite(p)
        if not known.any():
            return p
        out = p.copy()
        pos = np.flatnonzero(known)
        topics = cat.primary_topic[idx[pos]]
        logits = _logit(p[pos])
        for t in np.unique(topics):
            sel = topics == t
            flat = self._flat.get(int(t), True) if sel.sum() < 2 else float(np.ptp(logits[sel])) < self.flat_tol
            self._flat[int(t)] = flat
            if flat:
                d = cat.difficulty[idx[pos[sel]]].astype(np.float64)
                adj = logits[sel] + self.slope * (cat.topic_median_difficulty(int(t)) - d)
                out[pos[sel]] = 1.0 / (1.0 + np.exp(-adj))
        return out

