"""Pixie walks: determinism, locality, early stopping, multi-hit boosting, language bias."""

from __future__ import annotations

import numpy as np

from kt.planner import ItemFolderGraph, PixieConfig, pixie_walk
from kt.planner.pixie import multi_hit_boost


def two_clusters() -> ItemFolderGraph:
    """Items 0-9 share folders 0-2, items 10-19 share folders 3-5; no edge between the groups."""
    items, folders = [], []
    for f in range(6):
        base = 0 if f < 3 else 10
        for i in range(base, base + 10):
            if (i + f) % 2 == 0 or f in (0, 3):
                items.append(i)
                folders.append(f)
    return ItemFolderGraph.from_edges(items, folders, n_items=20)


def test_walks_are_deterministic_and_stay_near_the_seed():
    g = two_clusters()
    cfg = PixieConfig(total_steps=2000, n_p=10_000)
    a = pixie_walk(g, np.array([0]), np.array([1.0]), cfg, np.random.default_rng(3))
    b = pixie_walk(g, np.array([0]), np.array([1.0]), cfg, np.random.default_rng(3))
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert len(a.items) > 5 and (a.items < 10).all()  # never leaves the seed's cluster
    c = pixie_walk(g, np.array([15]), np.array([1.0]), cfg, np.random.default_rng(3))
    assert (c.items >= 10).all()


def test_early_stopping_stops_once_enough_items_are_visited_enough():
    g = two_clusters()
    eager = pixie_walk(g, np.array([0]), np.array([1.0]), PixieConfig(total_steps=50_000, n_walkers=64, n_p=3, n_v=2,
                                                                       check_every=1), np.random.default_rng(0))
    full = pixie_walk(g, np.array([0]), np.array([1.0]), PixieConfig(total_steps=50_000, n_walkers=64, n_p=1000),
                      np.random.default_rng(0))
    assert eager.stopped_early and not full.stopped_early
    assert eager.steps < full.steps / 10
    assert (eager.visits >= 2).sum() >= 3


def test_multi_hit_boosting_prefers_items_reached_from_several_seeds():
    # seed 0 is filed with items 1 and 2; seed 3 with items 1 and 4: item 1 is reached from both
    g = ItemFolderGraph.from_edges([0, 1, 2, 3, 1, 4], [0, 0, 0, 1, 1, 1], n_items=5)
    res = pixie_walk(g, np.array([0, 3]), np.array([1.0, 1.0]), PixieConfig(total_steps=4000, n_p=10_000),
                     np.random.default_rng(1))
    scores = dict(zip(res.items.tolist(), res.scores.tolist(), strict=True))
    hits = dict(zip(res.items.tolist(), res.n_seeds_hit.tolist(), strict=True))
    visits = dict(zip(res.items.tolist(), res.visits.tolist(), strict=True))
    assert hits[1] == 2
    assert scores[1] > scores[2] and scores[1] > scores[4]
    assert visits[1] > visits[2] and visits[1] > visits[4]
    # (sum_q sqrt V_q)^2 exceeds the plain sum for an item hit from two seeds
    assert scores[1] > visits[1]


def test_boost_formula_beats_a_single_seed_with_the_same_visits():
    n = 10
    # item 7: 50 visits from seed 0 and 50 from seed 1; item 8: 100 visits from seed 0 only
    keys = np.concatenate([np.full(50, 0 * n + 7), np.full(50, 1 * n + 7), np.full(100, 0 * n + 8)])
    items, boosted, visits, hits = multi_hit_boost(keys, np.ones(len(keys)), n)
    assert items.tolist() == [7, 8] and visits.tolist() == [100, 100] and hits.tolist() == [2, 1]
    np.testing.assert_allclose(boosted, [200.0, 100.0])


def test_language_bias_prefers_and_filters_the_users_languages():
    # one big folder: items 0-9 language 0 ("en"), 10-19 language 1 ("ko"); the seed is item 0
    g = ItemFolderGraph.from_edges(list(range(20)), [0] * 20, n_items=20)
    lang = np.array([0] * 10 + [1] * 10)
    cfg = PixieConfig(total_steps=4000, n_p=10_000, foreign_visit_weight=0.0)
    res = pixie_walk(g, np.array([0]), np.array([1.0]), cfg, np.random.default_rng(0), lang, np.array([1]))
    assert len(res.items) and (lang[res.items] == 1).all()
    soft = PixieConfig(total_steps=4000, n_p=10_000, foreign_visit_weight=1.0, language_tries=3)
    res = pixie_walk(g, np.array([0]), np.array([1.0]), soft, np.random.default_rng(0), lang, np.array([1]))
    v = dict(zip(res.items.tolist(), res.visits.tolist(), strict=True))
    ko = sum(v.get(i, 0) for i in range(10, 20))
    en = sum(v.get(i, 0) for i in range(0, 10))
    assert ko > 3 * en  # 3 draws per hop: an English pick survives with probability 1/8


def test_seeds_without_folder_edges_give_an_empty_walk():
    g = ItemFolderGraph.from_edges([0, 1], [0, 0], n_items=3)
    res = pixie_walk(g, np.array([2]), np.array([1.0]), PixieConfig(), np.random.default_rng(0))
    assert len(res.items) == 0 and res.steps == 0


def test_lookup_gives_scores_and_visits_of_reached_items_and_zero_elsewhere():
    g = two_clusters()
    walk = pixie_walk(g, np.array([0]), np.array([1.0]), PixieConfig(total_steps=2000, n_p=10_000),
                      np.random.default_rng(3))
    query = np.array([walk.items[2], 15, walk.items[0], 19, walk.items[-1]])
    scores, visits = walk.lookup(query)
    np.testing.assert_array_equal(scores, [walk.scores[2], 0.0, walk.scores[0], 0.0, walk.scores[-1]])
    np.testing.assert_array_equal(visits, [walk.visits[2], 0, walk.visits[0], 0, walk.visits[-1]])
    empty = pixie_walk(g, np.array([0]), np.array([0.0]), PixieConfig(), np.random.default_rng(0))
    assert [x.tolist() for x in empty.lookup(np.array([1, 2]))] == [[0.0, 0.0], [0, 0]]
    assert [len(x) for x in walk.lookup(np.zeros(0, np.int64))] == [0, 0]
