"""Downstream task (Locatello et al. 2019, Sec. 5.4): how well simple classifiers predict each
factor from the codes, as a function of the number of labelled training points.

Protocol of disentanglement_lib 1.5 (``downstream_task.py``; ``downstream_task_logistic_regression.gin``
and ``downstream_task_boosted_trees.gin``: training sizes 10, 100, 1,000 and 10,000, 5,000 test
points): per training size and factor, the predictor is fit on the codes of the training points
and scored by accuracy on the training and the test points; reported per factor, as the mean and
the minimum over factors. Predictors (:data:`PREDICTORS`):

* ``"lr"``: ``LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5))`` on the raw codes, with
  ``scoring="accuracy"`` written out (the reference's default; scikit-learn 1.11 changes it);
  deterministic, so the same numbers as the reference on the same arrays;
* ``"gbt"``: ``GradientBoostingClassifier()``; ``backend="exact"`` (default) is
  :func:`untwine.metrics._gbt.predict_gbt`, the re-implementation DCI uses (same predictions up to
  the estimator's random tie-breaking, ~15x faster), ``"sklearn"`` the estimator itself,
  ``"fast"`` histogram boosting (an approximation, as DCI's ``fast``).

Differences from the reference: with arrays, every training size uses the first ``n`` rows of the
same training sample and all sizes share one test sample (the reference draws fresh points for
each size). A factor constant in the training rows (the reference fails) gets a constant
predictor. Convergence and deprecation warnings of scikit-learn are silenced.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator, Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..errors import check_choice
from ._gbt import BACKENDS as GBT_BACKENDS, DEFAULT_BACKEND, predict_gbt
from .utils import check_train_test, parallel_map

PREDICTORS = ("lr", "gbt")
TRAIN_SIZES = (10, 100, 1000, 10000)


def check_predictor(predictor: str, backend: str) -> None:
    check_choice(predictor, PREDICTORS, "predictor")
    check_choice(backend, GBT_BACKENDS, "GBT backend")


@contextlib.contextmanager
def quiet_fits() -> Iterator[None]:
    """Silence scikit-learn's convergence, deprecation and fold warnings. Enter it in the thread
    that starts the worker threads too: ``warnings.catch_warnings`` is process-wide, so a worker's
    own context alone can restore loud filters while another worker still fits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)  # folds without some classes
        yield


def _hist_gbt() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=0.1, max_iter=100, max_depth=3, max_leaf_nodes=None, min_samples_leaf=1,
        l2_regularization=0.0, early_stopping=False, random_state=0,
    )


def fit_predict(
    predictor: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_tests: Sequence[np.ndarray] = (),
    backend: str = DEFAULT_BACKEND,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Fit ``predictor`` on ``(x_train N x D, y_train N)``: ``(predictions on x_train, [on each x_tests])``.

    ``y_train`` with one class (the reference fails) predicts that class everywhere.
    """
    check_predictor(predictor, backend)
    y_train = np.asarray(y_train)
    if np.unique(y_train).size < 2:
        return np.full(len(y_train), y_train[0]), [np.full(len(x), y_train[0]) for x in x_tests]
    if predictor == "gbt" and backend == "exact":
        _, pred, preds = predict_gbt(x_train, y_train, tuple(x_tests))
        return pred, preds
    if predictor == "lr":
        if len(y_train) < 5:
            raise ValueError(f"the logistic-regression predictor needs >= 5 training points (5-fold CV), got {len(y_train)}")
        from sklearn.linear_model import LogisticRegressionCV
        from sklearn.model_selection import KFold

        model: Any = LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5), scoring="accuracy")
    elif backend == "sklearn":
        from sklearn.ensemble import GradientBoostingClassifier

        model = GradientBoostingClassifier()
    else:
        model = _hist_gbt()
    with quiet_fits():
        model.fit(x_train, y_train)
    return model.predict(x_train), [model.predict(x) for x in x_tests]


def accuracies(
    predictor: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    backend: str = DEFAULT_BACKEND,
) -> tuple[float, float]:
    """``(train accuracy, test accuracy)`` of ``predictor`` fit on the training rows."""
    pred, (pred_te,) = fit_predict(predictor, x_train, y_train, (x_test,), backend)
    return float(np.mean(pred == y_train)), float(np.mean(pred_te == np.asarray(y_test)))


def check_train_sizes(train_sizes: Sequence[int], available: int) -> np.ndarray:
    sizes = np.asarray([int(n) for n in train_sizes], dtype=np.int64)
    if sizes.size == 0 or (sizes < 2).any():
        raise ValueError(f"train_sizes must be a non-empty list of sizes >= 2, got {list(train_sizes)}")
    if sizes.max() > available:
        raise ValueError(
            f"train size {int(sizes.max())} exceeds the {available} training rows given; pass more rows or smaller train_sizes"
        )
    return sizes


def downstream_task(
    codes_train: Any,
    factors_train: Any,
    codes_test: Any,
    factors_test: Any,
    train_sizes: Sequence[int] = TRAIN_SIZES,
    predictor: str = "lr",
    backend: str = DEFAULT_BACKEND,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """Downstream accuracies of codes (``N x D``) for factors (``N x K``), train and test halves.

    Training size ``n`` uses the first ``n`` training rows; every size is scored on all test rows.

    Args:
        train_sizes: ``S`` training sizes (each <= ``N``; the reference's 10, 100, 1,000, 10,000).
        predictor: ``"lr"`` or ``"gbt"`` (see the module docstring); ``backend`` for ``"gbt"``.
        n_jobs: threads, one (size, factor) fit each (``None``: all CPUs); results do not depend on it.

    Returns:
        ``{"train_sizes": S, "train_accuracy": S x K, "test_accuracy": S x K,
        "mean_train_accuracy": S, "mean_test_accuracy": S, "min_train_accuracy": S,
        "min_test_accuracy": S}`` (accuracies in [0, 1]).
    """
    check_predictor(predictor, backend)
    ctr, ftr, cte, fte = check_train_test(codes_train, factors_train, codes_test, factors_test)
    sizes = check_train_sizes(train_sizes, len(ctr))
    jobs = sorted(((s, j) for s in range(len(sizes)) for j in range(ftr.shape[1])),
                  key=lambda p: (-sizes[p[0]], -np.unique(ftr[: sizes[p[0]], p[1]]).size))
    with quiet_fits():
        res = dict(zip(jobs, parallel_map(
            lambda p: accuracies(predictor, ctr[: sizes[p[0]]], ftr[: sizes[p[0]], p[1]], cte, fte[:, p[1]], backend),
            jobs, n_jobs)))
    acc = np.array([[res[(s, j)] for j in range(ftr.shape[1])] for s in range(len(sizes))])  # S x K x 2
    tr, te = acc[..., 0], acc[..., 1]
    return {
        "train_sizes": sizes,
        "train_accuracy": tr,
        "test_accuracy": te,
        "mean_train_accuracy": tr.mean(axis=1),
        "mean_test_accuracy": te.mean(axis=1),
        "min_train_accuracy": tr.min(axis=1),
        "min_test_accuracy": te.min(axis=1),
    }
