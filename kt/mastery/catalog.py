"""Topics, item -> topic lookups, and each topic's *representative panel*.

Mastery of topic k is the model's predicted success on a representative item of k:

* item-aware models (the prediction depends on the item, e.g. AKT): the panel is the
  ``panel_size`` items whose primary topic is k and whose *model difficulty* (minus the prior
  logit, i.e. the model's prediction with no history) is closest to the median model
  difficulty of k's items; mastery is the mean predicted probability over the panel.
* concept-only models (DKT, or a model whose prior does not vary across items of a concept):
  the panel is the concept itself.

Items unknown to the model's item vocabulary (new content) are scored with item index 0
(unknown) and the concept of their primary topic. Topics unknown to the concept vocabulary
get concept 0 and are reported with NaN mastery (the model has never seen them).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from kt.data.schema import primary_topics
from kt.data.sequences import Vocab
from kt.models.base import KTModel


def _primary_topics(item_topics: Mapping[str, object] | pd.DataFrame) -> dict[str, str]:
    """content_id -> primary topic id, from a mapping or an ``items`` table (``topics`` column,
    ``|``-separated, first is primary; a ``topic_id`` column is also accepted)."""
    if isinstance(item_topics, pd.DataFrame):
        if "topics" in item_topics.columns:
            prim = primary_topics(item_topics["topics"])
        elif "topic_id" in item_topics.columns:
            prim = item_topics["topic_id"].astype(str).str.strip()
        else:
            raise ValueError("items table needs a 'topics' or 'topic_id' column")
        return dict(zip(item_topics["content_id"].astype(str), prim, strict=True))
    out = {}
    for cid, t in item_topics.items():
        if isinstance(t, (list, tuple)):
            t = t[0]
        out[str(cid)] = str(t).split("|", 1)[0].strip()
    return out


def _difficulties(item_topics: Mapping[str, object] | pd.DataFrame) -> dict[str, float]:
    """content_id -> catalog difficulty, from an ``items`` table's ``difficulty`` column (empty
    for a mapping or a table without one; missing values are left out)."""
    if not isinstance(item_topics, pd.DataFrame) or "difficulty" not in item_topics.columns:
        return {}
    d = pd.to_numeric(item_topics["difficulty"], errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(d)
    return dict(zip(item_topics["content_id"].astype(str).to_numpy()[ok].tolist(), d[ok].tolist(), strict=True))


def _lookup(vocab: Vocab, tokens: np.ndarray) -> np.ndarray:
    """Vocab indices (1..n, 0 = unknown) of many tokens at once."""
    index = getattr(vocab, "_pd_index", None)
    if index is None or len(index) != len(vocab.tokens):
        index = pd.Index(vocab.tokens)
        vocab._pd_index = index  # cached: vocabs only grow, so the length detects staleness
    return (index.get_indexer(tokens) + 1).astype(np.int64)


@torch.no_grad()
def prior_logits(model: KTModel, items: np.ndarray, concepts: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """The model's logit for each (item, concept) with an empty history: (N,)."""
    out = np.empty(len(items), dtype=np.float64)
    state = model.init_state(1)
    for s in range(0, len(items), chunk):
        it = torch.as_tensor(np.array(items[s : s + chunk]), device=model.device).view(1, -1)
        co = torch.as_tensor(np.array(concepts[s : s + chunk]), device=model.device).view(1, -1)
        out[s : s + chunk] = model.query(state, it, co).view(-1).float().cpu().numpy()
    return out


def probe_item_aware(model: KTModel, items: np.ndarray, concepts: np.ndarray, tol: float = 1e-5) -> bool:
    """True when the model's prior differs between items of the same concept."""
    if getattr(model, "uses_items", None) is not None:
        return bool(model.uses_items)
    if len(items) < 2:
        return False
    logits = prior_logits(model, items, concepts)
    df = pd.DataFrame({"c": concepts, "l": logits})
    spread = df.groupby("c")["l"].agg(lambda x: x.max() - x.min())
    return bool((spread > tol).any())


@dataclass
class TopicCatalog:
    """Topic order, concept index per topic, and the (K, P) representative panel."""

    topic_ids: list[str]
    concept_idx: np.ndarray  # (K,) concept index per topic, 0 = unknown to the model
    panel_items: np.ndarray  # (K, P) item indices
    panel_mask: np.ndarray  # (K, P) bool, True on real panel entries
    item_topic: dict[str, str]  # content_id -> primary topic id
    item_vocab: Vocab | None
    concept_vocab: Vocab
    item_aware: bool
    item_difficulty: dict[str, float] = field(default_factory=dict)  # content_id -> catalog difficulty

    def __post_init__(self) -> None:
        self.topic_index = {t: k for k, t in enumerate(self.topic_ids)}
        self._median_difficulty: np.ndarray | None = None  # (K,) per topic, built on first use
        self._content_lookup: tuple[dict[str, int], np.ndarray, np.ndarray] | None = None
        self._items_version = 0  # bumped by add_items: a lookup built from older items is not kept
        self._items_lock = threading.Lock()

    @property
    def num_topics(self) -> int:
        return len(self.topic_ids)

    # ------------------------------------------------------------------ lookups
    def topic_of(self, content_id: str, topic_id: str | None = None) -> str:
        if topic_id is not None and not pd.isna(topic_id):  # None, NaN, pd.NA, NaT: the item's own topic
            return str(topic_id).strip()
        try:
            return self.item_topic[str(content_id)]
        except KeyError:
            raise KeyError(
                f"content_id {content_id!r} is in neither the catalog nor the model vocabulary; "
                "pass topic_id or add the item with TopicCatalog.add_items"
            ) from None

    def encode(self, content_ids: Sequence[str], topic_ids: Sequence[str | None] | None = None):
        """Model (item, concept) indices and catalog topic positions for interactions.

        Unknown items get item 0 and their primary topic's concept. Returns three (N,) int64
        arrays; topic position -1 means a topic outside the catalog.
        """
        if topic_ids is None:
            topic_ids = [None] * len(content_ids)
        topics = [self.topic_of(c, t) for c, t in zip(content_ids, topic_ids, strict=True)]
        concepts = self.concept_vocab.encode(topics)
        if self.item_aware and self.item_vocab is not None:
            items = self.item_vocab.encode(content_ids)
        else:
            items = concepts.copy()  # concept-as-item convention (pyKT) for concept-only models
        pos = np.fromiter((self.topic_index.get(t, -1) for t in topics), dtype=np.int64, count=len(topics))
        return items, concepts, pos

    def encode_items(self, content_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised :meth:`encode` of catalog items by content id alone (the planner's hot
        path scores thousands per request): ``(known, items, concepts)``, where ``known`` (N,)
        marks ids in the catalog and the two index arrays cover only those."""
        lookup = self._content_lookup
        if lookup is None:  # built on first use, dropped by add_items
            version = self._items_version
            pairs = list(self.item_topic.items())  # one snapshot (add_items may run meanwhile)
            cids = np.array([c for c, _ in pairs], dtype=object)
            concepts = _lookup(self.concept_vocab, np.array([t for _, t in pairs], dtype=object))
            if self.item_aware and self.item_vocab is not None:
                items = _lookup(self.item_vocab, cids)
            else:
                items = concepts
            # a dict: ~10x faster than a pandas hash index for a few thousand ids among millions
            lookup = ({c: i for i, c in enumerate(cids.tolist())}, items, concepts)
            with self._items_lock:
                if version == self._items_version:  # items added while building: use it once, keep none
                    self._content_lookup = lookup
        row_of, items, concepts = lookup
        get = row_of.get
        pos = np.fromiter((get(c, -1) for c in content_ids), np.int64, len(content_ids))
        known = pos >= 0
        pos = pos[known]
        return known, items[pos], concepts[pos]

    def difficulty_gap(self, content_ids: Sequence[str], topic_pos: np.ndarray) -> np.ndarray:
        """(N,) the median catalog difficulty of each item's topic minus the item's own (0 where
        either is unknown): how much easier than the topic's typical item each item is."""
        med = self._median_difficulty
        if med is None:  # built on first use, dropped by add_items
            version = self._items_version
            with self._items_lock:  # one consistent snapshot of both mappings
                pairs = list(self.item_difficulty.items())
                topic_of = self.item_topic.copy()
            index = self.topic_index
            pos = np.fromiter((index.get(topic_of.get(c, ""), -1) for c, _ in pairs), np.int64, len(pairs))
            diff = np.fromiter((d for _, d in pairs), np.float64, len(pairs))
            by = pd.Series(diff[pos >= 0]).groupby(pos[pos >= 0]).median()
            med = np.full(self.num_topics, np.nan)
            med[by.index.to_numpy(np.int64)] = by.to_numpy()
            with self._items_lock:
                if version == self._items_version:  # items added meanwhile: use it once, keep none
                    self._median_difficulty = med
        get = self.item_difficulty.get
        d = np.fromiter((get(c, np.nan) for c in content_ids), np.float64, len(content_ids))
        pos = np.asarray(topic_pos, dtype=np.int64)
        gap = np.where(pos >= 0, med[np.maximum(pos, 0)], np.nan) - d if len(pos) else np.zeros(0)
        return np.where(np.isfinite(gap), gap, 0.0)

    def encode_frame(self, content_ids: pd.Series, topic_ids: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised :meth:`encode` for interactions that carry their ``topic_id``."""
        topics = topic_ids.astype(str).to_numpy()
        concepts = _lookup(self.concept_vocab, topics)
        if self.item_aware and self.item_vocab is not None:
            items = _lookup(self.item_vocab, content_ids.astype(str).to_numpy())
        else:
            items = concepts.copy()
        pos = pd.Index(self.topic_ids).get_indexer(topics).astype(np.int64)
        return items, concepts, pos

    def add_items(self, item_topics: Mapping[str, object] | pd.DataFrame) -> None:
        """Register new content (content_id -> topics); it is scored through its primary topic."""
        primary = _primary_topics(item_topics)
        difficulty = _difficulties(item_topics)
        with self._items_lock:
            self.item_topic.update(primary)
            self.item_difficulty.update(difficulty)
            self._items_version += 1
            self._content_lookup = None
            self._median_difficulty = None

    # ----------------------------------------------------------------- builder
    @classmethod
    def build(
        cls,
        model: KTModel,
        item_vocab: Vocab | None,
        concept_vocab: Vocab,
        item_topics: Mapping[str, object] | pd.DataFrame,
        topics: Iterable[str] | None = None,
        panel_size: int = 5,
        item_aware: bool | None = None,
    ) -> TopicCatalog:
        item_topic = _primary_topics(item_topics)
        if topics is None:
            topics = list(dict.fromkeys([*concept_vocab.tokens, *sorted(set(item_topic.values()))]))
        topic_ids = [str(t) for t in topics]
        concept_idx = concept_vocab.encode(topic_ids)

        # known items with a known primary topic, as model indices
        known = pd.DataFrame({"content_id": list(item_topic), "topic_id": list(item_topic.values())})
        known["concept"] = concept_vocab.encode(known["topic_id"])
        known["item"] = item_vocab.encode(known["content_id"]) if item_vocab is not None else 0
        known = known[(known["item"] > 0) & (known["concept"] > 0)]
        if item_aware is None:
            probe = known.groupby("concept").head(2).head(64)
            item_aware = item_vocab is not None and probe_item_aware(
                model, probe["item"].to_numpy(), probe["concept"].to_numpy()
            )

        k = len(topic_ids)
        p = panel_size if item_aware else 1
        panel_items = np.zeros((k, p), dtype=np.int64)
        panel_mask = np.zeros((k, p), dtype=bool)
        panel_mask[:, 0] = True
        if not item_aware:
            panel_items[:, 0] = concept_idx
        else:
            known = known.assign(difficulty=-prior_logits(model, known["item"].to_numpy(), known["concept"].to_numpy()))
            pos = {t: i for i, t in enumerate(topic_ids)}
            for topic, grp in known.groupby("topic_id", sort=False):
                i = pos.get(topic)
                if i is None:
                    continue
                gap = (grp["difficulty"] - grp["difficulty"].median()).abs().to_numpy()
                order = np.argsort(gap, kind="stable")[:p]
                panel_items[i, : len(order)] = grp["item"].to_numpy()[order]
                panel_mask[i, : len(order)] = True
            # topics without known items keep item 0 (unknown) with their concept
        return cls(topic_ids, concept_idx, panel_items, panel_mask, item_topic, item_vocab, concept_vocab, bool(item_aware),
                   _difficulties(item_topics))

    # --------------------------------------------------------------- scoring
    @torch.no_grad()
    def mastery_all(self, model: KTModel, state, batch_size: int) -> np.ndarray:
        """Mastery (B, K) of every topic for the B users of ``state``."""
        k, p = self.panel_items.shape
        it = torch.as_tensor(self.panel_items.reshape(1, -1), device=model.device).expand(batch_size, -1)
        co = torch.as_tensor(np.repeat(self.concept_idx, p).reshape(1, -1), device=model.device)
        prob = torch.sigmoid(model.query(state, it, co.expand(batch_size, -1)).float()).cpu().numpy()
        return self._pool(prob.reshape(batch_size, k, p), self.panel_mask, self.concept_idx)

    @torch.no_grad()
    def mastery_of(self, model: KTModel, state, topics: np.ndarray) -> np.ndarray:
        """Mastery (B,) of one topic position per user (``topics`` (B,))."""
        topics = np.asarray(topics, dtype=np.int64)
        it = torch.as_tensor(self.panel_items[topics], device=model.device)  # (B, P)
        co = torch.as_tensor(np.repeat(self.concept_idx[topics, None], it.shape[1], 1), device=model.device)
        prob = torch.sigmoid(model.query(state, it, co).float()).cpu().numpy()
        return self._pool(prob, self.panel_mask[topics], self.concept_idx[topics])

    @staticmethod
    def _pool(prob: np.ndarray, mask: np.ndarray, concepts: np.ndarray) -> np.ndarray:
        w = np.broadcast_to(mask, prob.shape).astype(np.float64)
        out = (prob * w).sum(-1) / w.sum(-1)
        return np.where(concepts > 0, out, np.nan)
