"""Turn ``kt train`` reports (their ``metrics.json``) into a bench results file and table.

    python -m bench.kt_run_report RUN_DIR/metrics.json NAME --command "kt train ..."
    python -m bench.kt_run_report FOLD0/metrics.json ... FOLD4/metrics.json NAME   # one row per fold + mean

Writes bench/results/NAME.json (the report as is) and NAME.md; ``make bench-readme`` copies the
table into the README. Used for full protocol runs that outlast one bench invocation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
# (what the figure is, pyKT's published 5-fold mean test AUC); models pyKT did not run on a
# dataset are held to its best published model there
PYKT_PUBLISHED = {
    ("assist2015", "dkt"): ("pyKT's published DKT", 0.7271),
    ("assist2015", "sakt"): ("pyKT's published SAKT", 0.7114),
    ("assist2015", "akt"): ("pyKT's published AKT", 0.7281),
    ("assist2015", "dkt_forget"): ("pyKT's best published (AKT)", 0.7281),
}


def machine_line(report: dict) -> str:
    """Where and when the run happened, from its report (reports written before they carried it: a
    note that says so, rather than nothing)."""
    sysinfo = report.get("system")
    if not sysinfo:
        return "Machine and time: not recorded (a report from before `kt train` wrote them)."
    gpu = sysinfo.get("gpu_name", "none")
    where = f"{sysinfo.get('platform')}, {sysinfo.get('cpu_count')} CPUs" + (f", {gpu}" if gpu != "none" else "")
    load = report.get("load_average")
    return (f"Machine: {where}; torch {sysinfo.get('torch_version')}; finished {report.get('finished_at', '?')}"
            + (f"; load average at the end {load}." if load else "."))


def render(report: dict, command: str) -> str:
    hist = report["history"]
    best = report["best_epoch"]
    secs = sorted(h["epoch_seconds"] for h in hist)[len(hist) // 2]
    test, window = report["test"].get("test", {}), report["test"].get("test_window", {})
    data, model = report["data"], report["model"]
    published = PYKT_PUBLISHED.get((data, model), (None, None))[1]
    cfg = report.get("config", {})
    early = report["epochs_run"] < cfg.get("max_epochs", report["epochs_run"] + 1)
    n = report["epochs_run"]
    stopped = "trained to early stopping" if early else f"{n} epoch{'s' if n != 1 else ''}, best epoch by validation AUC"
    # runs saved before TrainConfig.batching existed used fixed window counts
    batching = {"tokens": "batches balanced by interactions", "windows": "fixed windows per batch"}.get(
        cfg.get("batching", "windows"), cfg.get("batching"))

    def f(x):
        return "—" if x is None else f"{x:.4f}"

    return "\n".join([
        f"### KT protocol run: our {model.upper()} on {data}, fold {report['fold']}, {stopped}, {batching} ({report['device']})",
        "",
        f"`{command}`",
        "",
        machine_line(report),
        "",
        "| model | epochs (best) | median s/epoch (incl. validation) | valid AUC | test AUC | test ACC | window test AUC | window test ACC | pyKT published (5-fold mean) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| ktpath-{model} | {report['epochs_run']} ({best + 1}) | {secs:.1f} | {report['best_valid_auc']:.4f} | "
        f"{f(test.get('auc'))} | {f(test.get('acc'))} | {f(window.get('auc'))} | {f(window.get('acc'))} | {f(published)} |",
        "",
    ])


def render_folds(reports: list[dict], command: str) -> str:
    """One row per fold run and their mean ± standard deviation (pyKT reports 5-fold means)."""
    data, model = reports[0]["data"], reports[0]["model"]
    label, published = PYKT_PUBLISHED.get((data, model), (None, None))
    keys = [("valid", None, "auc"), ("test", "test", "auc"), ("test", "test", "acc"), ("window", "test_window", "auc"),
            ("window", "test_window", "acc")]

    def value(r, split, metric):
        return r["best_valid_auc"] if split is None else r["test"].get(split, {}).get(metric, float("nan"))

    rows = [
        "| fold | epochs (best) | valid AUC | test AUC | test ACC | window test AUC | window test ACC |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(reports, key=lambda r: r["fold"]):
        cells = " | ".join(f"{value(r, split, m):.4f}" for _, split, m in keys)
        rows.append(f"| {r['fold']} | {r['epochs_run']} ({r['best_epoch'] + 1}) | {cells} |")
    stats = []
    for _, split, m in keys:
        v = np.array([value(r, split, m) for r in reports], dtype=float)
        stats.append(f"**{v.mean():.4f}** ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}")
    rows.append(f"| mean ± sd ({len(reports)} folds) | | " + " | ".join(stats) + " |")
    test_mean = float(np.mean([value(r, "test", "auc") for r in reports]))
    verdict = "" if published is None else (
        f"{label} 5-fold mean test AUC: {published:.4f}; ours {test_mean:.4f} "
        f"({'at or above' if test_mean >= published else 'below'} it by {abs(test_mean - published):.4f})."
    )
    return "\n".join([
        f"### KT protocol, {len(reports)} folds: our {model.upper()} on {data} ({reports[0]['device']})", "",
        *sorted({machine_line(r) for r in reports}), "",
        f"`{command}`", "", *rows, "", verdict, "",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics", type=Path, nargs="+", help="metrics.json of one run, or of each fold's run")
    ap.add_argument("name")
    ap.add_argument("--command", default="kt train ...", help="the command that produced the run(s)")
    args = ap.parse_args(argv)
    reports = [json.loads(p.read_text()) for p in args.metrics]
    RESULTS.mkdir(parents=True, exist_ok=True)
    if len(reports) == 1:
        shutil.copyfile(args.metrics[0], RESULTS / f"{args.name}.json")
        md = render(reports[0], args.command)
    else:
        if len({(r["data"], r["model"]) for r in reports}) > 1:
            ap.error("fold reports must all be of the same dataset and model")
        (RESULTS / f"{args.name}.json").write_text(json.dumps({"folds": reports}, indent=2))
        md = render_folds(reports, args.command)
    (RESULTS / f"{args.name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
