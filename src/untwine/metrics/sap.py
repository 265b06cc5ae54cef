"""Separated Attribute Predictability (Kumar et al. 2018, "Variational Inference of Disentangled
Latent Concepts from Unlabeled Observations", Sec. 3).

Protocol of disentanglement_lib 1.5 (``sap_score.py``, ``sap_score.gin``: 10,000 train / 5,000
test points, ``continuous_factors=False``): for every (code dimension, factor) pair a
``LinearSVC(C=0.01, class_weight="balanced")`` is fit on that single dimension and scored by test
accuracy; per factor the gap between the best and second-best dimension; mean over factors.
The classifier takes scikit-learn's current defaults otherwise (``dual="auto"``, ``max_iter=1000``),
as the reference does when run with the same scikit-learn. Convergence warnings are silenced.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from .utils import check_train_test, parallel_map


def _accuracy(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray) -> float:
    if np.unique(y_tr).size < 2:  # the reference fails here; a constant predictor is what is left
        return float(np.mean(y_te == y_tr[0]))
    clf = LinearSVC(C=0.01, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_tr[:, None], y_tr)
    return float(np.mean(clf.predict(x_te[:, None]) == y_te))


def sap(
    codes_train: Any,
    factors_train: Any,
    codes_test: Any,
    factors_test: Any,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """SAP score from codes (``N x D`` float) and factors (``N x K`` int), train and test halves.

    Returns:
        ``{"sap": float in [0, 1], "per_factor": K-array of gaps,
        "score_matrix": D x K test accuracies}``.
    ``n_jobs`` threads fit the ``D * K`` classifiers (``None``: all CPUs); results do not depend on it.
    """
    ctr, ftr, cte, fte = check_train_test(codes_train, factors_train, codes_test, factors_test)
    d, k = ctr.shape[1], ftr.shape[1]
    pairs = [(i, j) for i in range(d) for j in range(k)]
    acc = parallel_map(lambda p: _accuracy(ctr[:, p[0]], ftr[:, p[1]], cte[:, p[0]], fte[:, p[1]]), pairs, n_jobs)
    score = np.array(acc).reshape(d, k)
    s = np.sort(score, axis=0)
    per = s[-1] - (s[-2] if d > 1 else 0.0)
    return {"sap": float(np.mean(per)), "per_factor": per, "score_matrix": score}
