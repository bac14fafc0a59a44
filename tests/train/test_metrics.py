import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss, mean_squared_error, roc_auc_score

from kt.train.metrics import binary_metrics, expected_calibration_error, plot_reliability, roc_auc


def test_metrics_match_sklearn_including_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p = np.round(np.clip(0.5 * y + rng.normal(0.25, 0.25, 2000), 0, 1), 2)  # rounding makes ties
    m = binary_metrics(y, p)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["acc"] == pytest.approx(accuracy_score(y, p >= 0.5))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, p)))
    assert m["logloss"] == pytest.approx(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)), rel=1e-9)
    assert m["n"] == 2000 and m["pos_rate"] == pytest.approx(y.mean())


def test_auc_is_nan_for_one_class():
    assert np.isnan(roc_auc(np.ones(5), np.linspace(0, 1, 5)))


def test_ece_on_a_hand_computed_case():
    # 15 bins of width 1/15. Bin of 0.1 (bin 1): preds 0.1, 0.1, outcomes 0, 1 -> |0.1 - 0.5| = 0.4
    # bin of 0.9 (bin 13): preds 0.9 x3, outcomes 1, 1, 0 -> |0.9 - 2/3| = 0.2333...
    # bin of 0.5 (bin 7): one pred 0.5, outcome 1 -> 0.5
    y = np.array([0, 1, 1, 1, 0, 1])
    p = np.array([0.1, 0.1, 0.9, 0.9, 0.9, 0.5])
    expected = (2 * 0.4 + 3 * (0.9 - 2 / 3) + 1 * 0.5) / 6
    assert expected_calibration_error(y, p, 15) == pytest.approx(expected)
    # perfectly calibrated constant predictions have zero ECE
    assert expected_calibration_error(np.array([1, 0, 1, 0]), np.full(4, 0.5)) == pytest.approx(0.0)


def test_ece_bin_edges_are_right_closed():
    # p = 1/15 belongs to bin 0 ((0, 1/15]), p = 0 too
    y = np.array([0, 0])
    p = np.array([0.0, 1 / 15])
    assert expected_calibration_error(y, p, 15) == pytest.approx((0 + 1 / 15) / 2)


def test_reliability_plot_writes_a_png(tmp_path):
    rng = np.random.default_rng(1)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    out = plot_reliability(y, p, tmp_path / "sub" / "rel.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
