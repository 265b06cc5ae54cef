"""Disentanglement metrics, equal to disentanglement_lib 1.5 on the same inputs.

Array metrics take codes ``N x D`` (float) and factors ``N x K`` (int), rows = samples:
:func:`mig`, :func:`sap`, :func:`dci`, :func:`modularity_explicitness`, :func:`irs`,
:func:`downstream_task`, :func:`reduced_downstream_task`, :func:`unsupervised_scores` and
:func:`gaussian_total_correlation` and :func:`latent_nmi` (codes only), :func:`mig_sampled` (from posterior
means/log-variances). Sampling metrics take ``(data, encode, rng)``: :func:`beta_vae_score`,
:func:`factor_vae_score`, :func:`fairness`. Across models, without factors: :func:`udr` (codes
of several models of the same inputs), :func:`udr_runs` (trained runs). :func:`evaluate` runs the
suite with the reference sample sizes; :mod:`untwine.metrics.registry` lists the suite's metrics
(one entry each: name, function, default sizes, opt-in, cost). See ``docs/metrics.md``.
"""

from .beta_vae_score import beta_vae_score
from .dci import completeness, dci, disentanglement
from .downstream import downstream_task
from .evaluate import DEFAULT_METRICS, DEFAULT_SIZES, METRICS, SLOW_METRICS, evaluate, resolve_sizes
from .factor_vae_score import factor_vae_score
from .fairness import fairness, fairness_aggregates, inter_group_fairness
from .irs import irs
from .mig import mig
from .mig_sampled import gaussian_total_correlation, mig_sampled
from .modularity import modularity_explicitness
from .reduced_downstream import reduced_downstream_task
from .sap import sap
from .udr import udr, udr_runs
from .unsupervised import gaussian_wasserstein_correlation, latent_nmi, unsupervised_scores
from .utils import discrete_entropy, discrete_mutual_info, histogram_discretize

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_SIZES",
    "METRICS",
    "SLOW_METRICS",
    "beta_vae_score",
    "completeness",
    "dci",
    "discrete_entropy",
    "discrete_mutual_info",
    "disentanglement",
    "downstream_task",
    "evaluate",
    "factor_vae_score",
    "fairness",
    "fairness_aggregates",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "histogram_discretize",
    "inter_group_fairness",
    "irs",
    "latent_nmi",
    "mig",
    "mig_sampled",
    "modularity_explicitness",
    "reduced_downstream_task",
    "resolve_sizes",
    "sap",
    "udr",
    "udr_runs",
    "unsupervised_scores",
]
