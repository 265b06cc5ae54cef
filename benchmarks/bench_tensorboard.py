"""What ``--tensorboard`` costs: training steps/s with the flag on and off against a baseline.

Usage::

    .venv/bin/python benchmarks/bench_tensorboard.py [--steps 100] [--eval-every 50] [--rounds 5]
        [--arch mlp] [--batch 64] [--eval-images 512] [--ref 5cb71e2]

Three variants, in one process, interleaved over ``--rounds`` rounds (after one warm-up run each,
which pays the imports), each a ``untwine.train.train`` run on the same in-memory synthetic
dSprites-like images, one torch thread:

* ``baseline``: the trainer with ``src/untwine/train/job.py`` as it was at git revision ``--ref``
  (before TensorBoard existed), loaded from git into this process in place of the current ``Job``;
* ``off``: the current trainer, ``tensorboard=False`` (what must cost nothing);
* ``on``: ``tensorboard=True`` (event files, plus MIG and a traversal figure at each evaluation).

steps/s = steps / CPU time of this process during ``train()`` (evaluations, checkpoints and
TensorBoard's writer thread included; CPU time, unlike wall time, hardly moves when other
processes load a shared machine), and steps / wall time beside it. Ratios are taken within a
round, the median printed; ``off/baseline`` is what the flag costs when off (its spread over
rounds is the noise of the machine), ``on/baseline`` what it costs when on.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import synthetic_images  # noqa: E402

from untwine.data import from_arrays  # noqa: E402
from untwine.train import RunConfig, train  # noqa: E402
from untwine.train import loop as loop_mod  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REF = "5cb71e2"  # the commit before `--tensorboard`


def load_ref_job(rev: str) -> Any:
    """``Job`` of ``src/untwine/train/job.py`` at ``rev``, loaded against the current package."""
    src = subprocess.run(["git", "show", f"{rev}:src/untwine/train/job.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    name = "untwine.train._job_ref"
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))  # type: ignore[arg-type]
    mod.__package__ = "untwine.train"
    sys.modules[name] = mod
    exec(compile(src, f"job.py@{rev}", "exec"), mod.__dict__)
    return mod.Job


def steps_per_s(variant: str, a: argparse.Namespace, data: Any, jobs: dict[str, Any], root: Path) -> tuple[float, float]:
    """(steps per CPU second, steps per wall second) of one run of ``variant``."""
    out = root / variant
    shutil.rmtree(out, ignore_errors=True)
    cfg = RunConfig(dataset=data.name, model="beta-vae", arch=a.arch, steps=a.steps, batch_size=a.batch, latents=10,
                    eval_every=a.eval_every, checkpoint_every=a.steps, eval_images=a.eval_images, log_every=50,
                    device="cpu", precision="fp32", threads=1, out=str(out), tensorboard=variant == "on")
    loop_mod.Job = jobs["baseline" if variant == "baseline" else "current"]
    t, c = time.perf_counter(), time.process_time()
    train(cfg, progress=False, data=data)
    return a.steps / (time.process_time() - c), a.steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--arch", default="mlp", choices=("mlp", "conv64"))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--eval-images", type=int, default=512)
    ap.add_argument("--ref", default=REF)
    a = ap.parse_args()
    torch.set_num_threads(1)
    imgs, f = synthetic_images()
    data = from_arrays(imgs, f, ["shape", "scale", "x", "y"], name="bench-synthetic")
    jobs = {"current": loop_mod.Job, "baseline": load_ref_job(a.ref)}
    variants = ("baseline", "off", "on")
    print(f"bench_tensorboard: {a.arch}, batch {a.batch}, {a.steps} steps, evaluation every {a.eval_every} "
          f"({a.eval_images} images), 1 thread, baseline = job.py@{a.ref}, {a.rounds} rounds")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for v in variants:  # warm-up: imports (tensorboard, matplotlib, metrics), allocator
            steps_per_s(v, argparse.Namespace(**{**vars(a), "steps": 20, "eval_every": 10}), data, jobs, root)
        rates: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
        for r in range(a.rounds):
            for v in variants[r % 3:] + variants[: r % 3]:  # each variant takes each place in turn
                rates[v].append(steps_per_s(v, a, data, jobs, root))
            print(f"round {r + 1}: " + ", ".join(f"{v} {rates[v][-1][0]:.2f} ({rates[v][-1][1]:.2f} wall)"
                                                 for v in variants) + " steps/s", flush=True)
    loop_mod.Job = jobs["current"]
    for v in ("off", "on"):
        for i, clock in enumerate(("CPU", "wall")):
            ratios = [x[i] / b[i] for x, b in zip(rates[v], rates["baseline"])]
            print(f"ratio {v}/baseline ({clock} time): median {statistics.median(ratios):.3f} (rounds: "
                  + ", ".join(f"{x:.3f}" for x in ratios) + ")")


if __name__ == "__main__":
    main()
