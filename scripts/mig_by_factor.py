"""MIG and its per-factor terms for run folders, at their latest checkpoint (for watching a run learn).

    .venv/bin/python scripts/mig_by_factor.py RUN_DIR [RUN_DIR ...] [--n 10000] [--seed 0] [--csv FILE]

Encodes ``--n`` images sampled (numpy seed ``--seed``) from each run's own dataset with the run's
mean encoder and prints one line per run: step, MIG (disentanglement_lib's estimator, 20 bins) and
the MIG of every factor. ``--csv`` appends the same as rows ``run,step,mig,<factor>...`` (a file per
dataset). ``untwine evaluate RUN --metrics mig`` gives the overall MIG of the standard protocol.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    from untwine.metrics import registry

    ap.add_argument("--n", type=int, default=registry.get("mig").sizes["num_train"], help="images (default: MIG's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", default=None)
    a = ap.parse_args()

    import torch

    from untwine.data import load
    from untwine.metrics import mig
    from untwine.train import checkpoint, load_run

    torch.set_num_threads(1)
    cache: dict[tuple, object] = {}
    for d in a.runs:
        run = load_run(d)
        ckpt = checkpoint.find(d)
        step = int(checkpoint.model_metadata(ckpt)["step"]) if ckpt is not None else -1
        cfg = run.config
        key = (cfg.dataset, cfg.source, cfg.data_root)
        if key not in cache:
            cache.clear()
            cache[key] = load(*key)
        data = cache[key]
        f, x = data.sample(a.n, np.random.default_rng(a.seed))
        r = mig(run.encode(x), f)
        per = dict(zip(data.factor_names, (float(v) for v in r["per_factor"])))
        print(f"{d}: step {step}, MIG {r['mig']:.3f} (" + ", ".join(f"{k} {v:.3f}" for k, v in per.items()) + ")")
        if a.csv:
            new = not Path(a.csv).exists()
            with open(a.csv, "a", newline="") as fh:
                w = csv.writer(fh)
                if new:
                    w.writerow(["run", "step", "mig", *per])
                w.writerow([d, step, f"{r['mig']:.4f}", *(f"{v:.4f}" for v in per.values())])
    return 0


if __name__ == "__main__":
    sys.exit(main())
