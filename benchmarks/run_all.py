"""``make bench``: run every ``benchmarks/bench_*.py`` in turn with small, quick settings and print
their ratio lines (full output: ``--verbose``). Figures depend on the machine's load; see
``benchmarks/RESULTS.md`` for recorded ones and ``docs/speed.md`` for what they mean.

    .venv/bin/python benchmarks/run_all.py [--verbose] [--only train,data]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Quick settings per script (scripts not listed run with their defaults).
QUICK: dict[str, list[str]] = {
    "bench_train.py": ["--quick"],
    "bench_data.py": ["--batches", "50", "--sizes", "3", "6", "10", "8", "8"],
    "bench_metrics.py": ["--dci-train", "500", "--dci-test", "250"],
    "bench_mpi3d_procedural.py": ["--seconds", "1"],
    "bench_packed_overhead.py": ["--ks", "1", "8", "32", "--no-model", "--rounds", "2", "--steps", "30"],
    "bench_precision.py": ["--quick"],
    "bench_bf16_layers.py": ["--repeats", "2", "--iters", "5"],
    "bench_tensorboard.py": ["--steps", "100", "--eval-every", "50", "--rounds", "1"],
    "bench_weak.py": ["--batches", "30", "--steps", "10", "--rounds", "1"],
}


SUMMARY = re.compile(r"ratio|matmul|evaluation encoding|300k steps|skipped|sum of layers|bf16 speed|\d\.?\d*x\b|^(bench_|disent|representation|threads=|metric )|median", re.IGNORECASE)


def is_summary(line: str) -> bool:
    """Ratio lines (and each script's header line) are what ``make bench`` shows."""
    return bool(SUMMARY.search(line.strip()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verbose", action="store_true", help="print every line of every script")
    ap.add_argument("--only", default="", help="comma list of script stems, e.g. train,data")
    a = ap.parse_args()
    only = {f"bench_{s}.py" for s in filter(None, a.only.split(","))}
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not only or p.name in only)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"make bench: {len(scripts)} scripts, {os.cpu_count()} CPUs, load average {load[0]:.2f}; "
          "figures are ratios measured side by side in one run")
    failed = []
    for p in scripts:
        print(f"\n== {p.name} {' '.join(QUICK.get(p.name, []))}", flush=True)
        t = time.perf_counter()
        out = subprocess.run([sys.executable, str(p), *QUICK.get(p.name, [])], capture_output=True, text=True)
        lines = out.stdout.splitlines()
        shown = lines if a.verbose else [ln for ln in lines if is_summary(ln)] or lines[-5:]
        for ln in shown:
            print("  " + ln)
        if out.returncode != 0:
            failed.append(p.name)
            print("  FAILED (exit %d): %s" % (out.returncode, out.stderr.strip().splitlines()[-1:] or ""))
        print(f"  ({time.perf_counter() - t:.0f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
