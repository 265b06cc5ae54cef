"""Disentanglement, Completeness, Informativeness (Eastwood & Williams 2018, "A Framework for the
Quantitative Evaluation of Disentangled Representations").

Protocol of disentanglement_lib 1.5 (``dci.py``, ``dci.gin``: 10,000 train / 5,000 test points):
per factor a ``sklearn.ensemble.GradientBoostingClassifier()`` with default parameters (100 depth-3
trees per class, learning rate 0.1) is fit on all code dimensions; its ``feature_importances_``
(absolute value) form column ``k`` of the ``D x K`` importance matrix ``R``; informativeness is the
classifier's accuracy on the train and test halves, averaged over factors (named "informativeness"
though it is an accuracy, as in the reference). Then

* disentanglement: per code ``1 - H_K(R[i, :] / sum)`` (entropy in base ``K``, ``+1e-11``), weighted
  by the code's share ``sum_k R[i, k] / sum R``;
* completeness: per factor ``1 - H_D(R[:, k] / sum)`` (base ``D``), weighted by the factor's share.

Backends (the estimator behind ``R`` and the accuracies):

* ``"exact"`` (default): :func:`untwine.metrics._gbt.fit_gbt`, a re-implementation of that very
  estimator (scikit-learn 1.9's ``GradientBoostingClassifier()``: float32 codes, prior init,
  log-loss gradients, depth-3 squared-error trees with scikit-learn's split rules -- candidate
  positions between values more than ``float32(1e-7)`` apart, thresholds at ``a/2 + b/2`` --,
  Newton leaf values, impurity-decrease importances). It differs from scikit-learn only at
  exact ties between candidate splits, which scikit-learn breaks by its random order of the
  features (the reference sets no ``random_state``) or, within a feature, by its rounding; here
  the tied feature that comes first in a fixed pseudo-random order wins, then the first position.
  Ties are common in tiny nodes and in the first stages (whose residuals take few values): they
  move some importance between codes, about as much as scikit-learn's own run-to-run variation,
  and can change later trees and so a few predictions. Otherwise importances agree to rounding
  and predictions are identical (``tests/test_gbt.py``). About 5x faster than ``"sklearn"`` at
  2,000 training points and 15x at 10,000 (the standard protocol: ~30-45 s on 1-2 cores).
* ``"sklearn"``: ``GradientBoostingClassifier()`` itself. It is slow: a 40-class factor fits 4,000
  trees, and the standard 10,000/5,000 protocol on dSprites' factors takes minutes on 2 cores.
* ``"fast"``: a documented approximation, not the reference: ``HistGradientBoostingClassifier``
  with the same depth (3), iterations (100) and learning rate (0.1), ``min_samples_leaf=1``, no
  L2, no early stopping, 255 quantile bins; importances are the split gains summed per feature
  and normalised. About 3x faster than ``"sklearn"`` at 2,000/1,000 points but slower than
  ``"exact"`` and less accurate (within 0.026 of the reference there); kept for comparison. See
  ``benchmarks/RESULTS.md`` for the measured agreement.

Every backend fits one factor per thread (``n_jobs``), largest factors first (the exact backend
and scikit-learn's tree builder release the GIL in their heavy parts). A factor that is constant
in the training half (the reference fails) gets a zero importance column and the accuracy of
predicting that constant.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.stats
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

from ..errors import check_choice
from ._gbt import BACKENDS, DEFAULT_BACKEND, fit_gbt
from .utils import check_train_test, parallel_map


def _fit_sklearn(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> tuple[np.ndarray, float, float]:
    model = GradientBoostingClassifier()
    model.fit(xtr, ytr)
    imp = np.abs(model.feature_importances_)
    return imp, float(np.mean(model.predict(xtr) == ytr)), float(np.mean(model.predict(xte) == yte))


def _fit_fast(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> tuple[np.ndarray, float, float]:
    model = HistGradientBoostingClassifier(
        learning_rate=0.1, max_iter=100, max_depth=3, max_leaf_nodes=None, min_samples_leaf=1,
        l2_regularization=0.0, early_stopping=False, random_state=0,
    )
    model.fit(xtr, ytr)
    imp = np.zeros(xtr.shape[1])
    for stage in model._predictors:  # split gains ~ GradientBoosting's impurity decrease
        for pred in stage:
            nodes = pred.nodes[pred.nodes["is_leaf"] == 0]
            np.add.at(imp, nodes["feature_idx"], nodes["gain"])
    if imp.sum() > 0:
        imp = imp / imp.sum()
    return imp, float(np.mean(model.predict(xtr) == ytr)), float(np.mean(model.predict(xte) == yte))


def disentanglement(importance: np.ndarray) -> tuple[float, np.ndarray]:
    """``(D score, per-code D-array)`` from a ``D x K`` importance matrix (reference formula)."""
    per = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])
    r = importance if importance.sum() != 0.0 else np.ones_like(importance)
    return float(np.sum(per * r.sum(axis=1) / r.sum())), per


def completeness(importance: np.ndarray) -> tuple[float, np.ndarray]:
    """``(C score, per-factor K-array)`` from a ``D x K`` importance matrix (reference formula)."""
    per = 1.0 - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])
    r = importance if importance.sum() != 0.0 else np.ones_like(importance)
    return float(np.sum(per * r.sum(axis=0) / r.sum())), per


def dci(
    codes_train: Any,
    factors_train: Any,
    codes_test: Any,
    factors_test: Any,
    n_jobs: int | None = None,
    backend: str = DEFAULT_BACKEND,
) -> dict[str, Any]:
    """DCI scores of codes (``N x D`` float) w.r.t. factors (``N x K`` int), train and test halves.

    Args:
        backend: ``"exact"`` (default: a fast re-implementation of the reference estimator, equal
            to it up to its random tie-breaking), ``"sklearn"`` (the reference estimator itself,
            slow) or ``"fast"`` (histogram boosting, an approximation); see the module docstring.
        n_jobs: threads, one factor each (``None``: all CPUs); results do not depend on it.

    Returns:
        ``{"disentanglement", "completeness", "informativeness_train", "informativeness_test"}``
        (floats in [0, 1]) and ``"importance"`` (``D x K``, each column sums to 1),
        ``"per_code_disentanglement"`` (D), ``"per_factor_completeness"`` (K),
        ``"per_factor_accuracy"`` (K x 2: train, test).
    """
    check_choice(backend, BACKENDS, "DCI backend")
    ctr, ftr, cte, fte = check_train_test(codes_train, factors_train, codes_test, factors_test)
    fit = {"exact": fit_gbt, "sklearn": _fit_sklearn, "fast": _fit_fast}[backend]
    k = ftr.shape[1]

    def one(j: int) -> tuple[np.ndarray, float, float]:
        y, yt = ftr[:, j], fte[:, j]
        if np.unique(y).size < 2:
            return np.zeros(ctr.shape[1]), float(np.mean(y == y[0])), float(np.mean(yt == y[0]))
        return fit(ctr, y, cte, yt)

    # Largest factors first so that the threads finish together.
    order = sorted(range(k), key=lambda j: -np.unique(ftr[:, j]).size)
    results = dict(zip(order, parallel_map(one, order, n_jobs)))
    importance = np.stack([results[j][0] for j in range(k)], axis=1)
    acc = np.array([[results[j][1], results[j][2]] for j in range(k)])
    d, per_code = disentanglement(importance)
    c, per_factor = completeness(importance)
    return {
        "disentanglement": d,
        "completeness": c,
        "informativeness_train": float(acc[:, 0].mean()),
        "informativeness_test": float(acc[:, 1].mean()),
        "importance": importance,
        "per_code_disentanglement": per_code,
        "per_factor_completeness": per_factor,
        "per_factor_accuracy": acc,
    }
