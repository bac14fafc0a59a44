"""Rasch-model embeddings shared by the item-aware attention models (AKT, simpleKT).

Ghosh et al., "Context-Aware Attentive Knowledge Tracing" (KDD 2020), Eq. 2-3: the question
embedding is ``x_t = c_{c_t} + mu_{q_t} * d_{c_t}`` and the interaction embedding is
``y_t = c_{c_t} + g_{r_t} + mu_{q_t} * (f_{r_t} + d_{c_t})``, where the scalar ``mu_q`` is the
item's difficulty, trained with an L2 penalty. With ``use_items=False`` (or items equal to
concepts) only the concept terms remain.

A mixin rather than a submodule: the parameters live on the model itself, so every model that
uses it keeps the same parameter names (``concept_emb``, ``difficulty``, ...).
"""

from __future__ import annotations

import torch
from torch import nn

from kt.models.base import KTBatch


class RaschEmbeddings:
    """Mixin for a :class:`KTModel` whose config has ``dim``, ``use_items`` and ``l2``."""

    def _init_rasch(self) -> None:
        config = self.config
        n, d = config.num_concepts, config.dim
        self.concept_emb = nn.Embedding(n + 1, d)  # c_c
        self.response_emb = nn.Embedding(2, d)  # g_r
        if config.use_items:
            self.difficulty = nn.Embedding(config.num_items + 1, 1)  # mu_q
            self.concept_variation = nn.Embedding(n + 1, d)  # d_c
            self.response_variation = nn.Embedding(2, d)  # f_r
            nn.init.zeros_(self.difficulty.weight)

    def _questions(self, items: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        x = self.concept_emb(concepts)  # (B, T, D)
        if self.config.use_items:
            x = x + self.difficulty(items) * self.concept_variation(concepts)
        return x

    def _interactions(self, items: torch.Tensor, concepts: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        r = responses.long().clamp(0, 1)
        y = self.concept_emb(concepts) + self.response_emb(r)  # (B, T, D)
        if self.config.use_items:
            y = y + self.difficulty(items) * (self.response_variation(r) + self.concept_variation(concepts))
        return y

    def regularization(self, batch: KTBatch) -> torch.Tensor:
        """AKT's L2 penalty on the item difficulties of the batch's real positions."""
        if not self.config.use_items:
            return super().regularization(batch)
        mu = self.difficulty(batch.items).squeeze(-1)  # (B, T)
        return self.config.l2 * (mu.float().square() * batch.mask).sum()
