"""AKT specifics: monotonic attention, Rasch difficulty, L2 penalty, concept-only mode."""

from __future__ import annotations

import torch

from kt.models import KTBatch
from kt.models.akt import monotonic_weights


def test_monotonic_weights_rows_sum_to_one_or_zero():
    t = 5
    idx = torch.arange(t)
    allowed = idx[None, :] < idx[:, None]  # strictly past: row 0 has no key
    distance = (idx[:, None] - idx[None, :]).abs().float()
    w = monotonic_weights(torch.randn(2, 3, t, t), allowed, distance, torch.zeros(3, 1, 1))
    assert torch.all(w[:, :, 0] == 0)
    torch.testing.assert_close(w[:, :, 1:].sum(-1), torch.ones(2, 3, t - 1))
    assert torch.all(w[:, :, ~allowed] == 0)


def test_monotonic_decay_favours_recent_keys():
    t = 8
    idx = torch.arange(t)
    allowed = idx[None, :] <= idx[:, None]
    distance = (idx[:, None] - idx[None, :]).abs().float()
    scores = torch.ones(1, 1, t, t)  # equal raw scores: only the decay separates keys
    weak = monotonic_weights(scores, allowed, distance, torch.full((1, 1, 1), -10.0))
    strong = monotonic_weights(scores, allowed, distance, torch.full((1, 1, 1), 3.0))
    last = strong[0, 0, -1]
    assert torch.all(last[1:] >= last[:-1])  # weight grows towards the query
    assert strong[0, 0, -1, -1] > weak[0, 0, -1, -1]


def test_item_difficulty_changes_predictions_and_is_penalised(kit):
    model = kit.tiny_model("akt", l2=1e-3).eval()
    batch = kit.random_batch(2, 6, seed=2)
    assert model.regularization(batch).item() == 0.0  # mu starts at zero
    base = model(batch)
    with torch.no_grad():
        model.difficulty.weight[batch.items[0, 3]] = 2.0
    out = model(batch)
    assert not torch.allclose(out[0, 3], base[0, 3])
    n_hits = int((batch.items == batch.items[0, 3]).sum())
    torch.testing.assert_close(model.regularization(batch), torch.tensor(1e-3 * 4.0 * n_hits))


def test_concept_only_mode_ignores_items(kit):
    model = kit.tiny_model("akt", use_items=False).eval()
    batch = kit.random_batch(2, 8, seed=3)
    shuffled = KTBatch(batch.items.flip(1) * batch.mask, batch.concepts, batch.responses, batch.mask)
    torch.testing.assert_close(model(shuffled), model(batch), atol=0, rtol=0)
    assert model.regularization(batch).item() == 0.0
    state = model.init_state(2)
    for s in range(7):
        state = model.update(state, batch.items[:, s], batch.concepts[:, s], batch.responses[:, s])
    torch.testing.assert_close(
        model.query(state, batch.items[:, 7:], batch.concepts[:, 7:])[:, 0], model(batch)[:, 7]
    )
