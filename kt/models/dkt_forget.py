"""DKT-F: DKT with forgetting features (Nagatani et al., "Augmenting Knowledge Tracing by
Considering Forgetting Behavior", WWW 2019).

DKT's LSTM has to remember, for every concept, how often and how recently the learner met it.
DKT-F hands it those counts: for the concept of each interaction, the *repeated gap* (time since
the last attempt on the same concept), the *sequence gap* (time since the last interaction) and
the *past trial count*, integrated at the input (with the interaction embedding) and at the output
(next to the hidden state, for the concept being asked).

Departures from the paper (and from pyKT's ``dkt_forget``):

* Gaps are counted in interactions, not seconds: the benchmark files carry no timestamps, and
  the model contract (:mod:`kt.models.base`) passes ids and responses only. So the sequence gap
  is always 1 and is dropped.
* Two more per-concept counts: the number of past *correct* attempts (as a smoothed success rate)
  and the response of the last attempt, both known before the query (Best-LR's features, Gervet
  et al., "When is Deep Learning the Best Approach to Knowledge Tracing?", JEDM 2020).
* Counts and gaps are log2-bucketed and embedded (the paper feeds raw counts); the success rate
  and log counts also enter through a linear layer.
* Item identity: an item bias (zero-initialised, Rasch-style difficulty) on the output logit, so
  datasets whose items are finer than concepts are used; on concept-only data it is a concept bias.
* As in our DKT: learned initial state, float32 LSTM, output scored only at the queried concept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kt.models.base import KTBatch, KTState, register_model
from kt.models.dkt import DKT, DKTConfig

COUNT_BUCKETS = 8  # log2 buckets of the past trial count: 0, 1, 2-3, 4-7, ..., 64+
GAP_BUCKETS = 9  # 0 = never seen, then log2 buckets of the gap in interactions: 1, 2-3, ..., 128+
LAST_RESPONSES = 3  # never seen, wrong, right
NUM_SCALARS = 3  # smoothed success rate, log1p(trials), log1p(correct)
HISTORY = ("trials", "correct", "gap", "last")  # concept_history's keys, in HistoryFeatures' order


@dataclass
class DKTForgetConfig(DKTConfig):
    feature_dim: int = 32  # the output side's history features (the input side's have size dim)
    use_items: bool = True  # item bias on the output logit


def log2_bucket(x: torch.Tensor, buckets: int) -> torch.Tensor:
    """0 -> 0, 1 -> 1, 2-3 -> 2, 4-7 -> 3, ..., clipped to ``buckets - 1``."""
    x = x.clamp(min=0)
    return torch.where(x > 0, torch.floor(torch.log2(x.float().clamp(min=1))).long() + 1, 0).clamp(max=buckets - 1)


def concept_history(concepts: torch.Tensor, responses: torch.Tensor) -> dict[str, torch.Tensor]:
    """For every position t, what interactions 0..t-1 say about ``concepts[:, t]``.

    concepts, responses: (B, T). Returns (B, T) tensors: ``trials`` (earlier attempts on the
    concept), ``correct`` (how many of them right), ``gap`` (t minus the latest attempt's
    position, 0 if none) and ``last`` (0 none, 1 wrong, 2 right). Vectorised: sort each row by
    (concept, position), so each concept's attempts are contiguous and in time order, count
    within the runs, and scatter back.
    """
    b, t = concepts.shape
    pos = torch.arange(t, device=concepts.device).expand(b, t)
    order = (concepts.long() * t + pos).argsort(dim=1)  # (B, T) keys are unique per row
    c = concepts.gather(1, order)
    r = responses.long().clamp(0, 1).gather(1, order)
    p = order  # the position of each sorted entry
    first = torch.ones_like(c, dtype=torch.bool)
    first[:, 1:] = c[:, 1:] != c[:, :-1]
    start = torch.where(first, pos, torch.zeros_like(pos)).cummax(dim=1).values  # run start
    trials = pos - start
    before = r.cumsum(1) - r  # right answers strictly before, over the whole sorted row
    correct = before - before.gather(1, start)
    prev_p = torch.where(first, p, p.roll(1, dims=1))
    gap = torch.where(first, torch.zeros_like(p), p - prev_p)
    last = torch.where(first, torch.zeros_like(r), r.roll(1, dims=1) + 1)
    return {name: torch.empty_like(v).scatter_(1, order, v)
            for name, v in zip(HISTORY, (trials, correct, gap, last), strict=True)}


class HistoryFeatures(nn.Module):
    """Per-concept history counts -> (..., feature_dim) embedding."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.trials = nn.Embedding(COUNT_BUCKETS, dim)
        self.gap = nn.Embedding(GAP_BUCKETS, dim)
        self.last = nn.Embedding(LAST_RESPONSES, dim)
        self.scalars = nn.Linear(NUM_SCALARS, dim)

    def forward(self, trials: torch.Tensor, correct: torch.Tensor, gap: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        n, k = trials.float(), correct.float()
        scalars = torch.stack([(k + 1) / (n + 2), torch.log1p(n) / 4, torch.log1p(k) / 4], dim=-1)
        return (
            self.trials(log2_bucket(trials, COUNT_BUCKETS))
            + self.gap(log2_bucket(gap, GAP_BUCKETS))
            + self.last(last.long())
            + self.scalars(scalars.to(self.scalars.weight.dtype))
        )


@register_model
class DKTForget(DKT):
    name = "dkt_forget"
    config_class = DKTForgetConfig

    def __init__(self, config: DKTForgetConfig) -> None:
        super().__init__(config)
        n, f = config.num_concepts, config.feature_dim
        self.input_features = HistoryFeatures(config.dim)
        self.output_features = HistoryFeatures(f)
        # the concept's output row spans [hidden; features]
        self.out = nn.Embedding(n + 1, config.hidden + f)
        nn.init.normal_(self.out.weight, std=(config.hidden + f) ** -0.5)
        self.item_bias = nn.Embedding(config.num_items + 1, 1) if config.use_items else None
        if self.item_bias is not None:
            nn.init.zeros_(self.item_bias.weight)

    def _logits(self, hidden: torch.Tensor, features: torch.Tensor, items: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, H), features (B, T, F), ids (B, T) -> float32 logits (B, T)."""
        z = torch.cat([self.drop(hidden).float(), features.float()], dim=-1)
        logits = (z * self.out(concepts).float()).sum(-1) + self.out_bias(concepts).squeeze(-1).float()
        if self.item_bias is not None:
            logits = logits + self.item_bias(items).squeeze(-1).float()
        return logits

    def forward(self, batch: KTBatch) -> torch.Tensor:
        b, t = batch.concepts.shape
        hist = concept_history(batch.concepts, batch.responses)
        h0, c0 = self._initial(b)
        if t > 1:
            x = self._interactions(batch.concepts[:, :-1], batch.responses[:, :-1])  # (B, T-1, D)
            x = x + self.input_features(*(hist[k][:, :-1] for k in HISTORY))
            hs, _ = self._lstm(x, (h0, c0))  # (B, T-1, H)
            hidden = torch.cat([h0[-1].unsqueeze(1), hs], dim=1)  # (B, T, H)
        else:
            hidden = h0[-1].unsqueeze(1)
        features = self.output_features(*(hist[k] for k in HISTORY))
        return self._logits(hidden, features, batch.items, batch.concepts)

    # ------------------------------------------------------------------ online
    # O(num_concepts) per event: the per-concept counters are copied, not changed in place, so a
    # state stays valid after later updates (as the contract needs).
    # State: the LSTM's (h, c) and, per concept, trials, correct answers, the position of the
    # latest attempt and its response; ``step`` is the number of interactions absorbed.
    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> KTState:
        state = super().init_state(batch_size, device)
        device = state["h"].device
        zeros = torch.zeros(batch_size, self.config.num_concepts + 1, dtype=torch.long, device=device)
        state.update(trials=zeros, correct=zeros.clone(), seen_at=zeros.clone(), last=zeros.clone(),
                     step=torch.zeros(batch_size, 1, dtype=torch.long, device=device))
        return state

    def _features_of(self, state: KTState, concepts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(trials, correct, gap, last) of ``concepts`` (B, Q) before the next interaction."""
        b = max(state["trials"].shape[0], concepts.shape[0])
        gather = lambda key: state[key].expand(b, -1).gather(1, concepts.expand(b, -1))  # noqa: E731
        trials = gather("trials")
        gap = torch.where(trials > 0, state["step"].expand(b, -1) - gather("seen_at"), torch.zeros_like(trials))
        return trials, gather("correct"), gap, gather("last")

    @torch.no_grad()
    def update(
        self, state: KTState, items: torch.Tensor, concepts: torch.Tensor, responses: torch.Tensor
    ) -> KTState:
        c, r = concepts.view(-1, 1).long(), responses.view(-1, 1).long().clamp(0, 1)
        x = self._interactions(c, r) + self.input_features(*self._features_of(state, c))  # (B, 1, D)
        _, (h, cell) = self._lstm(x, (state["h"], state["c"]))
        return {
            "h": h, "c": cell,
            "trials": state["trials"].scatter_add(1, c, torch.ones_like(c)),
            "correct": state["correct"].scatter_add(1, c, r),
            "seen_at": state["seen_at"].scatter(1, c, state["step"]),
            "last": state["last"].scatter(1, c, r + 1),
            "step": state["step"] + 1,
        }

    @torch.no_grad()
    def query(self, state: KTState, items: torch.Tensor, concepts: torch.Tensor) -> torch.Tensor:
        h = state["h"][-1]  # (B, H)
        b = max(h.shape[0], concepts.shape[0])
        items, concepts = items.expand(b, -1), concepts.expand(b, -1)
        if concepts.shape[1] <= self.config.num_concepts:
            features = self.output_features(*self._features_of(state, concepts))  # (B, Q, F)
            return self._logits(h.unsqueeze(1).expand(b, concepts.shape[1], -1), features, items, concepts)
        # many queries (a mastery panel, a planner's pool): the logit before the item bias depends
        # on the concept alone, so score every concept once, (B, C+1), and gather, instead of
        # (B, Q, H+F) products; in float32 under any autocast, as DKT's long query
        every = torch.arange(self.config.num_concepts + 1, device=h.device).unsqueeze(0)  # (1, C+1)
        with torch.autocast(h.device.type, enabled=False):
            features = self.output_features(*self._features_of(state, every)).float()  # (B', C+1, F)
            w = self.out.weight.float()  # (C+1, H+F)
            hidden = h.float() @ w[:, : h.shape[-1]].T  # (B, C+1)
            table = hidden + (features * w[:, h.shape[-1] :]).sum(-1) + self.out_bias.weight.float().T
            logits = table.expand(b, -1).gather(1, concepts)
            if self.item_bias is not None:
                logits = logits + self.item_bias(items).squeeze(-1).float()
        return logits
