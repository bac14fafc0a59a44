"""One tiny project home for every explorer test, built with the library as ``kt demo`` does:
a tiny simulated world, a DKT trained for two epochs, tracked, registered and promoted in an
MLflow store under the home, batch-scored mastery, and a planner evaluation of every policy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("WANDB_MODE", "disabled")



def build_home(home: Path) -> dict:
    """Fill ``home`` (a KT_HOME) and return what the tests check against."""
    import pandas as pd
    import torch

    from kt.cli import main as kt_main
    from kt.config import Settings
    from kt.sim import generate_world, preset

    torch.set_num_threads(1)
    settings = Settings(home=home)
    summary = generate_world(preset("tiny", n_users=60, days=10), settings.world_dir)
    old = os.environ.get("KT_HOME")
    os.environ["KT_HOME"] = str(home)
    try:
        rc = kt_main(["train", "--data", str(settings.world_dir), "--model", "dkt", "--epochs", "2",
                      "--batch-size", "32", "--device", "cpu", "--no-progress",
                      "--set", "model_params.dim=16", "--set", "model_params.hidden=16", "--set", "amp=false"])
        assert rc == 0, "kt train failed"
    finally:
        if old is None:
            os.environ.pop("KT_HOME")
        else:
            os.environ["KT_HOME"] = old

    from kt.mastery.batch import score_world
    from kt.mastery.catalog import TopicCatalog
    from kt.train.tracking import load_champion, promote

    version = promote(settings)
    loaded = load_champion(settings)
    items = pd.read_parquet(settings.world_dir / "items.parquet")
    topics = pd.read_parquet(settings.world_dir / "topics.parquet")
    catalog = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items[["content_id", "topics"]],
                                 topics["topic_id"].astype(str).tolist())
    score_world(loaded.model, catalog, settings.world_dir, settings.data_dir / "mastery.parquet")

    from kt.data.io import load_world
    from kt.data.outcome import events_to_interactions
    from kt.planner import Catalog, ItemFolderGraph, Planner, PrerequisiteGraph
    from kt.planner.evaluation import EvalConfig, OracleLearner, best_baseline, evaluate, make_setup
    from kt.planner.policies import PlannerPolicy, baseline_policies
    from kt.sim import LearnerEnv

    world = load_world(settings.world_dir)
    env = LearnerEnv.from_world(settings.world_dir, seed=0)
    cat = Catalog.from_world(world)
    prereq = PrerequisiteGraph.from_frame(world.prerequisites, world.topics["topic_id"].tolist())
    planner = Planner(cat, ItemFolderGraph.from_world(world, cat), prereq)
    inter, _ = events_to_interactions(world.events, world.items)
    cfg = EvalConfig(users=4, steps=2, bundle_size=3, min_goal_ancestors=1, min_history=3)
    setup = make_setup(world, env, prereq, inter, cfg)
    policies = [*baseline_policies(planner, inter["content_id"].value_counts()), PlannerPolicy(planner)]
    results = evaluate(policies, env, setup, planner, world.items, OracleLearner, cfg)
    base = best_baseline(results)
    ours = next(r.e_p for r in results if r.policy == "planner")
    doc = {"results": [r.to_dict() for r in results], "best_baseline_e_p": base,  # the layout of kt.planner.compare
           "planner_over_best_baseline": {"planner": ours / base if base else float("nan")}}
    (settings.data_dir / "planner_eval.json").write_text(json.dumps(doc))
    return {"n_users": summary.n_users, "n_items": summary.n_items, "n_events": summary.n_events,
            "n_topics": summary.n_topics, "version": version, "policies": [r.policy for r in results],
            "run_id": loaded.meta.get("run_id")}


@pytest.fixture(scope="session")
def kt_home(tmp_path_factory) -> tuple[Path, dict]:
    home = tmp_path_factory.mktemp("kt_home")
    facts = build_home(home)
    return home, facts


@pytest.fixture
def app_env(kt_home, monkeypatch):
    """KT_HOME pointing at the fixture; Streamlit caches cleared between tests."""
    import streamlit as st

    home, facts = kt_home
    monkeypatch.setenv("KT_HOME", str(home))
    st.cache_data.clear()
    st.cache_resource.clear()
    return home, facts
