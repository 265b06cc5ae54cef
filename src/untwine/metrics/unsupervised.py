"""Unsupervised scores of a representation: how dependent its code dimensions are, without factors.

Protocol of disentanglement_lib 1.5 (``unsupervised_metrics.py``, ``unsupervised.gin``: 10,000
points, 20-bin histogram discretiser). With ``C = np.cov(codes.T)`` (``ddof=1``):

* Gaussian total correlation ``0.5 (sum_j log C_jj - log det C)`` (nats): KL between the Gaussian
  fit and the product of its marginals (:func:`~untwine.metrics.gaussian_total_correlation`);
* Gaussian Wasserstein correlation ``2 tr C - 2 tr (diag(C) C)^(1/2)``: the squared 2-Wasserstein
  distance between ``N(0, C)`` and ``N(0, diag(C))`` (units: code units squared); normalised form:
  divided by ``tr C``, so that rescaling all codes leaves it unchanged;
* mutual-information score: discrete MI (nats) between every pair of distinct code dimensions
  (20 equal-width bins each, as MIG), summed over ordered pairs and divided by ``D^2 - D``.

All are 0 for independent codes and grow with dependence. Same numbers as the reference on the
same arrays to rounding. The trace of the matrix square root is computed as the sum of the square
roots of the eigenvalues of the symmetric ``diag(C)^(1/2) C diag(C)^(1/2)`` (similar to
``diag(C) C``; negative rounding noise clipped to 0) instead of ``scipy.linalg.sqrtm`` of the
non-symmetric product: real by construction where ``sqrtm`` can return complex values. Where the
reference divides by zero: one code dimension gives an MI score of 0 (no pairs), all-constant
codes a normalised Wasserstein correlation of 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .mig_sampled import gaussian_total_correlation
from .utils import NUM_BINS, check_codes, discrete_entropy, discrete_mutual_info, histogram_discretize


def gaussian_wasserstein_correlation(cov: Any) -> float:
    """``2 tr C - 2 tr (diag(C) C)^(1/2)`` of a ``D x D`` covariance matrix ``C`` (>= 0)."""
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"cov must be a square D x D covariance matrix, got shape {c.shape}")
    s = np.sqrt(np.clip(np.diag(c), 0.0, None))
    eig = np.linalg.eigvalsh(s[:, None] * c * s[None, :])
    return float(2.0 * np.trace(c) - 2.0 * np.sqrt(np.clip(eig, 0.0, None)).sum())


def latent_nmi(codes: Any, num_bins: int = NUM_BINS) -> np.ndarray:
    """Normalised discrete mutual information between the code dimensions of ``codes`` ``N x D``:
    ``D x D``, ``MI(z_i; z_j) / sqrt(H(z_i) H(z_j))`` of the ``num_bins``-bin histograms (MIG's
    discretisation), in [0, 1]; 1 on the diagonal, 0 where a dimension is constant (no entropy).
    Catches non-linear dependence that the Gaussian total correlation misses (a rotated square)."""
    binned = histogram_discretize(check_codes(codes), num_bins)
    h = discrete_entropy(binned)
    norm = np.sqrt(np.outer(h, h))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, discrete_mutual_info(binned, binned) / norm, 0.0)


def unsupervised_scores(codes: Any, num_bins: int = NUM_BINS) -> dict[str, Any]:
    """The four unsupervised scores of codes ``N x D`` (rows = samples).

    Returns:
        ``{"gaussian_total_correlation" (nats), "gaussian_wasserstein_correlation",
        "gaussian_wasserstein_correlation_norm", "mutual_info_score" (nats): floats,
        "covariance": D x D, "mutual_info": D x D (diagonal 0)}``.
    """
    z = check_codes(codes)
    d = z.shape[1]
    cov = np.atleast_2d(np.cov(z.T))
    w = gaussian_wasserstein_correlation(cov)
    trace = float(np.trace(cov))
    binned = histogram_discretize(z, num_bins)
    mi = discrete_mutual_info(binned, binned)
    np.fill_diagonal(mi, 0.0)
    return {
        "gaussian_total_correlation": gaussian_total_correlation(z),
        "gaussian_wasserstein_correlation": w,
        "gaussian_wasserstein_correlation_norm": w / trace if trace > 0 else 0.0,
        "mutual_info_score": float(mi.sum() / (d * d - d)) if d > 1 else 0.0,
        "covariance": cov,
        "mutual_info": mi,
    }
