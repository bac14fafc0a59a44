"""KT interaction sequences in one compact, model-ready container.

Every source (pyKT CSV, DKVMN 3-line, AKT 4-line, highlight logs through the outcome rule)
ends up as :class:`KTSequences`: one flat array per field plus CSR-style ``offsets``, so a
million users cost a few arrays rather than a million Python lists.

Index convention shared with the models: 0 is padding / unknown, real ids are 1..n.
Datasets without item ids (ASSIST2015) use the concept as the item, as pyKT does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Vocab:
    """Maps external ids (strings) to contiguous model indices 1..n (0 is padding)."""

    tokens: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._index = {t: i + 1 for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return str(token) in self._index

    def add(self, token: object) -> int:
        key = str(token)
        idx = self._index.get(key)
        if idx is None:
            self.tokens.append(key)
            idx = len(self.tokens)
            self._index[key] = idx
        return idx

    def index(self, token: object, default: int = 0) -> int:
        return self._index.get(str(token), default)

    def encode(self, tokens: Iterable[object], grow: bool = False) -> np.ndarray:
        get = self.add if grow else self.index
        return np.fromiter((get(t) for t in tokens), dtype=np.int64)

    def decode(self, idx: int) -> str:
        return self.tokens[idx - 1]

    def to_dict(self) -> dict:
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        return cls(tokens=list(d["tokens"]))

    @classmethod
    def identity(cls, n: int) -> Vocab:
        """Vocab whose external ids are the integers 1..n (already-indexed benchmark data)."""
        return cls(tokens=[str(i) for i in range(1, n + 1)])


@dataclass
class KTSequences:
    """Per-user interaction sequences stored flat.

    offsets: (U+1,) int64, user u owns rows offsets[u]:offsets[u+1].
    items, concepts: (N,) int64 model indices (>=1). responses: (N,) int8 in {0,1}.
    times: (N,) int64 unix seconds, or None when the source has none.
    eval_mask: (N,) bool, which positions count in evaluation (pyKT ``selectmasks``);
      None means every position t >= 1 of each sequence counts.
    user_ids: (U,) external user ids. folds: (U,) int fold per user, or None.
    """

    offsets: np.ndarray
    items: np.ndarray
    concepts: np.ndarray
    responses: np.ndarray
    user_ids: np.ndarray
    num_items: int
    num_concepts: int
    times: np.ndarray | None = None
    eval_mask: np.ndarray | None = None
    folds: np.ndarray | None = None
    has_item_ids: bool = True

    def __post_init__(self) -> None:
        n = int(self.offsets[-1]) if len(self.offsets) else 0
        for name in ("items", "concepts", "responses"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"KTSequences.{name} has {len(getattr(self, name))} rows, offsets say {n}")
        if len(self.user_ids) != len(self.offsets) - 1:
            raise ValueError("KTSequences.user_ids must have one entry per sequence")

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_interactions(self) -> int:
        return int(self.offsets[-1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, u: int) -> dict[str, np.ndarray]:
        s, e = int(self.offsets[u]), int(self.offsets[u + 1])
        out = {"items": self.items[s:e], "concepts": self.concepts[s:e], "responses": self.responses[s:e]}
        if self.times is not None:
            out["times"] = self.times[s:e]
        if self.eval_mask is not None:
            out["eval_mask"] = self.eval_mask[s:e]
        return out

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for u in range(len(self)):
            yield self.sequence(u)

    # ----------------------------------------------------------- construction
    @classmethod
    def from_lists(
        cls,
        user_ids: Sequence,
        items: Sequence[Sequence[int]],
        concepts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        num_items: int | None = None,
        num_concepts: int | None = None,
        times: Sequence[Sequence[int]] | None = None,
        eval_mask: Sequence[Sequence[bool]] | None = None,
        folds: Sequence[int] | None = None,
        has_item_ids: bool = True,
    ) -> KTSequences:
        lengths = np.fromiter((len(r) for r in responses), dtype=np.int64, count=len(responses))
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])

        def flat(rows, dtype):
            return np.concatenate([np.asarray(r, dtype=dtype) for r in rows]) if len(rows) else np.zeros(0, dtype)

        items_a, concepts_a = flat(items, np.int64), flat(concepts, np.int64)
        return cls(
            offsets=offsets,
            items=items_a,
            concepts=concepts_a,
            responses=flat(responses, np.int8),
            user_ids=np.asarray(list(user_ids), dtype=object),
            num_items=int(num_items if num_items is not None else (items_a.max(initial=0))),
            num_concepts=int(num_concepts if num_concepts is not None else (concepts_a.max(initial=0))),
            times=flat(times, np.int64) if times is not None else None,
            eval_mask=flat(eval_mask, bool) if eval_mask is not None else None,
            folds=np.asarray(folds, dtype=np.int64) if folds is not None else None,
            has_item_ids=has_item_ids,
        )

    def subset(self, users: np.ndarray | Sequence[int]) -> KTSequences:
        """Sequences of the given user positions (in that order)."""
        users = np.asarray(users, dtype=np.int64)
        lengths = self.lengths[users]
        offsets = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        rows = (
            np.concatenate([np.arange(self.offsets[u], self.offsets[u + 1]) for u in users])
            if len(users)
            else np.zeros(0, np.int64)
        )
        return KTSequences(
            offsets=offsets,
            items=self.items[rows],
            concepts=self.concepts[rows],
            responses=self.responses[rows],
            user_ids=self.user_ids[users],
            num_items=self.num_items,
            num_concepts=self.num_concepts,
            times=self.times[rows] if self.times is not None else None,
            eval_mask=self.eval_mask[rows] if self.eval_mask is not None else None,
            folds=self.folds[users] if self.folds is not None else None,
            has_item_ids=self.has_item_ids,
        )

    def by_fold(self, folds: Iterable[int]) -> KTSequences:
        if self.folds is None:
            raise ValueError("these sequences carry no fold assignment")
        return self.subset(np.flatnonzero(np.isin(self.folds, list(folds))))

    def windows(self, max_len: int) -> KTSequences:
        """Cut every sequence into consecutive non-overlapping windows of at most ``max_len``.

        Mirrors pyKT's ``generate_sequences``: each window is an independent sequence.
        """
        starts: list[int] = []
        ends: list[int] = []
        owners: list[int] = []
        for u in range(len(self)):
            s, e = int(self.offsets[u]), int(self.offsets[u + 1])
            for w in range(s, e, max_len):
                starts.append(w)
                ends.append(min(w + max_len, e))
                owners.append(u)
        lengths = np.asarray(ends, np.int64) - np.asarray(starts, np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)]) if starts else np.zeros(0, np.int64)
        owners_a = np.asarray(owners, dtype=np.int64)
        return KTSequences(
            offsets=offsets,
            items=self.items[rows],
            concepts=self.concepts[rows],
            responses=self.responses[rows],
            user_ids=self.user_ids[owners_a] if len(owners_a) else np.zeros(0, object),
            num_items=self.num_items,
            num_concepts=self.num_concepts,
            times=self.times[rows] if self.times is not None else None,
            eval_mask=self.eval_mask[rows] if self.eval_mask is not None else None,
            folds=self.folds[owners_a] if self.folds is not None and len(owners_a) else None,
            has_item_ids=self.has_item_ids,
        )
