"""Modularity and explicitness (Ridgeway & Mozer 2018, "Learning Deep Disentangled Embeddings
With the F-Statistic Loss").

Protocol of disentanglement_lib 1.5 (``modularity_explicitness.py``, 10,000 train / 5,000 test):

* modularity: discrete MI (20 equal-width bins per code dimension, as MIG) between codes and
  factors on the training half; per code ``1 - (sum_k m_k^2 - max_k m_k^2) / (max_k m_k^2 (K-1))``
  (0 for a code with no MI), mean over codes.
* explicitness: codes standardised with the training mean/std; per factor a
  ``LogisticRegression()`` with scikit-learn's current defaults (the reference calls it with no
  arguments; scikit-learn >= 0.22 makes that multinomial L-BFGS, ``max_iter=100``; older
  scikit-learn used one-vs-rest liblinear) and the macro ROC-AUC of its class probabilities
  against the one-hot labels; mean over factors, on train and on test.

Differences from the reference, only where it would fail: a code dimension with zero training
std is divided by 1 instead of 0; test classes are binarised against the training classes and
AUC columns whose class is absent from the test labels are skipped; a factor constant in the
training half scores AUC 1.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from .utils import (
    NUM_BINS,
    check_train_test,
    discrete_mutual_info,
    histogram_discretize,
    parallel_map,
)


def modularity_from_mi(mutual_info: np.ndarray) -> tuple[float, np.ndarray]:
    """Modularity from a ``D x K`` MI matrix: ``(mean, per-code D-array)``."""
    sq = np.square(mutual_info)
    mx = sq.max(axis=1)
    k = sq.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        per = 1.0 - (sq.sum(axis=1) - mx) / (mx * (k - 1.0))
    per = np.where(mx == 0.0, 0.0, per)
    return float(np.mean(per)), per


def _auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    onehot = (y[:, None] == classes[None, :]).astype(np.int64)
    present = (onehot.sum(0) > 0) & (onehot.sum(0) < len(y))
    if present.sum() == 0:
        return 1.0
    return float(roc_auc_score(onehot[:, present], proba[:, present]))


def _explicitness(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> tuple[float, float]:
    classes = np.unique(ytr)
    if classes.size < 2:
        return 1.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression().fit(xtr, ytr)
    ptr, pte = clf.predict_proba(xtr), clf.predict_proba(xte)
    # Binary factors get two one-hot columns, as the reference's MultiLabelBinarizer gives.
    return _auc(ytr, ptr, clf.classes_), _auc(yte, pte, clf.classes_)


def modularity_explicitness(
    codes_train: Any,
    factors_train: Any,
    codes_test: Any,
    factors_test: Any,
    num_bins: int = NUM_BINS,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """Modularity (train half) and explicitness (train and test ROC-AUC).

    Args: codes ``N x D`` float, factors ``N x K`` int, for the train and test halves.
    Returns:
        ``{"modularity", "explicitness_train", "explicitness_test"}`` (floats in [0, 1]) plus
        ``"per_code_modularity"`` (D), ``"explicitness_per_factor"`` (K x 2: train, test) and
        ``"mutual_info"`` (D x K nats).
    """
    ctr, ftr, cte, fte = check_train_test(codes_train, factors_train, codes_test, factors_test)
    mi = discrete_mutual_info(histogram_discretize(ctr, num_bins), ftr)
    mod, per_code = modularity_from_mi(mi)
    mean, std = ctr.mean(axis=0), ctr.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    ztr, zte = (ctr - mean) / std, (cte - mean) / std
    ex = np.array(
        parallel_map(lambda j: _explicitness(ztr, ftr[:, j], zte, fte[:, j]), range(ftr.shape[1]), n_jobs)
    )
    return {
        "modularity": mod,
        "explicitness_train": float(ex[:, 0].mean()),
        "explicitness_test": float(ex[:, 1].mean()),
        "per_code_modularity": per_code,
        "explicitness_per_factor": ex,
        "mutual_info": mi,
    }
