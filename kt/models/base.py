"""The contract every KT model fulfils, and the registry that finds models by name.

Conventions (shared by training, evaluation, mastery tracking and the planner):

* Indices: ``items`` and ``concepts`` are model indices 1..n, 0 is padding.
* ``forward(batch)`` returns logits of shape (B, T). ``logits[:, t]`` is the model's belief
  that ``responses[:, t]`` is 1, computed from interactions 0..t-1 and the *query*
  (``items[:, t]``, ``concepts[:, t]``) only. It never sees ``responses[:, t:]`` (tests
  perturb future responses to check this). Position 0 is the prior (no history).
* Online use goes through an explicit per-user state:
  ``state = model.init_state(B)``; ``model.query(state, items, concepts)`` scores Q candidate
  items for each of the B users without changing the state; ``model.update(state, item,
  concept, response)`` absorbs one interaction per user. ``query`` after ``update``s equals
  the corresponding position of ``forward`` over the full history (up to the model's window).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn


class ModelConfigError(ValueError):
    """A hyper-parameter a model cannot be built with: ``field`` names it, ``prefix`` (e.g.
    ``model_params.``) says where the caller's user set it."""

    def __init__(self, field: str, requirement: str, value: object, prefix: str = "") -> None:
        self.field, self.requirement, self.value, self.prefix = field, requirement, value, prefix
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.prefix}{self.field} must be {self.requirement}, got {self.value!r}"

    def with_prefix(self, prefix: str) -> ModelConfigError:
        return ModelConfigError(self.field, self.requirement, self.value, prefix)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_float(v: object) -> bool:
    return _is_int(v) or isinstance(v, float)


# annotation (a string under postponed evaluation) -> (type check, the words for it, range check, the words)
# Every int of a model config is a size or a count (dim, hidden, heads, blocks, layers, widths,
# max_len), so > 0 unless listed in ModelConfig.RANGES; every float is a rate or a penalty, >= 0.
_FIELD_RULES = {
    "int": (_is_int, "an int", lambda v: v > 0, "> 0"),
    "float": (_is_float, "a float", lambda v: math.isfinite(v) and v >= 0, ">= 0"),
    "bool": (lambda v: isinstance(v, bool), "a bool (true or false)", lambda v: True, ""),
}


@dataclass
class ModelConfig:
    """Hyper-parameters common to all models; subclasses add their own fields.

    Values arrive from YAML/JSON files and ``--set``, so ``__post_init__`` checks each field
    against its annotation (an int is not a bool or a float, a bool is not ``"no"``) and its
    range, and raises :class:`ModelConfigError` naming the field: a bad value fails here, not
    as a TypeError or ZeroDivisionError inside torch, nor silently (``"no"`` is truthy).
    """

    # ranges other than _FIELD_RULES' defaults: field -> (check, words)
    RANGES: ClassVar[dict[str, tuple[Any, str]]] = {
        "num_items": (lambda v: v >= 0, ">= 0"),  # from the data; 0 builds (padding row only)
        "num_concepts": (lambda v: v >= 0, ">= 0"),
        "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),  # 1 would zero every activation
    }

    num_items: int
    num_concepts: int
    dim: int = 64
    dropout: float = 0.1
    max_len: int = 200

    def __post_init__(self) -> None:
        for f in fields(self):
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            if kind not in _FIELD_RULES:  # a field type without a rule is the subclass's to check
                continue
            is_type, type_words, in_range, range_words = _FIELD_RULES[kind]
            in_range, range_words = self.RANGES.get(f.name, (in_range, range_words))
            value = getattr(self, f.name)
            if not is_type(value) or not in_range(value):
                raise ModelConfigError(f.name, f"{type_words} {range_words}".strip(), value)
        # multi-head attention splits dim into num_heads equal parts (every model with heads)
        heads = getattr(self, "num_heads", None)
        if heads is not None and self.dim % heads:
            raise ModelConfigError("dim", f"divisible by num_heads={heads}", self.dim)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class KTBatch:
    """A padded batch. Shapes: (B, T). ``mask`` is True on real interactions."""

    items: torch.Tensor
    concepts: torch.Tensor
    responses: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str) -> KTBatch:
        return KTBatch(*(t.to(device, non_blocking=True) for t in (self.items, self.concepts, self.responses, self.mask)))


KTState = dict[str, torch.Tensor]


class KTModel(nn.Module, ABC):
    """Abstract knowledge-tracing model. One subclass per file, registered by name."""

    name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    # True: the online state keeps the last max_len-1 interactions (attention models).
    # False: the state summarises the whole history (recurrent models), no window.
    windowed: ClassVar[bool] = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

    @abstractmethod
    def forward(self, batch: KTBatch) -> torch.Tensor:
        """(B, T) logits; see the module docstring for the causal convention."""

    def regularization(self, batch: KTBatch) -> torch.Tensor:
        """Extra training loss for this batch (e.g. AKT's L2 on Rasch difficulties).

        Trainers add it to the prediction loss. Default: a zero scalar.
        """
        return torch.zeros((), device=batch.items.device)

    # ------------------------------------------------------------------ online
    # Default: keep the last ``max_len`` interactions and rerun ``forward``. Correct for any
    # model; recurrent and attention models override these with cheaper incremental forms.
    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> KTState:
        device = device or next(self.parameters()).device
        z = torch.zeros(batch_size, 0, dtype=torch.long, device=device)
        return {"items": z, "concepts": z.clone(), "responses": z.clone()}

    def update(
        self, state: KTState, items: torch.Tensor, concepts: torch.Tensor, responses: torch.Tensor
    ) -> KTState:
        """Absorb one interaction per user. items/concepts/responses: (B,)."""
        keep = self.config.max_len - 1  # room for the query position
        out = {}
        for key, new in (("items", items), ("concepts", concepts), ("responses", responses)):
            seq = torch.cat([state[key], new.long().view(-1, 1)], dim=1)
            out[key] = seq[:, -keep:] if keep > 0 else seq[:, :0]
        return out

    @torch.no_grad()
    def query(self, state: KTState, items: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        """Logits (B, Q) for Q candidate (item, concept) pairs per user, given the state."""
        b, q = items.shape
        hist_i, hist_c, hist_r = state["items"], state["concepts"], state["responses"]
        h = hist_i.shape[1]
        # one sequence per (user, candidate): history followed by the candidate as the query
        seq_i = torch.cat([hist_i.repeat_interleave(q, 0), items.reshape(-1, 1)], 1)
        seq_c = torch.cat([hist_c.repeat_interleave(q, 0), concepts.reshape(-1, 1)], 1)
        seq_r = torch.cat([hist_r.repeat_interleave(q, 0), torch.zeros_like(items.reshape(-1, 1))], 1)
        mask = seq_i.new_ones(seq_i.shape, dtype=torch.bool)
        logits = self.forward(KTBatch(seq_i, seq_c, seq_r, mask))
        return logits[:, h].view(b, q)

    # ------------------------------------------------------------------ misc
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class CachedWindowModel(KTModel):
    """Attention models whose online state is the raw id window plus per-layer key/value caches.

    ``update`` slides the id window (the base class's rule) and re-encodes it once, because
    positions shift as the window slides; ``query`` then attends Q candidates to the cache.
    Subclasses implement :meth:`_cache` (ids -> ids + caches) and ``query``.
    """

    ID_KEYS: ClassVar[tuple[str, ...]] = ("items", "concepts", "responses")

    @abstractmethod
    def _cache(self, ids: KTState) -> KTState:
        """The state for this id window: ``ids`` plus the model's cached tensors."""

    @torch.no_grad()
    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> KTState:
        return self._cache(super().init_state(batch_size, device))

    @torch.no_grad()
    def update(
        self, state: KTState, items: torch.Tensor, concepts: torch.Tensor, responses: torch.Tensor
    ) -> KTState:
        ids = {k: state[k] for k in self.ID_KEYS}
        return self._cache(super().update(ids, items, concepts, responses))


MODEL_REGISTRY: dict[str, type[KTModel]] = {}


def register_model(cls: type[KTModel]) -> type[KTModel]:
    """Class decorator: make a model available by its ``name``."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} needs a class attribute 'name'")
    if cls.name in MODEL_REGISTRY and MODEL_REGISTRY[cls.name] is not cls:
        raise ValueError(f"model name {cls.name!r} registered twice")
    MODEL_REGISTRY[cls.name] = cls
    return cls


def available_models() -> list[str]:
    _import_builtin_models()
    return sorted(MODEL_REGISTRY)


def get_model_class(name: str) -> type[KTModel]:
    _import_builtin_models()
    try:
        return MODEL_REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(MODEL_REGISTRY))}") from None


def build_model(name: str, **config: Any) -> KTModel:
    """Instantiate a registered model from keyword hyper-parameters."""
    cls = get_model_class(name)
    return cls(cls.config_class.from_dict(config))


def _import_builtin_models() -> None:
    # Importing the package's model modules runs their @register_model decorators.
    import importlib
    import pkgutil

    import kt.models as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in {"base", "checkpoint"} and not mod.name.startswith("_"):
            importlib.import_module(f"kt.models.{mod.name}")
