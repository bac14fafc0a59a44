"""Learning paths: prerequisite order, goals, any concept graph; prerequisite learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from planner_testlib import TableLearner, busiest_user, handmade_world, history_of

from kt.data.io import load_world
from kt.data.outcome import events_to_interactions
from kt.planner import (
    Catalog,
    ItemFolderGraph,
    LearnerModel,
    Planner,
    PlannerConfig,
    PrerequisiteGraph,
    edge_precision_recall,
    learn_prerequisites,
    render_path,
)
from kt.planner.evaluation import OracleLearner
from kt.planner.prerequisites import build_dag
from kt.sim import generate_world, preset
from kt.sim.env import LearnerEnv


def assert_prerequisite_order(path, prereqs: PrerequisiteGraph):
    topics = [b.topic_id for b in path.bundles]
    for i, t in enumerate(topics):
        later = set(topics[i + 1 :])
        assert not (prereqs.ancestors(t) & later), f"bundle {t} comes before its prerequisite(s) {prereqs.ancestors(t) & later}"


def test_paths_respect_prerequisites_on_the_simulated_world(tiny, planner, oracle):
    world, prereqs = tiny["world"], tiny["prereqs"]
    deep = max(prereqs.topics, key=lambda t: (len(prereqs.ancestors(t)), t))
    assert len(prereqs.ancestors(deep)) >= 1
    n_checked = 0
    for user in world.events["user_id"].value_counts().index[:8]:
        user = str(user)
        for goals in (None, [deep]):
            path = planner.plan(user, oracle, history_of(world, user), n_bundles=4, bundle_size=3, goal_topics=goals)
            assert_prerequisite_order(path, prereqs)
            n_checked += len(path.bundles)
    assert n_checked > 8


def test_planner_works_on_a_handmade_concept_graph():
    items, topics, prereq, folder_items = handmade_world()
    cat = Catalog.from_frames(items, topics)
    graph = ItemFolderGraph.from_frames(folder_items, cat)
    dag = PrerequisiteGraph.from_frame(prereq, topics["topic_id"])
    planner = Planner(cat, graph, dag, PlannerConfig(review_slots=0))
    learner = TableLearner({"alg": 0.95, "calc": 0.3, "linalg": 0.1, "ml": 0.0}, cat)
    assert isinstance(learner, LearnerModel)
    hist = pd.DataFrame({"content_id": ["alg-000", "alg-002", "calc-000"],
                         "timestamp": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True)})
    path = planner.plan("u1", learner, hist, n_bundles=3, bundle_size=3, languages=["en"], goal_topics=["ml"])
    topics_in_path = [b.topic_id for b in path.bundles]
    # alg is mastered; calc and linalg (ready: alg mastered) come before ml, which needs both
    assert set(topics_in_path[:2]) == {"calc", "linalg"} and topics_in_path[-1] == "ml"
    assert all(i.language == "en" and i.content_id not in set(hist["content_id"]) for b in path.bundles for i in b.items)
    assert "Machine learning" in render_path(path)
    one = planner.next_bundle("u1", learner, hist, 3, ["en"], ["ml"])
    assert one is not None and one.topic_id in {"calc", "linalg"}
    with pytest.raises(ValueError, match="unknown topic"):
        planner.plan("u1", learner, hist, goal_topics=["nope"])


def test_walk_candidates_are_found_from_highlights_and_reported(tiny, planner, oracle):
    world = tiny["world"]
    user = busiest_user(world)
    path = planner.plan(user, oracle, history_of(world, user), n_bundles=3, bundle_size=5)
    assert path.n_walk_candidates > 0 and path.walk_steps > 0
    sources = {i.source for b in path.bundles for i in b.items}
    assert sources <= {"pixie", "topic_index", "fresh", "review"}


def test_build_dag_drops_the_weakest_edge_of_a_cycle():
    g = build_dag(["a", "b", "c"], [(0.9, "a", "b"), (0.8, "b", "c"), (0.1, "c", "a")], reduce=False)
    assert set(g.edges) == {("a", "b"), ("b", "c")}
    g = build_dag(["a", "b", "c"], [(0.9, "a", "b"), (0.8, "b", "c"), (0.7, "a", "c")], reduce=True)
    assert set(g.edges) == {("a", "b"), ("b", "c")}  # a -> c is implied: transitive reduction
    with pytest.raises(ValueError, match="cycle"):
        PrerequisiteGraph(["a", "b"], [("a", "b"), ("b", "a")])


def test_learned_prerequisites_beat_chance_on_a_tiny_world(tmp_path):
    # the tiny preset with 300 users (about 6k events, under a second): 50 users are too few
    generate_world(preset("tiny", n_users=300), tmp_path)
    world = load_world(tmp_path)
    inter, _ = events_to_interactions(world.events, world.items)
    catalog = Catalog.from_world(world)
    learned = learn_prerequisites(inter, world.topics["topic_id"], topic_difficulty=catalog.topic_mean_difficulty())
    scores = edge_precision_recall(learned, PrerequisiteGraph.from_frame(world.prerequisites, world.topics["topic_id"]))
    assert scores["n_learned"] >= 1
    assert scores["precision"] > scores["chance_precision"]
    # the learned graph is a DAG the planner can use
    assert learned.topological(learned.topics)


def test_planner_from_world_learns_prerequisites_when_the_catalog_has_none(tmp_path):
    # 300 users: enough interactions for edges (50 users give none, which would prove nothing)
    generate_world(preset("tiny", n_users=300), tmp_path)
    world = load_world(tmp_path)
    no_prereqs = type(world)(**{**world.__dict__, "prerequisites": world.prerequisites.iloc[0:0]})
    planner = Planner.from_world(no_prereqs)
    inter, _ = events_to_interactions(world.events, world.items)
    expected = learn_prerequisites(inter, world.topics["topic_id"],
                                   topic_difficulty=Catalog.from_world(world).topic_mean_difficulty())
    assert planner.prerequisites.edges and planner.prerequisites.edges == expected.edges
    assert set(planner.prerequisites.topics) >= set(world.topics["topic_id"])
    user = busiest_user(world)
    oracle = OracleLearner(LearnerEnv.from_world(tmp_path))
    path = planner.plan(user, oracle, history_of(world, user), n_bundles=2, bundle_size=3)
    assert path.bundles and np.isfinite([i.predicted_success for b in path.bundles for i in b.items]).all()


@pytest.mark.parametrize("now", [None, "2026-01-15T00:00:00Z"])
def test_interests_decay_with_the_age_of_highlights(now):
    """A highlight one half-life older than another weighs half as much (timestamps in seconds,
    whatever pandas' datetime resolution)."""
    items, topics, prereq, folder_items = handmade_world()
    cat = Catalog.from_frames(items, topics)
    planner = Planner(cat, ItemFolderGraph.from_frames(folder_items, cat),
                      PrerequisiteGraph.from_frame(prereq, topics["topic_id"]), PlannerConfig(recency_half_life_days=7.0))
    hist = pd.DataFrame({"content_id": ["calc-000", "alg-000"],
                         "timestamp": ["2026-01-15T00:00:00Z", "2026-01-08T00:00:00Z"]})
    interests = planner._request("u1", hist, ["en"], now).interests
    assert interests["calc"] == pytest.approx(1.0) and interests["alg"] == pytest.approx(0.5)


def _handmade_planner(config: PlannerConfig | None = None, extra_topics: pd.DataFrame | None = None):
    items, topics, prereq, folder_items = handmade_world()
    if extra_topics is not None:
        topics = pd.concat([topics, extra_topics], ignore_index=True)
    cat = Catalog.from_frames(items, topics)
    dag = PrerequisiteGraph.from_frame(prereq, topics["topic_id"])
    return Planner(cat, ItemFolderGraph.from_frames(folder_items, cat), dag, config or PlannerConfig()), dag


def test_review_slots_say_whether_they_review_a_prerequisite_or_interleave_the_goal_path():
    planner, dag = _handmade_planner()
    learner = TableLearner({"alg": 0.6, "calc": 0.6, "linalg": 0.3, "ml": 0.3}, planner.catalog)
    hist = pd.DataFrame({"content_id": ["alg-000", "calc-000"], "timestamp": ["2026-01-02", "2026-01-03"]})
    path = planner.plan("u", learner, hist, n_bundles=3, bundle_size=5, languages=["en"], goal_topics=["ml"])
    reviews = [(b.topic_id, i) for b in path.bundles for i in b.items if i.source == "review"]
    assert any(i.topic_id not in dag.ancestors(t) for t, i in reviews)  # calc inside the alg bundle
    for topic, item in reviews:
        if item.topic_id in dag.ancestors(topic):
            assert f"a prerequisite of {topic}" in item.reason
        else:  # calc needs alg: inside the alg bundle it is interleaved practice, not a prerequisite review
            assert "interleaved practice" in item.reason and "prerequisite" not in item.reason
            assert item.topic_id in dag.ancestors("ml") | {"ml"}


def test_topics_without_items_do_not_crowd_out_the_path():
    areas = pd.DataFrame({"topic_id": [f"area{k}" for k in range(6)], "name": [f"Area {k}" for k in range(6)]})
    planner, _ = _handmade_planner(extra_topics=areas)
    learner = TableLearner({"alg": 0.9, "calc": 0.3, "linalg": 0.3, "ml": 0.3}, planner.catalog)
    hist = pd.DataFrame({"content_id": ["alg-000"], "timestamp": ["2026-01-02"]})
    path = planner.plan("u", learner, hist, n_bundles=3, languages=["en"])
    assert {b.topic_id for b in path.bundles} >= {"calc", "linalg"}  # six empty areas ranked first gave none
    assert all(len(b.items) >= planner.config.min_bundle for b in path.bundles)


def test_catalog_items_added_directly_are_planned():
    planner, _ = _handmade_planner()
    learner = TableLearner({"alg": 0.9, "calc": 0.3, "linalg": 0.3, "ml": 0.3}, planner.catalog)
    planner.catalog.add_items(pd.DataFrame({"content_id": ["calc-x"], "language": ["en"], "topics": ["calc"],
                                            "difficulty": [0.55]}))  # not through Planner.add_items: was an IndexError
    hist = pd.DataFrame({"content_id": ["alg-000"], "timestamp": ["2026-01-02"]})
    path = planner.plan("u", learner, hist, n_bundles=3, languages="en")  # one code as a string, not 'e', 'n'
    assert path.bundles and path.languages == ["en"]


def test_an_item_on_two_review_topics_is_given_once():
    items = pd.DataFrame({"content_id": [f"ab{k}" for k in range(8)] + [f"c{k}" for k in range(10)], "language": "en",
                          "topics": ["a|b"] * 4 + ["b|a"] * 4 + ["c"] * 10,
                          "difficulty": [*np.linspace(0.5, 0.95, 8), *np.linspace(0.1, 0.9, 10)]})
    cat = Catalog.from_frames(items)
    graph = ItemFolderGraph.from_frames(pd.DataFrame({"folder_id": ["f"] * 18, "content_id": items["content_id"]}), cat)
    planner = Planner(cat, graph, PrerequisiteGraph(["a", "b", "c"], [("a", "c"), ("b", "c")]),
                      PlannerConfig(include_secondary=True, review_slots=2))
    bundle = planner.next_bundle("u", TableLearner({"a": 0.9, "b": 0.9, "c": 0.5}, cat), None, 5)
    ids = [i.content_id for i in bundle.items]
    assert sum(i.source == "review" for i in bundle.items) == 2 and len(ids) == len(set(ids))
