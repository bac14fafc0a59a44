"""Full recompute: mastery from ``model.forward`` over the whole history, no online state.

The "peer" the online tracker is checked and benchmarked against: for every user and panel
item, the history followed by the panel item as the query is run through ``forward`` and the
logit at the query position is read. Independent of ``init_state``/``update``/``query``, so
online == full recompute is a real check of the incremental path.
"""

from __future__ import annotations

import numpy as np
import torch

from kt.mastery.catalog import TopicCatalog
from kt.models.base import KTBatch, KTModel


@torch.no_grad()
def forward_query(
    model: KTModel, items: np.ndarray, concepts: np.ndarray, responses: np.ndarray, q_items: np.ndarray, q_concepts: np.ndarray
) -> np.ndarray:
    """P(success) (Q,) of Q queries after one user's history (H,) via one forward of (Q, H+1)."""
    q, h = len(q_items), len(items)
    dev = model.device
    seq_i = torch.as_tensor(np.concatenate([np.tile(items, (q, 1)), q_items[:, None]], 1), device=dev)
    seq_c = torch.as_tensor(np.concatenate([np.tile(concepts, (q, 1)), q_concepts[:, None]], 1), device=dev)
    seq_r = torch.as_tensor(np.concatenate([np.tile(responses, (q, 1)), np.zeros((q, 1), np.int64)], 1), device=dev)
    mask = torch.ones_like(seq_i, dtype=torch.bool)
    logits = model(KTBatch(seq_i.long(), seq_c.long(), seq_r.long(), mask))
    return torch.sigmoid(logits[:, h].float()).cpu().numpy()


def full_recompute(
    model: KTModel, catalog: TopicCatalog, items: np.ndarray, concepts: np.ndarray, responses: np.ndarray
) -> np.ndarray:
    """Mastery (K,) of every topic after one user's whole history."""
    k, p = catalog.panel_items.shape
    prob = forward_query(
        model, items, concepts, responses, catalog.panel_items.reshape(-1), np.repeat(catalog.concept_idx, p)
    ).reshape(k, p)
    return catalog._pool(prob, catalog.panel_mask, catalog.concept_idx)


def full_recompute_practiced(
    model: KTModel, catalog: TopicCatalog, items: np.ndarray, concepts: np.ndarray, responses: np.ndarray, topics: np.ndarray
) -> np.ndarray:
    """(H,) mastery of each event's topic right after the event, each from its own forward."""
    out = np.full(len(items), np.nan)
    for t in range(len(items)):
        k = topics[t]
        if k < 0:
            continue
        prob = forward_query(
            model, items[: t + 1], concepts[: t + 1], responses[: t + 1],
            catalog.panel_items[k], np.full(catalog.panel_items.shape[1], catalog.concept_idx[k]),
        )
        out[t] = catalog._pool(prob[None], catalog.panel_mask[k][None], catalog.concept_idx[k : k + 1])[0]
    return out
