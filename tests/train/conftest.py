"""Tiny synthetic KT data for the training tests.

The generator gives each user a latent ability per concept that grows with practice, so
responses are predictable from history (a KT model must beat the majority-class baseline).
It stands in for kt.sim's presets so these tests depend on kt.data and kt.models only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from kt.data.sequences import KTSequences, Vocab

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("WANDB_MODE", "disabled")
# One intra-op thread: tiny models gain nothing from two, and on a shared 2-core box OpenMP
# spin-waiting makes multi-threaded tiny ops ~10x slower.
torch.set_num_threads(1)


@dataclass
class Splits:
    train: KTSequences
    valid: KTSequences
    test: KTSequences | None = None
    test_window: KTSequences | None = None
    meta: dict = field(default_factory=dict)


def synthetic_sequences(
    n_users: int, n_concepts: int = 8, min_len: int = 5, max_len: int = 60, seed: int = 0, items_per_concept: int = 3
) -> KTSequences:
    """Users with a latent ability per concept: P(correct) = sigmoid(ability + 0.3 * practice - difficulty)."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1, n_concepts * items_per_concept)
    users, items, concepts, responses = [], [], [], []
    for u in range(n_users):
        ability = rng.normal(-0.8, 1.5) + rng.normal(0, 0.7, n_concepts)
        practice = np.zeros(n_concepts)
        length = int(rng.integers(min_len, max_len + 1))
        its, cs, rs = [], [], []
        for _ in range(length):
            c = int(rng.integers(n_concepts))
            item = c * items_per_concept + int(rng.integers(items_per_concept))
            p = 1 / (1 + np.exp(-(ability[c] + 0.3 * practice[c] - difficulty[item])))
            r = int(rng.random() < p)
            practice[c] += 1
            its.append(item + 1)
            cs.append(c + 1)
            rs.append(r)
        users.append(f"u{seed}_{u}")
        items.append(its)
        concepts.append(cs)
        responses.append(rs)
    return KTSequences.from_lists(
        users, items, concepts, responses, num_items=n_concepts * items_per_concept, num_concepts=n_concepts
    )


def make_splits(n_train: int = 120, n_valid: int = 40, n_test: int = 40, **kw) -> Splits:
    n_concepts = kw.get("n_concepts", 8)
    items_per_concept = kw.get("items_per_concept", 3)
    return Splits(
        train=synthetic_sequences(n_train, seed=1, **kw),
        valid=synthetic_sequences(n_valid, seed=2, **kw),
        test=synthetic_sequences(n_test, seed=3, **kw),
        meta={
            "item_vocab": Vocab.identity(n_concepts * items_per_concept),
            "concept_vocab": Vocab.identity(n_concepts),
        },
    )


@pytest.fixture(scope="session")
def tiny_splits() -> Splits:
    return make_splits()
