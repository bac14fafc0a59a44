"""SAKT: Self-Attentive Knowledge Tracing (Pandey & Karypis, EDM 2019).

The query at step t is the embedding of the asked exercise; keys and values are the
embeddings of the past (concept, response) interactions plus a learned positional embedding.
Causal attention, residual + layer norm, a position-wise FFN, and a linear output logit.
Blocks are stacked as in pyKT: every block takes the exercise embedding as its query and the
previous block's output as its keys/values.

Departures from the paper (and from pyKT's ``SAKT``):

* Shift by a learned *null interaction*: keys/values are ``[null, y_0, ..., y_{T-2}]`` so
  position t attends to slots 0..t (= the null slot and interactions 0..t-1) with an ordinary
  causal mask. Position 0 sees only the null slot, so no attention row is fully masked (no
  NaNs) and the prior is learned. The paper predicts r_{t+1} from position t instead.
* Positions are relative to the window: slot s (0 = null) gets positional embedding s. The
  online state keeps the last ``max_len - 1`` interactions, so a query after a longer history
  equals ``forward`` over the last window (the convention in ``kt.models.base``).
* The exercise query is ``concept_emb(c) + item_emb(q)`` when ``use_items`` (item part
  initialised to zero, so concept-only datasets, where items = concepts, lose nothing).
* Attention runs through ``scaled_dot_product_attention``; inputs are right-padded and T may
  be anything up to ``max_len``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kt.models.base import CachedWindowModel, KTBatch, KTState, ModelConfig, register_model


@dataclass
class SAKTConfig(ModelConfig):
    dim: int = 128
    num_heads: int = 8
    num_blocks: int = 1
    dropout: float = 0.2
    use_items: bool = True  # add an item embedding to the exercise query


class SAKTBlock(nn.Module):
    """Causal multi-head attention (query vs. keys/values) + residual/LN + FFN + residual/LN."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.attn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.ffn_norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape  # (B, T, D) -> (B, H, T, D/H)
        return x.view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, t, dh = x.shape
        return x.transpose(1, 2).reshape(b, t, h * dh)

    def finish(self, query: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        x = self.attn_norm(query + self.drop(self.out_proj(attended)))
        return self.ffn_norm(x + self.drop(self.ffn(x)))

    def forward(self, query: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """query, kv: (B, T, D); query t attends kv slots 0..t."""
        q, k, v = self.heads(self.q_proj(query)), self.heads(self.k_proj(kv)), self.heads(self.v_proj(kv))
        p = self.attn_dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.finish(query, self.merge(attended))

    def step(
        self,
        query: torch.Tensor,
        k_hist: torch.Tensor,
        v_hist: torch.Tensor,
        own: torch.Tensor | None,
    ) -> torch.Tensor:
        """Q candidate queries (B, Q, D) attend the cached slots (B, H, S, D/H) and, if given,
        their own kv slot ``own`` (B, Q, D) placed after the history."""
        q = self.heads(self.q_proj(query))  # (B, H, Q, dh)
        k_hist, v_hist = k_hist.to(q.dtype), v_hist.to(q.dtype)  # cache may come from autocast
        scale = q.shape[-1] ** -0.5
        scores = q @ k_hist.transpose(-1, -2) * scale  # (B, H, Q, S)
        if own is None:
            attended = scores.softmax(-1) @ v_hist
        else:
            k_own, v_own = self.heads(self.k_proj(own)), self.heads(self.v_proj(own))
            own_score = (q * k_own).sum(-1, keepdim=True) * scale  # (B, H, Q, 1)
            w = torch.cat([scores, own_score], -1).softmax(-1)
            attended = w[..., :-1] @ v_hist + w[..., -1:] * v_own
        return self.finish(query, self.merge(attended))


@register_model
class SAKT(CachedWindowModel):
    name = "sakt"
    config_class = SAKTConfig

    def __init__(self, config: SAKTConfig) -> None:
        super().__init__(config)
        n, d = config.num_concepts, config.dim
        self.interaction_emb = nn.Embedding(2 * (n + 1), d)
        self.null_interaction = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.position_emb = nn.Embedding(config.max_len, d)
        self.concept_emb = nn.Embedding(n + 1, d)
        self.item_emb = nn.Embedding(config.num_items + 1, d) if config.use_items else None
        if self.item_emb is not None:
            nn.init.zeros_(self.item_emb.weight)
        self.blocks = nn.ModuleList(
            SAKTBlock(d, config.num_heads, config.dropout) for _ in range(config.num_blocks)
        )
        self.drop = nn.Dropout(config.dropout)
        self.pred = nn.Linear(d, 1)

    # ------------------------------------------------------------------ embeddings
    def _queries(self, items: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        x = self.concept_emb(concepts)
        return x if self.item_emb is None else x + self.item_emb(items)

    def _slots(self, concepts: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """(B, L) interactions -> (B, L+1, D) key/value slots: null first, then positions."""
        y = self.interaction_emb(concepts + responses.long().clamp(0, 1) * (self.config.num_concepts + 1))
        y = torch.cat([self.null_interaction.expand(y.shape[0], 1, -1).to(y.dtype), y], 1)
        if y.shape[1] > self.config.max_len:
            raise ValueError(f"sakt: sequence length {y.shape[1] - 1} exceeds max_len={self.config.max_len}")
        return y + self.position_emb.weight[: y.shape[1]]

    def _encode(self, batch: KTBatch) -> list[torch.Tensor]:
        """Inputs of every block's keys/values, then the last output: num_blocks + 1 tensors (B, T, D)."""
        query = self._queries(batch.items, batch.concepts)  # (B, T, D)
        kv = self._slots(batch.concepts[:, :-1], batch.responses[:, :-1])  # (B, T, D)
        layers = [kv]
        for block in self.blocks:
            kv = block(query, kv)
            layers.append(kv)
        return layers

    def forward(self, batch: KTBatch) -> torch.Tensor:
        out = self._encode(batch)[-1]
        return self.pred(self.drop(out)).squeeze(-1).float()

    # ------------------------------------------------------------------ online: O(window) per query
    # State: the raw window (last max_len-1 interactions) plus, per block, its projected keys and
    # values over the history slots. ``update`` re-encodes the window (it slides, so positions
    # shift); ``query`` runs Q candidates against the cache in one batched attention per block.
    def _cache(self, ids: KTState) -> KTState:
        items, concepts, responses = ids["items"], ids["concepts"], ids["responses"]
        state = dict(ids)
        slots = self._slots(concepts, responses)  # (B, W+1, D): what block 0 attends
        layers = [slots]
        if items.shape[1] > 0:  # outputs at the history positions feed the later blocks
            hist = KTBatch(items, concepts, responses, torch.ones_like(items, dtype=torch.bool))
            query = self._queries(hist.items, hist.concepts)
            kv = slots[:, :-1]
            for block in self.blocks[:-1]:
                kv = block(query, kv)
                layers.append(kv)
        else:
            empty = slots[:, :0]
            layers += [empty] * (len(self.blocks) - 1)
        for i, (block, kv) in enumerate(zip(self.blocks, layers, strict=True)):
            state[f"k{i}"] = block.heads(block.k_proj(kv))
            state[f"v{i}"] = block.heads(block.v_proj(kv))
        return state

    @torch.no_grad()
    def query(self, state: KTState, items: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        query = self._queries(items, concepts)  # (B, Q, D)
        own = None  # block 0's slots are all history; later blocks also attend their own slot
        x = query
        for i, block in enumerate(self.blocks):
            x = block.step(query, state[f"k{i}"], state[f"v{i}"], own)
            own = x
        return self.pred(x).squeeze(-1).float()
