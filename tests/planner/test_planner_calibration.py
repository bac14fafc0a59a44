"""DifficultyAdjusted: flat topic predictions spread by item difficulty around the topic median."""

from __future__ import annotations

import numpy as np
import pandas as pd
from planner_testlib import TableLearner, handmade_world

from kt.planner import Catalog
from kt.planner.calibration import DifficultyAdjusted


class FlatLearner:
    """Predicts 0.7 for every item: a concept-level model."""

    def topic_mastery(self, user_id, now=None) -> pd.DataFrame:
        return pd.DataFrame(columns=["topic_id", "mastery", "confidence", "n_obs", "stage", "last_practiced"])

    def predict_success(self, user_id, content_ids) -> np.ndarray:
        return np.full(len(content_ids), 0.7)


def _catalog() -> Catalog:
    items, topics, _, _ = handmade_world(n_per_topic=20)
    return Catalog.from_frames(items, topics)


def _logit(p):
    return np.log(p / (1 - p))


def test_flat_predictions_spread_around_the_topic_median_by_default():
    cat = _catalog()
    ids = [f"alg-{j:03d}" for j in range(20)]
    p = DifficultyAdjusted(FlatLearner(), cat, slope=8.0).predict_success("u", ids)
    d = cat.difficulty[cat.index_of(ids)]
    assert np.all(np.diff(p) < 0)  # harder items, lower success
    median = cat.topic_median_difficulty(cat.topics.get("alg"))
    np.testing.assert_allclose(_logit(p), _logit(0.7) + 8.0 * (median - d), rtol=1e-6)


def test_item_aware_predictions_pass_through():
    cat = _catalog()
    learner = TableLearner({"alg": 0.5, "calc": 0.3}, cat)
    ids = [f"alg-{j:03d}" for j in range(20)] + [f"calc-{j:03d}" for j in range(20)]
    adjusted = DifficultyAdjusted(learner, cat, slope=8.0)
    np.testing.assert_allclose(adjusted.predict_success("u", ids), learner.predict_success("u", ids))
