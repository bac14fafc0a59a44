"""Training, evaluation, checkpoints, DDP and MLflow tracking for KT models.

Heavy submodules (MLflow) are imported lazily by their users; this package imports only torch.
"""

from kt.train.batching import PaddedBatcher
from kt.train.evaluate import evaluate, predict
from kt.train.metrics import binary_metrics, expected_calibration_error, plot_reliability, roc_auc
from kt.train.trainer import TrainConfig, TrainResult, train

__all__ = [
    "PaddedBatcher",
    "TrainConfig",
    "TrainResult",
    "binary_metrics",
    "evaluate",
    "expected_calibration_error",
    "plot_reliability",
    "predict",
    "roc_auc",
    "train",
]
