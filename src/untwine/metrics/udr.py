"""Unsupervised Disentanglement Ranking, UDR (Duan et al. 2020, "Unsupervised Model Selection for
Variational Disentangled Representation Learning", ICLR; arXiv 1905.12614).

UDR picks among trained models without ground truth: a disentangled model's informative latents
match those of other disentangled models (other seeds) one to one, up to permutation and sign,
while entangled models differ from each other in many ways. Protocol of disentanglement_lib's
``compute_udr_sklearn`` (GitHub master, ``evaluation/udr/metrics/udr.py`` with ``udr.gin`` /
``udr_spearman.gin``; not in the 1.5 release):

1. every model encodes the same 1,000 observations: mean codes ``N x D`` and the per-latent KL to
   the prior, the mean over the observations of ``0.5 (mu^2 + exp(logvar) - logvar - 1)`` (nats);
2. codes are standardised per latent (``StandardScaler``; a constant latent becomes 0) and latents
   with KL <= 0.01 nats (inactive) are set to 0;
3. for every ordered pair ``(i, j)``, ``i != j``, a ``D x D`` similarity ``R`` between model
   ``i``'s latents (rows) and model ``j``'s (columns): ``"lasso"``, the absolute coefficients of
   ``Lasso(alpha=0.1)`` predicting ``j``'s codes from ``i``'s; ``"spearman"``, absolute Spearman
   rank correlations;
4. the rows and columns of inactive latents are dropped (``filter_low_kl``);
5. pair score, the relative strength ``(mean_c max_r R^2 / sum_r R + mean_r max_c R^2 / sum_c R) / 2``
   (1 for a one-to-one match); an undefined ratio (an all-zero row or column, the NaN correlation
   of a constant latent) counts 0;
6. a model's UDR is the median of the scores of the pairs in which it is the second model,
   ``pairwise[j, i]`` over ``j != i``.

Same numbers as the reference on the same codes and KLs. Differences, only where the reference
fails or hard-codes: a pair in which a model has no active latent scores 0 (the reference raises on
the empty matrix); ``kl_threshold`` sets both the zeroing of step 2 and the filter of step 4 (the
reference zeroes at a fixed 0.01 whatever its ``kl_filter_threshold``; equal at the default);
``pairwise`` has NaN on its diagonal (the reference stores 0 there; neither uses it).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import UserError
from .utils import check_codes, to_numpy

CORRELATIONS = ("lasso", "spearman")
SCORE_KEYS = tuple(f"udr_{c}" for c in CORRELATIONS)  # the results' columns (udr.json, results.csv)
NUM_DATA_POINTS = 1000  # udr.gin's num_data_points
KL_THRESHOLD = 0.01  # nats; udr.gin's kl_filter_threshold


def relative_strength(r: Any) -> float:
    """Relative-strength score of a non-negative similarity matrix ``R`` (``A x B``): the mean of
    ``max R^2 / sum R`` over columns and over rows, averaged; 1 for a one-to-one match (a scaled
    permutation matrix). Undefined ratios (all-zero or NaN rows/columns) count 0; empty: 0."""
    m = np.asarray(r, dtype=np.float64)
    if m.size == 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = np.nan_to_num(m.max(axis=0) ** 2 / m.sum(axis=0))
        rows = np.nan_to_num(m.max(axis=1) ** 2 / m.sum(axis=1))
    return float((cols.mean() + rows.mean()) / 2)


def lasso_matrix(a: np.ndarray, b: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    """``|coef|`` (``D_a x D_b``) of ``Lasso(alpha)`` predicting every column of ``b`` from ``a``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        coef = Lasso(alpha=alpha).fit(a, b).coef_
    return np.abs(np.reshape(coef, (b.shape[1], a.shape[1]))).T


def _ranks(a: np.ndarray) -> np.ndarray:
    """Column ranks (ties averaged), centred and scaled to unit norm (NaN for a constant column)."""
    from scipy.stats import rankdata

    r = rankdata(a, axis=0)
    r -= r.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return r / np.sqrt((r * r).sum(axis=0))


def spearman_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|Spearman rho|`` (``D_a x D_b``) between every column of ``a`` and every column of ``b``;
    NaN where a column is constant (as ``scipy.stats.spearmanr``)."""
    return np.abs(_ranks(a).T @ _ranks(b))


def _check(codes: Any, kl: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if isinstance(codes, np.ndarray) and codes.ndim == 2:
        raise ValueError(
            f"codes must be a list of N x D arrays, one per model; got one array of shape {codes.shape}: "
            "pass [codes_of_model_0, codes_of_model_1, ...]"
        )
    zs = list(codes)
    if len(zs) < 2:
        raise ValueError(
            f"UDR compares models with each other: got the codes of {len(zs)} model(s); pass the codes "
            "of >= 2 models (e.g. the seeds of one setting)"
        )
    ks = list(kl)
    if len(ks) != len(zs):
        raise ValueError(f"kl has {len(ks)} entries but codes has {len(zs)} models; pass one per-latent KL "
                         "vector per model")
    zs = [check_codes(z, f"codes[{i}]") for i, z in enumerate(zs)]
    n, d = zs[0].shape
    for i, z in enumerate(zs[1:], 1):
        if z.shape[0] != n:
            raise ValueError(f"codes[{i}] has {z.shape[0]} rows but codes[0] has {n}; encode the same "
                             "observations with every model")
        if z.shape[1] != d:
            raise ValueError(f"codes[{i}] has {z.shape[1]} latents but codes[0] has {d}; UDR compares "
                             "models with the same number of latents")
    out = []
    for i, k in enumerate(ks):
        v = to_numpy(k).astype(np.float64)
        if v.shape != (d,):
            raise ValueError(f"kl[{i}] must be a vector of the {d} per-latent KLs (nats) of model {i}, got "
                             f"shape {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError(f"kl[{i}] has NaN or infinite values; check the encoder's log-variances")
        out.append(v)
    return zs, out


def udr(
    codes: Sequence[Any],
    kl: Sequence[Any],
    correlation: str = "lasso",
    kl_threshold: float = KL_THRESHOLD,
    filter_low_kl: bool = True,
    alpha: float = 0.1,
) -> dict[str, Any]:
    """UDR of ``M >= 2`` models from their codes of the same observations.

    Args:
        codes: ``M`` arrays ``N x D`` (float; mean codes of the same ``N`` observations, same row
            order), or one ``M x N x D`` array.
        kl: ``M`` vectors ``D``: each latent's mean KL to the prior over the observations (nats).
        correlation: ``"lasso"`` (the paper's UDR_L) or ``"spearman"`` (UDR_S).
        kl_threshold: latents with KL <= this (nats) are inactive: zeroed and, with
            ``filter_low_kl``, left out of the pair scores.
        alpha: the Lasso's regularisation (the reference's 0.1).

    Returns:
        ``{"udr": M model scores in [0, 1], "pairwise": M x M pair scores (row: the first model,
        column: the second; NaN diagonal), "correlations": M x M x D x D similarity matrices (zero
        diagonal blocks), "active": M x D bool, "num_active": M ints, "correlation": str}``.
    """
    if correlation not in CORRELATIONS:
        raise ValueError(f"correlation must be 'lasso' or 'spearman', got {correlation!r}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (the Lasso's regularisation), got {alpha}")
    zs, kls = _check(codes, kl)
    from sklearn.preprocessing import StandardScaler

    active = np.stack([k > kl_threshold for k in kls])
    std = [StandardScaler().fit_transform(z) * a for z, a in zip(zs, active)]
    if correlation == "spearman":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ranks = [_ranks(s) for s in std]
    m, d = len(zs), zs[0].shape[1]
    corr = np.zeros((m, m, d, d))
    pair = np.full((m, m), np.nan)
    for i in range(m):
        for j in range(m):
            if i == j:
                continue
            r = lasso_matrix(std[i], std[j], alpha) if correlation == "lasso" else np.abs(ranks[i].T @ ranks[j])
            corr[i, j] = r
            pair[i, j] = relative_strength(r[active[i]][:, active[j]] if filter_low_kl else r)
    scores = np.array([np.median(np.delete(pair[:, i], i)) for i in range(m)])
    return {"udr": scores, "pairwise": pair, "correlations": corr, "active": active,
            "num_active": active.sum(axis=1), "correlation": correlation}


# ------------------------------------------------------------------------------ trained runs
def gaussian_kl(mu: Any, logvar: Any) -> np.ndarray:
    """Per-latent KL to the prior ``N(0, 1)``, mean over rows (nats): ``D`` from ``N x D`` posteriors."""
    m, lv = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    return np.mean(0.5 * (m * m + np.exp(lv) - lv - 1.0), axis=0)


def udr_runs(
    runs: Iterable[Any],
    data: Any = None,
    num_data_points: int = NUM_DATA_POINTS,
    seed: int = 0,
    correlations: Sequence[str] = CORRELATIONS,
    kl_threshold: float = KL_THRESHOLD,
) -> dict[str, Any]:
    """UDR of trained runs (run folders or :class:`~untwine.train.Run` objects; >= 2, same dataset
    and number of latents): each encodes the same ``num_data_points`` observations of ``data``
    (default: the first run's dataset), drawn with ``seed``, into mean codes and per-latent KLs.

    Returns:
        ``{"runs": M folder paths, "dataset", "num_data_points", "seed", "kl_threshold",
        "kl": M x D (nats), "num_active": M, and per correlation c in correlations: "udr_<c>": M
        model scores, "pairwise_<c>": M x M}``.
    """
    from ..train import Run, load_run

    loaded = [r if isinstance(r, Run) else load_run(r) for r in runs]
    if len(loaded) < 2:
        raise UserError(f"UDR compares runs with each other: got {len(loaded)} run(s); pass >= 2 runs "
                         "(e.g. the seeds of one setting)")
    first = loaded[0].config
    for i, r in enumerate(loaded[1:], 1):
        if r.config.dataset != first.dataset:
            raise UserError(f"run {r.dir} trained on {r.config.dataset} but {loaded[0].dir} on {first.dataset}; "
                             "UDR compares runs of the same dataset")
        if r.model.latents != loaded[0].model.latents:
            raise UserError(f"run {r.dir} has {r.model.latents} latents but {loaded[0].dir} has "
                             f"{loaded[0].model.latents}; UDR compares runs with the same number of latents")
    if num_data_points < 2:
        raise UserError(f"num_data_points must be >= 2, got {num_data_points}")
    if data is None:
        from ..data import load

        data = load(first.dataset, first.source, first.data_root)
    _, x = data.sample(int(num_data_points), np.random.default_rng(seed))
    posteriors = [r.encode_gaussian(x) for r in loaded]
    kls = [gaussian_kl(mu, lv) for mu, lv in posteriors]
    out: dict[str, Any] = {
        "runs": [os.fspath(r.dir) for r in loaded], "dataset": first.dataset,
        "num_data_points": int(num_data_points), "seed": int(seed), "kl_threshold": float(kl_threshold),
        "kl": np.stack(kls), "num_active": np.stack([k > kl_threshold for k in kls]).sum(axis=1),
    }
    for c in correlations:
        res = udr([mu for mu, _ in posteriors], kls, correlation=c, kl_threshold=kl_threshold)
        out[f"udr_{c}"], out[f"pairwise_{c}"] = res["udr"], res["pairwise"]
    return out
