"""CPU precision: ``untwine train`` with its default precision (``auto``: bf16 on CPUs where
``speed.measure_cpu_bf16`` finds it >= 1.1x faster, printed first) and with ``--precision bf16`` against ``--precision fp32`` and against a plain float32 PyTorch loop, then
whether bf16 learns and evaluates the same.

Usage::

    .venv/bin/python benchmarks/bench_precision.py [--steps 300] [--repeats 3] [--threads 0]
        [--learn-steps 600] [--no-learn] [--no-speed] [--shipped NAME ...] [--quick]

Speed part: each measurement is a fresh subprocess, the variants interleaved over ``--repeats``
rounds (default, fp32, bf16, plain), ratios taken within a round, medians printed:

* ``default`` / ``fp32`` / ``bf16``: ``untwine train`` (beta-VAE, batch 64, procedural dSprites, conv64)
  for ``--steps`` steps with one evaluation and one checkpoint (``--eval-every`` and
  ``--checkpoint-every`` = steps); the figure is the run's own ``summary.json`` ``images_per_s``.
* ``plain``: ``bench_train.py``'s plain float32 loop (same architecture, ``loss.item()`` every
  step), ``--steps`` steps.

Learning part (``--learn-steps``, default 600): the same run to that length in the default
precision and in fp32; prints the final validation reconstruction error of both (target: within
5%), then encodes 10,000 dSprites images with the default-precision model in bf16 and in fp32
and prints MIG for each (target: within 0.005) and the encoding speed ratio. The same encoding
check then runs on the shipped models named by ``--shipped`` (default ``beta-tcvae-dsprites``, MIG
~0.35: a disentangled code, where rounding matters more than in a 600-step model's).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def untwine_cmd(out: Path, steps: int, threads: int, precision: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "untwine.cli", "train", "--dataset", "dsprites", "--source", "procedural",
           "--model", "beta-vae", "--steps", str(steps), "--batch-size", "64", "--eval-every", str(steps),
           "--checkpoint-every", str(steps), "--threads", str(threads), "--out", str(out), "--no-progress"]
    return cmd + (["--precision", precision] if precision else [])


def run_untwine(out: Path, steps: int, threads: int, precision: str | None) -> dict:
    """Train (as the ``untwine`` command does, with its malloc settings) and return summary.json."""
    from untwine.cli import MALLOC_ENV

    env = {**os.environ, **MALLOC_ENV, "UNTWINE_NO_REEXEC": "1"}
    p = subprocess.run(untwine_cmd(out, steps, threads, precision), env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"untwine train failed:\n{p.stderr[-2000:]}")
    return json.loads((out / "summary.json").read_text())


def run_plain(steps: int, threads: int) -> float:
    cmd = [sys.executable, str(HERE / "bench_train.py"), "--worker", "plain", "--steps", str(steps),
           "--batch", "64", "--threads", str(threads)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"plain loop failed:\n{p.stderr[-2000:]}")
    return float(json.loads(p.stdout.strip().splitlines()[-1])["images_per_s"])


def speed_part(a: argparse.Namespace, tmp: Path) -> None:
    res: dict[str, list[float]] = {"default": [], "fp32": [], "bf16": [], "plain": []}
    precision = None
    for r in range(a.repeats):
        s = run_untwine(tmp / f"d{r}", a.steps, a.threads, None)
        precision = json.loads((tmp / f"d{r}" / "config.json").read_text())["precision"]
        res["default"].append(s["images_per_s"])
        res["fp32"].append(run_untwine(tmp / f"f{r}", a.steps, a.threads, "fp32")["images_per_s"])
        res["bf16"].append(run_untwine(tmp / f"b{r}", a.steps, a.threads, "bf16")["images_per_s"])
        res["plain"].append(run_plain(a.steps, a.threads))
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in res.items()), flush=True)
    print(f"default precision resolved to: {precision}")
    for k, v in res.items():
        print(f"{k:10s} median {statistics.median(v):8.1f} images/s")
    r1 = statistics.median(x / y for x, y in zip(res["default"], res["fp32"]))
    r2 = statistics.median(x / y for x, y in zip(res["default"], res["plain"]))
    r3 = statistics.median(x / y for x, y in zip(res["fp32"], res["plain"]))
    r4 = statistics.median(x / y for x, y in zip(res["bf16"], res["fp32"]))
    print(f"ratio untwine default / untwine --precision fp32 (images/s): {r1:.3f} (target >= 1.4: {'met' if r1 >= 1.4 else 'NOT met'})")
    print(f"ratio untwine default / plain fp32 loop (images/s): {r2:.3f} (target >= 2.0: {'met' if r2 >= 2.0 else 'NOT met'})")
    print(f"ratio untwine fp32 / plain fp32 loop (images/s): {r3:.3f}")
    print(f"ratio untwine --precision bf16 / --precision fp32 (images/s): {r4:.3f}")


def encoding_check(run_dir: Path, label: str, n: int = 10_000) -> None:
    """Encode ``n`` procedural dSprites images with the run at ``run_dir`` in fp32 and in bf16 and
    print MIG of each (target: within 0.005) and the encoding speed ratio."""
    import numpy as np

    from untwine.data import load
    from untwine.metrics import mig
    from untwine.train import load_run

    data = load("dsprites", "procedural")
    f, x = data.sample(n, np.random.default_rng(0))
    run = load_run(run_dir)
    out = {}
    for prec in ("fp32", "bf16"):
        run.precision = prec
        run.encode(x[:1024])  # warm-up
        t = time.perf_counter()
        z = run.encode(x)
        out[prec] = (time.perf_counter() - t, mig(z, f)["mig"])
    d = abs(out["bf16"][1] - out["fp32"][1])
    print(f"evaluation encoding ({label}): MIG on {n:,} codes fp32 {out['fp32'][1]:.4f}, bf16 {out['bf16'][1]:.4f}, "
          f"difference {d:.4f} (target <= 0.005: {'met' if d <= 0.005 else 'NOT met'}); "
          f"ratio bf16 / fp32 encoding speed: {out['fp32'][0] / out['bf16'][0]:.3f}")


def learn_part(a: argparse.Namespace, tmp: Path) -> None:
    def last_val(d: Path) -> dict:
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
        return [r for r in rows if r["split"] == "val"][-1]

    run_untwine(tmp / "ld", a.learn_steps, a.threads, None)
    run_untwine(tmp / "lf", a.learn_steps, a.threads, "fp32")
    vd, vf = last_val(tmp / "ld"), last_val(tmp / "lf")
    rel = abs(vd["rec"] - vf["rec"]) / vf["rec"]
    print(f"{a.learn_steps}-step runs: validation rec default {vd['rec']:.2f} vs fp32 {vf['rec']:.2f} nats "
          f"(KL {vd['kl']:.2f} vs {vf['kl']:.2f}); relative difference of rec {rel:.3f} "
          f"(target <= 0.05: {'met' if rel <= 0.05 else 'NOT met'})")
    encoding_check(tmp / "ld", f"the {a.learn_steps}-step run")


def shipped_part(names: list[str]) -> None:
    """The encoding check on shipped (trained, disentangled) models, where rounding could move MIG."""
    from untwine.pretrained import path as pretrained_path

    for name in names:
        encoding_check(pretrained_path(name), f"shipped {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="steps per speed measurement")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--learn-steps", type=int, default=600)
    ap.add_argument("--no-learn", action="store_true", help="skip the learning/evaluation part")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed part")
    ap.add_argument("--shipped", nargs="*", default=["beta-tcvae-dsprites"], metavar="NAME",
                    help="shipped models whose encoding is checked in bf16 vs fp32 (default: beta-tcvae-dsprites)")
    ap.add_argument("--quick", action="store_true", help="small settings for make bench")
    a = ap.parse_args()
    if a.quick:
        a.steps, a.repeats, a.learn_steps = 60, 2, 200

    import torch

    from untwine.train.speed import bf16_native, cpu_model, measure_cpu_bf16

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"bench_precision: torch {torch.__version__}, {os.cpu_count()} CPUs, threads "
          f"{a.threads or torch.get_num_threads()}, CPU bf16 native: {bf16_native('cpu')}, "
          f"{a.steps} steps x {a.repeats} rounds, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    threads = a.threads or torch.get_num_threads()
    print(f"CPU: {cpu_model()}; bare conv64 step bf16 / fp32 (speed.measure_cpu_bf16, what precision=auto "
          f"decides from): {measure_cpu_bf16(threads, rounds=5):.3f}")
    with tempfile.TemporaryDirectory() as d:
        if not a.no_speed:
            speed_part(a, Path(d))
        if not a.no_learn:
            learn_part(a, Path(d))
    shipped_part(a.shipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
