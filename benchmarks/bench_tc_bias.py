"""Bias of the total-correlation estimators at the sizes untwine uses, on codes with a known TC.

Known cases (D = 10 latents, ``k`` active): active means ``mu ~ N(0, (1 - s^2) R)``, posterior
std ``s`` (so the aggregate q(z) = N(0, (1 - s^2) R + s^2 I) has unit variances), inactive latents
``mu = 0, s = 1``; ``R = I`` (true TC 0) or equicorrelated with ``rho`` (true TC from the
covariance). ``N`` = 663,552 training images (dSprites' 90 %). Each estimator sees 2,048
validation codes ``z ~ q(z|x)``, as the trainer's validation does:

* ``strat@64``: the stratified minibatch estimate, averaged over 32 batches of 64 (what the
  trainer logged as ``tc`` before; beta-TCVAE's training estimate is the same at batch 64);
* ``mws@64``: minibatch weighted sampling (beta-TCVAE's default training estimator), same batches;
* ``strat@2048``: the stratified estimate with all 2,048 codes as one batch;
* ``gauss@2048``: :func:`untwine.objectives.tc.gaussian_tc` of the 2,048 sampled codes (reported).

Prints mean ± std over ``--repeats`` draws, and the bias (mean - true TC), in nats.
    OMP_NUM_THREADS=1 python benchmarks/bench_tc_bias.py
"""

from __future__ import annotations

import argparse
import math

import torch

from untwine.objectives.tc import gaussian_tc, sample_total_correlation, total_correlation

N_TRAIN = 663_552
D = 10


def case(k: int, s: float, rho: float, n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``(z, mu, logvar, true_tc)`` for ``n`` codes of the known case."""
    r = torch.full((k, k), rho, dtype=torch.float64).fill_diagonal_(1.0)
    cov = (1 - s * s) * r
    mu_a = torch.randn(n, k, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    mu = torch.cat([mu_a, torch.zeros(n, D - k, dtype=torch.float64)], 1)
    logvar = torch.cat([torch.full((n, k), 2 * math.log(s)), torch.zeros(n, D - k)], 1).to(torch.float64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(n, D, generator=gen, dtype=torch.float64)
    agg = cov + s * s * torch.eye(k, dtype=torch.float64)
    true = 0.5 * (torch.log(torch.diagonal(agg)).sum() - torch.logdet(agg))
    return z, mu, logvar, float(true)


def estimates(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> dict[str, float]:
    batches = [slice(i, i + 64) for i in range(0, len(z), 64)]

    def per_batch(stratified: bool) -> float:
        return float(sum(total_correlation(z[b], mu[b], logvar[b], N_TRAIN, stratified=stratified)
                         for b in batches) / len(batches))

    return {
        "strat@64": per_batch(True),
        "mws@64": per_batch(False),
        "strat@2048": float(sample_total_correlation(z, mu, logvar, N_TRAIN)),
        "gauss@2048": float(gaussian_tc(z)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--n", type=int, default=2048, help="validation codes per estimate")
    args = p.parse_args()
    gen = torch.Generator().manual_seed(0)
    cases = [(k, s, rho) for rho in (0.0, 0.5) for k in (5,) for s in (0.05, 0.1, 0.3, 0.6)]
    names = ["strat@64", "mws@64", "strat@2048", "gauss@2048"]
    print(f"D={D}, N={N_TRAIN}, {args.n} validation codes, {args.repeats} repeats; mean ± std (bias), nats")
    print(f"{'k':>2} {'s':>5} {'rho':>4} {'true TC':>8} | " + " | ".join(f"{n:>22}" for n in names))
    for k, s, rho in cases:
        runs, true = [], 0.0
        for _ in range(args.repeats):
            z, mu, logvar, true = case(k, s, rho, args.n, gen)
            runs.append(estimates(z, mu, logvar))
        cells = []
        for n in names:
            v = torch.tensor([r[n] for r in runs])
            cells.append(f"{v.mean():8.3f} ± {v.std():5.3f} ({v.mean() - true:+6.2f})")
        print(f"{k:>2} {s:>5} {rho:>4} {true:8.3f} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
