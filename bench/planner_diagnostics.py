"""Which half of the KT model limits the planner: the planner bench's setting, with learner models
that take their topic mastery from one source and their item predictions from another.

Same world, DKT, users, goals and protocol as ``bench.bench_planner`` (its cached world and
checkpoint are reused). Rows:

* DKT mastery + DKT item predictions: the planner as benchmarked;
* the simulator's true state for one half, the DKT for the other (two rows);
* the true state for both: the planner reading the oracle;
* nothing recommended: what forgetting alone does to E_p over the same days.

Writes bench/results/planner_diagnostics.json and .md.
Run: ``nice .venv/bin/python -m bench.planner_diagnostics [--users 200 --steps 20]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


class SplitLearner:
    """A learner model whose topic mastery comes from ``mastery`` and item predictions from
    ``success``; events reach every part that observes them (the tracker)."""

    def __init__(self, mastery, success, observers) -> None:
        self.mastery, self.success, self.observers = mastery, success, observers

    def topic_mastery(self, user_id, now=None):
        return self.mastery.topic_mastery(user_id, now)

    def predict_success(self, user_id, content_ids):
        return self.success.predict_success(user_id, content_ids)

    def observe_many(self, interactions) -> None:
        for o in self.observers:
            o.observe_many(interactions)


class Nothing:
    """Recommends nothing: the users only forget."""

    name = "nothing recommended (forgetting only)"
    uses_learner = False

    def recommend(self, req, learner, rng) -> list[str]:
        return []


def main(argv: list[str] | None = None) -> int:
    from bench.bench_planner import eval_setting
    from kt.planner import Planner, PlannerConfig
    from kt.planner.evaluation import OracleLearner, results_table, run_policy
    from kt.planner.policies import PlannerPolicy, baseline_policies

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args(argv)

    es = eval_setting(args.seed, args.epochs, args.users, args.steps)
    world, env, setup, cfg, wd = es.world, es.env, es.setup, es.config, es.world_dir
    planner = Planner(es.catalog, es.graph, es.true_dag, PlannerConfig())

    def split(mastery_from: str, success_from: str):
        def make(env_fork):
            tr, oracle = es.tracker(), OracleLearner(env_fork)
            pick = {"dkt": tr, "true": oracle}
            # the oracle hears the events too: its ``progress`` comes from the practices it is told of
            return SplitLearner(pick[mastery_from], pick[success_from], [tr, oracle])
        return make

    runs = [
        ("planner: DKT mastery, DKT item predictions", split("dkt", "dkt")),
        ("planner: true mastery, DKT item predictions", split("true", "dkt")),
        ("planner: DKT mastery, true item success", split("dkt", "true")),
        ("planner: true mastery, true item success", split("true", "true")),
    ]
    counts = world.events["content_id"].value_counts()
    popularity = next(p for p in baseline_policies(planner, counts) if p.name == "popularity")
    results = [run_policy(popularity, env, setup, planner, world.items, None, cfg),
               run_policy(Nothing(), env, setup, planner, world.items, None, cfg)]
    for name, factory in runs:
        t0 = time.perf_counter()
        r = run_policy(PlannerPolicy(planner, name), env, setup, planner, world.items, factory, cfg)
        print(f"  {r.policy}: E_p {r.e_p:.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
        results.append(r)
    target = 1.3 * results[0].e_p
    md = "\n".join([
        "# Planner diagnostics: which half of the KT model limits the planner",
        "",
        f"Machine: {platform.machine()}, world `{wd.name}`, {args.users} users x {args.steps} steps, the planner "
        "bench's DKT and default planner config (`bench/planner_diagnostics.py`). A learner model takes its topic "
        "mastery (targets, readiness) from one source and its item predictions (band, bundle) from another.",
        "",
        results_table(results),
        "",
        f"1.3x popularity is E_p {target:.3f}. A row with one half true bounds what a better estimate of that half "
        "alone could give behind this planner.",
    ])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "planner_diagnostics.md").write_text(md + "\n")
    (RESULTS / "planner_diagnostics.json").write_text(json.dumps(
        {"world": wd.name, "config": cfg.__dict__, "target_e_p": target,
         "results": [r.to_dict() for r in results]}, indent=2))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
