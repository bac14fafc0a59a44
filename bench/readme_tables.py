"""Copy the benchmark tables from bench/results/*.md into README.md (between the markers).

    python -m bench.readme_tables

Each benchmark writes its own results file; this keeps the README's tables equal to them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
# README order; files not listed here follow alphabetically
ORDER = ["kt_throughput_cpu_idle", "kt_throughput_cpu", "kt_train_assist2015_dkt_5fold", "kt_train_assist2015_sakt_5fold", "kt_train_assist2015_dkt_forget_5fold", "kt_train_assist2015_dkt_fold0_final", "kt_train_assist2015_sakt_fold0_final", "kt_train_assist2015_dkt_forget_fold0_final", "kt_train_assist2015_akt_1epoch", "kt_protocol_cpu_capped10", "kt_protocol_cpu_capped8_other", "kt_protocol_cpu_capped8_dktf", "kt_protocol_cuda", "sim", "mastery", "planner", "planner_diagnostics", "planner_seeds", "api"]


def collect(results: Path) -> str:
    files = {p.stem: p for p in results.glob("*.md")}
    names = [n for n in ORDER if n in files] + sorted(n for n in files if n not in ORDER)
    parts = []
    for name in names:
        text = files[name].read_text().strip()
        if not text.startswith("#"):
            text = f"### {name}\n\n{text}"
        # README sections are h2: each results file's headings go below them (# -> ###, ## -> ####)
        text = re.sub(r"^(#{1,2}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", text, flags=re.M)
        parts.append(text)
    return "\n\n".join(parts)


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"{readme}: markers {BEGIN} / {END} not found", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{collect(ROOT / 'bench' / 'results')}\n{END}{tail}")
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
