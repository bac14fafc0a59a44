"""The content catalog in array form, with a topic index that includes items nobody has filed yet.

Items are indexed 0..n-1 in arrival order. Per item we keep its language, kind, difficulty,
creation time and topic set (CSR). The *topic index* maps (topic, language) to the items that
carry the topic, sorted by difficulty, so the planner can draw a difficulty-stratified sample for
a topic in the user's languages in O(log n). Items added after construction go to a small delta
index that is consulted at once and folded in by :meth:`Catalog.compact`: a fresh item with no
folder edges is recommendable from the moment :meth:`Catalog.add_items` returns (cold start).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kt.data.times import series_to_seconds

ITEM_COLUMNS = ("content_id", "language", "topics", "difficulty", "kind", "created_at")
UNKNOWN_LANGUAGE = "und"


class CatalogError(ValueError):
    """Bad catalog input; the message names the table, row and field."""


def _split_topics(topics: pd.Series, table: str) -> list[list[str]]:
    out: list[list[str]] = []
    for row, value in enumerate(topics.tolist()):
        if not isinstance(value, str) or not value.strip():
            raise CatalogError(f"{table}: row {row}: field 'topics' must be a non-empty '|'-separated string")
        out.append([t for t in value.split("|") if t])
    return out


@dataclass
class _Vocab:
    """External string ids <-> 0..n-1."""

    tokens: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def get(self, token: str, default: int = -1) -> int:
        return self._index.get(token, default)

    def add(self, token: str) -> int:
        idx = self._index.get(token)
        if idx is None:
            idx = len(self.tokens)
            self.tokens.append(token)
            self._index[token] = idx
        return idx


class Catalog:
    """Items, topics and languages as numpy arrays plus the topic index.

    Build with :meth:`from_frames` (the data contract's ``items`` and ``topics`` columns) or
    :meth:`from_world`. ``topics`` may come from any concept graph: ids are opaque strings.
    """

    def __init__(self) -> None:
        self.content_ids: np.ndarray = np.zeros(0, dtype=object)
        # content_id -> index: a dict, as lookups of a few thousand ids per request run ~10x
        # faster than pandas' hash index at a million items, and it grows in place
        self._item_pos: dict[str, int] = {}
        self.topics = _Vocab()
        self.languages = _Vocab()
        self.kinds = _Vocab()
        self.topic_names: dict[str, str] = {}
        self.language: np.ndarray = np.zeros(0, np.int32)  # (n,) language code
        self.kind: np.ndarray = np.zeros(0, np.int32)  # (n,) kind code
        self.difficulty: np.ndarray = np.zeros(0, np.float32)  # (n,)
        self.created_at: np.ndarray = np.zeros(0, np.int64)  # (n,) unix seconds
        self.primary_topic: np.ndarray = np.zeros(0, np.int32)  # (n,)
        self.topic_ptr: np.ndarray = np.zeros(1, np.int64)  # (n+1,) CSR over item topics
        self.topic_idx: np.ndarray = np.zeros(0, np.int32)
        # topic index over the compacted items: key = topic * n_lang + language
        self._n_lang_indexed = 1
        self._key_ptr: np.ndarray = np.zeros(1, np.int64)
        self._key_items: np.ndarray = np.zeros(0, np.int64)
        self._delta: dict[tuple[int, int], list[int]] = {}
        self._n_compacted = 0
        self._median: dict[int, float] = {}
        self._median_n = 0

    # ------------------------------------------------------------------ build
    @classmethod
    def from_frames(cls, items: pd.DataFrame, topics: pd.DataFrame | None = None) -> Catalog:
        """``items`` needs ``content_id, language, topics`` (``|``-separated, first = primary);
        ``difficulty`` (default 0.5), ``kind`` (default article), ``created_at`` are optional."""
        cat = cls()
        if topics is not None and len(topics):
            for tid, name in zip(topics["topic_id"].astype(str), topics.get("name", topics["topic_id"]).astype(str), strict=True):
                cat.topics.add(tid)
                cat.topic_names[tid] = name
        cat._append(items, table="items")
        cat.compact()
        return cat

    @classmethod
    def from_world(cls, world) -> Catalog:
        """From a loaded world (:func:`kt.data.io.load_world`): uses its ``items`` and ``topics``."""
        return cls.from_frames(world.items, getattr(world, "topics", None))

    def add_items(self, items: pd.DataFrame) -> np.ndarray:
        """Append new items; they are in the topic index at once. Returns their item indices."""
        start = len(self)
        self._append(items, table="new items")
        for i in range(start, len(self)):
            lang = int(self.language[i])
            for t in self.topic_idx[self.topic_ptr[i] : self.topic_ptr[i + 1]]:
                self._delta.setdefault((int(t), lang), []).append(i)
        return np.arange(start, len(self))

    def _parse(self, items: pd.DataFrame, table: str) -> dict:
        """Validated columns of ``items`` as arrays; optional columns left out are None."""
        missing = [c for c in ("content_id", "topics") if c not in items.columns]
        if missing:
            raise CatalogError(f"{table}: missing column(s) {', '.join(missing)}")
        n = len(items)
        out: dict = {"ids": items["content_id"].astype(str).to_numpy(dtype=object),
                     "topics": _split_topics(items["topics"], table)}
        out["language"] = (np.fromiter((self.languages.add(str(x)) for x in items["language"].fillna(UNKNOWN_LANGUAGE)),
                                       np.int32, n) if "language" in items.columns else None)
        out["kind"] = (np.fromiter((self.kinds.add(str(x)) for x in items["kind"].fillna("article")), np.int32, n)
                       if "kind" in items.columns else None)
        out["difficulty"] = None
        if "difficulty" in items.columns:
            diff = pd.to_numeric(items["difficulty"], errors="coerce").to_numpy(np.float64)
            bad = ~np.isfinite(diff) | (diff < 0) | (diff > 1)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise CatalogError(f"{table}: row {row}: field 'difficulty' must be a number in [0, 1]")
            out["difficulty"] = diff.astype(np.float32)
        out["created_at"] = (np.floor(series_to_seconds(items["created_at"])).astype(np.int64)
                             if "created_at" in items.columns else None)
        return out

    def _append(self, items: pd.DataFrame, table: str) -> None:
        cols = self._parse(items, table)
        ids, n = cols["ids"], len(items)
        pos = self._item_pos
        dup = pd.Index(ids).duplicated() | np.fromiter((c in pos for c in ids), bool, n)
        if dup.any():
            row = int(np.flatnonzero(dup)[0])
            raise CatalogError(f"{table}: row {row}: field 'content_id' {ids[row]!r} is a duplicate")
        langs = cols["language"] if cols["language"] is not None else np.full(n, self.languages.add(UNKNOWN_LANGUAGE), np.int32)
        kinds = cols["kind"] if cols["kind"] is not None else np.full(n, self.kinds.add("article"), np.int32)
        diff = cols["difficulty"] if cols["difficulty"] is not None else np.full(n, 0.5, np.float32)
        created = cols["created_at"] if cols["created_at"] is not None else np.zeros(n, np.int64)
        topic_lists = cols["topics"]
        counts = np.fromiter((len(t) for t in topic_lists), np.int64, n)
        flat = [self.topics.add(t) for ts in topic_lists for t in ts]
        start = len(self.content_ids)
        self.content_ids = np.concatenate([self.content_ids, ids])
        self._item_pos.update(zip(ids.tolist(), range(start, start + n), strict=True))
        self.language = np.concatenate([self.language, langs])
        self.kind = np.concatenate([self.kind, kinds])
        self.difficulty = np.concatenate([self.difficulty, diff.astype(np.float32)])
        self.created_at = np.concatenate([self.created_at, created.astype(np.int64)])
        ptr = self.topic_ptr[-1] + np.concatenate([[0], np.cumsum(counts)])
        self.topic_ptr = np.concatenate([self.topic_ptr, ptr[1:]])
        self.topic_idx = np.concatenate([self.topic_idx, np.asarray(flat, np.int32)])
        self.primary_topic = self.topic_idx[self.topic_ptr[:-1]]

    def update_items(self, items: pd.DataFrame) -> np.ndarray:
        """Replace the attributes of existing items (the columns given; ``topics`` required) and
        rebuild the topic index, O(n log n): edits are rare next to reads. An id given twice
        takes its last row. Returns their indices."""
        if "content_id" in items.columns:
            items = items[~items["content_id"].astype(str).duplicated(keep="last").to_numpy()]
        cols = self._parse(items, "updated items")
        idx = self.index_of(cols["ids"])
        if (idx < 0).any():
            row = int(np.flatnonzero(idx < 0)[0])
            raise CatalogError(f"updated items: row {row}: field 'content_id' {cols['ids'][row]!r} is not in the catalog")
        for name in ("language", "kind", "difficulty", "created_at"):
            if cols[name] is not None:
                getattr(self, name)[idx] = cols[name]
        # topic sets: drop the edited items' CSR entries, add their new ones, regroup by item
        n = len(self)
        item_of_entry = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.topic_ptr))
        edited = np.zeros(n, bool)
        edited[idx] = True
        keep = ~edited[item_of_entry]
        lists = cols["topics"]
        new_items = np.repeat(idx, [len(t) for t in lists])
        new_pos = np.concatenate([np.arange(len(t)) for t in lists]) if lists else np.zeros(0, np.int64)
        new_topics = np.asarray([self.topics.add(t) for ts in lists for t in ts], np.int32)
        old_pos = np.arange(len(self.topic_idx)) - self.topic_ptr[item_of_entry]
        all_items = np.concatenate([item_of_entry[keep], new_items])
        all_pos = np.concatenate([old_pos[keep], new_pos])
        order = np.lexsort((all_pos, all_items))
        self.topic_idx = np.concatenate([self.topic_idx[keep], new_topics])[order]
        self.topic_ptr = np.concatenate([[0], np.cumsum(np.bincount(all_items, minlength=n))]).astype(np.int64)
        self.primary_topic = self.topic_idx[self.topic_ptr[:-1]]
        self.compact()
        self._median_n = -1  # difficulties or topics moved: medians are recomputed lazily
        return idx

    def compact(self) -> None:
        """Rebuild the sorted topic index over every item and empty the delta (O(n log n))."""
        n = len(self)
        n_lang = max(len(self.languages), 1)
        item_of_entry = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.topic_ptr))
        keys = self.topic_idx.astype(np.int64) * n_lang + self.language[item_of_entry]
        order = np.lexsort((self.difficulty[item_of_entry], keys))
        self._key_items = item_of_entry[order]
        self._key_ptr = np.searchsorted(keys[order], np.arange(len(self.topics) * n_lang + 1)).astype(np.int64)
        self._n_lang_indexed = n_lang
        self._delta = {}
        self._n_compacted = n

    # ------------------------------------------------------------------ lookup
    def __len__(self) -> int:
        return len(self.content_ids)

    def index_of(self, content_ids) -> np.ndarray:
        """Item indices of ``content_ids``; -1 for unknown ids."""
        get = self._item_pos.get
        ids = content_ids.tolist() if isinstance(content_ids, np.ndarray) else list(content_ids)
        return np.fromiter((get(str(c), -1) for c in ids), np.int64, len(ids))

    def topic_index_of(self, topic_ids) -> np.ndarray:
        return np.fromiter((self.topics.get(str(t)) for t in topic_ids), np.int64)

    def language_codes(self, languages) -> np.ndarray:
        return np.asarray([c for c in (self.languages.get(str(x)) for x in languages) if c >= 0], np.int64)

    def languages_without_items(self, languages) -> tuple[list[str], list[str]]:
        """(the asked languages no item is in, sorted; the catalog's languages): a request for the
        first can only get an empty path, which the CLI and the API say rather than serve."""
        absent = sorted({str(x) for x in languages if self.languages.get(str(x)) < 0})
        return absent, sorted(t for t in self.languages.tokens if t != UNKNOWN_LANGUAGE)

    def item_topics(self, i: int) -> np.ndarray:
        return self.topic_idx[self.topic_ptr[i] : self.topic_ptr[i + 1]]

    def has_topic(self, items: np.ndarray, topic: int) -> np.ndarray:
        """(len(items),) bool: does each item carry ``topic`` (primary or secondary)."""
        out = np.zeros(len(items), bool)
        for j, i in enumerate(items):
            out[j] = topic in self.item_topics(int(i))
        return out

    def topic_items(self, topic: int, languages: np.ndarray | None = None) -> np.ndarray:
        """Items carrying ``topic`` in the given language codes (all when None), sorted by
        difficulty within each language, followed by items added since the last compaction."""
        langs = np.arange(max(len(self.languages), 1)) if languages is None else np.asarray(languages)
        parts = []
        for lang in langs:
            lang = int(lang)
            if lang < self._n_lang_indexed and topic < (len(self._key_ptr) - 1) // self._n_lang_indexed:
                key = topic * self._n_lang_indexed + lang
                parts.append(self._key_items[self._key_ptr[key] : self._key_ptr[key + 1]])
            extra = self._delta.get((topic, lang))
            if extra:
                parts.append(np.asarray(extra, np.int64))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def fresh_items(self, topic: int, languages: np.ndarray | None = None) -> np.ndarray:
        """Items added since the last compaction, for ``topic`` (the cold-start pool)."""
        langs = np.arange(max(len(self.languages), 1)) if languages is None else np.asarray(languages)
        parts = [np.asarray(self._delta.get((topic, int(lang)), []), np.int64) for lang in langs]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def topic_median_difficulty(self, topic: int) -> float:
        """Median difficulty of the items whose primary topic is ``topic`` (0.5 when none)."""
        if self._median_n != len(self):  # items were added: recompute lazily
            self._median, self._median_n = {}, len(self)
        if topic not in self._median:
            d = self.difficulty[self.primary_topic == topic]
            self._median[topic] = float(np.median(d)) if len(d) else 0.5
        return self._median[topic]

    def topic_mean_difficulty(self) -> dict[str, float]:
        """topic id -> mean difficulty of its primary-topic items (topics without items left out)."""
        n = np.bincount(self.primary_topic, minlength=len(self.topics))
        total = np.bincount(self.primary_topic, weights=self.difficulty.astype(np.float64), minlength=len(self.topics))
        return {t: float(total[i] / n[i]) for i, t in enumerate(self.topics.tokens) if n[i] > 0}

    def topic_name(self, topic_id: str) -> str:
        return self.topic_names.get(topic_id, topic_id)
