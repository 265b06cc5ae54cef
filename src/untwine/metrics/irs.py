"""Interventional Robustness Score (Suter et al. 2019, "Robustly Disentangled Causal Mechanisms:
Validating Deep Representations for Interventional Robustness", arXiv 1811.00007).

Protocol of disentanglement_lib 1.5 (``irs.py``, ``compute_irs`` with ``diff_quantile=0.99``):

1. the factors are discretised like codes elsewhere in the library (20 equal-width bins per
   factor, :func:`~untwine.metrics.utils.histogram_discretize`): factors with more than 20 values
   (dSprites' 40 orientations, 32 x and y positions) are merged into 20 groups, as the reference
   does with its ``discretizer`` binding;
2. code dimensions with zero variance are dropped (IRS 0 if none is left);
3. per factor ``k`` and value ``v``: the ``diff_quantile`` quantile (``np.percentile``, linear) of
   ``|z_j - E[z_j | g_k = v]|`` over the rows with ``g_k = v``, averaged over the values: the
   deviation ``dev[j, k]`` of code ``j`` when all factors but ``k`` vary;
4. ``IRS[j, k] = 1 - dev[j, k] / max_n |z_nj - mean z_j|``; per code the best factor
   ``max_k IRS[j, k]``; the score is their mean weighted by ``max_n |z_nj - mean z_j|``.

Same formula, same numbers on the same arrays (to floating-point rounding). In the suite the
codes are the shared pool's first ``num_train`` = 10,000 rows (the reference draws its own sample).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .utils import NUM_BINS, check_pair, histogram_discretize


def irs(codes: Any, factors: Any, diff_quantile: float = 0.99, num_bins: int = NUM_BINS) -> dict[str, Any]:
    """IRS of codes (``N x D`` float) with respect to factors (``N x K`` int).

    Args:
        diff_quantile: quantile of the within-group deviations (1.0: the paper's maximum).
        num_bins: equal-width bins per factor before grouping (the reference's 20).

    Returns:
        ``{"irs": float in [0, 1], "num_active_dims": int, "active": D bool,
        "per_code": D' scores of the active codes, "irs_matrix": D' x K,
        "parents": D' best factor per active code, "max_deviations": D'}``.
    """
    z, f = check_pair(codes, factors)
    if not 0.0 <= float(diff_quantile) <= 1.0:
        raise ValueError(f"diff_quantile must be in [0, 1], got {diff_quantile}")
    groups = histogram_discretize(f, num_bins)
    active = z.var(axis=0) > 0.0
    out: dict[str, Any] = {"num_active_dims": int(active.sum()), "active": active}
    if not active.any():
        empty = np.zeros(0)
        return {**out, "irs": 0.0, "per_code": empty, "irs_matrix": np.zeros((0, f.shape[1])),
                "parents": np.zeros(0, dtype=np.int64), "max_deviations": empty}
    za = z[:, active]
    max_dev = np.max(np.abs(za - za.mean(axis=0)), axis=0)
    dev = np.zeros((za.shape[1], f.shape[1]))
    for k in range(f.shape[1]):
        values = np.unique(groups[:, k])
        for v in values:
            zk = za[groups[:, k] == v]
            dev[:, k] += np.percentile(np.abs(zk - zk.mean(axis=0)), q=100.0 * diff_quantile, axis=0)
        dev[:, k] /= values.size
    matrix = 1.0 - dev / max_dev[:, None]
    per_code = matrix.max(axis=1)
    return {
        **out,
        "irs": float(np.average(per_code, weights=max_dev)),
        "per_code": per_code,
        "irs_matrix": matrix,
        "parents": matrix.argmax(axis=1),
        "max_deviations": max_dev,
    }
