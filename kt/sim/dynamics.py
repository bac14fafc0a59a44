"""Learner dynamics: success probability, learning, forgetting and observable signals.

All functions are vectorised over events (one entry per (user, item) pair) and shared by the
world generator and :class:`kt.sim.env.LearnerEnv`, so the history and the environment obey
exactly the same equations (written out in docs/simulator.md):

  readiness   R = min (or mean) of the prerequisite masteries of topic k (1 without prerequisites)
  gate        G = sigmoid(kappa * (R - theta))
  success     p = sigmoid(a * (m_k - d) + b) * (g0 + (1 - g0) * G)
  learning    m_k += eta * (1 - m_k) * zpd(d - m_k) * G * (omega + (1 - omega) * s)
              zpd(x) = exp(-(x - delta)^2 / (2 sigma^2)); s ~ Bernoulli(p) the latent success
  forgetting  m <- f + (m - f) * exp(-dt / tau),  tau = tau_days * (1 + growth * n_practice)
              f: a per-(user, topic) floor, f0 = floor + retention * (m0 - floor), and after each
              practice f += c * (m - f) (consolidation), so practiced knowledge is partly kept

The response model follows the IRT/BKT family used by EduSim's KSS (Liu et al. 2019,
"Exploiting cognitive structure for adaptive learning") and the prerequisite gate follows
CSEAL's knowledge structure; the zone-of-proximal-development bump and the exponential
forgetting toward a floor (Ebbinghaus with spacing-dependent tau, as in HLR, Settles &
Meeder 2016) are our simplifications, chosen to be explicit rather than faithful to any one paper.
Forgetting is exact when applied lazily: exponential decay composes, so decaying a topic
only when it is touched gives the same value as decaying it every day.
"""

from __future__ import annotations

import numpy as np

from kt.sim.config import SimConfig

DAY = 86_400.0


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decay(
    m: np.ndarray, last: np.ndarray, n_practice: np.ndarray, floor: np.ndarray, t: np.ndarray, cfg: SimConfig
) -> np.ndarray:
    """Mastery at time ``t`` (seconds) given the value ``m`` at time ``last`` (broadcasting)."""
    dt = np.maximum(np.asarray(t, dtype=np.float64) - last, 0.0)
    tau = cfg.tau_days * DAY * (1.0 + cfg.tau_growth * n_practice)
    return floor + (m - floor) * np.exp(-dt / tau)


def initial_floor(m0: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Long-term floor of prior knowledge: f0 = floor + retention * (m0 - floor)."""
    return cfg.floor + cfg.retention * (m0 - cfg.floor)


def consolidate(floor: np.ndarray, m_after: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Each practice moves a share c of the mastery above the floor into long-term memory."""
    return floor + cfg.consolidation * (m_after - floor)


def readiness(prereq_mastery: np.ndarray, valid: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Prerequisite readiness R per event.

    prereq_mastery, valid: (N, P) decayed prerequisite masteries and a mask of real prerequisites.
    Returns (N,) in [0, 1]; topics without prerequisites are fully ready (R = 1).
    """
    has = valid.any(axis=1)
    if cfg.readiness == "min":
        r = np.where(valid, prereq_mastery, np.inf).min(axis=1)
    else:
        r = np.where(valid, prereq_mastery, 0.0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    return np.where(has, r, 1.0)


def gate(r: np.ndarray, cfg: SimConfig) -> np.ndarray:
    return sigmoid(cfg.gate_kappa * (r - cfg.gate_theta))


def success_probability(m: np.ndarray, d: np.ndarray, g: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """p = sigmoid(a (m - d) + b) * (g0 + (1 - g0) G)."""
    return sigmoid(cfg.a * (m - d) + cfg.b) * (cfg.gate_success_floor + (1.0 - cfg.gate_success_floor) * g)


def zpd(m: np.ndarray, d: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Right-difficulty bump: 1 for d = m + delta, falling off with width sigma."""
    return np.exp(-((d - m - cfg.zpd_delta) ** 2) / (2.0 * cfg.zpd_sigma**2))


def learn(m: np.ndarray, d: np.ndarray, g: np.ndarray, s: np.ndarray, eta: float, cfg: SimConfig) -> np.ndarray:
    """New mastery after consuming an item of difficulty ``d`` (latent success ``s`` in {0,1})."""
    engaged = cfg.learn_on_failure + (1.0 - cfg.learn_on_failure) * s
    return m + eta * (1.0 - m) * zpd(m, d, cfg) * g * engaged


def signals(
    rng: np.random.Generator, s: np.ndarray, full_seconds: np.ndarray, cfg: SimConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Observable signals of N events from their latent success ``s``.

    read_fraction: Beta(9, 1.3) when s = 1 (mostly finished), else a mix of early bounces
      Beta(1, 9) and partial reads Beta(2, 3). dwell: read_fraction * full read time * lognormal
      noise (+ a few seconds). n_highlights: Poisson(2.5 rf) when s = 1, Poisson(0.5 rf) else.
      quiz_correct: s itself (so it is Bernoulli(p)) on a quiz_rate share of events, NaN else.
    Returns (read_fraction, dwell_seconds, n_highlights, quiz_correct), each (N,).
    """
    n = s.shape[0]
    bounce = rng.random(n) < 0.5
    rf = np.where(s, rng.beta(9.0, 1.3, n), np.where(bounce, rng.beta(1.0, 9.0, n), rng.beta(2.0, 3.0, n)))
    dwell = 3.0 + rf * full_seconds * rng.lognormal(0.0, 0.35, n)
    nh = rng.poisson(np.where(s, 2.5, 0.5) * rf)
    has_quiz = rng.random(n) < cfg.quiz_rate
    quiz = np.where(has_quiz, s.astype(np.float64), np.nan)
    return rf, dwell, nh.astype(np.int64), quiz
