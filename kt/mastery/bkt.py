"""Standard Bayesian Knowledge Tracing (Corbett & Anderson, 1994), one skill per topic.

Four parameters per topic: P(L0) prior mastery, P(T) learning, P(G) guess, P(S) slip; no
forgetting. Fit per topic by EM (Baum-Welch over all users' sequences on that topic,
vectorised across users), as pyBKT does. Departures: parameters are clipped to the usual
identifiability region (guess, slip <= 0.3) after each M-step, and the EM runs a fixed
number of iterations from pyBKT-like starting values rather than multiple random restarts.

Used as the mastery baseline because pyBKT 1.4.3 does not import with scikit-learn >= 1.6
(its metrics module calls ``log_loss`` on lists at import time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class BKTParams:
    prior: float = 0.3
    learn: float = 0.1
    guess: float = 0.2
    slip: float = 0.1


def _pad(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    t = max(len(s) for s in seqs)
    y = np.zeros((len(seqs), t))
    m = np.zeros((len(seqs), t), dtype=bool)
    for i, s in enumerate(seqs):
        y[i, : len(s)] = s
        m[i, : len(s)] = True
    return y, m


def fit_bkt(seqs: list[np.ndarray], iters: int = 30, init: BKTParams | None = None) -> BKTParams:
    """EM over the response sequences (0/1 arrays) of one topic."""
    p = init or BKTParams()
    y, m = _pad(seqs)
    n, t_max = y.shape
    for _ in range(iters):
        # emission likelihoods (n, T, 2) for states [unknown, known]
        e1 = np.where(y == 1, 1 - p.slip, p.slip)
        e0 = np.where(y == 1, p.guess, 1 - p.guess)
        e0 = np.where(m, e0, 1.0)
        e1 = np.where(m, e1, 1.0)
        a = np.zeros((n, t_max, 2))
        scale = np.zeros((n, t_max))
        prev = np.stack([np.full(n, 1 - p.prior), np.full(n, p.prior)], 1)
        for t in range(t_max):
            if t > 0:
                prev = np.stack([a[:, t - 1, 0] * (1 - p.learn), a[:, t - 1, 0] * p.learn + a[:, t - 1, 1]], 1)
            cur = prev * np.stack([e0[:, t], e1[:, t]], 1)
            scale[:, t] = cur.sum(1)
            a[:, t] = cur / scale[:, t : t + 1]
        b = np.ones((n, t_max, 2))
        for t in range(t_max - 2, -1, -1):
            nxt = b[:, t + 1] * np.stack([e0[:, t + 1], e1[:, t + 1]], 1)
            b[:, t, 0] = ((1 - p.learn) * nxt[:, 0] + p.learn * nxt[:, 1]) / scale[:, t + 1]
            b[:, t, 1] = nxt[:, 1] / scale[:, t + 1]
        g = a * b
        g /= g.sum(-1, keepdims=True)
        # expected transitions unknown -> known
        xi_num = a[:, :-1, 0] * p.learn * e1[:, 1:] * b[:, 1:, 1] / scale[:, 1:]
        valid_tr = m[:, 1:]
        denom_tr = (g[:, :-1, 0] * valid_tr).sum()
        learn = (xi_num * valid_tr).sum() / max(denom_tr, 1e-12)
        prior = g[:, 0, 1].mean()
        known, unknown = g[..., 1] * m, g[..., 0] * m
        slip = ((1 - y) * known).sum() / max(known.sum(), 1e-12)
        guess = (y * unknown).sum() / max(unknown.sum(), 1e-12)
        p = BKTParams(
            float(np.clip(prior, 1e-3, 1 - 1e-3)),
            float(np.clip(learn, 1e-3, 1 - 1e-3)),
            float(np.clip(guess, 1e-3, 0.3)),
            float(np.clip(slip, 1e-3, 0.3)),
        )
    return p


def bkt_trace(y: np.ndarray, p: BKTParams) -> tuple[np.ndarray, float]:
    """P(success) before each response (T,), and P(known) after the last one."""
    known = p.prior
    pred = np.empty(len(y))
    for t, r in enumerate(y):
        pred[t] = known * (1 - p.slip) + (1 - known) * p.guess
        if r:
            post = known * (1 - p.slip) / max(pred[t], 1e-12)
        else:
            post = known * p.slip / max(1 - pred[t], 1e-12)
        known = post + (1 - post) * p.learn
    return pred, known


class BKTBaseline:
    """Per-topic BKT fit on interactions (user_id, topic_id, outcome, time-ordered)."""

    def __init__(self, iters: int = 30) -> None:
        self.iters = iters
        self.params: dict[str, BKTParams] = {}

    def fit(self, interactions: pd.DataFrame) -> BKTBaseline:
        for topic, g in interactions.groupby("topic_id", sort=False):
            seqs = [s.to_numpy(np.float64) for _, s in g.groupby("user_id", sort=False)["outcome"]]
            self.params[str(topic)] = fit_bkt(seqs, self.iters)
        return self

    def mastery(self, interactions: pd.DataFrame) -> pd.DataFrame:
        """P(known) per practised (user, topic) after the user's responses; plus predictions."""
        rows = []
        for (user, topic), g in interactions.groupby(["user_id", "topic_id"], sort=False):
            p = self.params.get(str(topic), BKTParams())
            _, known = bkt_trace(g["outcome"].to_numpy(), p)
            rows.append((str(user), str(topic), known))
        return pd.DataFrame(rows, columns=["user_id", "topic_id", "mastery"])

    def prior(self, topic: str) -> float:
        return self.params.get(str(topic), BKTParams()).prior
