"""DifficultyAdjusted: flat topic predictions spread by item difficulty around the right anchor."""

from __future__ import annotations

import numpy as np
import pandas as pd
from planner_testlib import TableLearner, handmade_world

from kt.planner import Catalog
from kt.planner.calibration import DifficultyAdjusted, history_anchors


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


def test_anchor_from_the_users_recent_items_replaces_the_median():
    cat = _catalog()
    alg, calc = cat.topics.get("alg"), cat.topics.get("calc")
    history = cat.index_of(["alg-019", "alg-001", "alg-002", "calc-010"])  # oldest first
    anchors = history_anchors(cat, history, recent=2)
    d = cat.difficulty
    assert abs(anchors[alg] - d[history[1:3]].mean()) < 1e-6
    assert abs(anchors[calc] - d[history[3]]) < 1e-9 and set(anchors) == {alg, calc}
    adjusted = DifficultyAdjusted(FlatLearner(), cat, slope=8.0, anchors=anchors)
    # the model's 0.7 now describes items as hard as the ones this user read (easy ones), so the
    # topic's median item looks harder than without the anchor
    mid = ["alg-010"]
    assert adjusted.predict_success("u", mid)[0] < DifficultyAdjusted(FlatLearner(), cat, 8.0).predict_success("u", mid)[0]
    at_anchor = cat.content_ids[history[1]]
    assert abs(adjusted.anchor(alg) - anchors[alg]) < 1e-12
    assert adjusted.anchor(cat.topics.get("ml")) == cat.topic_median_difficulty(cat.topics.get("ml"))
    assert 0.6 < adjusted.predict_success("u", [at_anchor])[0] < 0.8
    assert history_anchors(cat, np.zeros(0, np.int64), 10) == {} and history_anchors(cat, history, 0) == {}


def test_item_aware_predictions_pass_through_whatever_the_anchor():
    cat = _catalog()
    learner = TableLearner({"alg": 0.5, "calc": 0.3}, cat)
    ids = [f"alg-{j:03d}" for j in range(20)] + [f"calc-{j:03d}" for j in range(20)]
    adjusted = DifficultyAdjusted(learner, cat, slope=8.0, anchors={cat.topics.get("alg"): 0.05})
    np.testing.assert_allclose(adjusted.predict_success("u", ids), learner.predict_success("u", ids))
