"""Stage rules and confidence on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from kt.mastery import MasteryConfig, StageThresholds, confidence
from kt.mastery.config import DAY
from kt.mastery.stages import stage_codes, stage_names

CFG = MasteryConfig(half_life_days=7.0, stages=StageThresholds(min_obs=3, mastered=0.8, decay_margin=0.1, review_half_lives=2.0))


def stage(mastery, n_obs, days_since, practiced):
    return stage_names(stage_codes(np.array([mastery]), np.array([n_obs]), np.array([days_since * DAY]), np.array([practiced]), CFG))[0]


def test_constructed_cases():
    assert stage(0.95, 2, 0.1, 0.95) == "new"  # too little evidence, however high
    assert stage(0.55, 5, 1.0, 0.55) == "learning"
    assert stage(0.85, 5, 1.0, 0.86) == "mastered"
    assert stage(0.62, 5, 1.0, 0.80) == "needs_review"  # the estimate fell 0.18 since the last practice
    assert stage(0.85, 5, 15.0, 0.85) == "needs_review"  # mastered once, but > 2 half-lives ago
    assert stage(0.55, 5, 13.0, 0.55) == "learning"  # within 2 half-lives


def test_thresholds_are_configurable():
    loose = MasteryConfig(stages=StageThresholds(min_obs=1, mastered=0.5))
    codes = stage_codes(np.array([0.6]), np.array([1]), np.array([0.0]), np.array([0.6]), loose)
    assert stage_names(codes)[0] == "mastered"
    with pytest.raises(ValueError, match="mastered"):
        StageThresholds(mastered=1.5)


def test_confidence_grows_with_evidence_and_halves_per_half_life():
    c = confidence(np.array([0, 5, 50, 50]), np.array([0.0, 0.0, 0.0, 7 * DAY]), CFG)
    assert c[0] == 0 and c[1] == pytest.approx(0.5) and c[2] > c[1]
    assert c[3] == pytest.approx(c[2] / 2)
    assert confidence(np.array([5]), np.array([np.nan]), CFG)[0] == 0.0  # never practised
