"""Score KT models under pyKT's evaluation protocol.

Which positions count: pyKT scores a window from its second interaction (the first has no
history; pyKT's dataloader drops it with ``[:, 1:]``), and within that only where
``selectmasks`` is set (``KTSequences.eval_mask``). So a position counts when it is real
(mask), t >= 1 inside its window, and eval_mask is True where the data carries one. For
``test_window_sequences.csv`` that leaves the last position of each sliding window.

Under DDP each rank scores a disjoint share of the windows and the predictions are gathered,
so AUC is computed over the whole set on every rank.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from kt.data.sequences import KTSequences
from kt.models.base import KTModel
from kt.train.batching import PaddedBatcher
from kt.train.distributed import gather_concat
from kt.train.metrics import binary_metrics


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def predict(
    model: KTModel,
    sequences: KTSequences,
    batch_size: int = 256,
    max_len: int | None = None,
    *,
    device: torch.device | str | None = None,
    amp: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_prob) over the evaluated positions, in window order (gathered across ranks)."""
    module = getattr(model, "module", model)
    device = torch.device(device) if device is not None else module.device
    max_len = max_len or module.config.max_len
    batcher = PaddedBatcher(
        sequences, batch_size, max_len, shuffle=False, rank=rank, world_size=world_size, pad_shares=False
    )
    was_training = module.training
    module.eval()
    ys: list[np.ndarray] = []
    ps: list[np.ndarray] = []
    try:
        for ids in batcher.shard():
            batch = batcher.gather(ids)
            keep = batch.mask.clone()  # (B, T)
            keep[:, 0] = False  # pyKT scores from the second interaction of each window
            sel = batcher.eval_mask(ids)
            if sel is not None:
                keep &= sel
            with _autocast(device, amp):
                logits = module(batch.to(device))  # (B, T)
            prob = torch.sigmoid(logits.float()).cpu()
            ys.append(batch.responses[keep].numpy().astype(np.int8))
            ps.append(prob[keep].numpy().astype(np.float64))
    finally:
        module.train(was_training)
    y = np.concatenate(ys) if ys else np.zeros(0, np.int8)
    p = np.concatenate(ps) if ps else np.zeros(0, np.float64)
    return gather_concat(y, p) if world_size > 1 else (y, p)


def evaluate(
    model: KTModel,
    sequences: KTSequences,
    batch_size: int = 256,
    max_len: int | None = None,
    *,
    device: torch.device | str | None = None,
    amp: bool = True,
    rank: int = 0,
    world_size: int = 1,
    return_predictions: bool = False,
) -> dict:
    """auc, acc, rmse, logloss, ece, n, pos_rate over the evaluated positions.

    With ``return_predictions`` the dict also holds ``y_true`` and ``y_prob`` arrays.
    """
    y, p = predict(
        model, sequences, batch_size, max_len, device=device, amp=amp, rank=rank, world_size=world_size
    )
    out: dict = binary_metrics(y, p)
    if return_predictions:
        out["y_true"], out["y_prob"] = y, p
    return out
