"""simpleKT (Liu et al., "simpleKT: A Simple But Tough-to-Beat Baseline for Knowledge
Tracing", ICLR 2023).

AKT's Rasch embeddings (question ``x_t = c_{c_t} + mu_{q_t} d_{c_t}``, interaction
``y_t = c_{c_t} + g_{r_t} + mu_{q_t} (f_{r_t} + d_{c_t})``) with a positional embedding, then
``num_blocks`` plain scaled dot-product attention layers: the query is the question stream,
keys are the question stream at *past* positions and values the past interactions; residual +
layer norm + FFN. An MLP reads ``[attention output, x_t]``. ``regularization`` returns the L2
penalty on mu as in AKT.

Departures from the paper / pyKT's ``simpleKT``:

* "Strictly past" attention is done with a learned *null slot* per layer: keys
  ``[null_k, x_0, ..., x_{T-2}]`` and values ``[null_v, y_0, ..., y_{T-2}]`` under an ordinary
  causal mask, so ``scaled_dot_product_attention`` (flash kernels) applies and position 0
  attends to the null slot instead of being zero-padded.
* Learned positional embedding (pyKT: fixed cosine), relative to the window: the online state
  keeps the last ``max_len - 1`` interactions, and a query past that equals ``forward`` over
  the last window. T must not exceed ``max_len``.
* Items are used only when ``use_items``; with items = concepts the Rasch scalar becomes a
  per-concept scalar (starts at zero, harmless).
* Online: every layer's keys/values over the history do not depend on the candidate (the
  attention is strictly causal), so ``update`` re-encodes the window once and ``query`` runs
  Q candidates against the cached keys/values: O(window) per candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kt.models.base import CachedWindowModel, KTBatch, KTState, ModelConfig, register_model
from kt.models.rasch import RaschEmbeddings


@dataclass
class SimpleKTConfig(ModelConfig):
    dim: int = 256
    num_heads: int = 8
    num_blocks: int = 2
    ff_dim: int = 256
    final_dim: int = 256
    dropout: float = 0.1
    l2: float = 1e-5  # L2 penalty on the Rasch difficulties mu_q
    use_items: bool = True


class SimpleKTLayer(nn.Module):
    """Attention of questions over past (question, interaction) slots + residual/LN + FFN."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.k_proj = nn.Linear(dim, dim)  # queries share it (kq_same, as in AKT/simpleKT)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.null_key = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.null_value = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim)
        )
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape  # (B, T, D) -> (B, H, T, D/H)
        return x.view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)

    def slots(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) past keys/values -> projected (B, H, L+1, D/H) with the null slot first."""
        b = keys.shape[0]
        k = torch.cat([self.null_key.expand(b, 1, -1).to(keys.dtype), keys], 1)
        v = torch.cat([self.null_value.expand(b, 1, -1).to(values.dtype), values], 1)
        return self.heads(self.k_proj(k)), self.heads(self.v_proj(v))

    def attend(self, query: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        q = self.heads(self.k_proj(query))
        k, v = k.to(q.dtype), v.to(q.dtype)  # a cache may come from another autocast context
        p = self.attn_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=causal)
        b, h, t, dh = out.shape
        x = self.norm1(query + self.drop(self.out_proj(out.transpose(1, 2).reshape(b, t, h * dh))))
        return self.norm2(x + self.drop(self.ffn(x)))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: (B, T, D); position t attends the null slot and positions 0..t-1."""
        k, v = self.slots(x[:, :-1], y[:, :-1])  # (B, H, T, dh)
        return self.attend(x, k, v, causal=True)


@register_model
class SimpleKT(RaschEmbeddings, CachedWindowModel):
    name = "simplekt"
    config_class = SimpleKTConfig

    def __init__(self, config: SimpleKTConfig) -> None:
        super().__init__(config)
        d = config.dim
        self._init_rasch()  # concept/response embeddings and Rasch item difficulty
        self.position_emb = nn.Embedding(config.max_len, d)
        self.layers = nn.ModuleList(
            SimpleKTLayer(d, config.num_heads, config.ff_dim, config.dropout)
            for _ in range(config.num_blocks)
        )
        self.out = nn.Sequential(
            nn.Linear(2 * d, config.final_dim),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.final_dim, config.final_dim),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.final_dim, 1),
        )

    def _positions(self, length: int, start: int = 0) -> torch.Tensor:
        if start + length > self.config.max_len:
            raise ValueError(
                f"simplekt: sequence length {start + length} exceeds max_len={self.config.max_len}"
            )
        return self.position_emb.weight[start : start + length]

    def _encode(self, batch: KTBatch) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """-> x_emb (B, T, D), the input of every layer plus the last output, y (B, T, D)."""
        pos = self._positions(batch.items.shape[1])
        x_emb = self._questions(batch.items, batch.concepts)
        y = self._interactions(batch.items, batch.concepts, batch.responses) + pos
        xs = [x_emb + pos]
        for layer in self.layers:
            xs.append(layer(xs[-1], y))
        return x_emb, xs, y

    def forward(self, batch: KTBatch) -> torch.Tensor:
        x_emb, xs, _ = self._encode(batch)
        h = xs[-1]
        return self.out(torch.cat([h, x_emb.to(h.dtype)], -1)).squeeze(-1).float()

    # ------------------------------------------------------------------ online: O(window) per query
    def _cache(self, ids: KTState) -> KTState:
        items = ids["items"]
        _, xs, y = self._encode(KTBatch(items, ids["concepts"], ids["responses"], items > 0))
        state = dict(ids)
        for i, layer in enumerate(self.layers):
            state[f"k{i}"], state[f"v{i}"] = layer.slots(xs[i], y)  # (B, H, W+1, dh)
        return state

    @torch.no_grad()
    def query(self, state: KTState, items: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        x_emb = self._questions(items, concepts)  # (B, Q, D)
        x = x_emb + self._positions(1, start=state["items"].shape[1])
        for i, layer in enumerate(self.layers):
            x = layer.attend(x, state[f"k{i}"], state[f"v{i}"], causal=False)
        return self.out(torch.cat([x, x_emb.to(x.dtype)], -1)).squeeze(-1).float()
