"""The static part of a simulated world: topic DAG, catalog, users, folders.

Everything here is numpy arrays indexed 0..n-1 (string ids are made only when writing), so a
million-item catalog is a handful of arrays. Users and their folders are built per chunk
(:func:`make_users`) so memory does not grow with the number of users.

Random streams (numpy ``default_rng`` on a ``[seed, stream, ...]`` key) are separate per
component and per user chunk, so each piece is reproducible on its own: the catalog
``[seed, 1]``, users of chunk c ``[seed, 2, c]``, their simulated history ``[seed, 3, c]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kt.sim.config import SimConfig
from kt.sim.dynamics import DAY

MAX_PREREQS = 3
_KEY_SHIFT = np.int64(2**40)  # group * shift + (created + offset): one sortable int64 key
_KEY_OFFSET = np.int64(2**39)

_FIELDS = [
    "Algebra", "Statistics", "Machine Learning", "Biology", "Economics", "History", "Chemistry",
    "Physics", "Linguistics", "Programming", "Databases", "Music Theory", "Philosophy", "Geometry",
    "Finance", "Neuroscience", "Design", "Law", "Psychology", "Astronomy",
]  # fmt: skip
_SUFFIXES = [
    "Foundations", "Methods", "Models", "Applications", "Theory", "Practice", "Analysis",
    "Systems", "Advanced Topics", "Case Studies", "Tools", "Research",
]  # fmt: skip


def id_width(n: int) -> int:
    return max(3, len(str(max(n - 1, 0))))


def topic_ids(n: int) -> list[str]:
    w = id_width(n)
    return [f"t{k:0{w}d}" for k in range(n)]


def content_ids(idx: np.ndarray, n_items: int) -> list[str]:
    w = id_width(n_items)
    return [f"c{i:0{w}d}" for i in idx.tolist()]


def user_ids(idx: np.ndarray, n_users: int) -> list[str]:
    w = id_width(n_users)
    return [f"u{i:0{w}d}" for i in idx.tolist()]


@dataclass
class Catalog:
    """Topics and items. Shapes: K topics, N items, G = K * n_languages (topic, language) groups.

    layer, parent: (K,) int (parent = root ancestor along first prerequisites, -1 for roots).
    prereq: (K, 3) int, -1 padded. depth: (K,) float layer / (n_layers - 1) in [0, 1].
    item_topic, item_topic2 (-1 when none), item_language, item_kind: (N,) int.
    difficulty, created: (N,) float (created: seconds since day 0, negative = before the period).
    group_items: (N,) items sorted by (group, created); group_key: their sortable int64 keys;
    group_start: (G + 1,). pop_items, pop_cdf: the popular pool (items existing at day 0) with its
    Zipf cumulative distribution.
    """

    config: SimConfig
    topic_names: list[str]
    layer: np.ndarray
    parent: np.ndarray
    prereq: np.ndarray
    depth: np.ndarray
    item_topic: np.ndarray
    item_topic2: np.ndarray
    item_language: np.ndarray
    item_kind: np.ndarray
    difficulty: np.ndarray
    created: np.ndarray
    group_items: np.ndarray
    group_key: np.ndarray
    group_start: np.ndarray
    pop_items: np.ndarray
    pop_cdf: np.ndarray

    @property
    def n_topics(self) -> int:
        return len(self.topic_names)

    @property
    def languages(self) -> list[str]:
        return list(self.config.languages)

    @property
    def kinds(self) -> list[str]:
        return list(self.config.kinds)

    def kind_seconds(self) -> np.ndarray:
        return np.array([self.config.kind_seconds[k] for k in self.kinds])

    def available_end(self, t: float) -> np.ndarray:
        """(G,) end index into ``group_items`` of the items of each group created by time ``t``."""
        n_groups = len(self.group_start) - 1
        probe = np.arange(n_groups, dtype=np.int64) * _KEY_SHIFT + (np.int64(int(t)) + _KEY_OFFSET)
        return np.searchsorted(self.group_key, probe, side="right")


def make_topics(cfg: SimConfig, rng: np.random.Generator):
    """Layered random DAG: each topic in layer > 0 gets 0-3 prerequisites from earlier layers."""
    k = cfg.n_topics
    n_layers = int(np.clip(round(np.sqrt(k) / 1.5), 2, 8))
    layer = np.minimum((np.arange(k) * n_layers) // k, n_layers - 1)
    prereq = np.full((k, MAX_PREREQS), -1, dtype=np.int64)
    for t in range(k):
        if layer[t] == 0:
            continue
        n_pre = rng.choice(4, p=[0.1, 0.45, 0.3, 0.15])
        earlier = np.flatnonzero(layer < layer[t])
        previous = np.flatnonzero(layer == layer[t] - 1)
        # weight the immediately preceding layer 3x: prerequisites are mostly one step back
        w = np.where(layer[earlier] == layer[t] - 1, 3.0, 1.0)
        n_pre = min(n_pre, len(earlier))
        if n_pre == 0 and len(previous) and rng.random() < 0.5:
            n_pre = 1
        chosen = rng.choice(earlier, size=n_pre, replace=False, p=w / w.sum())
        prereq[t, :n_pre] = np.sort(chosen)
    parent = np.full(k, -1, dtype=np.int64)
    for t in range(k):  # topics are in layer order, so parents of prerequisites are known
        if layer[t] > 0 and prereq[t, 0] >= 0:
            p = prereq[t, 0]
            parent[t] = p if parent[p] < 0 else parent[p]
    names: list[str] = []
    seen: set[str] = set()
    roots = np.flatnonzero(layer == 0)
    for t in range(k):
        if layer[t] == 0:
            base = _FIELDS[int(np.searchsorted(roots, t)) % len(_FIELDS)]
            name = base
        else:
            root = parent[t] if parent[t] >= 0 else t
            base = names[root] if root < len(names) else _FIELDS[t % len(_FIELDS)]
            name = f"{base} {_SUFFIXES[int(rng.integers(len(_SUFFIXES)))]}"
        if name in seen:
            name = f"{name} {t}"
        seen.add(name)
        names.append(name)
    depth = layer / max(n_layers - 1, 1)
    return names, layer, parent, prereq, depth


def make_catalog(cfg: SimConfig) -> Catalog:
    rng = np.random.default_rng([cfg.seed, 1])
    names, layer, parent, prereq, depth = make_topics(cfg, rng)
    k, n = cfg.n_topics, cfg.n_items
    topic_w = 1.0 / (1.0 + rng.permutation(k)) ** cfg.topic_zipf
    item_topic = rng.choice(k, size=n, p=topic_w / topic_w.sum())
    # a second topic: one of the primary's prerequisites when it has any, else a random other topic
    has2 = rng.random(n) < cfg.secondary_topic_prob
    pick = prereq[item_topic, rng.integers(0, MAX_PREREQS, n)]
    other = (item_topic + 1 + rng.integers(0, k - 1, n)) % k
    item_topic2 = np.where(has2, np.where(pick >= 0, pick, other), -1)
    lw = np.array(list(cfg.languages.values()), dtype=np.float64)
    kw = np.array(list(cfg.kinds.values()), dtype=np.float64)
    item_language = rng.choice(len(lw), size=n, p=lw / lw.sum())
    item_kind = rng.choice(len(kw), size=n, p=kw / kw.sum())
    difficulty = np.clip(0.1 + 0.75 * depth[item_topic] + rng.normal(0.0, 0.12, n), 0.01, 0.99)
    is_new = rng.random(n) < cfg.new_item_fraction
    if is_new.all():  # a tiny catalog must keep one item from before day 0: the popular pool draws from them
        is_new[0] = False
    created = np.where(
        is_new, rng.uniform(0.0, cfg.days * DAY, n), -rng.uniform(0.0, 365.0 * DAY, n)
    ).astype(np.int64).astype(np.float64)
    group = item_topic * len(lw) + item_language
    key = group.astype(np.int64) * _KEY_SHIFT + (created.astype(np.int64) + _KEY_OFFSET)
    order = np.argsort(key, kind="stable")
    group_start = np.searchsorted(group[order], np.arange(k * len(lw) + 1))
    old = np.flatnonzero(created <= 0)
    pop_items = rng.permutation(old)
    pop_w = 1.0 / (1.0 + np.arange(len(pop_items))) ** cfg.popularity_zipf
    pop_cdf = np.cumsum(pop_w) / pop_w.sum()
    return Catalog(
        config=cfg, topic_names=names, layer=layer, parent=parent, prereq=prereq, depth=depth,
        item_topic=item_topic, item_topic2=item_topic2, item_language=item_language,
        item_kind=item_kind, difficulty=difficulty, created=created, group_items=order,
        group_key=key[order], group_start=group_start, pop_items=pop_items, pop_cdf=pop_cdf,
    )  # fmt: skip


def sample_popular(cat: Catalog, rng: np.random.Generator, n: int) -> np.ndarray:
    pos = np.minimum(np.searchsorted(cat.pop_cdf, rng.random(n)), len(cat.pop_items) - 1)
    return cat.pop_items[pos]


def sample_in_groups(
    cat: Catalog, rng: np.random.Generator, groups: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One uniformly random available item per requested group; ``ok`` False where it is empty."""
    lo = cat.group_start[groups]
    count = ends[groups] - lo
    ok = count > 0
    pos = lo + (rng.random(len(groups)) * np.maximum(count, 1)).astype(np.int64)
    return cat.group_items[np.minimum(pos, len(cat.group_items) - 1)], ok


@dataclass
class UserChunk:
    """Users [lo, hi) with their folders. U users, F folders, FI folder items.

    lang1, lang2 (-1 when none), n_interests, activity, created: (U,). interests: (U, I) -1 padded.
    m0: (U, K) initial mastery. folder_ptr: (U + 1,) folders of local user u are
    folder_ptr[u]:folder_ptr[u+1]; folder_topic, folder_created: (F,); folder_item_ptr: (F + 1,);
    folder_items, folder_added: (FI,). Folder ids are f"f{user index}-{j}".
    """

    lo: int
    hi: int
    lang1: np.ndarray
    lang2: np.ndarray
    interests: np.ndarray
    n_interests: np.ndarray
    activity: np.ndarray
    created: np.ndarray
    m0: np.ndarray
    folder_ptr: np.ndarray
    folder_topic: np.ndarray
    folder_created: np.ndarray
    folder_item_ptr: np.ndarray
    folder_items: np.ndarray
    folder_added: np.ndarray

    @property
    def n(self) -> int:
        return self.hi - self.lo


def make_users(cat: Catalog, lo: int, hi: int, chunk_index: int) -> UserChunk:
    cfg = cat.config
    rng = np.random.default_rng([cfg.seed, 2, chunk_index])
    u, k = hi - lo, cat.n_topics
    lw = np.array(list(cfg.languages.values()), dtype=np.float64)
    n_lang = len(lw)
    lang1 = rng.choice(n_lang, size=u, p=lw / lw.sum())
    second = (lang1 + 1 + rng.integers(0, max(n_lang - 1, 1), u)) % n_lang
    second = np.where(lang1 != 0, 0, second)  # the second language is English unless that is the first
    lang2 = np.where((rng.random(u) < cfg.second_language_prob) & (n_lang > 1), second, -1)
    n_interests = rng.integers(1, cfg.max_interests + 1, u)
    interests = np.argsort(rng.random((u, k)), axis=1)[:, : cfg.max_interests]
    interests = np.where(np.arange(cfg.max_interests)[None, :] < n_interests[:, None], interests, -1)
    activity = rng.beta(cfg.activity_a, cfg.activity_b, u)
    created = -rng.uniform(0.0, 730.0 * DAY, u).astype(np.int64).astype(np.float64)

    # initial mastery: general skill z, easier (shallower) topics and interests known better,
    # then capped so no topic is known much better than its best-known prerequisite
    z = rng.normal(0.0, 1.0, (u, 1))
    is_interest = np.zeros((u, k), dtype=bool)
    rows = np.repeat(np.arange(u), cfg.max_interests)
    cols = interests.ravel()
    is_interest[rows[cols >= 0], cols[cols >= 0]] = True
    logit = 0.8 * z - 1.6 * cat.depth[None, :] + 0.6 * is_interest + 0.5 * rng.normal(0.0, 1.0, (u, k))
    m0 = cfg.floor + (1.0 - cfg.floor) * (1.0 / (1.0 + np.exp(-logit)))
    for t in range(k):
        pre = cat.prereq[t][cat.prereq[t] >= 0]
        if len(pre):
            m0[:, t] = np.minimum(m0[:, t], m0[:, pre].max(axis=1) + 0.15)

    # folders: each on one of the user's interests, filled with day-0 items of that topic
    n_f = np.minimum(rng.poisson(cfg.folders_per_user, u), 5)
    folder_ptr = np.concatenate([[0], np.cumsum(n_f)])
    f_user = np.repeat(np.arange(u), n_f)
    n_fold = len(f_user)
    f_topic = interests[f_user, (rng.random(n_fold) * n_interests[f_user]).astype(np.int64)]
    f_created = created[f_user] + rng.uniform(0.0, 1.0, n_fold) * -created[f_user]
    f_created = np.floor(f_created)
    f_size = 1 + rng.poisson(max(cfg.folder_items - 1.0, 0.0), n_fold)
    fi_folder = np.repeat(np.arange(n_fold), f_size)
    ends0 = cat.available_end(0.0)
    groups = f_topic[fi_folder] * n_lang + lang1[f_user[fi_folder]]
    items, ok = sample_in_groups(cat, rng, groups, ends0)
    items = np.where(ok, items, sample_popular(cat, rng, len(groups)))
    # a folder holds an item at most once: keep first occurrences, in order
    _, first = np.unique(fi_folder * np.int64(cfg.n_items) + items, return_index=True)
    keep = np.sort(first)
    fi_folder, items = fi_folder[keep], items[keep]
    folder_item_ptr = np.concatenate([[0], np.cumsum(np.bincount(fi_folder, minlength=n_fold))])
    base = np.maximum(f_created[fi_folder], cat.created[items])
    added = np.floor(base + rng.uniform(0.0, 1.0, len(items)) * -base)
    return UserChunk(
        lo=lo, hi=hi, lang1=lang1, lang2=lang2, interests=interests, n_interests=n_interests,
        activity=activity, created=created, m0=m0, folder_ptr=folder_ptr, folder_topic=f_topic,
        folder_created=f_created, folder_item_ptr=folder_item_ptr, folder_items=items, folder_added=added,
    )  # fmt: skip


def chunk_bounds(cfg: SimConfig) -> list[tuple[int, int]]:
    return [(lo, min(lo + cfg.user_chunk, cfg.n_users)) for lo in range(0, cfg.n_users, cfg.user_chunk)]
