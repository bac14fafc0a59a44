"""Tiny model configs and synthetic batches shared by the model tests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from kt.models import KTBatch, KTModel, build_model

NUM_ITEMS = 30
NUM_CONCEPTS = 7

# keys a given model does not know are ignored by ModelConfig.from_dict
TINY = dict(
    num_items=NUM_ITEMS,
    num_concepts=NUM_CONCEPTS,
    dim=16,
    hidden=16,
    num_heads=2,
    num_blocks=1,
    ff_dim=32,
    final_dim=32,
    max_len=24,
    dropout=0.0,
)


def tiny_model(name: str, **overrides) -> KTModel:
    torch.manual_seed(0)
    return build_model(name, **{**TINY, **overrides})


def item_concept(items: torch.Tensor) -> torch.Tensor:
    """A fixed item -> concept map (0 stays padding)."""
    return torch.where(items > 0, (items - 1) % NUM_CONCEPTS + 1, torch.zeros_like(items))


def random_batch(b: int, t: int, seed: int = 0, lengths: list[int] | None = None) -> KTBatch:
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, NUM_ITEMS + 1, (b, t), generator=g)
    responses = torch.randint(0, 2, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    if lengths is not None:
        for i, n in enumerate(lengths):
            mask[i, n:] = False
    items = items * mask
    responses = responses * mask
    return KTBatch(items, item_concept(items), responses, mask)


@pytest.fixture
def batch() -> KTBatch:
    return random_batch(3, 12)


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, for tests (conftest modules are not importable by name)."""
    return SimpleNamespace(
        tiny_model=tiny_model,
        random_batch=random_batch,
        item_concept=item_concept,
        num_items=NUM_ITEMS,
        num_concepts=NUM_CONCEPTS,
    )
