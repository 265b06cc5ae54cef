"""Disentanglement metrics, equal to disentanglement_lib 1.5 on the same inputs.

Array metrics take codes ``N x D`` (float) and factors ``N x K`` (int), rows = samples:
:func:`mig`, :func:`sap`, :func:`dci`, :func:`modularity_explicitness`,
:func:`gaussian_total_correlation`, :func:`mig_sampled` (from posterior means/log-variances).
Sampling metrics take ``(data, encode, rng)``: :func:`beta_vae_score`, :func:`factor_vae_score`.
:func:`evaluate` runs the suite with the reference sample sizes. See ``docs/metrics.md``.
"""

from .beta_vae_score import beta_vae_score
from .dci import completeness, dci, disentanglement
from .evaluate import DEFAULT_SIZES, METRICS, evaluate, resolve_sizes
from .factor_vae_score import factor_vae_score
from .mig import mig
from .mig_sampled import gaussian_total_correlation, mig_sampled
from .modularity import modularity_explicitness
from .sap import sap
from .utils import discrete_entropy, discrete_mutual_info, histogram_discretize

__all__ = [
    "DEFAULT_SIZES",
    "METRICS",
    "beta_vae_score",
    "completeness",
    "dci",
    "discrete_entropy",
    "discrete_mutual_info",
    "disentanglement",
    "evaluate",
    "factor_vae_score",
    "gaussian_total_correlation",
    "histogram_discretize",
    "mig",
    "mig_sampled",
    "modularity_explicitness",
    "resolve_sizes",
    "sap",
]
