"""Simulator throughput and memory: ``generate_world`` at two scales.

Each scale runs in a fresh child process (so its peak RSS, ``ru_maxrss``, is its own) and
writes to a temporary directory that is deleted afterwards. The large scale is 100k users x
1M items over one and over four simulated weeks (4x the events); with the small one (10k users
x 100k items, one week) they show that peak memory follows the catalog and the user chunk
(10k users), not the number of users or events.

Writes bench/results/sim.json and bench/results/sim.md and prints the markdown table.
Run: ``nice .venv/bin/python -m bench.bench_sim`` (add ``--quick`` for a seconds-long check).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

SCALES = {
    "10k users x 100k items, 1 week": {"preset": "medium", "n_users": 10_000, "n_items": 100_000, "days": 7},
    "100k users x 1M items, 1 week": {"preset": "bench", "n_users": 100_000, "n_items": 1_000_000, "days": 7},
    "100k users x 1M items, 4 weeks": {"preset": "bench", "n_users": 100_000, "n_items": 1_000_000, "days": 28},
}
QUICK = {
    "500 users x 5k items": {"preset": "small", "n_users": 500, "n_items": 5_000, "days": 7},
    "2k users x 20k items": {"preset": "small", "n_users": 2_000, "n_items": 20_000, "days": 7},
}

CHILD = r"""
import json, resource, sys, time
from kt.sim import generate_world, preset
spec, out = json.loads(sys.argv[1]), sys.argv[2]
cfg = preset(spec.pop("preset"), **spec)
t0 = time.perf_counter()
s = generate_world(cfg, out)
wall = time.perf_counter() - t0
cpu = resource.getrusage(resource.RUSAGE_SELF)
size = sum(p.stat().st_size for p in __import__("pathlib").Path(out).rglob("*") if p.is_file())
print(json.dumps({"config": cfg.to_dict(), "summary": s.to_dict(), "wall_s": wall,
                  "cpu_s": cpu.ru_utime + cpu.ru_stime, "peak_rss_mb": cpu.ru_maxrss / 1024,
                  "output_mb": size / 2**20}))
"""


def run_scale(name: str, spec: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="kt-bench-sim-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(spec), str(Path(tmp) / "world")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: child failed\n{proc.stderr[-2000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    s = r["summary"]
    r["scale"] = name
    r["events_per_s"] = s["n_events"] / r["wall_s"]
    print(f"{name}: {s['n_events']} events in {r['wall_s']:.1f}s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    return r


def table(rows: list[dict]) -> str:
    lines = [
        "| scale | topics | days | events | true-mastery rows | wall (s) | events/s | peak RSS (MB) | output (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, c = r["summary"], r["config"]
        lines.append(
            f"| {r['scale']} | {s['n_topics']} | {c['days']} | {s['n_events']:,} | {s['n_true_mastery']:,} | "
            f"{r['wall_s']:.1f} | {r['events_per_s']:,.0f} | {r['peak_rss_mb']:.0f} | {r['output_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small scales (seconds), results not written")
    args = ap.parse_args(argv)
    rows = [run_scale(name, spec) for name, spec in (QUICK if args.quick else SCALES).items()]
    md = table(rows)
    print(md)
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        meta = {"machine": platform.platform(), "python": platform.python_version(), "cpu_count": __import__("os").cpu_count()}
        (RESULTS / "sim.json").write_text(json.dumps({"bench": "sim", **meta, "results": rows}, indent=2) + "\n")
        (RESULTS / "sim.md").write_text("### Simulator (`kt sim`, `bench/bench_sim.py`)\n\n" + md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
