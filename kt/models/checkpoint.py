"""Self-describing KT checkpoints: one torch file that rebuilds the model by itself.

A checkpoint holds the registered model name and its config dict (so the model is rebuilt
through the registry, no repository config files needed), the item/concept vocabularies
(external ids -> model indices), the weights, and, for resuming, the training config,
optimizer/scheduler state, epoch, best metric and RNG states. It lives beside the models
rather than in ``kt.train`` so serving code loads a model without importing the trainer.

Files are written atomically (temp file + rename) so a crash never leaves half a checkpoint,
and read with ``weights_only=True``: only tensors and plain Python containers are stored.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kt.data.sequences import Vocab
from kt.models.base import KTModel, build_model

FORMAT_VERSION = 1


def _ktpath_version() -> str:
    try:
        from importlib.metadata import version

        return version("ktpath")
    except Exception:  # not installed as a distribution (e.g. a bare checkout)
        return "unknown"


def rng_state() -> dict[str, Any]:
    """Python and torch (CPU, CUDA) RNG states; numpy is not used statefully by ktpath."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    if "python" in state:
        py = state["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]  # map_location may have moved them
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def save_checkpoint(
    path: str | Path,
    model: KTModel,
    *,
    item_vocab: Vocab | None = None,
    concept_vocab: Vocab | None = None,
    train_config: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    epoch: int = 0,
    best_metric: float | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
    meta: dict[str, Any] | None = None,
    save_rng: bool = True,
) -> Path:
    """Write one checkpoint file. ``state_dict`` overrides the model's current weights
    (used to store the best epoch's weights while the model has moved on)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    weights = state_dict if state_dict is not None else model.state_dict()
    payload: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "ktpath_version": _ktpath_version(),
        "model_name": model.name,
        "model_config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in weights.items()},
        "item_vocab": item_vocab.to_dict() if item_vocab is not None else None,
        "concept_vocab": concept_vocab.to_dict() if concept_vocab is not None else None,
        "train_config": train_config,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch),
        "best_metric": None if best_metric is None else float(best_metric),
        "rng": rng_state() if save_rng else None,
        "meta": dict(meta or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:  # e.g. disk full: no half-written temp file left beside the checkpoints
        tmp.unlink(missing_ok=True)
        raise
    return path


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, in eval mode, with its vocabularies.

    meta: everything else in the file (model_name, model_config, train_config, epoch,
    best_metric, ktpath_version, the trainer's meta such as dataset and test metrics).
    """

    model: KTModel
    item_vocab: Vocab | None
    concept_vocab: Vocab | None
    meta: dict[str, Any] = field(default_factory=dict)


class OutcomeRuleMismatch(ValueError):
    """The model learnt from outcomes labelled by another rule than the one serving labels with."""


def check_outcome_rule(loaded: LoadedModel, rule) -> None:
    """Refuse to serve ``loaded`` on events labelled by ``rule`` (a :class:`kt.data.outcome.OutcomeRule`)
    when it was trained on highlight events labelled by another rule: "understood" would then mean
    one thing in the model's weights and another in what it is fed, and its mastery would drift
    without any error. Models trained on data without a rule (pyKT response logs) pass."""
    trained = (loaded.meta.get("meta") or {}).get("outcome_rule")
    if not isinstance(trained, dict):
        return
    current = rule.to_dict()
    differ = [f"{k} {trained.get(k)!r} in training, {v!r} now" for k, v in current.items() if k in trained and trained[k] != v]
    if differ:
        name = (loaded.meta.get("meta") or {}).get("data") or loaded.meta.get("model_name", "the model")
        raise OutcomeRuleMismatch(
            f"model trained on {name!r} labelled events with another outcome rule ({'; '.join(differ)}): "
            "set KT_OUTCOME_RULE to the rule it was trained with, or train a model on this rule")


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict (for resuming); raises ValueError naming the file if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable ktpath checkpoint ({exc.__class__.__name__}: {exc})") from exc
    missing = {"model_name", "model_config", "state_dict"} - set(payload if isinstance(payload, dict) else ())
    if missing:
        raise ValueError(f"{path}: not a ktpath checkpoint (missing {', '.join(sorted(missing))})")
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model from the stored name + config through the registry and load weights."""
    payload = read_checkpoint(path, map_location)
    model = build_model(payload["model_name"], **payload["model_config"])
    model.load_state_dict(payload["state_dict"])
    model.to(map_location).eval()
    meta = {k: v for k, v in payload.items() if k not in {"state_dict", "optimizer", "scheduler", "rng"}}
    meta["path"] = str(Path(path).resolve())
    return LoadedModel(
        model=model,
        item_vocab=Vocab.from_dict(payload["item_vocab"]) if payload.get("item_vocab") else None,
        concept_vocab=Vocab.from_dict(payload["concept_vocab"]) if payload.get("concept_vocab") else None,
        meta=meta,
    )
