"""Run pykt-toolkit's own DKT / SAKT on pyKT's ASSIST2015 split: the peer our models are compared with.

pykt-toolkit is used as shipped (its ``KTDataset``, ``init_model``, ``model_forward``,
``evaluate``); only two things are adapted here, at run time:

* its data loader imports ``torch.cuda.LongTensor``/``FloatTensor`` at module level, which
  cannot build tensors on a CPU-only torch: on CPU we rebind those two names to the CPU types;
* it writes ``.pkl`` caches next to the CSV files, and ``../shared/data`` is read-only: the
  three sequence files are symlinked into a scratch directory.

wandb stays off (``WANDB_MODE=disabled``); nothing is downloaded.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("WANDB_MODE", "disabled")

PYKT_FILES = ("train_valid_sequences.csv", "test_sequences.csv", "test_window_sequences.csv")

# The peer's hyper-parameters mirror ours in bench/bench_kt.py (same sizes, same optimiser),
# so a throughput ratio compares implementations, not model sizes.
PYKT_CONFIGS = {
    "dkt": {"model": {"emb_size": 200, "dropout": 0.5}, "lr": 1e-3},
    "sakt": {"model": {"seq_len": 200, "emb_size": 128, "num_attn_heads": 8, "dropout": 0.2, "num_en": 1}, "lr": 1e-3},
}


@dataclass
class PeerResult:
    model: str
    epochs: int
    best_epoch: int
    seconds_per_epoch: float
    interactions_per_second: float
    valid_auc: float
    test_auc: float
    test_acc: float
    window_test_auc: float
    window_test_acc: float
    peak_memory_mb: float


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _import_pykt(device: str):
    from pykt.datasets import data_loader

    if device == "cpu":  # see module docstring
        data_loader.LongTensor = torch.LongTensor
        data_loader.FloatTensor = torch.FloatTensor
    import importlib

    # the package re-exports functions under the module names: import the modules themselves
    init_model = importlib.import_module("pykt.models.init_model")
    train_model = importlib.import_module("pykt.models.train_model")
    evaluate_model = importlib.import_module("pykt.models.evaluate_model")
    return data_loader, init_model, train_model, evaluate_model


def _scratch_copy(dataset_dir: Path) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="pykt_peer_"))
    for name in PYKT_FILES:
        (scratch / name).symlink_to((dataset_dir / name).resolve())
    return scratch


def run_pykt(
    model_name: str,
    dataset_dir: Path,
    fold: int = 0,
    max_epochs: int = 200,
    patience: int = 10,
    batch_size: int = 256,
    seed: int = 42,
    device: str | None = None,
    evaluate_test: bool = True,
) -> PeerResult:
    """Train pykt-toolkit's model with pyKT's own training step and stopping rule."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    data_loader, init_model, train_model, evaluate_model = _import_pykt(device)
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    np.random.seed(seed)
    scratch = _scratch_copy(dataset_dir)
    cfg = PYKT_CONFIGS[model_name]
    train_set = data_loader.KTDataset(str(scratch / PYKT_FILES[0]), ["concepts"], {f for f in range(5) if f != fold})
    valid_set = data_loader.KTDataset(str(scratch / PYKT_FILES[0]), ["concepts"], {fold})
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    valid_loader = DataLoader(valid_set, batch_size=batch_size)
    model = init_model.init_model(model_name, dict(cfg["model"]), {"num_c": 100, "num_q": 0, "emb_path": ""}, "qid")
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    # interactions = shifted positions + the first one of each window (as counted for ours)
    n_train = int(sum(int(d["masks"].sum()) + 1 for d in train_set))

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    best_auc, best_epoch, best_state, epoch_seconds = -1.0, 0, None, []
    for epoch in range(1, max_epochs + 1):
        model.train()
        t0 = time.perf_counter()
        for batch in train_loader:  # pyKT's own training step
            loss = train_model.model_forward(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        epoch_seconds.append(time.perf_counter() - t0)
        auc, _ = evaluate_model.evaluate(model, valid_loader, model_name)
        if auc > best_auc + 1e-3:  # pyKT's improvement threshold
            best_auc, best_epoch = auc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    test_auc = test_acc = w_auc = w_acc = float("nan")
    if evaluate_test:
        test_set = data_loader.KTDataset(str(scratch / PYKT_FILES[1]), ["concepts"], {-1})
        window_set = data_loader.KTDataset(str(scratch / PYKT_FILES[2]), ["concepts"], {-1})
        test_auc, test_acc = evaluate_model.evaluate(model, DataLoader(test_set, batch_size=batch_size), model_name)
        w_auc, w_acc = evaluate_model.evaluate(model, DataLoader(window_set, batch_size=batch_size), model_name)
    sec = float(np.median(epoch_seconds))
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _peak_rss_mb()
    return PeerResult(
        model=f"pykt-{model_name}",
        epochs=len(epoch_seconds),
        best_epoch=best_epoch,
        seconds_per_epoch=sec,
        interactions_per_second=n_train / sec,
        valid_auc=float(best_auc),
        test_auc=float(test_auc),
        test_acc=float(test_acc),
        window_test_auc=float(w_auc),
        window_test_acc=float(w_acc),
        peak_memory_mb=peak,
    )
