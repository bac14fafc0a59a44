"""Every registered model honours the contract in kt/models/base.py."""

from __future__ import annotations

import io

import pytest
import torch

from kt.models import KTBatch, available_models

MODELS = available_models()


def test_builtin_models_registered():
    assert {"dkt", "sakt", "akt"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_output_shape_and_dtype(name, batch, kit):
    model = kit.tiny_model(name).eval()
    logits = model(batch)
    assert logits.shape == batch.items.shape
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODELS)
def test_variable_length_batches(name, kit):
    model = kit.tiny_model(name).eval()
    for t in (1, 2, 5, 24):
        assert model(kit.random_batch(2, t, seed=t)).shape == (2, t)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("t", [0, 1, 5, 11])
def test_future_responses_do_not_leak(name, t, batch, kit):
    model = kit.tiny_model(name).eval()
    base = model(batch)
    flipped = batch.responses.clone()
    flipped[:, t:] = 1 - flipped[:, t:]
    out = model(KTBatch(batch.items, batch.concepts, flipped, batch.mask))
    torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], atol=1e-6, rtol=0)
    if t + 1 < batch.items.shape[1]:
        assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :]), "responses have no effect at all"


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("t", [1, 6, 11])
def test_future_queries_do_not_leak(name, t, batch, kit):
    model = kit.tiny_model(name).eval()
    base = model(batch)
    items = batch.items.clone()
    items[:, t:] = (items[:, t:] + 3) % kit.num_items + 1
    out = model(KTBatch(items, kit.item_concept(items), batch.responses, batch.mask))
    torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
    assert not torch.allclose(out[:, t], base[:, t]), "the query at t has no effect"


@pytest.mark.parametrize("name", MODELS)
def test_trailing_padding_does_not_change_real_positions(name, kit):
    model = kit.tiny_model(name).eval()
    short = kit.random_batch(2, 9, seed=3)
    padded = KTBatch(
        *(
            torch.cat([x, torch.zeros(2, 6, dtype=x.dtype)], 1)
            for x in (short.items, short.concepts, short.responses, short.mask)
        )
    )
    torch.testing.assert_close(model(padded)[:, :9], model(short), atol=1e-6, rtol=0)
    # a ragged batch: each row equals that row run alone
    ragged = kit.random_batch(3, 10, seed=4, lengths=[10, 4, 7])
    out = model(ragged)
    for i, n in enumerate([10, 4, 7]):
        alone = KTBatch(
            *(x[i : i + 1, :n] for x in (ragged.items, ragged.concepts, ragged.responses, ragged.mask))
        )
        torch.testing.assert_close(out[i : i + 1, :n], model(alone), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("num_blocks", [1, 2])
def test_online_update_query_equals_forward(name, num_blocks, kit):
    model = kit.tiny_model(name, num_blocks=num_blocks, num_layers=num_blocks).eval()
    b, t, q = 3, 10, 3  # t < max_len: the whole history fits the window
    batch = kit.random_batch(b, t, seed=7)
    full = model(batch)
    cand_items = torch.randint(1, kit.num_items + 1, (b, t, q), generator=torch.Generator().manual_seed(1))
    cand_items[:, :, 0] = batch.items  # the first candidate is the real next item
    state = model.init_state(b)
    for s in range(t):
        scores = model.query(state, cand_items[:, s], kit.item_concept(cand_items[:, s]))
        assert scores.shape == (b, q)
        torch.testing.assert_close(scores[:, 0], full[:, s], atol=1e-5, rtol=0)
        # every candidate matches forward with that candidate as the query at s
        items = batch.items[:, : s + 1].clone()
        for j in range(1, q):
            items[:, s] = cand_items[:, s, j]
            alt = model(
                KTBatch(items, kit.item_concept(items), batch.responses[:, : s + 1], batch.mask[:, : s + 1])
            )
            torch.testing.assert_close(scores[:, j], alt[:, s], atol=1e-5, rtol=0)
        again = model.query(state, cand_items[:, s], kit.item_concept(cand_items[:, s]))
        torch.testing.assert_close(again, scores, atol=0, rtol=0)  # query leaves the state alone
        state = model.update(state, batch.items[:, s], batch.concepts[:, s], batch.responses[:, s])


@pytest.mark.parametrize("name", MODELS)
def test_online_beyond_window_equals_forward_over_last_window(name, kit):
    model = kit.tiny_model(name, max_len=6).eval()
    batch = kit.random_batch(2, 14, seed=11)
    state = model.init_state(2)
    for s in range(13):
        state = model.update(state, batch.items[:, s], batch.concepts[:, s], batch.responses[:, s])
    scores = model.query(state, batch.items[:, 13:14], batch.concepts[:, 13:14])
    start = 13 - 5 if model.windowed else 0  # recurrent models see the whole history
    window = KTBatch(*(x[:, start:] for x in (batch.items, batch.concepts, batch.responses, batch.mask)))
    torch.testing.assert_close(scores[:, 0], model(window)[:, -1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip(name, batch, kit):
    model = kit.tiny_model(name).eval()
    buf = io.BytesIO()
    torch.save({"config": model.config.to_dict(), "state": model.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    clone = type(model)(type(model).config_class.from_dict(saved["config"]))
    clone.load_state_dict(saved["state"])
    clone.eval()
    torch.testing.assert_close(clone(batch), model(batch), atol=0, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_on_cpu(name, batch, kit):
    model = kit.tiny_model(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(batch)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits[batch.mask], batch.responses[batch.mask].float()
        )
        loss = loss + model.regularization(batch)
    loss.backward()
    assert logits.shape == batch.items.shape and torch.isfinite(logits).all()
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        state = model.update(
            model.init_state(3), batch.items[:, 0], batch.concepts[:, 0], batch.responses[:, 0]
        )
        assert torch.isfinite(model.query(state, batch.items[:, :4], batch.concepts[:, :4])).all()


@pytest.mark.parametrize("name", MODELS)
def test_config_defaults_round_trip(name, kit):
    from kt.models import get_model_class

    cls = get_model_class(name)
    cfg = cls.config_class(num_items=kit.num_items, num_concepts=kit.num_concepts)
    assert cls.config_class.from_dict(cfg.to_dict()) == cfg
