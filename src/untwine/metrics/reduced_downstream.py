"""Reduced downstream task: how much information about a factor leaks into the other code
dimensions once the dimension(s) most important for it are removed.

Protocol of disentanglement_lib 1.5 (``reduced_downstream_task.py`` with its only shipped
configuration, ``reduced_downstream_task.gin``: ``num_factors_to_remove=1``,
``correlation_measure=factorwise_dci``, gradient-boosted-trees predictor; training sizes and test
points as the downstream task: 10, 100, 1,000, 10,000 / 5,000). Per training size and per factor of
interest ``f``:

1. ``num_factors_to_remove`` times: fit ``GradientBoostingClassifier()`` for ``f`` on the current
   codes (DCI's importance), delete the dimension with the largest feature importance;
2. fit the predictor for every factor on the reduced codes; record train/test accuracy.

Reported: the accuracy for ``f`` itself ("reduced factor": low when ``f`` lived in the removed
dimension only) and the mean over the other factors (high when they did not depend on it), each
per factor of interest and averaged over factors of interest.

Differences from the reference: the importance of factor ``f`` on a given set of dimensions is
computed once and reused (the reference refits all factors' classifiers for every factor of
interest, identical up to the estimator's random tie-breaking), and a predictor fit on a set of
dimensions already fit is reused. Training sizes are the first ``n`` rows of one training sample,
all sizes share one test sample (see :mod:`untwine.metrics.downstream`). A factor constant in the
training rows has importance 0 everywhere, so its first remaining dimension is removed.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._gbt import DEFAULT_BACKEND, predict_gbt
from .downstream import TRAIN_SIZES, accuracies, check_predictor, check_train_sizes, quiet_fits
from .utils import check_train_test, parallel_map


def gbt_importance(x: np.ndarray, y: np.ndarray, backend: str = DEFAULT_BACKEND) -> np.ndarray:
    """``|feature_importances_|`` (``D``) of ``GradientBoostingClassifier()`` fit on ``(x, y)``; 0 for one class."""
    if np.unique(y).size < 2:
        return np.zeros(x.shape[1])
    if backend == "exact":
        return predict_gbt(x, y)[0]
    if backend == "sklearn":
        from sklearn.ensemble import GradientBoostingClassifier

        return np.abs(GradientBoostingClassifier().fit(x, y).feature_importances_)
    from .dci import _fit_fast

    return _fit_fast(x, y, x[:1], y[:1])[0]


def _one_size(s: int, x: np.ndarray, y: np.ndarray, cte: np.ndarray, fte: np.ndarray, r: int, predictor: str,
              backend: str, n_jobs: int | None, removed: np.ndarray, acc: np.ndarray) -> None:
    """One training size: fills ``removed[s]`` (K x r) and ``acc[s]`` (K x K x 2: train, test)."""
    d, k = x.shape[1], y.shape[1]
    keep = [list(range(d)) for _ in range(k)]
    importance: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
    for step in range(r):
        todo = sorted({(f, tuple(keep[f])) for f in range(k)} - set(importance))
        for key, imp in zip(todo, parallel_map(lambda t: gbt_importance(x[:, list(t[1])], y[:, t[0]], backend), todo, n_jobs)):
            importance[key] = imp
        for f in range(k):
            drop = keep[f][int(np.argmax(importance[(f, tuple(keep[f]))]))]
            removed[s, f, step] = drop
            keep[f].remove(drop)
    fits = sorted({(tuple(keep[f]), i) for f in range(k) for i in range(k)},
                  key=lambda t: -np.unique(y[:, t[1]]).size)
    res = dict(zip(fits, parallel_map(
        lambda t: accuracies(predictor, x[:, list(t[0])], y[:, t[1]], cte[:, list(t[0])], fte[:, t[1]], backend),
        fits, n_jobs)))
    for f in range(k):
        for i in range(k):
            acc[s, f, i] = res[(tuple(keep[f]), i)]


def reduced_downstream_task(
    codes_train: Any,
    factors_train: Any,
    codes_test: Any,
    factors_test: Any,
    train_sizes: Sequence[int] = TRAIN_SIZES,
    num_factors_to_remove: int = 1,
    predictor: str = "gbt",
    backend: str = DEFAULT_BACKEND,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """Reduced downstream accuracies of codes (``N x D``) for factors (``N x K``).

    Args:
        train_sizes: ``S`` training sizes (first ``n`` training rows each; all test rows).
        num_factors_to_remove: ``r`` dimensions removed per factor of interest (``< D``).
        predictor, backend: see :func:`untwine.metrics.downstream_task` (importances always come
            from gradient-boosted trees with ``backend``).
        n_jobs: threads, one classifier fit each (``None``: all CPUs); results do not depend on it.

    Returns:
        ``{"train_sizes": S, "removed": S x K x r (original dimension indices),
        "accuracy_train", "accuracy_test": S x K x K ([s, f, i]: factor i after removing f's
        dimensions), "reduced_factor_train_accuracy", "reduced_factor_test_accuracy": S x K,
        "other_factors_train_accuracy", "other_factors_test_accuracy": S x K (NaN with one factor),
        "mean_train_accuracy_reduced_factor", "mean_test_accuracy_reduced_factor",
        "mean_train_accuracy_other_factors", "mean_test_accuracy_other_factors": S}``.
    """
    check_predictor(predictor, backend)
    ctr, ftr, cte, fte = check_train_test(codes_train, factors_train, codes_test, factors_test)
    d, k, r = ctr.shape[1], ftr.shape[1], int(num_factors_to_remove)
    if not 0 <= r < d:
        raise ValueError(f"num_factors_to_remove must be in [0, D) = [0, {d}) so that dimensions remain, got {r}")
    sizes = check_train_sizes(train_sizes, len(ctr))
    removed = np.zeros((len(sizes), k, r), dtype=np.int64)
    acc = np.zeros((len(sizes), k, k, 2))
    for s, n in enumerate(sizes):
        with quiet_fits():
            _one_size(s, ctr[:n], ftr[:n], cte, fte, r, predictor, backend, n_jobs, removed, acc)
    own = np.einsum("sffc->sfc", acc)  # S x K x 2: factor f after removing f's dimensions
    mask = ~np.eye(k, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        others = (acc * mask[None, :, :, None]).sum(axis=2) / (k - 1) if k > 1 else np.full_like(own, np.nan)
    return {
        "train_sizes": sizes,
        "removed": removed,
        "accuracy_train": acc[..., 0],
        "accuracy_test": acc[..., 1],
        "reduced_factor_train_accuracy": own[..., 0],
        "reduced_factor_test_accuracy": own[..., 1],
        "other_factors_train_accuracy": others[..., 0],
        "other_factors_test_accuracy": others[..., 1],
        "mean_train_accuracy_reduced_factor": own[..., 0].mean(axis=1),
        "mean_test_accuracy_reduced_factor": own[..., 1].mean(axis=1),
        "mean_train_accuracy_other_factors": others[..., 0].mean(axis=1),
        "mean_test_accuracy_other_factors": others[..., 1].mean(axis=1),
    }
