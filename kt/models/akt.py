"""AKT: Context-Aware Attentive Knowledge Tracing (Ghosh, Heffernan & Lan, KDD 2020).

Rasch-model embeddings make the model item-aware at the cost of one scalar per item:
question ``x_t = c_{c_t} + mu_{q_t} d_{c_t}``, interaction
``y_t = e_{(c_t, r_t)} + mu_{q_t} (f_{r_t} + d_{c_t})`` with ``e_{(c,r)} = c_c + g_r`` (pyKT's
default, non-separate form). Three attention stacks with *monotonic* attention (scores scaled
by ``exp(-softplus(gamma) * sqrt(distance))``, where the distance counts the attention mass
lying between a key and the query, times their index gap):

* knowledge encoder: interactions attend to interactions 0..t ("peek"), FFN;
* question encoder: questions attend to questions 0..t ("peek"), no FFN;
* knowledge retriever: query = encoded question t, keys = encoded questions 0..t-1, values =
  encoded interactions 0..t-1 (strictly past: it never sees y_t), FFN. Position 0 has no
  past and gets a zero attention output.

The prediction MLP reads ``[retrieved knowledge, x_t]``. ``regularization`` returns AKT's L2
penalty ``l2 * sum(mu_q^2)`` over the batch's real positions.

Departures from the paper / pyKT's ``AKT``:

* Masked key slots use the dtype minimum instead of -1e32 and the attention core runs in
  float32 even under bf16 autocast (the exponential decay is not bf16-safe).
* Rows with no allowed key (retriever at t = 0) are zeroed after the softmax rather than by
  concatenating a zero row (same result, no shape games).
* Items are used only when ``use_items``; on concept-only data (items = concepts) the Rasch
  scalar becomes a per-concept scalar, which is harmless and starts at zero.
* The online state keeps the last ``max_len - 1`` interactions with the projected keys and
  values of every layer over them, so ``query`` costs O(window) per candidate; past the
  window it equals ``forward`` over the last window (AKT has no positional embedding, but the
  monotonic decay depends on positions inside the window).
* Sequences are right-padded; T is free (no positional table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kt.models.base import CachedWindowModel, KTBatch, KTState, ModelConfig, register_model
from kt.models.rasch import RaschEmbeddings


@dataclass
class AKTConfig(ModelConfig):
    dim: int = 256
    num_heads: int = 8
    num_blocks: int = 1  # knowledge-encoder layers; question-encoder/retriever pairs
    ff_dim: int = 512
    final_dim: int = 512  # prediction MLP widths: final_dim, final_dim // 2
    dropout: float = 0.05
    l2: float = 1e-5  # L2 penalty on the Rasch difficulties mu_q
    use_items: bool = True  # Rasch item difficulty; False = concept-only AKT

    # the prediction MLP's second layer has final_dim // 2 units: at least one
    RANGES = {**ModelConfig.RANGES, "final_dim": (lambda v: v >= 2, ">= 2")}


def monotonic_weights(
    scores: torch.Tensor, allowed: torch.Tensor, distance: torch.Tensor, gamma: torch.Tensor
) -> torch.Tensor:
    """AKT's distance-aware attention weights.

    scores (B, H, Tq, Tk) float32, keys in chronological order; allowed (Tq, Tk) bool;
    distance (Tq, Tk) index gap |t - j|; gamma (H, 1, 1). Rows with no allowed key are zero.
    """
    neg = torch.finfo(scores.dtype).min
    with torch.no_grad():
        p = scores.masked_fill(~allowed, neg).softmax(-1) * allowed
        after = p.sum(-1, keepdim=True) - p.cumsum(-1)  # attention mass on keys after j
        dist = (after * distance).clamp(min=0.0).sqrt()
    decay = (dist * -F.softplus(gamma)).exp().clamp(1e-5, 1e5)
    w = (scores * decay).masked_fill(~allowed, neg).softmax(-1)
    return w * allowed.any(-1, keepdim=True)


class AKTLayer(nn.Module):
    """Monotonic multi-head attention (shared query/key projection) + residual/LN [+ FFN]."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, dropout: float, ffn: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.k_proj = nn.Linear(dim, dim)  # used for queries too (AKT's kq_same)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.gamma = nn.Parameter(torch.empty(num_heads, 1, 1))
        nn.init.xavier_uniform_(self.gamma)
        for lin in (self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        nn.init.zeros_(self.out_proj.bias)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = (
            nn.Sequential(nn.Linear(dim, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim))
            if ffn
            else None
        )
        self.norm2 = nn.LayerNorm(dim) if ffn else None
        self.drop = nn.Dropout(dropout)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape  # (B, T, D) -> (B, H, T, D/H)
        return x.view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)

    def _attend(self, q, k, v, allowed, distance, own_k=None, own_v=None) -> torch.Tensor:
        """q (B,H,Tq,dh) vs k,v (B,H,Tk,dh) [+ one own slot per query row] -> (B, Tq, D)."""
        with torch.autocast(q.device.type, enabled=False):
            q, k, v = q.float(), k.float(), v.float()
            scale = 1.0 / math.sqrt(q.shape[-1])
            scores = q @ k.transpose(-1, -2) * scale
            if own_k is not None:
                scores = torch.cat([scores, (q * own_k.float()).sum(-1, keepdim=True) * scale], -1)
            w = F.dropout(
                monotonic_weights(scores, allowed, distance, self.gamma.float()), self.drop.p, self.training
            )
            if own_k is None:
                out = w @ v
            else:
                out = w[..., :-1] @ v + w[..., -1:] * own_v.float()
        b, h, t, dh = out.shape
        return out.transpose(1, 2).reshape(b, t, h * dh)

    def finish(self, query: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        x = self.norm1(query + self.drop(self.out_proj(attended.to(query.dtype))))
        if self.ffn is None:
            return x
        return self.norm2(x + self.drop(self.ffn(x)))

    def forward(self, query, key, values, peek: bool) -> torch.Tensor:
        """Sequence mode, (B, T, D) each. peek: t attends 0..t, else 0..t-1."""
        t = query.shape[1]
        idx = torch.arange(t, device=query.device)
        allowed = idx[None, :] <= idx[:, None] if peek else idx[None, :] < idx[:, None]
        distance = (idx[:, None] - idx[None, :]).abs().float()
        q, k, v = (
            self.heads(self.k_proj(query)),
            self.heads(self.k_proj(key)),
            self.heads(self.v_proj(values)),
        )
        return self.finish(query, self._attend(q, k, v, allowed, distance))

    def step(self, query, k_hist, v_hist, own: torch.Tensor | None) -> torch.Tensor:
        """Q candidates (B, Q, D) at position W attend the cached history (B, H, W, dh) and, in
        peek layers, their own slot ``own`` (B, Q, D)."""
        w = k_hist.shape[2]
        q = self.heads(self.k_proj(query))
        n_keys = w + (own is not None)
        pos = torch.arange(n_keys, device=query.device)
        distance = (w - pos).float().view(1, n_keys)
        allowed = torch.ones(1, n_keys, dtype=torch.bool, device=query.device)
        if own is None:
            attended = self._attend(q, k_hist, v_hist, allowed, distance)
        else:
            own_k, own_v = self.heads(self.k_proj(own)), self.heads(self.v_proj(own))
            attended = self._attend(q, k_hist, v_hist, allowed, distance, own_k, own_v)
        return self.finish(query, attended)

    def cache(self, key: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.k_proj(key)), self.heads(self.v_proj(values))


@register_model
class AKT(RaschEmbeddings, CachedWindowModel):
    name = "akt"
    config_class = AKTConfig

    def __init__(self, config: AKTConfig) -> None:
        super().__init__(config)
        d = config.dim
        self._init_rasch()  # concept/response embeddings and Rasch item difficulty
        layer = lambda ffn: AKTLayer(d, config.num_heads, config.ff_dim, config.dropout, ffn)  # noqa: E731
        self.knowledge_encoder = nn.ModuleList(layer(True) for _ in range(config.num_blocks))
        self.question_encoder = nn.ModuleList(layer(False) for _ in range(config.num_blocks))
        self.retriever = nn.ModuleList(layer(True) for _ in range(config.num_blocks))
        self.out = nn.Sequential(
            nn.Linear(2 * d, config.final_dim),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.final_dim, config.final_dim // 2),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.final_dim // 2, 1),
        )

    # ------------------------------------------------------------------ sequence mode
    def _encode(self, batch: KTBatch) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """-> x_emb, inputs of each question-encoder layer, encoded interactions, retriever output."""
        x_emb = self._questions(batch.items, batch.concepts)
        y = self._interactions(batch.items, batch.concepts, batch.responses)
        for layer in self.knowledge_encoder:
            y = layer(y, y, y, peek=True)
        x, x_inputs = x_emb, []
        for q_layer, r_layer in zip(self.question_encoder, self.retriever, strict=True):
            x_inputs.append(x)
            x = q_layer(x, x, x, peek=True)
            x_inputs.append(x)
            x = r_layer(x, x, y, peek=False)
        return x_emb, x_inputs, y, x

    def forward(self, batch: KTBatch) -> torch.Tensor:
        x_emb, _, _, h = self._encode(batch)
        return self.out(torch.cat([h, x_emb.to(h.dtype)], -1)).squeeze(-1).float()

    # ------------------------------------------------------------------ online: O(window) per query
    def _cache(self, ids: KTState) -> KTState:
        """Re-encode the window; keep each question-encoder/retriever layer's keys and values."""
        items = ids["items"]
        _, x_inputs, y, _ = self._encode(KTBatch(items, ids["concepts"], ids["responses"], items > 0))
        state = dict(ids)
        for i, (q_layer, r_layer) in enumerate(zip(self.question_encoder, self.retriever, strict=True)):
            state[f"qk{i}"], state[f"qv{i}"] = q_layer.cache(x_inputs[2 * i], x_inputs[2 * i])
            state[f"rk{i}"], state[f"rv{i}"] = r_layer.cache(x_inputs[2 * i + 1], y)
        return state

    @torch.no_grad()
    def query(self, state: KTState, items: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        x_emb = self._questions(items, concepts)  # (B, Q, D)
        x = x_emb
        for i, (q_layer, r_layer) in enumerate(zip(self.question_encoder, self.retriever, strict=True)):
            x = q_layer.step(x, state[f"qk{i}"], state[f"qv{i}"], own=x)
            x = r_layer.step(x, state[f"rk{i}"], state[f"rv{i}"], own=None)
        return self.out(torch.cat([x, x_emb.to(x.dtype)], -1)).squeeze(-1).float()
