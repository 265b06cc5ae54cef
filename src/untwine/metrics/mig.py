"""Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs").

Protocol of disentanglement_lib 1.5 (``evaluation/metrics/mig.py``, ``mig.gin``): 10,000 sampled
points, each code dimension discretised into 20 equal-width bins over its own sample range
(:func:`~untwine.metrics.utils.histogram_discretize`), discrete MI with every factor, the gap
between the two most informative dimensions, normalised by the factor's (empirical) entropy,
averaged over factors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .utils import NUM_BINS, check_pair, discrete_entropy, discrete_mutual_info, histogram_discretize


def mig(codes: Any, factors: Any, num_bins: int = NUM_BINS) -> dict[str, Any]:
    """Mutual Information Gap of ``codes`` (``N x D`` float) w.r.t. ``factors`` (``N x K`` int).

    ``MIG = mean_k (I(z_(1); v_k) - I(z_(2); v_k)) / H(v_k)`` with ``z_(1), z_(2)`` the two code
    dimensions with the largest discrete MI with factor ``k``. MI and entropy in nats.

    Returns:
        ``{"mig": float in [0, 1], "per_factor": K-array, "mutual_info": D x K nats,
        "entropy": K nats}``.

    Differences from disentanglement_lib: with a single code dimension the gap is taken to that
    dimension's MI (the reference fails); a factor constant in the sample (zero entropy, the
    reference gives NaN) gets ``per_factor = nan`` and is left out of the mean.
    """
    c, f = check_pair(codes, factors)
    m = discrete_mutual_info(histogram_discretize(c, num_bins), f)
    h = discrete_entropy(f)
    s = np.sort(m, axis=0)[::-1]
    second = s[1] if s.shape[0] > 1 else np.zeros(s.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(h > 0, (s[0] - second) / np.where(h > 0, h, 1.0), np.nan)
    score = float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")
    return {"mig": score, "per_factor": per, "mutual_info": m, "entropy": h}
