"""KT benchmark: our DKT / SAKT / AKT (/ DKT-F) against pykt-toolkit's DKT / SAKT, side by side, one run.

Same data (pyKT's ASSIST2015 split: 4 folds train, 1 fold early stopping, both test files),
same batch size, optimiser, learning rate and stopping rule (validation AUC, patience), same
model sizes for the pairs (DKT-DKT, SAKT-SAKT). Every job runs in its own process so its peak
memory is its own.

    python -m bench.bench_kt                       # full protocol, fold 0 (GPU when present)
    python -m bench.bench_kt --throughput          # one epoch each: seconds/epoch and the speed ratio
    python -m bench.bench_kt --folds 0,1,2,3,4 --datasets assist2015,assist2009,statics2011

Writes bench/results/kt_<mode>_<device>.json and .md (the README table is copied from the .md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# Our model sizes; pykt peers mirror them (bench/pykt_peer.py PYKT_CONFIGS).
OURS = {
    "dkt": {"model_params": {"dim": 200, "hidden": 200, "dropout": 0.5}, "lr": 1e-3},
    "sakt": {"model_params": {"dim": 128, "num_heads": 8, "num_blocks": 1, "dropout": 0.2}, "lr": 1e-3},
    "akt": {"model_params": {}, "lr": 1e-4},
    "dkt_forget": {"model_params": {"dim": 200, "hidden": 200, "dropout": 0.5}, "lr": 1e-3},  # no pykt peer run
}


def run_ours(job: dict) -> dict:
    import resource

    import torch

    from kt.config import Settings
    from kt.data.datasets import load_kt_dataset
    from kt.train.trainer import TrainConfig, train

    settings = Settings.from_env()
    splits = load_kt_dataset(job["dataset"], settings, fold=job["fold"])
    spec = OURS[job["model"]]
    config = TrainConfig(
        model=job["model"], model_params=dict(spec["model_params"]), lr=spec["lr"], batch_size=256,
        max_epochs=job["max_epochs"], patience=job["patience"], seed=job["seed"], device=job["device"],
        progress=False,
    )
    if not job["evaluate_test"]:
        splits.test, splits.test_window = None, None
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, splits, checkpoint_dir=tmp)
    ips = [h["train_interactions_per_second"] for h in result.history]
    n_train = splits.train.num_interactions
    sec = sorted(n_train / x for x in ips)[len(ips) // 2]
    dev = result.device
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.startswith("cuda") else (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    test = result.test_metrics.get("test", {})
    window = result.test_metrics.get("test_window", {})
    return {
        "model": f"ktpath-{job['model']}", "epochs": result.epochs_run, "best_epoch": result.best_epoch + 1,
        "seconds_per_epoch": sec, "interactions_per_second": n_train / sec, "valid_auc": result.best_valid_auc,
        "test_auc": test.get("auc", float("nan")), "test_acc": test.get("acc", float("nan")),
        "window_test_auc": window.get("auc", float("nan")), "window_test_acc": window.get("acc", float("nan")),
        "peak_memory_mb": peak, "device": dev,
    }


def run_peer(job: dict) -> dict:
    from dataclasses import asdict

    from bench.pykt_peer import run_pykt
    from kt.config import Settings, resolve_device

    settings = Settings.from_env()
    device = resolve_device(job["device"])
    res = run_pykt(
        job["model"], settings.datasets_dir / "assist2015_pykt", fold=job["fold"], max_epochs=job["max_epochs"],
        patience=job["patience"], seed=job["seed"], device=device, evaluate_test=job["evaluate_test"],
    )
    return {**asdict(res), "device": device}


def _child(job: dict) -> dict:
    """Run one job in a fresh interpreter; its last stdout line is the JSON result."""
    env = dict(os.environ, WANDB_MODE="disabled", MLFLOW_DISABLE_TELEMETRY="true")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_kt", "--job", json.dumps(job)],
        cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"model": job["kind"] + "-" + job["model"], "error": " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(x: float, nd: int = 4) -> str:
    return "—" if x is None or x != x else f"{x:.{nd}f}"


def markdown(rows: list[dict], throughput: bool) -> str:
    head = "| dataset | fold | model | device | epochs (best) | s/epoch | interactions/s | peak MB | test AUC | test ACC | window AUC | window ACC |"
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['dataset']} | {r['fold']} | {r['model']} | error: {r['error'][:80]} |" + " |" * 8)
            continue
        lines.append(
            f"| {r['dataset']} | {r['fold']} | {r['model']} | {r['device']} | {r['epochs']} ({r['best_epoch']}) | "
            f"{r['seconds_per_epoch']:.1f} | {r['interactions_per_second']:,.0f} | {r['peak_memory_mb']:,.0f} | "
            f"{_fmt(r['test_auc'])} | {_fmt(r['test_acc'])} | {_fmt(r['window_test_auc'])} | {_fmt(r['window_test_acc'])} |"
        )
    ratios = speed_ratios(rows)
    if ratios:
        lines.append("")
        lines.append("| pair (same model, same data, same machine, same run) | our speed / pykt-toolkit's |")
        lines.append("|---|---|")
        for name, ratio in ratios.items():
            lines.append(f"| {name} | {ratio:.2f}x |")
    return "\n".join(lines)


def speed_ratios(rows: list[dict]) -> dict[str, float]:
    out = {}
    for r in rows:
        if r.get("model", "").startswith("pykt-") and "error" not in r:
            name = r["model"].removeprefix("pykt-")
            ours = [o for o in rows if o.get("model") == f"ktpath-{name}" and o["dataset"] == r["dataset"]
                    and o["fold"] == r["fold"] and "error" not in o]
            if ours:
                out[f"{name} ({r['dataset']}, fold {r['fold']})"] = ours[0]["interactions_per_second"] / r["interactions_per_second"]
    return out


def _load_average() -> list[float] | None:
    """1, 5 and 15 minute load: on a shared box, what else was running while it measured."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--datasets", default="assist2015")
    ap.add_argument("--folds", default="0")
    ap.add_argument("--models", default="dkt,sakt,akt,dkt_forget")
    ap.add_argument("--peers", default="dkt,sakt", help="pykt-toolkit models to run (assist2015 only); '' for none")
    ap.add_argument("--max-epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--throughput", action="store_true", help="one epoch per job, no test scoring: speed only")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--tag", default="", help="suffix for the results file names")
    args = ap.parse_args(argv)

    if args.job:
        job = json.loads(args.job)
        result = run_peer(job) if job["kind"] == "pykt" else run_ours(job)
        print(json.dumps(result, default=float))
        return 0

    from kt.config import resolve_device

    device = resolve_device(args.device)
    max_epochs = 1 if args.throughput else args.max_epochs
    jobs = []
    for dataset in args.datasets.split(","):
        for fold in (int(f) for f in args.folds.split(",")):
            base = {"dataset": dataset, "fold": fold, "max_epochs": max_epochs, "patience": args.patience,
                    "seed": args.seed, "device": device, "evaluate_test": not args.throughput}
            jobs += [{**base, "kind": "ours", "model": m} for m in args.models.split(",") if m]
            if dataset == "assist2015":
                jobs += [{**base, "kind": "pykt", "model": m} for m in args.peers.split(",") if m]
    load_at_start = _load_average()
    rows = []
    for job in jobs:
        t0 = time.time()
        res = _child(job)
        res.update(dataset=job["dataset"], fold=job["fold"])
        rows.append(res)
        print(f"[{time.time() - t0:6.0f}s] {job['dataset']} fold {job['fold']} {res.get('model')}: "
              + (res["error"] if "error" in res else
                 f"{res['seconds_per_epoch']:.1f} s/epoch, test AUC {_fmt(res['test_auc'])}, window {_fmt(res['window_test_auc'])}"),
              flush=True)
    mode = "throughput" if args.throughput else "protocol"
    dev = "cuda" if device.startswith("cuda") else "cpu"
    stem = f"kt_{mode}_{dev}{('_' + args.tag) if args.tag else ''}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"mode": mode, "device": device, "machine": platform.platform(), "cpus": os.cpu_count(),
            "max_epochs": max_epochs, "patience": args.patience, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average": {"start": load_at_start, "end": _load_average()}}
    try:
        import torch

        if torch.cuda.is_available():
            meta["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows, "speed_ratio": speed_ratios(rows)}, indent=2, default=float))
    md = markdown(rows, args.throughput)
    load = meta["load_average"]
    (RESULTS / f"{stem}.md").write_text(
        f"### KT benchmark ({mode}, {meta['device']}{', ' + meta['gpu'] if 'gpu' in meta else ''}; {meta['when']})\n\n"
        f"Load average at the start {load['start']}, at the end {load['end']}.\n\n{md}\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
