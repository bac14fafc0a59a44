"""DKT's (and DKT-F's) online query: a long candidate list (scored once per concept) gives the
same logits as short queries, for one user or many, in float32 under autocast too."""

from __future__ import annotations

import pytest
import torch

RECURRENT = ["dkt", "dkt_forget"]


def _model(kit, name):
    model = kit.tiny_model(name).eval()
    if getattr(model, "item_bias", None) is not None:  # zero at init: give items a real effect
        torch.nn.init.normal_(model.item_bias.weight, generator=torch.Generator().manual_seed(3))
    return model


def _state(model, kit, b: int):
    state = model.init_state(b)
    batch = kit.random_batch(b, 6, seed=b)
    for t in range(6):
        state = model.update(state, batch.items[:, t], batch.concepts[:, t], batch.responses[:, t])
    return state


def _short(model, state, concepts):
    """The per-query path: chunks no longer than num_concepts."""
    n = model.config.num_concepts
    return torch.cat([model.query(state, concepts[:, s: s + n], concepts[:, s: s + n])
                      for s in range(0, concepts.shape[1], n)], dim=1)


@pytest.mark.parametrize("name", RECURRENT)
def test_long_query_equals_short_queries(name, kit):
    model = _model(kit, name)
    g = torch.Generator().manual_seed(0)
    for b in (1, 3):
        state = _state(model, kit, b)
        concepts = torch.randint(1, kit.num_concepts + 1, (b, 5 * kit.num_concepts), generator=g)
        long = model.query(state, concepts, concepts)
        assert long.shape == concepts.shape and long.dtype == torch.float32
        torch.testing.assert_close(long, _short(model, state, concepts), rtol=1e-5, atol=1e-6)
    # one user's state against two rows of candidates broadcasts like the short path
    state = _state(model, kit, 1)
    concepts = torch.randint(1, kit.num_concepts + 1, (2, 3 * kit.num_concepts), generator=g)
    torch.testing.assert_close(model.query(state, concepts, concepts), _short(model, state, concepts))


@pytest.mark.parametrize("name", RECURRENT)
def test_long_query_is_float32_under_autocast(name, kit):
    model = _model(kit, name)
    state = _state(model, kit, 2)
    concepts = torch.randint(1, kit.num_concepts + 1, (2, 4 * kit.num_concepts))
    exact = model.query(state, concepts, concepts)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model.query(state, concepts, concepts)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, exact)
