"""One call that compares our planner with the baselines in the simulator.

Used by ``kt demo`` (and the explorer's Planner evaluation page reads what it writes). The
protocol and the measures are those of :mod:`kt.planner.evaluation`; the KT-based policies
score items with a :class:`kt.mastery.tracker.MasteryTracker` over the given trained model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kt.planner.evaluation import EvalConfig, best_baseline, make_setup, results_table, run_policy

INTERACTION_COLUMNS = ["user_id", "content_id", "topic_id", "outcome", "timestamp"]


def compare_policies(
    world_dir: str | Path,
    loaded: Any,
    config: EvalConfig | None = None,
    planner_config: Any = None,
    rule: Any = None,
) -> dict[str, Any]:
    """Run random, popularity, Pixie-only, KT-greedy and our planner from identical simulated
    starting states. ``loaded``: a :class:`kt.models.checkpoint.LoadedModel` (e.g. the champion);
    ``rule``: the :class:`kt.data.outcome.OutcomeRule` labelling the events (default: its defaults).

    Returns ``{"results": [...], "best_baseline_e_p", "planner_over_best_baseline", "table"}``.
    """
    from kt.data.io import load_world
    from kt.data.outcome import events_to_interactions
    from kt.mastery.tracker import MasteryTracker
    from kt.planner import Catalog, ItemFolderGraph, Planner, PlannerConfig, PrerequisiteGraph
    from kt.planner.policies import PlannerPolicy, baseline_policies
    from kt.sim.env import LearnerEnv

    config = config or EvalConfig()
    world_dir = Path(world_dir)
    world = load_world(world_dir)
    interactions, _ = events_to_interactions(world.events, world.items, rule)
    catalog = Catalog.from_world(world)
    graph = ItemFolderGraph.from_world(world, catalog)
    dag = PrerequisiteGraph.from_frame(world.prerequisites, world.topics["topic_id"])
    env = LearnerEnv.from_world(world_dir)
    setup = make_setup(world, env, dag, interactions, config)

    def tracker(_env):
        tr = MasteryTracker.from_loaded(loaded, world.items)
        tr.observe_many(setup.interactions[INTERACTION_COLUMNS])
        return tr

    planner = Planner(catalog, graph, dag, planner_config or PlannerConfig())
    policies = [*baseline_policies(planner, world.events["content_id"].value_counts()), PlannerPolicy(planner, "planner")]
    results = [run_policy(p, env, setup, planner, world.items, tracker, config, rule) for p in policies]
    base = best_baseline(results)
    ours = next(r.e_p for r in results if r.policy == "planner")
    return {
        "config": config.__dict__,
        "results": [r.to_dict() for r in results],
        "best_baseline_e_p": base,
        "planner_over_best_baseline": {"planner": ours / base if base > 0 else float("nan")},
        "table": results_table(results),
    }
