"""Target selection: evidence-backed readiness and staying on the goal's path."""

from __future__ import annotations

import pandas as pd

from kt.planner import PlannerConfig, PrerequisiteGraph
from kt.planner.targets import readiness, select_targets, topic_states


def _frame(rows):
    return pd.DataFrame(rows, columns=["topic_id", "mastery", "confidence", "n_obs", "stage"])


def test_a_never_practised_prerequisite_is_no_evidence_of_readiness():
    dag = PrerequisiteGraph(["a", "b"], [("a", "b")])
    cfg = PlannerConfig(ready_min_obs=3)
    # the model guesses 0.95 on "a" from the population, but the user never practised it
    guessed = topic_states(_frame([("a", 0.95, 0.0, 0, "new"), ("b", 0.2, 0.0, 0, "new")]), dag.topics, cfg)
    assert readiness("b", guessed, dag, cfg.ready_min_obs) == 0.0
    assert readiness("b", guessed, dag, 0) == 0.95  # the old reading
    first = select_targets(guessed, dag, {}, cfg, 1, ["b"])[0]
    assert first.topic_id == "a"  # learn the prerequisite before its dependent
    practised = topic_states(_frame([("a", 0.95, 0.5, 6, "learning"), ("b", 0.2, 0.0, 0, "new")]), dag.topics, cfg)
    assert readiness("b", practised, dag, cfg.ready_min_obs) == 0.95
    assert select_targets(practised, dag, {}, cfg, 1, ["b"])[0].topic_id == "b"


def test_with_a_goal_reviews_off_its_path_are_skipped():
    dag = PrerequisiteGraph(["a", "b", "x"], [("a", "b")])
    cfg = PlannerConfig()
    states = topic_states(_frame([("a", 0.9, 0.5, 9, "mastered"), ("b", 0.2, 0.1, 4, "learning"),
                                  ("x", 0.5, 0.1, 9, "needs_review")]), dag.topics, cfg)
    with_goal = [t.topic_id for t in select_targets(states, dag, {}, cfg, 5, ["b"])]
    assert "x" not in with_goal and with_goal[0] == "b"
    assert "x" in [t.topic_id for t in select_targets(states, dag, {}, cfg, 5)]  # no goal: review it


def test_topic_pool_is_sampled_from_unseen_items_so_it_does_not_run_dry():
    from planner_testlib import TableLearner, handmade_world

    from kt.planner import Catalog, ItemFolderGraph, Planner

    items, topics, prereq, _ = handmade_world(n_per_topic=30)
    cat = Catalog.from_frames(items, topics)
    no_folders = ItemFolderGraph.from_frames(pd.DataFrame({"folder_id": [], "content_id": []}), cat)
    dag = PrerequisiteGraph.from_frame(prereq, topics["topic_id"])
    # a pool of 4 per request: 15 English "alg" items must still come 3 at a time for 5 requests
    planner = Planner(cat, no_folders, dag, PlannerConfig(topic_pool=4, fresh_pool=0, review_slots=0, min_bundle=1))
    learner = TableLearner({"alg": 0.5, "calc": 0.0, "linalg": 0.0, "ml": 0.0}, cat)
    hist = pd.DataFrame({"content_id": pd.Series([], dtype=str), "timestamp": pd.to_datetime([], utc=True)})
    seen: list[str] = []
    for step in range(5):
        b = planner.next_bundle("u", learner, hist, 3, ["en"], ["alg"])
        assert b is not None and b.topic_id == "alg" and len(b.content_ids) == 3, f"step {step}: {b}"
        assert not set(b.content_ids) & set(seen)
        seen += b.content_ids
        ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(len(seen), unit="h")
        hist = pd.concat([hist, pd.DataFrame({"content_id": b.content_ids, "timestamp": [ts] * 3})], ignore_index=True)
    assert len(set(seen)) == 15


def test_a_mastered_stage_without_evidence_is_not_mastered():
    """A model's "mastered" after fewer than ready_min_obs observations is its prior guess: the
    topic stays on the goal's path instead of being skipped as known."""
    from kt.planner.targets import TopicState, is_mastered

    cfg = PlannerConfig(ready_min_obs=3)
    assert not is_mastered(TopicState(0.9, "mastered", n_obs=0), cfg)
    assert is_mastered(TopicState(0.9, "mastered", n_obs=3), cfg)
    assert is_mastered(TopicState(0.9, "mastered"), cfg)  # a model that does not count observations
    assert not is_mastered(TopicState(0.95, "needs_review", n_obs=10), cfg)


def _with_progress(rows):
    return pd.DataFrame(rows, columns=["topic_id", "mastery", "confidence", "n_obs", "stage", "progress"])


def test_stalled_targets_are_planned_after_the_others():
    """A topic whose mastery stopped rising over the model's last practices goes last, in order;
    unknown progress is not a stall, and ``min_progress=None`` turns the rule off."""
    dag = PrerequisiteGraph(["a", "b", "c"], [])
    rows = [("a", 0.3, 0.5, 9, "learning", 0.01), ("b", 0.4, 0.5, 9, "learning", None),
            ("c", 0.5, 0.5, 9, "learning", 0.2)]
    interests = {"a": 1.0, "b": 0.5}  # "a" would lead on interest and headroom
    cfg = PlannerConfig()
    order = [t.topic_id for t in select_targets(topic_states(_with_progress(rows), dag.topics, cfg), dag, interests, cfg, 3)]
    assert order == ["b", "c", "a"]
    off = PlannerConfig(min_progress=None)
    assert [t.topic_id for t in select_targets(topic_states(_with_progress(rows), dag.topics, off), dag, interests, off, 3)][0] == "a"
    # with a goal, the stalled ready prerequisite yields to its ready sibling
    dag = PrerequisiteGraph(["p", "q", "g"], [("p", "g"), ("q", "g")])
    rows = [("p", 0.2, 0.5, 9, "learning", 0.0), ("q", 0.4, 0.5, 9, "learning", 0.1), ("g", 0.1, 0.0, 0, "new", None)]
    states = topic_states(_with_progress(rows), dag.topics, cfg)
    goal_order = [t.topic_id for t in select_targets(states, dag, {}, cfg, 3, ["g"])]
    assert goal_order[0] == "q" and goal_order[-1] == "p"
    assert [t.topic_id for t in select_targets(states, dag, {}, off, 3, ["g"])][0] == "p"  # weakest first without


def test_a_stalled_prerequisite_is_not_swapped_in_for_an_out_of_reach_target():
    from planner_testlib import handmade_world

    from kt.planner import Catalog, ItemFolderGraph, Planner
    from kt.planner.targets import Target, TopicState

    items, topics, prereq, folder_items = handmade_world()
    cat = Catalog.from_frames(items, topics)
    dag = PrerequisiteGraph.from_frame(prereq, topics["topic_id"])
    target = Target("ml", "goal", "new", 0.0, 1.0, "goal")
    states = {"alg": TopicState(0.9, "mastered", n_obs=9), "calc": TopicState(0.2, "learning", n_obs=9, progress=0.0),
              "linalg": TopicState(0.4, "learning", n_obs=9, progress=0.15), "ml": TopicState(0.0, "new", n_obs=0)}
    for cfg, want in ((PlannerConfig(), "linalg"), (PlannerConfig(min_progress=None), "calc")):
        planner = Planner(cat, ItemFolderGraph.from_frames(folder_items, cat), dag, cfg)
        assert planner._weakest_prerequisite(target, states, set(), 0.1).topic_id == want
