"""Replaying interactions through a model's online state, many users at once.

Users of different history lengths share one batch: they are sorted by length (longest
first), so at step t the users still active are a prefix of the batch. Users whose history
ends are split off before the step and kept as a finished group. This needs nothing from the
model beyond ``init_state``/``update``/``query`` and works for fixed-shape states (DKT's LSTM
state) and growing ones (the default window state) alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kt.mastery import state as st
from kt.mastery.catalog import TopicCatalog
from kt.models.base import KTModel, KTState


@dataclass
class Padded:
    """Right-padded per-user interactions. (B, T) arrays; ``lengths`` (B,)."""

    items: np.ndarray
    concepts: np.ndarray
    responses: np.ndarray
    topics: np.ndarray  # catalog topic position, -1 outside the catalog
    lengths: np.ndarray

    @classmethod
    def from_lists(cls, rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> Padded:
        lengths = np.array([len(r[0]) for r in rows], dtype=np.int64)
        t = int(lengths.max(initial=0))
        arrs = [np.zeros((len(rows), t), dtype=np.int64) for _ in range(4)]
        arrs[3][:] = -1
        for u, r in enumerate(rows):
            for a, v in zip(arrs, r, strict=True):
                a[u, : len(v)] = v
        return cls(*arrs, lengths)


@dataclass
class ReplayResult:
    """groups: (user positions, batched final state) with stackable states per group.
    practiced: (B, T) mastery of each event's topic right after the event (NaN on padding).
    predicted: (B, T) the model's logit for each event's item just before the event (what it
    predicted for it), when asked for; else None."""

    groups: list[tuple[np.ndarray, KTState]]
    practiced: np.ndarray
    predicted: np.ndarray | None = None


@torch.no_grad()
def replay(
    model: KTModel,
    catalog: TopicCatalog,
    state: KTState,
    dims: dict[str, int],
    data: Padded,
    track_practiced: bool = True,
    track_predicted: bool = False,
) -> ReplayResult:
    """Apply each user's interactions to ``state`` (B users) in order."""
    b, t_max = data.items.shape
    dev = model.device
    order = np.argsort(-data.lengths, kind="stable")
    state = st.take(state, dims, torch.as_tensor(order))
    lengths = data.lengths[order]
    items = torch.as_tensor(data.items[order], device=dev)
    concepts = torch.as_tensor(data.concepts[order], device=dev)
    responses = torch.as_tensor(data.responses[order], device=dev)
    topics = data.topics[order]
    practiced = np.full((b, t_max), np.nan)
    predicted = np.full((b, t_max), np.nan) if track_predicted else None
    groups: list[tuple[np.ndarray, KTState]] = []
    active = b
    for t in range(t_max + 1):
        n_t = int((lengths > t).sum())
        if n_t < active:  # users whose history ended: split them off
            groups.append((order[n_t:active], st.take(state, dims, slice(n_t, active))))
            state = st.take(state, dims, slice(0, n_t))
            active = n_t
        if n_t == 0:
            break
        if predicted is not None:  # one more query per step: only when the caller needs it
            logit = model.query(state, items[:n_t, t : t + 1], concepts[:n_t, t : t + 1])
            predicted[order[:n_t], t] = logit.view(-1).float().cpu().numpy()
        state = model.update(state, items[:n_t, t], concepts[:n_t, t], responses[:n_t, t])
        if track_practiced:
            tp = topics[:n_t, t]
            ok = tp >= 0
            m = catalog.mastery_of(model, state, np.where(ok, tp, 0))
            practiced[order[:n_t], t] = np.where(ok, m, np.nan)
    if active:
        groups.append((order[:active], state))
    return ReplayResult(merge_groups(groups, dims), practiced, predicted)


def merge_groups(groups: list[tuple[np.ndarray, KTState]], dims: dict[str, int]) -> list[tuple[np.ndarray, KTState]]:
    """Stack groups whose states have the same shape, so each shape is queried once."""
    by_sig: dict[tuple, list[tuple[np.ndarray, KTState]]] = {}
    for pos, s in groups:
        if len(pos):
            by_sig.setdefault(st.signature(s, dims), []).append((pos, s))
    out = []
    for members in by_sig.values():
        pos = np.concatenate([p for p, _ in members])
        out.append((pos, st.stack([s for _, s in members], dims) if len(members) > 1 else members[0][1]))
    return out


def mastery_of_groups(model: KTModel, catalog: TopicCatalog, groups, dims, n_users: int) -> np.ndarray:
    """(B, K) mastery of every topic from replayed groups."""
    out = np.full((n_users, catalog.num_topics), np.nan)
    for pos, s in groups:
        out[pos] = catalog.mastery_all(model, s, len(pos))
    return out


def topic_stats(data: Padded, times: np.ndarray, practiced: np.ndarray, num_topics: int):
    """Per (user, topic): n_obs, last practice time and mastery right after it.

    times: (B, T) unix seconds. Returns (B, K) int64, float64 (NaN = never), float64.
    """
    b = len(data.lengths)
    n_obs = np.zeros((b, num_topics), dtype=np.int64)
    last = np.full((b, num_topics), np.nan)
    pm = np.full((b, num_topics), np.nan)
    valid = (np.arange(data.items.shape[1])[None, :] < data.lengths[:, None]) & (data.topics >= 0)
    u, t = np.nonzero(valid)  # row-major: time order within each user
    k = data.topics[u, t]
    np.add.at(n_obs, (u, k), 1)
    key = u * num_topics + k
    _, first_rev = np.unique(key[::-1], return_index=True)
    sel = len(key) - 1 - first_rev  # last event of each (user, topic)
    last[u[sel], k[sel]] = times[u[sel], t[sel]]
    pm[u[sel], k[sel]] = practiced[u[sel], t[sel]]
    return n_obs, last, pm
