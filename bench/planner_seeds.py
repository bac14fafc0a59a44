"""The planner's E_p against the best baseline on several simulated worlds, not just the bench's.

For each world seed: the planner bench's setting (``bench.bench_planner.eval_setting``: a world of
preset ``small``, a DKT trained on it and cached, 200 users x 20 steps), the four baselines, the
planner with its default config behind the DKT and behind the oracle, and the planner without this
session's three additions (stalled topics last, the tracker's calibration offset, aiming at the
band's hard edge) as a reference. One results file per seed (``planner_seeds_<seed>.json``, so
seeds can run in parallel processes); the markdown table gathers every seed's file.

Run: ``nice .venv/bin/python -m bench.planner_seeds --seeds 0 1 2``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def run_seed(seed: int, users: int, steps: int, epochs: int) -> dict:
    from bench.bench_planner import eval_setting
    from kt.mastery.config import MasteryConfig
    from kt.planner import Planner, PlannerConfig
    from kt.planner.evaluation import OracleLearner, is_baseline, run_policy
    from kt.planner.policies import PlannerPolicy, baseline_policies

    es = eval_setting(seed, epochs, users, steps)
    default = Planner(es.catalog, es.graph, es.true_dag, PlannerConfig())
    without = Planner(es.catalog, es.graph, es.true_dag, PlannerConfig(min_progress=None, band_aim=0.5))

    def plain_tracker(env=None):  # the tracker without its calibration offset
        return es.tracker(env, MasteryConfig(offset_prior_sd=0))

    runs = [(p, es.tracker) for p in baseline_policies(default, es.world.events["content_id"].value_counts())]
    runs += [(PlannerPolicy(default, "planner (DKT)"), es.tracker),
             (PlannerPolicy(default, "planner (oracle KT)"), lambda e: OracleLearner(e)),
             (PlannerPolicy(without, "planner (DKT) without progress, offset, hard-edge aim"), plain_tracker)]
    results = []
    for policy, factory in runs:
        t0 = time.perf_counter()
        r = run_policy(policy, es.env, es.setup, default, es.world.items, factory, es.config)
        print(f"  seed {seed} {r.policy}: E_p {r.e_p:.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
        results.append(r.to_dict())
    base = max(r["e_p"] for r in results if is_baseline(r["policy"]))
    return {"seed": seed, "users": users, "steps": steps, "best_baseline_e_p": base, "results": results,
            "machine": f"{platform.machine()}"}


def table(reports: list[dict]) -> str:
    from kt.planner.evaluation import is_baseline

    lines = ["| world seed | best baseline | planner (DKT) | planner (oracle KT) | planner (DKT) without the three additions |",
             "|---|---|---|---|---|"]
    ratios = []
    for rep in sorted(reports, key=lambda r: r["seed"]):
        by = {r["policy"]: r for r in rep["results"]}
        best = max((r for r in rep["results"] if is_baseline(r["policy"])), key=lambda r: r["e_p"])
        base = best["e_p"]

        def cell(name: str, by=by, base=base) -> str:
            r = by[name]
            return f"{r['e_p']:.3f} ± {r['e_p_std']:.3f} ({r['e_p'] / base:.2f}x)"

        ratios.append(by["planner (DKT)"]["e_p"] / base)
        lines.append(f"| {rep['seed']} | {best['policy']} {base:.3f} | **{cell('planner (DKT)')}** | "
                     f"{cell('planner (oracle KT)')} | {cell('planner (DKT) without progress, offset, hard-edge aim')} |")
    if ratios:
        lines += ["", f"Planner (DKT) / best baseline: mean {sum(ratios) / len(ratios):.3f}x over {len(ratios)} worlds, "
                      f"lowest {min(ratios):.3f}x (target 1.3x)."]
    return "\n".join(lines)


def write_markdown() -> str:
    reports = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("planner_seeds_*.json"))]
    if not reports:
        return ""
    r0 = reports[0]
    md = "\n".join([
        "# Planner across worlds",
        "",
        f"Machine: {r0['machine']}; preset `small` worlds, {r0['users']} users x {r0['steps']} steps each, a DKT "
        "trained per world (`bench/planner_seeds.py`). E_p ± standard error (ratio to the world's best baseline).",
        "",
        table(reports),
    ])
    (RESULTS / "planner_seeds.md").write_text(md + "\n")
    return md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        rep = run_seed(seed, args.users, args.steps, args.epochs)
        (RESULTS / f"planner_seeds_{seed}.json").write_text(json.dumps(rep, indent=2))
    print(write_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
