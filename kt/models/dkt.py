"""DKT: Deep Knowledge Tracing (Piech et al., "Deep Knowledge Tracing", NeurIPS 2015).

An LSTM reads the sequence of (concept, response) interactions; after each step a linear
layer gives one logit per concept, and the prediction for the next interaction is the logit
of the concept being asked.

Departures from the paper (and from pyKT's ``DKT``):

* Concept-level only: ``items`` are ignored (as in the paper and pyKT). Use ``akt`` for a
  model that uses item identity.
* Interactions are embedded with a learned table (the paper's one-hot/compressed-sensing
  input is equivalent to an embedding lookup) and the output layer is evaluated only at the
  queried concept (a gather of weight rows), not as a full (B, T, num_concepts) sigmoid.
* Position 0 (no history) is predicted from a *learned* initial state (h0, c0) rather than
  zeros, so the model has a proper per-concept prior.
* The LSTM always runs in float32 (TF32 on GPUs), also under bf16 autocast; the rest of the
  model follows autocast.
* Sequences are assumed right-padded (padding only after the real interactions). The LSTM
  is causal, so trailing padding never changes the logits of real positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kt.models.base import KTBatch, KTModel, KTState, ModelConfig, register_model


@dataclass
class DKTConfig(ModelConfig):
    dim: int = 200  # interaction embedding size
    hidden: int = 200  # LSTM hidden size
    num_layers: int = 1
    dropout: float = 0.1  # on the LSTM output, before the concept layer


@register_model
class DKT(KTModel):
    name = "dkt"
    config_class = DKTConfig
    windowed = False  # the LSTM state summarises the whole history

    def __init__(self, config: DKTConfig) -> None:
        super().__init__(config)
        n = config.num_concepts
        # interaction index = concept + response * (n + 1); padding (concept 0) -> 0 or n+1
        self.interaction_emb = nn.Embedding(2 * (n + 1), config.dim)
        self.lstm = nn.LSTM(config.dim, config.hidden, num_layers=config.num_layers, batch_first=True)
        self.h0 = nn.Parameter(torch.zeros(config.num_layers, 1, config.hidden))
        self.c0 = nn.Parameter(torch.zeros(config.num_layers, 1, config.hidden))
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Embedding(n + 1, config.hidden)  # one output weight row per concept
        self.out_bias = nn.Embedding(n + 1, 1)
        nn.init.normal_(self.out.weight, std=config.hidden**-0.5)
        nn.init.zeros_(self.out_bias.weight)

    def _interactions(self, concepts: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        return self.interaction_emb(concepts + responses.long().clamp(0, 1) * (self.config.num_concepts + 1))

    def _score(self, hidden: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, H), concepts (B, T) -> float32 logits (B, T)."""
        w = self.out(concepts)  # (B, T, H)
        return (self.drop(hidden).float() * w.float()).sum(-1) + self.out_bias(concepts).squeeze(-1).float()

    def _lstm(
        self, x: torch.Tensor, hc: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        # float32 under any autocast: the LSTM is latency-bound (T sequential steps), so bf16
        # buys little, and cuDNN's reduced-precision RNN paths vary by version.
        with torch.autocast(x.device.type, enabled=False):
            return self.lstm(x.float(), (hc[0].float(), hc[1].float()))

    def _initial(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        h0 = self.h0.expand(-1, b, -1).contiguous()
        c0 = self.c0.expand(-1, b, -1).contiguous()
        return h0, c0

    def forward(self, batch: KTBatch) -> torch.Tensor:
        b, t = batch.concepts.shape
        h0, c0 = self._initial(b)
        # only interactions 0..T-2 can influence a prediction
        x = self._interactions(batch.concepts[:, :-1], batch.responses[:, :-1])  # (B, T-1, D)
        if t > 1:
            hs, _ = self._lstm(x, (h0, c0))  # (B, T-1, H)
            hidden = torch.cat([h0[-1].unsqueeze(1), hs], dim=1)  # (B, T, H)
        else:
            hidden = h0[-1].unsqueeze(1)
        return self._score(hidden, batch.concepts)

    # ------------------------------------------------------------------ online: O(1) per event
    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> KTState:
        h0, c0 = self._initial(batch_size)
        device = device or self.device
        return {"h": h0.detach().to(device), "c": c0.detach().to(device)}

    @torch.no_grad()
    def update(
        self, state: KTState, items: torch.Tensor, concepts: torch.Tensor, responses: torch.Tensor
    ) -> KTState:
        x = self._interactions(concepts.view(-1, 1), responses.view(-1, 1))  # (B, 1, D)
        _, (h, c) = self._lstm(x, (state["h"], state["c"]))
        return {"h": h, "c": c}

    @torch.no_grad()
    def query(self, state: KTState, items: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        h = state["h"][-1]  # (B, H)
        if concepts.shape[1] <= self.config.num_concepts:
            return self._score(h.unsqueeze(1).expand(-1, concepts.shape[1], -1), concepts)  # (B, Q)
        # many queries (a planner's candidate pool): the logit depends on the concept alone, so
        # score every concept once, (B, H) @ (H, C), and gather, instead of a (B, Q, H) product;
        # in float32 under any autocast, so a prediction does not depend on the query's length
        with torch.autocast(h.device.type, enabled=False):
            every = h.float() @ self.out.weight.float().T + self.out_bias.weight.float().T  # (B, C)
        b = max(h.shape[0], concepts.shape[0])
        return every.expand(b, -1).gather(1, concepts.expand(b, -1))  # (B, Q)
