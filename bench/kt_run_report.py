"""Turn one ``kt train`` report (its ``metrics.json``) into a bench results file and table.

    python -m bench.kt_run_report RUN_DIR/metrics.json NAME --command "kt train ..."

Writes bench/results/NAME.json (the report as is) and NAME.md; ``make bench-readme`` copies the
table into the README. Used for full protocol runs that outlast one bench invocation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PYKT_PUBLISHED = {("assist2015", "dkt"): 0.7271, ("assist2015", "sakt"): 0.7114, ("assist2015", "akt"): 0.7281}


def render(report: dict, command: str) -> str:
    hist = report["history"]
    best = report["best_epoch"]
    secs = sorted(h["epoch_seconds"] for h in hist)[len(hist) // 2]
    test, window = report["test"].get("test", {}), report["test"].get("test_window", {})
    data, model = report["data"], report["model"]
    published = PYKT_PUBLISHED.get((data, model))
    cfg = report.get("config", {})
    early = report["epochs_run"] < cfg.get("max_epochs", report["epochs_run"] + 1)
    stopped = "trained to early stopping" if early else f"{report['epochs_run']} epochs, best epoch by validation AUC"

    def f(x):
        return "—" if x is None else f"{x:.4f}"

    return "\n".join([
        f"### KT protocol run: our {model.upper()} on {data}, fold {report['fold']}, {stopped} ({report['device']})",
        "",
        f"`{command}`",
        "",
        "| model | epochs (best) | median s/epoch (incl. validation) | valid AUC | test AUC | test ACC | window test AUC | window test ACC | pyKT published (5-fold mean) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| ktpath-{model} | {report['epochs_run']} ({best + 1}) | {secs:.1f} | {report['best_valid_auc']:.4f} | "
        f"{f(test.get('auc'))} | {f(test.get('acc'))} | {f(window.get('auc'))} | {f(window.get('acc'))} | {f(published)} |",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics", type=Path)
    ap.add_argument("name")
    ap.add_argument("--command", default="kt train ...", help="the command that produced the run")
    args = ap.parse_args(argv)
    report = json.loads(args.metrics.read_text())
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.metrics, RESULTS / f"{args.name}.json")
    md = render(report, args.command)
    (RESULTS / f"{args.name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
