"""Models learn: loss falls and a simple concept-level rule is picked up within a few steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kt.models import KTBatch, available_models


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Rank-based ROC AUC (ties are rare with continuous scores)."""
    order = scores.argsort()
    ranks = torch.empty_like(order, dtype=torch.float64)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    pos = labels.bool()
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def synthetic(kit, n_users: int, t: int, seed: int) -> KTBatch:
    """Responses follow a student ability that only the history reveals, plus a concept effect."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, kit.num_items + 1, (n_users, t), generator=g)
    concepts = kit.item_concept(items)
    ability = torch.where(torch.rand(n_users, 1, generator=g) < 0.5, -1.5, 1.5)
    easiness = (concepts % 2).float() * 2 - 1  # odd concepts are easy
    p = torch.sigmoid(ability + 1.5 * easiness)
    responses = (torch.rand(n_users, t, generator=g) < p).long()
    return KTBatch(items, concepts, responses, torch.ones(n_users, t, dtype=torch.bool))


def loss_fn(model, batch: KTBatch) -> torch.Tensor:
    logits = model(batch)
    bce = F.binary_cross_entropy_with_logits(logits[batch.mask], batch.responses[batch.mask].float())
    return bce + model.regularization(batch)


@pytest.mark.parametrize("name", available_models())
def test_loss_decreases(name, kit):
    model = kit.tiny_model(name)
    batch = kit.random_batch(8, 16, seed=5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = loss_fn(model, batch).item()
    for _ in range(15):
        opt.zero_grad()
        loss = loss_fn(model, batch)
        loss.backward()
        opt.step()
    assert loss_fn(model, batch).item() < first - 0.05


@pytest.mark.parametrize("name", available_models())
def test_learns_synthetic_rule(name, kit):
    model = kit.tiny_model(name)
    train, test = synthetic(kit, 64, 20, seed=0), synthetic(kit, 64, 20, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for step in range(40):
        rows = torch.arange(16) + (step % 4) * 16
        opt.zero_grad()
        loss_fn(
            model, KTBatch(*(x[rows] for x in (train.items, train.concepts, train.responses, train.mask)))
        ).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        scores = model(test)[:, 5:].reshape(-1)  # after a few answers the ability is visible
    labels = test.responses[:, 5:].reshape(-1)
    # knowing only which concepts are easy gives AUC ~0.76 here; above it needs the history
    assert auc(scores, labels) > 0.79
