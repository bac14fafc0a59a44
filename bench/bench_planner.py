"""Planner benchmark: learning effectiveness of policies in the simulator, and planning latency.

1. Evaluation (:mod:`kt.planner.evaluation`): on a simulated world (preset ``small``), ``--users``
   users follow each policy for ``--steps`` steps (one bundle a day, consumed by
   ``LearnerEnv.consume``; the events update the learner model). Policies: random, popularity,
   Pixie-only, KT-greedy without prerequisites, the planner with its default config, the planner
   with the bench's tuned config, the planner on a *learned* prerequisite graph, and the planner
   reading the simulator's true state (oracle KT, an upper bound). The KT model behind the
   MasteryTracker is a DKT trained on the world with ``kt.train`` (cached under
   ``<KT_HOME>/data/bench_planner``; ``--checkpoint`` to use another). Also reported: precision /
   recall of the learned prerequisite edges against the simulator's true DAG.
2. Latency: ``Planner.plan`` per request (p50 / p99) with 100k and 1M items (a catalog and folder
   graph from the simulator's generator at that size), the same DKT behind the tracker, and the
   Pixie walk alone.

Writes bench/results/planner.json and planner.md.
Run: ``nice .venv/bin/python -m bench.bench_planner [--users 200 --steps 20] [--sizes 100000 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
TUNED = {"band": (0.55, 0.75), "review_min_mastery": 0.0, "w_popularity": 1.0}  # best with the DKT on 60 users x 8 steps


def _work_dir() -> Path:
    from kt.config import Settings

    d = Settings.from_env().data_dir / "bench_planner"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _world(work: Path, seed: int) -> Path:
    from kt.sim import generate_world, preset

    out = work / f"world_small_{seed}"
    if not (out / "world.json").exists():
        generate_world(preset("small", seed=seed), out)
    return out


def _checkpoint(world: Path, work: Path, epochs: int) -> Path:
    ckpt = work / f"dkt_{world.name}" / "best.pt"
    if ckpt.exists():
        return ckpt
    from kt.config import Settings
    from kt.data.datasets import load_world_dataset
    from kt.train.trainer import TrainConfig, train

    splits = load_world_dataset(Settings.from_env(), world_dir=world)
    # batching="windows": the recipe every planner figure in docs/planner.md was measured with (the
    # trainer's default became "tokens" later; with it the default planner gave E_p 0.261, not 0.265)
    cfg = TrainConfig(model="dkt", model_params={"dim": 64, "hidden": 64}, max_epochs=epochs, patience=3,
                      device="cpu", amp=False, batch_size=64, batching="windows", progress=False)  # fmt: skip
    return Path(train(cfg, splits, checkpoint_dir=ckpt.parent).checkpoint_path)


@dataclass
class EvalSetting:
    """The evaluation's world, DKT, users and goals: shared by this bench and bench.planner_diagnostics."""

    world_dir: Path
    checkpoint: Path
    world: Any
    interactions: pd.DataFrame
    catalog: Any
    graph: Any
    true_dag: Any
    env: Any
    config: Any  # EvalConfig
    setup: Any  # EvalSetup
    loaded: Any  # LoadedModel

    def tracker(self, _env=None, config=None):
        """A fresh MasteryTracker over the DKT (``config``: a ``MasteryConfig``), fed the chosen
        users' history (a learner factory)."""
        from kt.mastery.tracker import MasteryTracker

        tr = MasteryTracker.from_loaded(self.loaded, self.world.items, config=config)
        tr.observe_many(self.setup.interactions[["user_id", "content_id", "topic_id", "outcome", "timestamp"]])
        return tr


def eval_setting(seed: int, epochs: int, users: int, steps: int, bundle_size: int = 5,
                 checkpoint: str | None = None) -> EvalSetting:
    from kt.data.io import load_world
    from kt.data.outcome import events_to_interactions
    from kt.models.checkpoint import load_checkpoint
    from kt.planner import Catalog, ItemFolderGraph, PrerequisiteGraph
    from kt.planner.evaluation import EvalConfig, make_setup
    from kt.sim.env import LearnerEnv

    work = _work_dir()
    wd = _world(work, seed)
    ckpt = Path(checkpoint) if checkpoint else _checkpoint(wd, work, epochs)
    world = load_world(wd)
    inter, _ = events_to_interactions(world.events, world.items)
    catalog = Catalog.from_world(world)
    true_dag = PrerequisiteGraph.from_frame(world.prerequisites, world.topics["topic_id"])
    env = LearnerEnv.from_world(wd)
    cfg = EvalConfig(users=users, steps=steps, bundle_size=bundle_size, seed=seed)
    return EvalSetting(wd, ckpt, world, inter, catalog, ItemFolderGraph.from_world(world, catalog), true_dag, env, cfg,
                       make_setup(world, env, true_dag, inter, cfg), load_checkpoint(ckpt))


def evaluation(args) -> dict:
    from kt.planner import Planner, PlannerConfig, edge_precision_recall, learn_prerequisites
    from kt.planner.evaluation import (
        OracleLearner,
        SimulatorGreedyPolicy,
        best_baseline,
        results_table,
        run_policy,
    )
    from kt.planner.policies import PlannerPolicy, baseline_policies

    es = eval_setting(args.seed, args.epochs, args.users, args.steps, args.bundle_size, args.checkpoint)
    wd, ckpt, world, inter, catalog, graph, true_dag, env, cfg, setup = (
        es.world_dir, es.checkpoint, es.world, es.interactions, es.catalog, es.graph, es.true_dag, es.env, es.config,
        es.setup)
    t0 = time.perf_counter()
    learned = learn_prerequisites(inter, world.topics["topic_id"], topic_difficulty=catalog.topic_mean_difficulty())
    prereq_scores = edge_precision_recall(learned, true_dag) | {"seconds": time.perf_counter() - t0}
    tracker = es.tracker
    default = Planner(catalog, graph, true_dag, PlannerConfig())
    tuned = Planner(catalog, graph, true_dag, PlannerConfig(**TUNED))
    on_learned = Planner(catalog, graph, learned, PlannerConfig())
    counts = world.events["content_id"].value_counts()
    oracle = lambda e: OracleLearner(e)  # noqa: E731
    runs = [(p, tracker) for p in baseline_policies(default, counts)]
    runs += [(PlannerPolicy(default, "planner (DKT)"), tracker), (PlannerPolicy(tuned, "planner tuned (DKT)"), tracker),
             (PlannerPolicy(on_learned, "planner, learned DAG (DKT)"), tracker),
             (PlannerPolicy(default, "planner (oracle KT)"), oracle), (PlannerPolicy(tuned, "planner tuned (oracle KT)"), oracle),
             (SimulatorGreedyPolicy(catalog), oracle), (SimulatorGreedyPolicy(catalog, band=default.config.band), oracle)]
    results = []
    for policy, factory in runs:
        r = run_policy(policy, env, setup, default, world.items, factory, cfg)
        print(f"  {r.policy}: E_p {r.e_p:.3f} ({r.seconds:.0f}s)", flush=True)
        results.append(r)
    base = best_baseline(results)
    ratios = {r.policy: r.e_p / base for r in results if r.policy.startswith("planner")}
    return {
        "world": str(wd.name), "checkpoint": str(ckpt), "config": cfg.__dict__, "tuned_planner": TUNED,
        "results": [r.to_dict() for r in results], "best_baseline_e_p": base, "planner_over_best_baseline": ratios,
        "learned_prerequisites": prereq_scores, "table": results_table(results),
    }


def _synthetic(n_items: int, seed: int):
    """Catalog + folder graph of ``n_items`` items from the simulator's catalog generator (40 topics,
    the small world's topic ids, so the bench DKT scores them through their topic)."""
    from kt.planner import Catalog, ItemFolderGraph
    from kt.sim.config import preset
    from kt.sim.world import content_ids, make_catalog, topic_ids

    cfg = preset("small", n_items=n_items, seed=seed)
    sim = make_catalog(cfg)
    tids = np.asarray(topic_ids(sim.n_topics), dtype=object)
    topics = tids[sim.item_topic]
    second = np.where(sim.item_topic2 >= 0, "|" + tids[np.maximum(sim.item_topic2, 0)], "")
    items = pd.DataFrame({
        "content_id": content_ids(np.arange(n_items), n_items), "language": np.asarray(sim.languages)[sim.item_language],
        "topics": topics + second, "difficulty": sim.difficulty, "kind": np.asarray(sim.kinds)[sim.item_kind],
    })  # fmt: skip
    catalog = Catalog.from_frames(items, pd.DataFrame({"topic_id": tids, "name": sim.topic_names}))
    # folders: 8 items of one (topic, language) group each, as users file them; ~80% of items filed
    rng = np.random.default_rng(seed)
    n_folders = n_items // 10
    group = sim.item_topic * len(sim.languages) + sim.item_language
    order = np.argsort(group, kind="stable")
    start = rng.integers(0, max(n_items - 8, 1), n_folders)
    members = order[(start[:, None] + np.arange(8)[None, :]) % n_items].ravel()
    graph = ItemFolderGraph.from_edges(members, np.repeat(np.arange(n_folders), 8), n_items, n_folders)
    return catalog, graph, items


def latency(args) -> list[dict]:
    from kt.data.io import load_world
    from kt.mastery.tracker import MasteryTracker
    from kt.models.checkpoint import load_checkpoint
    from kt.planner import Planner, PlannerConfig, PrerequisiteGraph

    work = _work_dir()
    wd = _world(work, args.seed)
    ckpt = Path(args.checkpoint) if args.checkpoint else _checkpoint(wd, work, args.epochs)
    loaded = load_checkpoint(ckpt)
    world = load_world(wd)
    dag = PrerequisiteGraph.from_frame(world.prerequisites, world.topics["topic_id"])
    out = []
    for n in args.sizes:
        t0 = time.perf_counter()
        catalog, graph, items = _synthetic(n, args.seed)
        build_s = time.perf_counter() - t0
        tracker = MasteryTracker.from_loaded(loaded, items[["content_id", "topics"]])
        planner = Planner(catalog, graph, dag, PlannerConfig(**TUNED))
        rng = np.random.default_rng(args.seed)
        users, hists = [], []
        filed = np.flatnonzero(graph.item_degree > 0)
        for u in range(args.latency_users):  # 20 highlights each, from a few folders
            f = rng.integers(0, graph.n_folders, 3)
            picks = np.concatenate([graph.folder_items[graph.folder_ptr[x]: graph.folder_ptr[x + 1]] for x in f])[:20]
            picks = picks if len(picks) else rng.choice(filed, 20)
            ts = pd.Timestamp("2026-02-01", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, 14 * 86400, len(picks))), unit="s")
            hists.append(pd.DataFrame({"content_id": catalog.content_ids[picks], "timestamp": ts}))
            users.append(f"bench-u{u}")
        obs = pd.concat([h.assign(user_id=u, outcome=rng.integers(0, 2, len(h))) for u, h in zip(users, hists, strict=True)])
        tracker.observe_many(obs)
        for u, h in zip(users[:3], hists[:3], strict=True):  # warm-up
            planner.plan(u, tracker, h)
        plan_ms, walk_ms = [], []
        for k in range(args.requests):
            u, h = users[k % len(users)], hists[k % len(users)]
            t = time.perf_counter()
            planner.plan(u, tracker, h, n_bundles=3, bundle_size=5)
            plan_ms.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            planner.candidates(u, h)
            walk_ms.append((time.perf_counter() - t) * 1e3)
        row = {"items": n, "folder_edges": graph.n_edges, "build_seconds": build_s, "requests": args.requests,
               "plan_p50_ms": float(np.percentile(plan_ms, 50)), "plan_p99_ms": float(np.percentile(plan_ms, 99)),
               "walk_p50_ms": float(np.percentile(walk_ms, 50)), "walk_p99_ms": float(np.percentile(walk_ms, 99))}
        print(f"  {n} items: plan p50 {row['plan_p50_ms']:.1f} ms p99 {row['plan_p99_ms']:.1f} ms; "
              f"walk p50 {row['walk_p50_ms']:.1f} ms p99 {row['walk_p99_ms']:.1f} ms", flush=True)
        out.append(row)
    return out


def write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    md = ["# Planner benchmark", "", f"Machine: {report['machine']}", ""]
    ev = report.get("evaluation")
    if ev:
        c = ev["config"]
        md += [f"## Learning effectiveness ({c['users']} users x {c['steps']} steps, bundles of {c['bundle_size']}, "
               f"world `{ev['world']}`)", "",
               "E_p = (E_end - E_start) / (1 - E_start), E = mean true mastery over the user's target topics "
               "(a goal topic and its prerequisite ancestors); all policies get the goal. "
               f"Tuned planner config: `{ev['tuned_planner']}`.", "", ev["table"], "",
               "Planner / best baseline E_p: " + ", ".join(f"{k} **{v:.2f}x**" for k, v in ev["planner_over_best_baseline"].items())
               + " (target 1.3x).", ""]
        lp = ev["learned_prerequisites"]
        md += [f"Learned prerequisites vs the true DAG: precision {lp['precision']:.3f}, recall {lp['recall']:.3f} "
               f"({int(lp['n_learned'])} learned, {int(lp['n_true'])} true edges; chance precision "
               f"{lp['chance_precision']:.3f}; {lp['closure_precision']:.3f} of learned edges are implied by the true DAG).", ""]
    lat = report.get("latency")
    if lat:
        md += ["## Planning latency per request (3 bundles x 5 items, DKT behind the MasteryTracker, one CPU thread)", "",
               "| items | folder edges | plan p50 ms | plan p99 ms | Pixie walk p50 ms | walk p99 ms |", "|---|---|---|---|---|---|"]
        for r in lat:
            md.append(f"| {r['items']:,} | {r['folder_edges']:,} | {r['plan_p50_ms']:.1f} | {r['plan_p99_ms']:.1f} | "
                      f"{r['walk_p50_ms']:.1f} | {r['walk_p99_ms']:.1f} |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--bundle-size", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10, help="DKT training epochs when no cached checkpoint")
    ap.add_argument("--checkpoint", help="KT checkpoint to use instead of training one")
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="catalog sizes for latency")
    ap.add_argument("--requests", type=int, default=200, help="timed requests per size")
    ap.add_argument("--latency-users", type=int, default=50)
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "planner.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import torch

    torch.set_num_threads(1)
    report: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"}
    if args.out.exists():  # keep the other half when only one part is rerun
        old = json.loads(args.out.read_text())
        report.update({k: old[k] for k in ("evaluation", "latency") if k in old})
    if not args.skip_eval:
        print("evaluation", flush=True)
        report["evaluation"] = evaluation(args)
    if not args.skip_latency:
        print("latency", flush=True)
        report["latency"] = latency(args)
    write(report, args.out)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
