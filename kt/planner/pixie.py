"""Pixie random walks on the item-folder graph (Eksombatchai et al., "Pixie: A System for
Recommending 3+ Billion Items to 200+ Million Users in Real-Time", WWW 2018).

What follows the paper:
* walks alternate item -> random folder -> random item, restarting at their seed item with
  probability ``restart`` per step (Algorithm 1, with the walk length drawn geometrically);
* a query with several weighted seed items splits its step budget over seeds in proportion to
  ``w_q * s_q`` where ``s_q = deg(q) * (C - log deg(q))`` (Algorithm 3): well-connected seeds get
  more steps, sub-linearly;
* early stopping once ``n_p`` items have been visited at least ``n_v`` times (Sec. 3.1);
* multi-hit boosting: per-seed visit counts combine as ``V[p] = (sum_q sqrt(V_q[p]))^2``, so an
  item reached from several seeds beats one reached often from a single seed;
* biased walks: the paper biases edge choice toward the user's features (language, topic); here
  the folder -> item step draws up to ``language_tries`` items and keeps the first in one of the
  user's languages, and visits to other-language items count ``foreign_visit_weight``.

Where it departs: all walkers advance together as numpy arrays (one gather per hop for every
walker) instead of one walk at a time, and seeds' weights come from highlight recency
(exponential decay, computed by the planner) rather than pin-action types.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from kt.planner.graph import ItemFolderGraph


@dataclass
class PixieConfig:
    total_steps: int = 20_000  # step budget N over all seeds
    n_walkers: int = 512  # walkers advanced together
    restart: float = 0.5  # restart probability per step (mean walk length 1/restart hops)
    n_p: int = 200  # early stopping: stop once n_p items ...
    n_v: int = 4  # ... have at least n_v visits
    check_every: int = 1  # rounds between early-stopping checks
    language_tries: int = 3  # folder -> item draws to find an item in the user's languages
    foreign_visit_weight: float = 0.0  # visit weight of items outside the user's languages
    max_candidates: int = 500  # items returned, best first


@dataclass
class WalkResult:
    """Candidates, best first. ``items``: catalog indices; ``scores``: boosted visit scores;
    ``visits``: raw visit counts summed over seeds; ``n_seeds_hit``: seeds reaching each item."""

    items: np.ndarray
    scores: np.ndarray
    visits: np.ndarray
    n_seeds_hit: np.ndarray
    steps: int
    stopped_early: bool

    @classmethod
    def empty(cls) -> WalkResult:
        z = np.zeros(0, np.int64)
        return cls(z, np.zeros(0), z, z, 0, False)

    def lookup(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, visits) of ``items``; 0 for items the walk did not reach."""
        items = np.asarray(items, np.int64)
        scores, visits = np.zeros(len(items)), np.zeros(len(items), np.int64)
        if len(self.items) == 0 or len(items) == 0:
            return scores, visits
        order = np.argsort(self.items, kind="stable")
        j = order[np.minimum(np.searchsorted(self.items[order], items), len(order) - 1)]
        hit = self.items[j] == items
        scores[hit], visits[hit] = self.scores[j[hit]], self.visits[j[hit]]
        return scores, visits


_scratch = threading.local()


def _visit_counts(n_items: int) -> np.ndarray:
    """A zeroed (n_items,) float32 buffer, reused by this thread's walks: allocating and zeroing
    one per request costs more than the walk itself at a million items. The walk zeroes the
    entries it touched before returning."""
    buf = getattr(_scratch, "counts", None)
    if buf is None or len(buf) < n_items:
        buf = _scratch.counts = np.zeros(n_items, np.float32)
    return buf


def seed_steps(graph: ItemFolderGraph, seeds: np.ndarray, weights: np.ndarray, total: int) -> np.ndarray:
    """Pixie's step allocation: N_q ∝ w_q * deg(q) * (C - log deg(q)), C = log max degree + 1."""
    deg = graph.item_degree[seeds].astype(np.float64)
    c = np.log(max(deg.max(initial=1.0), 1.0)) + 1.0
    s = weights * deg * (c - np.log(np.maximum(deg, 1.0)))
    if s.sum() <= 0:
        return np.zeros(len(seeds), np.int64)
    return np.floor(total * s / s.sum()).astype(np.int64)


def multi_hit_boost(keys: np.ndarray, weights: np.ndarray, n_items: int):
    """Combine visits ``keys = seed * n_items + item`` (with per-visit ``weights``) into
    (items, boosted scores (sum_q sqrt V_q[p])^2, summed visits, seeds hitting each item)."""
    ukeys, kinv = np.unique(keys, return_inverse=True)
    per_seed_visits = np.bincount(kinv, weights=weights)  # V_q[p] for each (seed, item) pair seen
    items, iinv = np.unique(ukeys % n_items, return_inverse=True)
    boosted = np.bincount(iinv, weights=np.sqrt(per_seed_visits)) ** 2
    visits = np.bincount(iinv, weights=per_seed_visits)
    n_hit = np.bincount(iinv, weights=(per_seed_visits > 0).astype(np.float64)).astype(np.int64)
    return items, boosted, visits, n_hit


def pixie_walk(
    graph: ItemFolderGraph,
    seeds: np.ndarray,
    weights: np.ndarray,
    config: PixieConfig,
    rng: np.random.Generator,
    item_language: np.ndarray | None = None,
    languages: np.ndarray | None = None,
) -> WalkResult:
    """Run the walks from ``seeds`` (catalog indices) with ``weights``; see the module docstring.

    ``item_language`` (n_items,) and ``languages`` (codes) turn on the language bias.
    Deterministic for a given ``rng`` state.
    """
    seeds = np.asarray(seeds, np.int64)
    weights = np.asarray(weights, np.float64)
    ok = (seeds < graph.n_items) & (weights > 0)
    ok[ok] &= graph.item_degree[seeds[ok]] > 0
    seeds, weights = seeds[ok], weights[ok]
    if len(seeds) == 0:
        return WalkResult.empty()
    # merge repeated seeds (the same item highlighted twice) by summing their weights
    seeds, inv = np.unique(seeds, return_inverse=True)
    weights = np.bincount(inv, weights=weights)
    steps = seed_steps(graph, seeds, weights, config.total_steps)
    keep = steps > 0
    seeds, steps = seeds[keep], steps[keep]
    if len(seeds) == 0:
        return WalkResult.empty()
    # walkers per seed ∝ its step budget; every walker runs the same number of rounds
    n_walkers = max(len(seeds), min(config.n_walkers, int(steps.sum())))
    per_seed = np.maximum(1, np.round(n_walkers * steps / steps.sum()).astype(np.int64))
    walker_seed = np.repeat(np.arange(len(seeds)), per_seed)  # (W,) seed slot of each walker
    rounds = max(1, int(steps.sum()) // len(walker_seed))
    home = seeds[walker_seed]  # (W,) seed item of each walker
    cur = home.copy()
    biased = item_language is not None and languages is not None and len(languages) > 0
    lang_set = np.zeros(int(item_language.max(initial=0)) + 1 if biased else 1, bool)
    if biased:
        lang_set[languages[languages < len(lang_set)]] = True

    n_items = graph.n_items
    counts = _visit_counts(n_items)  # language-weighted visits, for early stopping
    visited_keys: list[np.ndarray] = []
    visited_w: list[np.ndarray] = []
    stopped = False
    done = 0
    n_hit_items = 0
    w = len(cur)
    for r in range(rounds):
        # item -> folder: a uniformly random folder of the current item
        f_off = (rng.random(w) * graph.item_degree[cur]).astype(np.int64)
        folder = graph.item_folders[graph.item_ptr[cur] + f_off]
        # folder -> item, biased to the user's languages by redrawing off-language picks
        fdeg = graph.folder_degree[folder]
        nxt = graph.folder_items[graph.folder_ptr[folder] + (rng.random(w) * fdeg).astype(np.int64)]
        if biased:
            for _ in range(config.language_tries - 1):
                miss = ~lang_set[item_language[nxt]]
                if not miss.any():
                    break
                redraw = graph.folder_items[
                    graph.folder_ptr[folder[miss]] + (rng.random(int(miss.sum())) * fdeg[miss]).astype(np.int64)
                ]
                nxt[miss] = redraw
            vw = np.where(lang_set[item_language[nxt]], 1.0, config.foreign_visit_weight)
        else:
            vw = np.ones(w)
        visited_keys.append(walker_seed * n_items + nxt)
        visited_w.append(vw)
        touched = np.unique(nxt)
        before = counts[touched]
        np.add.at(counts, nxt, vw.astype(np.float32))
        # items crossing n_v this round: O(walkers) per round instead of a scan of the catalog
        n_hit_items += int(np.count_nonzero((before < config.n_v) & (counts[touched] >= config.n_v)))
        done += w
        # restart: back to the seed with probability `restart`
        cur = np.where(rng.random(w) < config.restart, home, nxt)
        if (r + 1) % config.check_every == 0 and n_hit_items >= config.n_p:
            stopped = r + 1 < rounds
            break

    keys = np.concatenate(visited_keys)
    counts[keys % n_items] = 0.0  # hand the buffer back clean
    items, boosted, visits, n_hit = multi_hit_boost(keys, np.concatenate(visited_w), n_items)
    keep = boosted > 0
    items, boosted, visits, n_hit = items[keep], boosted[keep], visits[keep], n_hit[keep]
    order = np.lexsort((items, -boosted))[: config.max_candidates]
    return WalkResult(items[order], boosted[order], np.rint(visits[order]).astype(np.int64), n_hit[order], done, stopped)
