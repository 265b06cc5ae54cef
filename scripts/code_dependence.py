"""Is a run's code factorised, and is it aligned with the factors? One block per run folder.

    .venv/bin/python scripts/code_dependence.py RUN_DIR [RUN_DIR ...] [--n 10000] [--active 0.05]

Encodes ``--n`` images (numpy seed 0) with the run's mean encoder and prints:
- the variance of each latent's mean over the images (sorted) and which count as active
  (variance > ``--active``; collapsed latents' means barely move);
- the Gaussian TC of the mean codes over all latents (disentanglement_lib's unsupervised score)
  and over the active latents only: collapsed latents, whose tiny residual movements are
  correlated, can make the first large while the active latents are independent;
- the largest normalised discrete mutual information between two active latents (20 bins, the
  MIG discretisation): non-linear dependence that a Gaussian TC misses, e.g. a rotated square;
- MIG, its per-factor terms, and the matrix of MI(latent; factor) / H(factor) of the active
  latents: an aligned code has one large entry per row and per factor.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    from untwine.metrics import registry

    ap.add_argument("--n", type=int, default=registry.get("mig").sizes["num_train"], help="images (default: MIG's)")
    ap.add_argument("--active", type=float, default=0.05)
    a = ap.parse_args()

    import torch

    from untwine.data import load
    from untwine.metrics import gaussian_total_correlation as gaussian_tc, latent_nmi, mig
    from untwine.train import load_run

    torch.set_num_threads(1)
    cache: dict = {}
    for d in a.runs:
        run = load_run(d)
        cfg = run.config
        key = (cfg.dataset, cfg.source, cfg.data_root)
        if key not in cache:
            cache.clear()
            cache[key] = load(*key)
        data = cache[key]
        f, x = data.sample(a.n, np.random.default_rng(0))
        c = np.asarray(run.encode(x), dtype=np.float64)
        var = c.var(0)
        act = np.where(var > a.active)[0]
        r = mig(c, f)
        print(f"{d}")
        print(f"  latent mean variances: {np.round(np.sort(var)[::-1], 3)}; active: {len(act)}")
        line = f"  Gaussian TC of the mean codes: all latents {gaussian_tc(c):.3f} nats"
        if len(act) >= 2:
            off = latent_nmi(c[:, act])[~np.eye(len(act), dtype=bool)]  # MIG's bins
            line += f", active only {gaussian_tc(c[:, act]):.3f}; largest NMI between two active latents {off.max():.3f}"
        print(line)
        print(f"  MIG {r['mig']:.3f}; per factor " + ", ".join(
            f"{n} {v:.3f}" for n, v in zip(data.factor_names, r["per_factor"])))
        print(f"  MI(latent; factor) / H(factor), active latents x ({', '.join(data.factor_names)}):")
        for row in r["mutual_info"][act] / r["entropy"]:
            print("   " + " ".join(f"{v:5.2f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
