"""Policies in the simulator: every policy runs from the same state and gets E_p and the other measures."""

from __future__ import annotations

import numpy as np
import torch

from kt.data.outcome import events_to_interactions
from kt.data.sequences import Vocab
from kt.mastery.tracker import MasteryTracker
from kt.models.base import build_model
from kt.planner import Planner, PlannerConfig
from kt.planner.evaluation import (
    EvalConfig,
    OracleLearner,
    SimulatorGreedyPolicy,
    best_baseline,
    evaluate,
    is_reference,
    make_setup,
    results_table,
)
from kt.planner.policies import PlannerPolicy, Request, baseline_policies, target_items


def test_evaluation_runs_every_policy_and_reports_e_p(tiny):
    world, env = tiny["world"], tiny["env"]
    planner = Planner(tiny["catalog"], tiny["graph"], tiny["prereqs"], PlannerConfig())
    inter, _ = events_to_interactions(world.events, world.items)
    cfg = EvalConfig(users=6, steps=2, bundle_size=3, min_goal_ancestors=1, min_history=3)
    setup = make_setup(world, env, tiny["prereqs"], inter, cfg)
    assert len(setup.users) == 6
    for u in setup.users:  # targets = goal + its ancestors, prerequisites first
        assert setup.targets[u][-1] == setup.goals[u]
        assert set(setup.targets[u][:-1]) == tiny["prereqs"].ancestors(setup.goals[u])
    before = env.state.m.copy()
    policies = [*baseline_policies(planner, world.events["content_id"].value_counts()), PlannerPolicy(planner)]
    results = evaluate(policies, env, setup, planner, world.items, lambda e: OracleLearner(e), cfg)
    np.testing.assert_array_equal(env.state.m, before)  # policies ran on forks
    assert [r.policy for r in results] == ["random", "popularity", "pixie", "kt_greedy", "planner"]
    for r in results:
        assert np.isfinite(r.e_p) and -1.0 <= r.e_p <= 1.0 and len(r.per_user_e_p) == 6
        assert r.e_start == results[0].e_start  # identical starting states
        assert 0 < r.n_consumed <= 6 * 2 * 3 and 0.0 <= r.success_rate <= 1.0
        assert 0.0 < r.coverage <= 1.0 and 0.0 <= r.diversity <= 1.0
    e_p = {r.policy: r.e_p for r in results}
    assert e_p["planner"] > e_p["random"]  # with true knowledge the planner must teach more than chance
    table = results_table(results)
    assert "| planner |" in table and "E_p" in table


def test_evaluation_drives_the_mastery_tracker(tiny):
    """The KT-based policies read an (untrained, tiny) DKT through the real MasteryTracker, which
    absorbs the simulated events after every step."""
    world, env = tiny["world"], tiny["env"]
    torch.manual_seed(0)
    items = Vocab(sorted(world.items["content_id"].astype(str)))
    topics = Vocab(sorted(world.topics["topic_id"].astype(str)))
    model = build_model("dkt", num_items=len(items), num_concepts=len(topics), dim=8, hidden=8)
    inter, _ = events_to_interactions(world.events, world.items)
    cfg = EvalConfig(users=3, steps=2, bundle_size=3, min_goal_ancestors=1, min_history=3)
    setup = make_setup(world, env, tiny["prereqs"], inter, cfg)
    trackers = []

    def factory(_env):
        tr = MasteryTracker(model, items, topics, world.items)
        tr.observe_many(setup.interactions[["user_id", "content_id", "topic_id", "outcome", "timestamp"]])
        trackers.append(tr)
        return tr

    planner = Planner(tiny["catalog"], tiny["graph"], tiny["prereqs"], PlannerConfig())
    [res] = evaluate([PlannerPolicy(planner)], env, setup, planner, world.items, factory, cfg)
    assert res.n_consumed > 0 and np.isfinite(res.e_p)
    u = setup.users[0]
    n_hist = int((setup.interactions["user_id"] == u).sum())
    assert trackers[0].topic_mastery(u)["n_obs"].sum() > n_hist  # the step events were observed


def test_simulator_greedy_ceiling_learns_more_than_random_and_is_no_baseline(tiny):
    """The ceiling reads the simulator's equations: one target topic per bundle, unseen items,
    and (over the same forks) more learning than random picks among the same items."""
    world, env = tiny["world"], tiny["env"]
    planner = Planner(tiny["catalog"], tiny["graph"], tiny["prereqs"], PlannerConfig())
    inter, _ = events_to_interactions(world.events, world.items)
    cfg = EvalConfig(users=8, steps=4, bundle_size=3, min_goal_ancestors=1, min_history=3)
    setup = make_setup(world, env, tiny["prereqs"], inter, cfg)
    ceiling = SimulatorGreedyPolicy(tiny["catalog"])
    u = setup.users[0]
    req = Request(u, setup.histories[u], setup.languages[u], [setup.goals[u]], setup.targets[u], 3)
    bundle = ceiling.recommend(req, OracleLearner(env), np.random.default_rng(0))
    allowed = set(tiny["catalog"].content_ids[target_items(tiny["catalog"], req)].tolist())
    assert 0 < len(bundle) <= 3 and set(bundle) <= allowed
    assert len({topics[0] for topics in env.item_topics(bundle)}) == 1  # one primary topic
    assert np.all(np.diff(env.difficulty(bundle)) >= 0)  # easy to hard
    random_policy = baseline_policies(planner, world.events["content_id"].value_counts())[0]
    results = evaluate([random_policy, ceiling], env, setup, planner, world.items, lambda e: OracleLearner(e), cfg)
    assert results[1].e_p > results[0].e_p
    assert best_baseline(results) == results[0].e_p  # a ceiling is never the baseline to beat
    # kept to a band of true success: its items sit closer to the band than the free ceiling's
    banded = SimulatorGreedyPolicy(tiny["catalog"], band=(0.70, 0.85))
    assert is_reference(banded.name) and "0.70-0.85" in banded.name
    in_band = banded.recommend(req, OracleLearner(env), np.random.default_rng(0))
    assert 0 < len(in_band) <= 3 and set(in_band) <= allowed

    def off_band(ids):
        p = env.success_probability(u, ids)
        return float(np.mean(np.maximum(0.70 - p, 0) + np.maximum(p - 0.85, 0)))

    assert off_band(in_band) <= off_band(bundle)


def test_the_oracle_reports_progress_over_its_last_practices(tiny):
    """``progress``: the true mastery after the latest practice minus after the one
    ``progress_window`` practices earlier (a bundle's practices share its change evenly)."""
    env = tiny["env"].fork()
    oracle = OracleLearner(env, progress_window=3)
    world = tiny["world"]
    user = str(world.events["user_id"].iloc[0])
    topic = str(world.items["topics"].str.split("|").str[0].value_counts().index[0])
    k = env.topic_index(topic)
    pool = [c for c, t in zip(world.items["content_id"], world.items["topics"].str.split("|").str[0], strict=True)
            if t == topic][:6]
    assert np.isnan(oracle.topic_mastery(user).set_index("topic_id").loc[topic, "progress"])
    after = []
    for bundle in (pool[:3], pool[3:6]):
        events, _ = env.consume(user, bundle)
        oracle.observe_many(events.assign(topic_id=topic))
        after.append(float(oracle.topic_mastery(user).set_index("topic_id").loc[topic, "mastery"]))
    progress = oracle.topic_mastery(user).set_index("topic_id").loc[topic, "progress"]
    m = env.success_probability(user, oracle.panel)[k]
    assert abs(progress - (m - after[0])) < 1e-9 and progress != 0
