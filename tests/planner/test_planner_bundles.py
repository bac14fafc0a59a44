"""Bundles: difficulty band, size, language, exclusion of consumed items, order, diversity, reasons."""

from __future__ import annotations

import numpy as np
from planner_testlib import busiest_user, history_of

from kt.planner import PlannerConfig
from kt.planner.bundles import band_select, mmr


def test_band_select_widens_only_when_too_few_items_fall_in_the_band():
    p = np.array([0.2, 0.72, 0.8, 0.84, 0.9, 0.95])
    idx, used = band_select(p, (0.7, 0.85), 3, 0.05, 0.4)
    assert sorted(idx.tolist()) == [1, 2, 3] and used == (0.7, 0.85)
    idx, used = band_select(p, (0.7, 0.85), 5, 0.05, 0.4)
    assert len(idx) == 5 and used[1] > 0.85 and 0 not in idx.tolist()
    idx, used = band_select(np.array([0.01, 0.02, 0.03]), (0.7, 0.85), 2, 0.05, 0.1)
    assert sorted(idx.tolist()) == [1, 2]  # nearest to the band after the widening runs out


def test_mmr_trades_relevance_for_diversity():
    rel = np.array([1.0, 0.99, 0.5])
    sim = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # items 0 and 1 are twins
    assert mmr(rel, sim, 2, lam=1.0) == [0, 1]
    assert mmr(rel, sim, 2, lam=0.5) == [0, 2]


def test_bundles_respect_band_size_language_exclusion_and_order(tiny, planner, oracle):
    world = tiny["world"]
    user = busiest_user(world)
    hist = history_of(world, user)
    path = planner.plan(user, oracle, hist, n_bundles=3, bundle_size=4, languages=["en"])
    assert path.bundles
    consumed = set(hist["content_id"])
    seen: set[str] = set()
    for b in path.bundles:
        assert 1 <= len(b.items) <= 4
        lo, hi = b.band
        assert lo <= planner.config.band[0] and hi >= planner.config.band[1]
        ps = [i.predicted_success for i in b.items]
        assert ps == sorted(ps, reverse=True)  # easy to hard
        for it in b.items:
            assert it.language == "en" and it.content_id not in consumed and it.content_id not in seen
            seen.add(it.content_id)
            assert it.reason and it.topic_id in it.reason or tiny["catalog"].topic_name(it.topic_id) in it.reason
            assert f"{it.predicted_success:.2f}" in it.reason
            assert it.source in ("pixie", "topic_index", "fresh", "review")
        main = [i for i in b.items if i.source != "review"]
        if len([i for i in main if lo <= i.predicted_success <= hi]) == len(main):
            continue
        # when the band had to be widened, the widened band is reported and items lie in it or nearest it
        assert b.band != planner.config.band
    d = path.to_dict()
    assert d["bundles"][0]["items"][0]["reason"] and isinstance(d["bundles"][0]["band"], list)
    # a language no item is in gives nothing, never items in every language
    none = planner.plan(user, oracle, hist, n_bundles=3, bundle_size=4, languages=["zz"])
    assert none.bundles == [] and none.languages == ["zz"]


def test_bundle_sizes_are_clipped_to_the_configured_limits(tiny, oracle):
    from kt.planner import Planner

    p = Planner(tiny["catalog"], tiny["graph"], tiny["prereqs"], PlannerConfig(min_bundle=3, max_bundle=4, review_slots=0))
    world = tiny["world"]
    user = busiest_user(world)
    path = p.plan(user, oracle, history_of(world, user), n_bundles=2, bundle_size=50)
    assert path.bundles and all(len(b.items) <= 4 for b in path.bundles)


def test_items_fall_in_the_band_when_the_catalog_has_them():
    from planner_testlib import TableLearner, handmade_world

    from kt.planner import Catalog, ItemFolderGraph, Planner, PrerequisiteGraph

    items, topics, prereq, folder_items = handmade_world(n_per_topic=120)
    cat = Catalog.from_frames(items, topics)
    planner = Planner(cat, ItemFolderGraph.from_frames(folder_items, cat), PrerequisiteGraph.from_frame(prereq),
                      PlannerConfig(band=(0.7, 0.85), review_slots=0))
    learner = TableLearner({"alg": 0.5, "calc": 0.3, "linalg": 0.2, "ml": 0.0}, cat)
    path = planner.plan("someone", learner, None, n_bundles=1, bundle_size=5, languages=["en"])
    b = path.bundles[0]
    assert b.band == (0.7, 0.85) and len(b.items) == 5
    assert all(0.7 <= i.predicted_success <= 0.85 for i in b.items)
    assert len({i.kind for i in b.items}) >= 2  # MMR mixes kinds among near-equal candidates


def test_band_aim_picks_the_hard_or_the_easy_side_of_the_band():
    from planner_testlib import TableLearner, handmade_world

    from kt.planner import Catalog, ItemFolderGraph, Planner, PrerequisiteGraph

    items, topics, prereq, folder_items = handmade_world(n_per_topic=120)
    cat = Catalog.from_frames(items, topics)
    learner = TableLearner({"alg": 0.5, "calc": 0.3, "linalg": 0.2, "ml": 0.0}, cat)
    mean_p = {}
    for aim in (0.0, 1.0):
        cfg = PlannerConfig(band=(0.6, 0.9), band_aim=aim, review_slots=0, mmr_lambda=1.0)
        planner = Planner(cat, ItemFolderGraph.from_frames(folder_items, cat), PrerequisiteGraph.from_frame(prereq), cfg)
        b = planner.plan("someone", learner, None, n_bundles=1, bundle_size=5, languages=["en"]).bundles[0]
        assert all(0.6 <= i.predicted_success <= 0.9 for i in b.items)
        mean_p[aim] = np.mean([i.predicted_success for i in b.items])
    assert mean_p[0.0] < 0.7 < 0.8 < mean_p[1.0]
