"""Binary prediction metrics used to judge KT models: AUC, ACC, RMSE, log-loss, ECE.

AUC is the Mann-Whitney statistic from average ranks (ties count one half), which equals
``sklearn.metrics.roc_auc_score``; it is computed here so millions of predictions cost one sort.
ECE follows Guo et al. (ICML 2017): 15 equal-width confidence bins over [0, 1] of the predicted
probability of the positive class, weighted by bin size (the "binary" variant common in KT
calibration reports, not the max-class-confidence variant of multi-class classification).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import rankdata

_EPS = 1e-7


def roc_auc(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y = np.asarray(y_true).astype(bool).ravel()
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(y_prob, dtype=np.float64).ravel())  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliability_bins(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per equal-width bin: count, mean predicted probability, observed positive rate."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    # bin i holds (i/n, (i+1)/n]; p == 0 goes to bin 0
    idx = np.clip(np.ceil(p * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(count > 0, sum_p / count, np.nan)
        freq = np.where(count > 0, sum_y / count, np.nan)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {"count": count, "confidence": conf, "frequency": freq, "edges": edges}


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 15) -> float:
    """sum_b |B_b|/N * |mean(p in b) - mean(y in b)| over equal-width bins."""
    bins = reliability_bins(y_true, y_prob, n_bins)
    n = bins["count"].sum()
    if n == 0:
        return float("nan")
    filled = bins["count"] > 0
    gap = np.abs(bins["confidence"][filled] - bins["frequency"][filled])
    return float((bins["count"][filled] / n * gap).sum())


def binary_metrics(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """auc, acc (threshold 0.5), rmse, logloss, ece, n and the positive rate."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    if y.size == 0:
        return {"auc": float("nan"), "acc": float("nan"), "rmse": float("nan"), "logloss": float("nan"),
                "ece": float("nan"), "n": 0, "pos_rate": float("nan")}
    pc = np.clip(p, _EPS, 1 - _EPS)
    return {
        "auc": roc_auc(y, p),
        "acc": float(((p >= 0.5) == (y >= 0.5)).mean()),
        "rmse": float(np.sqrt(((p - y) ** 2).mean())),
        "logloss": float(-(y * np.log(pc) + (1 - y) * np.log(1 - pc)).mean()),
        "ece": expected_calibration_error(y, p, n_bins),
        "n": int(y.size),
        "pos_rate": float(y.mean()),
    }


def plot_reliability(
    y_true: np.ndarray, y_prob: np.ndarray, path: str | Path, n_bins: int = 15, title: str = "Reliability"
) -> Path:
    """Reliability diagram (observed vs predicted, with a histogram of predictions) as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # object API: no global pyplot state

    bins = reliability_bins(y_true, y_prob, n_bins)
    ece = expected_calibration_error(y_true, y_prob, n_bins)
    fig = Figure(figsize=(5, 6))
    ax, axh = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = bins["count"] > 0
    centers = (bins["edges"][:-1] + bins["edges"][1:]) / 2
    width = 1.0 / n_bins
    ax.bar(centers[filled], bins["frequency"][filled], width=width * 0.9, alpha=0.7, label="observed")
    ax.plot(bins["confidence"][filled], bins["frequency"][filled], "o-", color="C1", label="mean prediction")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    ax.set_ylabel("fraction correct")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{title} (ECE={ece:.4f}, n={int(bins['count'].sum())})")
    ax.legend(loc="upper left")
    axh.bar(centers, bins["count"], width=width * 0.9, color="C2")
    axh.set_xlabel("predicted probability")
    axh.set_ylabel("count")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
