"""Confidence and learning stages, vectorised over (user, topic) cells.

The same functions judge the model's estimates and the simulator's true mastery (quality),
so "stage accuracy" compares like with like.
"""

from __future__ import annotations

import numpy as np

from kt.mastery.config import STAGES, MasteryConfig

STAGE_NEW, STAGE_LEARNING, STAGE_REVIEW, STAGE_MASTERED = range(4)


def confidence(n_obs: np.ndarray, since_last: np.ndarray, cfg: MasteryConfig) -> np.ndarray:
    """conf = n / (n + n0) * 2^(-dt / half_life), in [0, 1).

    n_obs: interactions on the topic; since_last: seconds since its last practice (NaN when
    never practised, which gives 0). Evidence saturates like a Beta posterior's weight; time
    without practice halves it every ``half_life_days``.
    """
    n = np.asarray(n_obs, dtype=np.float64)
    dt = np.clip(np.nan_to_num(np.asarray(since_last, dtype=np.float64), nan=np.inf), 0.0, None)
    return n / (n + cfg.evidence_prior) * np.exp2(-dt / cfg.half_life_seconds)


def stage_codes(
    mastery: np.ndarray,
    n_obs: np.ndarray,
    since_last: np.ndarray,
    practiced_mastery: np.ndarray,
    cfg: MasteryConfig,
) -> np.ndarray:
    """Stage code per cell (0 new, 1 learning, 2 needs_review, 3 mastered); see STAGES.

    Rules, first match wins:
      new           n_obs < min_obs
      needs_review  practiced_mastery - mastery > decay_margin (the estimate fell since the
                    last practice) or since_last > review_half_lives * half_life
      mastered      mastery >= mastered
      learning      otherwise
    """
    th = cfg.stages
    m = np.asarray(mastery, dtype=np.float64)
    pm = np.asarray(practiced_mastery, dtype=np.float64)
    dt = np.nan_to_num(np.asarray(since_last, dtype=np.float64), nan=np.inf)
    n = np.asarray(n_obs)
    decayed = np.nan_to_num(pm - m, nan=0.0) > th.decay_margin
    stale = dt > th.review_half_lives * cfg.half_life_seconds
    out = np.full(m.shape, STAGE_LEARNING, dtype=np.int8)
    out[m >= th.mastered] = STAGE_MASTERED
    out[decayed | stale] = STAGE_REVIEW
    out[n < th.min_obs] = STAGE_NEW
    return out


def stage_names(codes: np.ndarray) -> np.ndarray:
    return np.asarray(STAGES, dtype=object)[np.asarray(codes, dtype=np.int64)]
