"""Sampling-based MIG from the encoder's posterior, and the Gaussian total correlation of codes.

:func:`mig_sampled` is Chen et al.'s original estimator (2018, "Isolating Sources of
Disentanglement in VAEs", code ``disentanglement_metrics.py``/``elbo_decomposition.py``), used in
beta-TCVAE comparisons. Unlike :func:`untwine.metrics.mig` (histograms of mean codes), it
estimates the entropies of the aggregate posterior ``q(z_j) = 1/N sum_n q(z_j | x_n)`` by Monte
Carlo over a dataset of ``N`` encoded points:

* ``H(z_j) = -E log q(z_j)``: ``S`` rows drawn without replacement, one ``z ~ q(z | x_n)`` each,
  ``log q(z_j) = logsumexp_n log N(z_j; mu_nj, sigma_nj^2) - log N`` over all ``N`` rows;
* ``H(z_j | v_k) = sum_v p(v) H(z_j | v_k = v)``, the same estimator restricted to the rows with
  ``v_k = v`` (``min(S, rows)`` samples each), ``p(v)`` their share of the rows;
* ``I(z_j; v_k) = max(0, H(z_j) - H(z_j | v_k))``, normalised by the factor's empirical entropy
  (``log factor_size`` on a full, uniform grid, Chen's normaliser), gap of the top two, mean.

Chen et al. evaluate on the full dSprites grid (737,280 rows) and report the mean over the four
non-shape factors; pass ``factors[:, 1:]`` for that. Cost is ``O(S * N * D)`` per entropy (and the
same again over all factors' conditionals): use a subset of the grid on a CPU. Units: nats.

:func:`gaussian_total_correlation` is disentanglement_lib's unsupervised score
(``unsupervised_metrics.py``): the total correlation of a Gaussian fit to the codes,
``0.5 * (sum_j log cov_jj - log det cov)`` with ``cov = np.cov(codes.T)`` (``ddof=1``), in nats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.protocol import RNG
from .utils import check_codes, check_pair, check_sizes, discrete_entropy

_LOG2PI = float(np.log(2.0 * np.pi))


def _log_q_marginal(
    z: np.ndarray, mu: np.ndarray, logvar: np.ndarray, chunk: int
) -> np.ndarray:
    """``log (1/N sum_n N(z_sj; mu_nj, exp(logvar_nj)))`` for ``z`` ``S x D`` -> ``S x D``."""
    n = mu.shape[0]
    inv_var = np.exp(-logvar)
    run_max = np.full(z.shape, -np.inf)
    run_sum = np.zeros(z.shape)
    for start in range(0, n, chunk):
        m, lv, iv = mu[start : start + chunk], logvar[start : start + chunk], inv_var[start : start + chunk]
        lp = -0.5 * (_LOG2PI + lv[None] + (z[:, None, :] - m[None]) ** 2 * iv[None])  # S x c x D
        cmax = lp.max(axis=1)
        new_max = np.maximum(run_max, cmax)
        run_sum = run_sum * np.exp(run_max - new_max) + np.exp(lp - new_max[:, None, :]).sum(axis=1)
        run_max = new_max
    return np.log(run_sum) + run_max - np.log(n)


def _entropy(
    mu: np.ndarray, logvar: np.ndarray, num_samples: int, rng: RNG, chunk: int
) -> np.ndarray:
    """Monte-Carlo ``H(z_j)`` (``D``, nats) of the aggregate posterior of the given rows."""
    n = mu.shape[0]
    s = min(num_samples, n)
    rows = rng.permutation(n)[:s]  # same call on RandomState and Generator
    eps = rng.standard_normal((s, mu.shape[1]))
    z = mu[rows] + np.exp(0.5 * logvar[rows]) * eps
    sample_chunk = max(1, (32 * 2**20) // max(1, chunk * mu.shape[1] * 8))
    out = np.zeros(mu.shape[1])
    for start in range(0, s, sample_chunk):
        out -= _log_q_marginal(z[start : start + sample_chunk], mu, logvar, chunk).sum(axis=0)
    return out / s


def mig_sampled(
    mu: Any,
    logvar: Any,
    factors: Any,
    rng: RNG,
    num_samples: int = 10000,
    chunk_size: int = 2048,
) -> dict[str, Any]:
    """Chen et al.'s sampled MIG from Gaussian posteriors ``q(z|x_n) = N(mu_n, exp(logvar_n))``.

    Args:
        mu, logvar: ``N x D`` posterior means and log-variances of ``N`` encoded points (ideally
            the whole factor grid, or a uniform sample of it).
        factors: ``N x K`` int factor indices of those points.
        rng: numpy ``RandomState`` or ``Generator`` (row choice and ``z`` draws).
        num_samples: Monte-Carlo samples ``S`` per entropy estimate (Chen: 10,000).
        chunk_size: rows of the dataset evaluated at once (memory ~ ``S_chunk * chunk * D`` floats).

    Returns:
        ``{"mig", "per_factor" (K), "mutual_info" (D x K nats), "marginal_entropy" (D nats),
        "conditional_entropy" (D x K nats), "factor_entropy" (K nats)}``.
    """
    m, f = check_pair(mu, factors)
    lv = check_codes(logvar, "logvar")
    if lv.shape != m.shape:
        raise ValueError(f"logvar has shape {lv.shape} but mu has shape {m.shape}")
    check_sizes(num_samples=num_samples, chunk_size=chunk_size)
    h_marg = _entropy(m, lv, num_samples, rng, chunk_size)
    d, k = m.shape[1], f.shape[1]
    h_cond = np.zeros((d, k))
    for j in range(k):
        values, inverse = np.unique(f[:, j], return_inverse=True)
        for v in range(len(values)):
            rows = np.flatnonzero(inverse == v)
            h_cond[:, j] += len(rows) / len(f) * _entropy(m[rows], lv[rows], num_samples, rng, chunk_size)
    mi = np.clip(h_marg[:, None] - h_cond, 0.0, None)
    hv = discrete_entropy(f)
    s = np.sort(mi, axis=0)[::-1]
    second = s[1] if d > 1 else np.zeros(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(hv > 0, (s[0] - second) / np.where(hv > 0, hv, 1.0), np.nan)
    score = float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")
    return {
        "mig": score,
        "per_factor": per,
        "mutual_info": mi,
        "marginal_entropy": h_marg,
        "conditional_entropy": h_cond,
        "factor_entropy": hv,
    }


def gaussian_total_correlation(codes: Any) -> float:
    """Total correlation (nats) of a Gaussian fit to ``codes`` (``N x D``), as disentanglement_lib.

    ``0.5 * (sum_j log cov_jj - log det cov)``; 0 for independent dimensions, ``inf`` for
    perfectly correlated (or constant) ones.
    """
    c = check_codes(codes)
    if c.shape[1] == 1:
        return 0.0
    cov = np.cov(c.T)
    with np.errstate(divide="ignore"):
        sign, logdet = np.linalg.slogdet(cov)
        diag = np.log(np.diag(cov))
    if sign <= 0 or not np.isfinite(diag).all():
        return float("inf")
    return float(0.5 * (diag.sum() - logdet))
