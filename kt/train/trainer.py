"""Training loop for every registered KT model: early stopping, checkpoints, resume, DDP.

Follows pyKT's training protocol (Liu et al., NeurIPS 2022): Adam, batch 256, windows of 200,
early stopping on validation AUC with patience 10, at most 200 epochs, the best epoch's
weights kept. Departures: batches are length-bucketed instead of padded to 200 (same loss,
less padding) and hold about equal numbers of interactions rather than 256 windows each (so
short windows do not steer training; see :mod:`kt.train.batching`); optional bf16 autocast on
CUDA; optional gradient clipping and LR schedule (off by default, as in pyKT).

Loss: binary cross-entropy with logits, averaged over the real positions t >= 1 of each
window. Position 0 has no history; pyKT trains and evaluates from the second interaction
(its dataloader shifts with ``[:, 1:]``), and we do the same so numbers are comparable.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from kt.config import device_name, usable_device
from kt.data.sequences import KTSequences, Vocab
from kt.models.base import KTModel, ModelConfig, ModelConfigError, get_model_class
from kt.models.checkpoint import read_checkpoint, rng_state, save_checkpoint, set_rng_state
from kt.train.batching import PaddedBatcher, batch_loader
from kt.train.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    broadcast_object,
    gather_objects,
    init_distributed,
)
from kt.train.evaluate import _autocast, evaluate, predict
from kt.train.metrics import binary_metrics


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# TrainConfig's annotations (strings under postponed evaluation) -> the check its values pass
_OPTION_TYPES = {
    "str": lambda v: isinstance(v, str),
    "int": _is_int,
    "float": lambda v: _is_int(v) or isinstance(v, float),
    "bool": lambda v: isinstance(v, bool),
    "int | None": lambda v: v is None or _is_int(v),
    "bool | None": lambda v: v is None or isinstance(v, bool),
    "dict[str, Any]": lambda v: isinstance(v, dict),
}

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


@dataclass
class TrainConfig:
    """Everything that decides a training run (logged flat to MLflow as params).

    model: registered model name; model_params: its hyper-parameters (dim, dropout, ...;
      num_items/num_concepts/max_len come from the data and ``max_len``).
    batch_size: windows per batch (on average, with ``batching="tokens"``).
    batching: "tokens" (default): length-bucketed batches that each hold about ``batch_size`` x
      the mean window length interactions, so every step weighs about as many interactions
      (:mod:`kt.train.batching` says why: +0.0034 test AUC for DKT on ASSIST2015); "windows":
      exactly ``batch_size`` windows per batch, as pyKT. ``token_budget``: an explicit cap on
      padded tokens per batch instead (either mode).
    bucket_chunk_batches: larger = less padding, less randomness in batch composition. On
      ASSIST2015 (batch 256) the real-token fill is 0.83 at 16, 0.95 at 50, 0.18 padded to 200.
    patience: epochs without a validation-AUC improvement before stopping (>= 1: 0 would stop
      before the first epoch and keep an untrained model).
    device: "auto" (CUDA when visible), "cpu", "cuda", "cuda:1", "mps" (as ``KT_DEVICE``).
      amp: bf16 autocast on CUDA.
    num_workers: DataLoader processes building batches (0 = inline).
    grad_clip: max global grad norm, 0 = off. scheduler: "none", "cosine" or "plateau".
    ema_decay: > 0 keeps an exponential moving average of the weights, updated after every
      step (Polyak averaging, as in SWA/EMA practice); validation scores the average, and the
      best average is the model kept. 0 = off.
    progress: tqdm bars; None = only when stderr is a terminal.
    """

    model: str = "dkt"
    model_params: dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-3
    batch_size: int = 256
    batching: str = "tokens"
    token_budget: int | None = None
    bucket_chunk_batches: int = 16  # length-sort within shuffled chunks of this many batches
    eval_batch_size: int = 512
    max_epochs: int = 200
    patience: int = 10
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    scheduler: str = "none"
    ema_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    max_len: int = 200
    find_unused_parameters: bool = False  # DDP: set for models with parameters a batch may skip
    progress: bool | None = None

    def __post_init__(self) -> None:
        # options arrive from YAML/JSON files and --set: a wrong type must fail here, by name,
        # not as a TypeError deep inside torch
        for f in fields(self):
            value = getattr(self, f.name)
            if not _OPTION_TYPES[f.type](value):
                raise ValueError(f"{f.name} must be {f.type.replace('dict[str, Any]', 'a mapping')} (got {value!r})")
        if self.batching not in ("tokens", "windows"):
            raise ValueError(f"batching must be 'tokens' or 'windows' (got {self.batching!r})")
        if self.scheduler not in ("none", "cosine", "plateau"):
            raise ValueError(f"scheduler must be 'none', 'cosine' or 'plateau' (got {self.scheduler!r})")
        # written as `not x >= 0` so that NaN (JSON's NaN parses to a float) fails too
        for name in ("lr", "weight_decay", "grad_clip"):  # lr 0 is allowed: a frozen run still evaluates
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 (got {getattr(self, name)!r})")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0 (got {self.num_workers!r})")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (got {self.ema_decay!r})")
        # patience 0 would stop before the first epoch and keep an untrained model
        for name in ("batch_size", "eval_batch_size", "max_epochs", "max_len", "bucket_chunk_batches",
                     "patience"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 (got {getattr(self, name)!r})")
        if self.token_budget is not None and self.token_budget <= 0:
            raise ValueError(f"token_budget must be > 0 when set (got {self.token_budget!r})")
        try:  # the values KT_DEVICE accepts; whether this machine has the device is usable_device's
            device_name(self.device)
        except ValueError as exc:
            raise ValueError(f"device {self.device!r}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**d)


class Tracker(Protocol):
    """What the trainer needs from an experiment tracker (see :mod:`kt.train.tracking`)."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...


@dataclass
class TrainResult:
    model: KTModel  # best-epoch weights, eval mode, unwrapped from DDP
    history: list[dict[str, float]]
    best_epoch: int
    best_valid_auc: float
    epochs_run: int
    checkpoint_path: Path | None  # best.pt (the model to serve)
    last_checkpoint_path: Path | None  # last.pt (to resume)
    test_metrics: dict[str, dict[str, float]]  # {"test": {...}, "test_window": {...}}
    test_predictions: dict[str, tuple[np.ndarray, np.ndarray]]
    windows_seen: np.ndarray  # sorted unique training-window ids this rank trained on
    valid_size: int  # evaluated validation positions
    device: str
    world_size: int


class WeightAverage:
    """Exponential moving average of a model's floating-point weights and buffers."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        live = model.state_dict()  # tensors sharing storage with the parameters
        self.names = [k for k, v in live.items() if v.dtype.is_floating_point]
        self.live = [live[k] for k in self.names]
        self.avg = [v.detach().clone() for v in self.live]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.avg, self.live, 1.0 - self.decay)

    @contextlib.contextmanager
    def swapped_in(self):
        """The average in the model's weights for the block; the live weights back after."""
        saved = [v.detach().clone() for v in self.live]
        with torch.no_grad():
            torch._foreach_copy_(self.live, self.avg)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.live, saved)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in zip(self.names, self.avg, strict=True)}

    def load(self, state: dict[str, torch.Tensor] | None) -> None:
        if state:  # a last.pt written without averaging starts the average from the weights
            with torch.no_grad():
                for k, v in zip(self.names, self.avg, strict=True):
                    v.copy_(state[k].to(v.device))


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def split_vocabs(splits: Any) -> tuple[Vocab | None, Vocab | None]:
    """Item/concept vocabularies of a dataset split object, wherever the loader put them."""
    meta = getattr(splits, "meta", None) or {}
    item = getattr(splits, "item_vocab", None) or meta.get("item_vocab")
    concept = getattr(splits, "concept_vocab", None) or meta.get("concept_vocab")
    return (item if isinstance(item, Vocab) else None, concept if isinstance(concept, Vocab) else None)


def _eval_splits(splits: Any) -> dict[str, KTSequences]:
    out = {}
    for name in ("test", "test_window"):
        seqs = getattr(splits, name, None)
        if seqs is not None and len(seqs):
            out[name] = seqs
    return out


def model_config_for(config: TrainConfig, num_items: int, num_concepts: int) -> ModelConfig:
    """``config.model``'s hyper-parameters for data of this size; a ValueError names a bad
    ``model_params`` field (unknown, set by the data, or of the wrong type or range)."""
    config_class = get_model_class(config.model).config_class
    bad = {"num_items", "num_concepts", "max_len"} & set(config.model_params)
    if bad:
        raise ValueError(f"model_params may not set {', '.join(sorted(bad))}: they come from the data / max_len")
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(config.model_params) - known)
    if unknown:
        raise ValueError(f"model {config.model!r} has no hyper-parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return config_class(num_items=num_items, num_concepts=num_concepts, max_len=config.max_len,
                            **config.model_params)
    except ModelConfigError as exc:
        if exc.field in config.model_params:  # the user's name for it
            raise exc.with_prefix("model_params.") from None
        raise


def check_model_params(config: TrainConfig) -> None:
    """Validate ``config.model_params`` before any data is loaded or run opened (sizes are placeholders)."""
    model_config_for(config, num_items=1, num_concepts=1)


def model_config_for_data(config: TrainConfig, splits: Any) -> ModelConfig:
    """The configured model's config sized for the data (vocab sizes over every split)."""
    parts = [s for s in (splits.train, splits.valid, *_eval_splits(splits).values()) if s is not None]
    return model_config_for(config, num_items=max(s.num_items for s in parts),
                            num_concepts=max(s.num_concepts for s in parts))


def build_for_data(config: TrainConfig, splits: Any) -> KTModel:
    """The configured model sized for the data (vocab sizes over every split)."""
    return get_model_class(config.model)(model_config_for_data(config, splits))


def _make_scheduler(name: str, optimizer: torch.optim.Optimizer, max_epochs: int):
    factories = {
        "none": lambda: None,
        "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, max_epochs)),
        "plateau": lambda: torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=3),
    }
    if name not in factories:
        raise ValueError(f"unknown scheduler {name!r}; choose from {', '.join(factories)}")
    return factories[name]()


# TrainConfig fields that decide the batch plan: a resumed run must keep them
PLAN_FIELDS = ("batching", "batch_size", "token_budget", "bucket_chunk_batches", "max_len", "seed")
# TrainConfig fields that the optimizer / scheduler state restored on resume overrides: Adam's
# load_state_dict brings back each param group's lr and weight_decay, and a scheduler's state is
# only meaningful for the scheduler that wrote it. With "cosine" the restored state also holds
# the schedule's length (T_max = max_epochs), so max_epochs is added for cosine runs.
OPTIMIZER_FIELDS = ("lr", "weight_decay", "scheduler")


def _check_same_batch_plan(path: Path, saved: dict[str, Any], config: TrainConfig) -> None:
    """Resuming with other batching would change the run's batches half-way through. Runs saved
    before ``batching`` existed used fixed window counts."""
    if not saved:
        return
    saved = {"batching": "windows", **saved}
    changed = [f"{k}={saved[k]!r} (now {getattr(config, k)!r})" for k in PLAN_FIELDS
               if k in saved and saved[k] != getattr(config, k)]
    if changed:
        raise ValueError(f"{path}: the run was started with {', '.join(changed)}; resume with the same "
                         "settings (e.g. --set batching=...) or start a new run")


def _read_on_main(path: Path, is_main: bool) -> dict[str, Any]:
    """The checkpoint read by rank 0 and handed to every rank (on CPU). A file rank 0 cannot read
    fails every rank with its message, instead of leaving the others waiting for it."""
    got: tuple[bool, Any] = (False, None)
    if is_main:
        try:
            got = (True, read_checkpoint(path, map_location="cpu"))
        except (OSError, ValueError) as exc:
            got = (False, f"{type(exc).__name__}: {exc}")
            broadcast_object(got)
            raise
    ok, payload = broadcast_object(got)
    if not ok:
        raise ValueError(f"rank 0 could not read {path}: {payload}")
    return payload


def _check_same_world_size(path: Path, saved: int | None, now: int) -> None:
    """Under DDP each optimizer step averages one batch per process: resuming with another
    number of processes would change the effective batch (and the shares) half-way through."""
    if saved is not None and int(saved) != now:
        raise ValueError(f"{path}: the run was trained by {saved} process(es), not {now}; resume with "
                         f"--nproc {saved} (or torchrun --nproc_per_node {saved}) or start a new run")


def _check_same_optimizer(path: Path, saved: dict[str, Any], config: TrainConfig) -> None:
    """A changed lr (say) would be logged as the run's but not used: the restored optimizer
    state puts the old one back."""
    names = list(OPTIMIZER_FIELDS)
    if config.scheduler == "cosine" and saved.get("scheduler") == "cosine":
        names.append("max_epochs")
    changed = [f"{k}={saved[k]!r} (now {getattr(config, k)!r})" for k in names
               if k in saved and saved[k] != getattr(config, k)]
    if changed:
        raise ValueError(f"{path}: the run was started with {', '.join(changed)}, and the "
                         "optimizer/scheduler state restored on resume keeps the old values; resume with "
                         "the same settings or start a new run")


def _check_same_model(path: Path, saved: dict[str, Any], current: ModelConfig) -> None:
    """Other hyper-parameters than the checkpoint's: its weights do not fit (load_state_dict's
    ``size mismatch``), or fit a model other than the one the run records."""
    now = current.to_dict()
    changed = []
    for k in saved:
        if k not in now or saved[k] == now[k]:
            continue
        if k in ("num_items", "num_concepts"):
            changed.append(f"{k}={saved[k]!r} (now {now[k]!r}, from the data)")
        else:  # max_len is TrainConfig's own (the batch-plan check names it first)
            changed.append(f"{'' if k == 'max_len' else 'model_params.'}{k}={saved[k]!r} (now {now[k]!r})")
    if changed:
        raise ValueError(f"{path}: the run was started with {', '.join(changed)}; resume with the same "
                         "model_params and data or start a new run")


def masked_bce(logits: torch.Tensor, batch) -> tuple[torch.Tensor, int]:
    """Mean BCE over real positions t >= 1 (pyKT skips t = 0). logits: (B, T)."""
    keep = batch.mask[:, 1:]  # (B, T-1)
    target = batch.responses[:, 1:].float()[keep]
    loss = F.binary_cross_entropy_with_logits(logits[:, 1:].float()[keep], target)
    return loss, int(keep.sum())


def train(
    config: TrainConfig,
    splits: Any,
    *,
    tracker: Tracker | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``splits`` (``.train``, ``.valid``, optional ``.test`` and
    ``.test_window``: :class:`KTSequences`), keep the best validation-AUC epoch, score the test
    splits with it, and return everything.

    checkpoint_dir: where rank 0 writes ``last.pt`` (every epoch, resumable) and ``best.pt``
      (the best epoch, with test metrics at the end). resume: continue from ``last.pt`` there
      (a fresh start when there is none).
    Under torchrun (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel, each
    rank takes its share of the batches, and only rank 0 writes checkpoints and logs.
    """
    device = torch.device(usable_device(config.device))
    dist_info: DistInfo = init_distributed(device.type)
    if device.type == "cuda" and dist_info.enabled:
        device = torch.device("cuda", dist_info.local_rank)
    is_main = dist_info.is_main
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and ckpt_dir is None:
        raise ValueError("resume=True needs a checkpoint_dir")
    item_vocab, concept_vocab = split_vocabs(splits)
    run_meta = dict(meta or {})
    rule = (getattr(splits, "meta", None) or {}).get("outcome_rule")
    if isinstance(rule, dict):  # highlight data: serving must label events the same way (check_outcome_rule)
        run_meta.setdefault("outcome_rule", dict(rule))

    seed_everything(config.seed)
    model = build_for_data(config, splits).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _make_scheduler(config.scheduler, optimizer, config.max_epochs)

    start_epoch, best_auc, best_epoch, bad_epochs = 0, float("-inf"), -1, 0
    history: list[dict[str, float]] = []
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # rank 0 (the only writer of checkpoints) decides and reads, and hands the state to the other
    # ranks: on nodes without a shared file system they may not see last.pt, and ranks starting at
    # different epochs would hang at the end
    resuming = bool(broadcast_object(resume and (ckpt_dir / LAST_CHECKPOINT).is_file()))
    ema_state = None
    if resuming:
        state = _read_on_main(ckpt_dir / LAST_CHECKPOINT, is_main)
        ema_state = state["meta"].get("ema_state")
        if state["model_name"] != config.model:
            raise ValueError(f"{ckpt_dir / LAST_CHECKPOINT}: holds model {state['model_name']!r}, not {config.model!r}")
        _check_same_batch_plan(ckpt_dir / LAST_CHECKPOINT, state.get("train_config") or {}, config)
        _check_same_model(ckpt_dir / LAST_CHECKPOINT, state["model_config"], model.config)
        _check_same_optimizer(ckpt_dir / LAST_CHECKPOINT, state.get("train_config") or {}, config)
        _check_same_world_size(ckpt_dir / LAST_CHECKPOINT, state["meta"].get("world_size"), dist_info.world_size)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        progress = state["meta"].get("progress", {})
        start_epoch = state["epoch"] + 1
        best_auc = state["best_metric"] if state["best_metric"] is not None else float("-inf")
        best_epoch = progress.get("best_epoch", -1)
        bad_epochs = progress.get("bad_epochs", 0)
        history = list(progress.get("history", []))
        if broadcast_object(is_main and (ckpt_dir / BEST_CHECKPOINT).is_file()):
            best = _read_on_main(ckpt_dir / BEST_CHECKPOINT, is_main)["state_dict"]
            best_state = {k: v.to(device) for k, v in best.items()}
        # each rank resumes its own random stream (dropout masks differ per rank); a checkpoint
        # from before per-rank states were kept has rank 0's only
        per_rank = state["meta"].get("rng_per_rank")
        if per_rank and len(per_rank) == dist_info.world_size:
            set_rng_state(per_rank[dist_info.rank])
        elif state.get("rng"):
            set_rng_state(state["rng"])

    ema = WeightAverage(model, config.ema_decay) if config.ema_decay > 0 else None
    if ema is not None and resuming:
        ema.load(ema_state)

    net: torch.nn.Module = model
    if dist_info.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.find_unused_parameters,
        )

    batcher = PaddedBatcher(
        splits.train,
        config.batch_size,
        config.max_len,
        token_budget=config.token_budget,
        balance_tokens=config.batching == "tokens",
        chunk_batches=config.bucket_chunk_batches,
        shuffle=True,
        seed=config.seed,
        min_len=2,  # a length-1 window has no position t >= 1 to learn from
        rank=dist_info.rank,
        world_size=dist_info.world_size,
    )
    show = config.progress if config.progress is not None else sys.stderr.isatty()
    show = bool(show) and is_main
    seen: set[int] = set()
    stop = bad_epochs >= config.patience

    valid_size = int(progress.get("valid_size", 0)) if resuming else 0  # a finished run resumed still reports it
    for epoch in range(start_epoch, config.max_epochs):
        if stop:
            break
        net.train()
        batcher.set_epoch(epoch)
        t0 = time.perf_counter()
        loss_sum, n_pos, n_inter = 0.0, 0, 0
        loader = batch_loader(batcher, config.num_workers)
        bar = tqdm(loader, total=len(batcher), desc=f"epoch {epoch}", disable=not show, leave=False, file=sys.stderr)
        for batch, ids in bar:
            seen.update(int(i) for i in ids)
            batch = batch.to(device)
            with _autocast(device, config.amp):
                logits = net(batch)  # (B, T)
            bce, n = masked_bce(logits, batch)
            loss = bce + model.regularization(batch)  # e.g. AKT's Rasch L2; zero for most models
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update()
            loss_sum += float(bce.detach()) * n
            n_pos += n
            n_inter += int(batch.mask.sum())
            if show:
                bar.set_postfix(loss=f"{loss_sum / max(n_pos, 1):.4f}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - t0
        loss_sum, n_pos, n_inter = all_reduce_sum([loss_sum, n_pos, n_inter], device)

        with ema.swapped_in() if ema is not None else contextlib.nullcontext():
            valid = evaluate(
                model, splits.valid, config.eval_batch_size, config.max_len, device=device, amp=config.amp,
                rank=dist_info.rank, world_size=dist_info.world_size,
            )
            if valid["auc"] > best_auc:  # the weights validation scored: the average when there is one
                candidate = {k: v.detach().clone() for k, v in model.state_dict().items()}
        epoch_seconds = time.perf_counter() - t0
        valid_size = valid["n"]
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / max(n_pos, 1),  # BCE only (no regularizer)
            "valid_auc": valid["auc"],
            "valid_acc": valid["acc"],
            "valid_rmse": valid["rmse"],
            "valid_logloss": valid["logloss"],
            "valid_ece": valid["ece"],
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_seconds": epoch_seconds,
            "train_interactions_per_second": n_inter / max(train_seconds, 1e-9),
        }
        history.append(row)
        improved = valid["auc"] > best_auc  # NaN (one-class valid set) never improves
        if improved:
            best_auc, best_epoch, bad_epochs = valid["auc"], epoch, 0
            best_state = candidate
        else:
            bad_epochs += 1
        if scheduler is not None:
            scheduler.step(valid["auc"]) if config.scheduler == "plateau" else scheduler.step()
        stop = bad_epochs >= config.patience
        if tracker is not None and is_main:
            tracker.log_metrics({k: float(v) for k, v in row.items() if k != "epoch"}, step=epoch)
        if is_main and show:
            tqdm.write(
                f"epoch {epoch}: loss {row['train_loss']:.4f} valid auc {row['valid_auc']:.4f} "
                f"acc {row['valid_acc']:.4f} ({epoch_seconds:.1f}s, {row['train_interactions_per_second']:.0f} int/s)",
                file=sys.stderr,
            )
        rank_rngs = gather_objects(rng_state()) if dist_info.enabled else None  # every rank takes part
        if is_main and ckpt_dir is not None:
            common = dict(
                item_vocab=item_vocab, concept_vocab=concept_vocab, train_config=config.to_dict(),
                optimizer=optimizer, scheduler=scheduler, best_metric=best_auc,
            )
            progress = {"best_epoch": best_epoch, "bad_epochs": bad_epochs, "history": history, "valid_size": valid_size}
            if improved:
                save_checkpoint(ckpt_dir / BEST_CHECKPOINT, model, epoch=epoch, state_dict=best_state,
                                meta={**run_meta, "progress": progress}, **common)
            last_meta = {**run_meta, "progress": progress, "world_size": dist_info.world_size}
            if rank_rngs is not None:
                last_meta["rng_per_rank"] = rank_rngs
            if ema is not None:
                last_meta["ema_state"] = ema.state()
            save_checkpoint(ckpt_dir / LAST_CHECKPOINT, model, epoch=epoch, meta=last_meta, **common)
        barrier()

    # Restore the best epoch's weights, then score the test splits with them.
    model.load_state_dict(best_state)
    model.eval()
    test_metrics: dict[str, dict[str, float]] = {}
    test_predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, seqs in _eval_splits(splits).items():
        y, p = predict(
            model, seqs, config.eval_batch_size, config.max_len, device=device, amp=config.amp,
            rank=dist_info.rank, world_size=dist_info.world_size,
        )
        test_metrics[name] = binary_metrics(y, p)
        test_predictions[name] = (y, p)

    best_path = last_path = None
    if ckpt_dir is not None:
        best_path, last_path = ckpt_dir / BEST_CHECKPOINT, ckpt_dir / LAST_CHECKPOINT
        if is_main and best_epoch >= 0:
            # rewrite best.pt with the final record: test metrics, the whole history
            progress = {"best_epoch": best_epoch, "bad_epochs": bad_epochs, "history": history, "valid_size": valid_size}
            save_checkpoint(
                best_path, model, item_vocab=item_vocab, concept_vocab=concept_vocab,
                train_config=config.to_dict(), epoch=best_epoch, best_metric=best_auc,
                meta={**run_meta, "progress": progress, "test_metrics": copy.deepcopy(test_metrics)},
            )
        barrier()
        if best_epoch < 0:
            best_path = None

    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        best_valid_auc=best_auc,
        epochs_run=len(history),
        checkpoint_path=best_path,
        last_checkpoint_path=last_path,
        test_metrics=test_metrics,
        test_predictions=test_predictions,
        windows_seen=np.asarray(sorted(seen), dtype=np.int64),
        valid_size=valid_size,
        device=str(device),
        world_size=dist_info.world_size,
    )
