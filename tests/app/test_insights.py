"""kt.insights on the fixture home: world browsing, mastery replay, what-if, MLflow and planner views."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kt import insights
from kt.config import Settings


@pytest.fixture(scope="module")
def world(kt_home):
    return insights.WorldIndex(Settings(home=kt_home[0]).world_dir)


@pytest.fixture(scope="module")
def tracker(kt_home, world):
    from kt.mastery.tracker import MasteryTracker
    from kt.train.tracking import load_champion

    loaded = load_champion(Settings(home=kt_home[0]))
    return MasteryTracker.from_loaded(loaded, world.table("items", ["content_id", "topics"]),
                                      topics=world.topics["topic_id"].astype(str).tolist())


@pytest.fixture(scope="module")
def busiest(world) -> str:
    ev = world.table("events", ["user_id"])
    return str(ev["user_id"].value_counts().sort_index().idxmax())


def test_counts_come_from_the_files(world, kt_home):
    facts = kt_home[1]
    c = world.counts()
    assert (c["users"], c["items"], c["events"], c["topics"]) == (facts["n_users"], facts["n_items"],
                                                                   facts["n_events"], facts["n_topics"])
    assert c["prerequisites"] == len(world.prerequisites) > 0


def test_user_search_pages_and_filters(world, kt_home):
    n = kt_home[1]["n_users"]
    first = world.search_users("", page=0, page_size=25)
    assert (first.total, first.n_pages, len(first.user_ids)) == (n, -(-n // 25), 25)
    last = world.search_users("", page=99, page_size=25)  # clamped to the last page
    assert last.page == first.n_pages - 1 and len(last.user_ids) == n - 25 * (first.n_pages - 1)
    everyone = sum((world.search_users("", p, 25).user_ids for p in range(first.n_pages)), [])
    assert everyone == sorted(world.table("users", ["user_id"])["user_id"].astype(str))
    hit = world.search_users(everyone[7].upper())
    assert everyone[7] in hit.user_ids and all(everyone[7] in u for u in hit.user_ids)
    assert world.search_users("no-such-user").total == 0


def test_user_events_are_that_users_events_in_time_order(world, busiest):
    ev = world.user_events(busiest)
    full = world.table("events", ["event_id", "user_id", "timestamp"])
    mine = full[full["user_id"] == busiest]
    assert sorted(ev["event_id"]) == sorted(mine["event_id"]) and len(ev) > 5
    assert ev["timestamp"].is_monotonic_increasing
    assert world.user_events("nobody").empty
    tl = world.highlight_timeline(busiest)
    assert len(tl) == len(ev) and tl["title"].notna().all() and set(tl["outcome"].dropna()) <= {0.0, 1.0}


def test_timeline_ends_at_the_trackers_mastery(world, tracker, busiest):
    inter = world.user_interactions(busiest)
    tracker.rebuild(busiest, inter[["user_id", "content_id", "topic_id", "outcome", "timestamp"]])
    now = tracker.topic_mastery(busiest).set_index("topic_id")["mastery"]
    tl = insights.mastery_timeline(tracker, inter, max_steps=10, max_topics=4)
    steps = sorted(tl["step"].unique())
    assert len(steps) == min(10, len(inter)) and steps[-1] == len(inter) and tl["topic_id"].nunique() == 4
    last = tl[tl["step"] == len(inter)].set_index("topic_id")["mastery"]
    np.testing.assert_allclose(last.to_numpy(), now.loc[last.index].to_numpy(), atol=1e-5)
    # the four most practised topics are the ones shown
    top = inter["topic_id"].value_counts()
    assert set(last.index) <= set(top.index) and top.loc[list(last.index)].min() >= (top.iloc[4:].max() if len(top) > 4 else 0)


def test_what_if_uses_a_copy_of_the_state(world, tracker, busiest):
    inter = world.user_interactions(busiest)
    tracker.rebuild(busiest, inter[["user_id", "content_id", "topic_id", "outcome", "timestamp"]])
    before = tracker.topic_mastery(busiest).set_index("topic_id")["mastery"]
    seen = set(inter["content_id"])
    bundle = [c for c in world.items["content_id"] if c not in seen][:3]
    good = insights.what_if_bundle(tracker, busiest, bundle).set_index("topic_id")
    bad = insights.what_if_bundle(tracker, busiest, bundle, outcome=0).set_index("topic_id")
    np.testing.assert_allclose(good.loc[before.index, "before"], before.to_numpy(), atol=1e-6)
    assert not np.allclose(good["after"], bad.loc[good.index, "after"])  # the assumed outcome matters
    after = tracker.topic_mastery(busiest).set_index("topic_id")["mastery"]
    np.testing.assert_allclose(after.to_numpy(), before.to_numpy())  # stored state untouched
    primary = set(world.items.set_index("content_id").loc[bundle, "topics"].str.split("|").str[0])
    assert set(good.index[good["in_bundle"]]) == primary
    with pytest.raises(KeyError, match="nope"):
        insights.what_if_bundle(tracker, busiest, ["nope"])


def test_batch_mastery_distribution(kt_home):
    path = insights.find_mastery_scores(Settings(home=kt_home[0]))
    assert path is not None
    hist, stages = insights.mastery_distribution(path)
    scores = pd.read_parquet(path)
    practised = scores[scores["n_obs"] > 0]
    assert hist["users"].sum() == stages["users"].sum() == len(practised)
    assert set(stages["stage"]) <= {"new", "learning", "needs_review", "mastered"}


def test_mlflow_views(kt_home):
    s = Settings(home=kt_home[0])
    runs = insights.runs_table(s)
    assert len(runs) == 1 and runs["status"].iloc[0] == "FINISHED" and "metrics.test_auc" in runs.columns
    champ = insights.champion_info(s)
    assert champ.version == kt_home[1]["version"] and champ.run_id == runs["run_id"].iloc[0]
    assert champ.metrics["test_auc"] == runs["metrics.test_auc"].iloc[0]  # the champion's own run
    hist = insights.metric_history(s, champ.run_id)
    assert len(set(hist.loc[hist["key"] == "valid_auc", "step"])) == 2  # two epochs
    table = insights.compare_runs(runs, [champ.run_id])
    assert "metrics.test_auc" in table.index and "params.model" in table.index
    # a parameter only one of two runs has (a model's own hyper-parameter) is a difference
    two = pd.DataFrame({"run_id": ["r1", "r2"], "run_name": ["sakt", "dkt"], "params.model": ["sakt", "dkt"],
                        "params.num_heads": ["4", None], "params.lr": ["0.001", "0.001"]})
    table = insights.compare_runs(two, ["r1", "r2"])
    assert table["differs"].to_dict() == {"params.model": True, "params.num_heads": True, "params.lr": False}
    assert table.index[-1] == "params.lr"  # differences first


def test_missing_store_is_reported_not_created(tmp_path):
    s = Settings(home=tmp_path)
    with pytest.raises(insights.MissingPiece, match="kt demo"):
        insights.runs_table(s)
    with pytest.raises(insights.MissingPiece, match="kt demo"):
        insights.WorldIndex(s.world_dir)
    assert not (tmp_path / "mlruns").exists()
    assert insights.find_mastery_scores(s) is None and insights.find_planner_results(s) == []


def test_policy_comparison_layouts(tmp_path, kt_home):
    path = insights.find_planner_results(Settings(home=kt_home[0]))[0]
    df = insights.policy_comparison(path)
    assert sorted(df["policy"]) == sorted(kt_home[1]["policies"]) and df["e_p"].is_monotonic_decreasing
    facts = insights.evaluation_summary(path)
    assert facts["best_baseline_e_p"] == df.loc[df["policy"] != "planner", "e_p"].max()
    rows = [{"policy": "a", "e_p": 0.1, "success_rate": 0.5, "coverage": 0.1, "diversity": 0.2},
            {"policy": "b", "e_p": 0.3, "success_rate": 0.6, "coverage": 0.2, "diversity": 0.3}]
    for doc in (rows, {"policies": rows}, {r["policy"]: {k: v for k, v in r.items() if k != "policy"} for r in rows}):
        (tmp_path / "planner.json").write_text(json.dumps(doc))
        assert insights.policy_comparison(tmp_path / "planner.json")["policy"].tolist() == ["b", "a"]
    (tmp_path / "planner.json").write_text(json.dumps({"nothing": 1}))
    with pytest.raises(ValueError, match="planner.json: no policy results"):
        insights.policy_comparison(tmp_path / "planner.json")
    assert insights.planner_ratios(facts) == {"planner": pytest.approx(
        df.loc[df["policy"] == "planner", "e_p"].iloc[0] / facts["best_baseline_e_p"])}


def test_the_benchmarks_own_results_file_reads(tmp_path):
    """bench/bench_planner.py nests the evaluation beside the machine and the latency table."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "results" / "planner.json"
    doc = json.loads(path.read_text())
    df = insights.policy_comparison(path)
    assert len(df) == len(doc["evaluation"]["results"]) and "popularity" in set(df["policy"])
    facts = insights.evaluation_summary(path)
    ratios = insights.planner_ratios(facts)
    assert ratios == pytest.approx(doc["evaluation"]["planner_over_best_baseline"]) and "planner (DKT)" in ratios
    assert facts["learned_prerequisites.precision"] == doc["evaluation"]["learned_prerequisites"]["precision"]


def test_prerequisite_dot_draws_every_edge(world):
    dot = insights.prerequisite_dot(world.topics, world.prerequisites, {"t000": 0.9})
    for pre, topic in zip(world.prerequisites["prerequisite_id"], world.prerequisites["topic_id"], strict=True):
        assert f'"{pre}" -> "{topic}";' in dot
    assert dot.count("[label=") == len(world.topics) and "mean mastery 0.90" in dot


def test_rows_the_contract_rejects_are_left_out_as_in_the_cli(kt_home, busiest, tmp_path):
    """A repeated event_id and an event on an unknown item: the CLI and the API never see them,
    so the explorer must not show or count them either."""
    import shutil

    from kt.data.io import load_world
    from kt.data.outcome import events_to_interactions

    src = Settings(home=kt_home[0]).world_dir
    copy = tmp_path / "world"
    shutil.copytree(src, copy)
    ev = pd.read_parquet(copy / "events")
    mine = ev[ev["user_id"] == busiest]
    extra = pd.concat([mine.iloc[[0] * 3], mine.iloc[[1]].assign(event_id="ghost", content_id="c-none")])
    extra.to_parquet(copy / "events" / "part-zz-extra.parquet", index=False)
    index = insights.WorldIndex(copy)
    assert index.rejected() == {"events": 4}
    assert index.counts()["events"] == len(ev)
    assert len(index.user_events(busiest)) == len(mine)
    cli = load_world(copy)
    want, _ = events_to_interactions(cli.events[cli.events["user_id"] == busiest], cli.items)
    got = index.user_interactions(busiest)
    assert got["event_id"].tolist() == want.sort_values(["timestamp", "event_id"])["event_id"].tolist()
