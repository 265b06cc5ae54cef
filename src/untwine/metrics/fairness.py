"""Demographic-parity unfairness of classifiers trained on a representation (Locatello et al. 2019,
"On the Fairness of Disentangled Representations", Sec. 4).

Protocol of disentanglement_lib 1.5 (``fairness.py``, ``fairness_study_v1/fairness.gin``:
``num_train=10000``, ``num_test_points_per_class=100``, gradient-boosted-trees predictor):

1. per target factor ``i``, a ``GradientBoostingClassifier()`` is fit on the codes of
   ``num_train`` random points;
2. per sensitive factor ``j != i``: draw ``m = num_test_points_per_class`` factor vectors, and for
   each value ``c`` of factor ``j`` set ``j = c`` in all of them (an intervention), render, encode
   and predict ``i``: ``counts[:, c]`` is the histogram of the predictions;
3. unfairness of the pair: the total-variation distance between the prediction distribution under
   ``j = c`` and the pooled one, averaged over ``c`` weighted by its count (``mean``) or its
   maximum over ``c`` (``max``) -- :func:`inter_group_fairness`;
4. the ``K x K`` matrices are aggregated over pairs (:func:`fairness_aggregates`, the reference's
   names); the paper's score is the mean over pairs of the mean unfairness,
   ``mean_fairness:mean_pred:mean_sens``.

0 means the predictions of every factor ignore every other factor. Same protocol, own random
stream (all interventions are drawn first, then rendered and encoded in chunks of
``chunk_size``); ``backend`` as in :func:`untwine.metrics.downstream_task`. The total-variation
sums run in float64 (the reference: float32, a difference of ~1e-7).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._gbt import DEFAULT_BACKEND
from .downstream import check_predictor, fit_predict, quiet_fits
from .utils import CHUNK_SIZE, check_data, check_sizes, encode_factors, parallel_map


def inter_group_fairness(counts: Any) -> tuple[float, float]:
    """``(mean, max)`` total-variation unfairness from ``counts`` (predicted class x sensitive value).

    Each column is the prediction histogram under one sensitive value; ``mean`` weights the
    columns' distances to the pooled distribution by their counts, ``max`` takes the largest.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or (c < 0).any():
        raise ValueError(f"counts must be a 2-D array of non-negative counts, got shape {c.shape}")
    per_class = c.sum(axis=0)
    if (per_class <= 0).any():
        raise ValueError("every sensitive value (column of counts) needs at least one prediction")
    pooled = c.sum(axis=1) / c.sum()
    tv = np.abs(c / per_class - pooled[:, None]).sum(axis=0) / 2.0
    return float(np.sum(tv * per_class) / per_class.sum()), float(tv.max())


def fairness_aggregates(matrix: Any, prefix: str) -> dict[str, float]:
    """The reference's aggregates of a ``K x K`` pair matrix (row: predicted, column: sensitive factor).

    Keys (``K >= 2``): ``{prefix}:pred{i}:sens{j}``; per row ``{prefix}:pred{i}:mean_sens`` /
    ``max_sens``; per column ``{prefix}:sens{j}:mean_pred`` / ``max_pred``; and
    ``{prefix}:{a}_{x}:{b}_{y}`` for the mean/max over rows (``a = pred``) or columns (``a = sens``)
    of the rows' / columns' mean/max, e.g. ``mean_fairness:mean_pred:mean_sens``. The diagonal is
    ignored.
    """
    m = np.asarray(matrix, dtype=np.float64)
    k = m.shape[0]
    if m.ndim != 2 or m.shape[1] != k or k < 2:
        raise ValueError(f"matrix must be K x K with K >= 2, got shape {m.shape}")
    off = ~np.eye(k, dtype=bool)
    rows = [m[i, off[i]] for i in range(k)]
    cols = [m[off[:, j], j] for j in range(k)]
    out = {f"{prefix}:pred{i}:sens{j}": float(m[i, j]) for i in range(k) for j in range(k) if i != j}
    for i, v in enumerate(rows):
        out[f"{prefix}:pred{i}:mean_sens"], out[f"{prefix}:pred{i}:max_sens"] = float(v.mean()), float(v.max())
    for j, v in enumerate(cols):
        out[f"{prefix}:sens{j}:mean_pred"], out[f"{prefix}:sens{j}:max_pred"] = float(v.mean()), float(v.max())
    red = {"mean": np.mean, "max": np.max}
    for outer, inner, groups in (("sens", "pred", cols), ("pred", "sens", rows)):
        for a in red:
            for b in red:
                # e.g. "mean_sens:max_pred": the mean over sensitive factors of the max over predicted ones
                out[f"{prefix}:{a}_{outer}:{b}_{inner}"] = float(red[a]([red[b](v) for v in groups]))
    return out


def fairness(
    data: Any,
    encode: Callable[[Any], Any],
    rng: Any,
    num_train: int = 10000,
    num_test_points_per_class: int = 100,
    predictor: str = "gbt",
    backend: str = DEFAULT_BACKEND,
    chunk_size: int = CHUNK_SIZE,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """Unfairness of ``encode`` (observations -> ``n x D`` codes) on ground-truth ``data`` (K >= 2).

    Encodes ``num_train + (K - 1) * num_test_points_per_class * sum(factor_sizes)`` observations.

    Returns:
        ``{"mean_fairness": float, "max_fairness": float}`` (means over the ``K (K - 1)`` pairs of
        the mean / max total-variation unfairness, in [0, 1]), ``"mean_fairness_matrix"``,
        ``"max_fairness_matrix"`` (``K x K``, [target, sensitive], diagonal 0) and
        ``"aggregates"``: every key of :func:`fairness_aggregates` for both matrices.
    """
    check_data(data)
    check_predictor(predictor, backend)
    check_sizes(num_train=num_train, num_test_points_per_class=num_test_points_per_class)
    sizes = [int(s) for s in data.factor_sizes]
    k, m = len(sizes), int(num_test_points_per_class)
    if k < 2:
        raise ValueError(f"fairness needs >= 2 factors (one to predict, one sensitive); data has {k}")
    f_train = data.sample_factors(num_train, rng)
    z_train = encode_factors(data, encode, f_train, rng, chunk_size)
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    blocks = []
    for i, j in pairs:
        original = data.sample_factors(m, rng)
        for c in range(sizes[j]):
            f = np.array(original, copy=True)
            f[:, j] = c
            blocks.append(f)
    z_all = encode_factors(data, encode, np.concatenate(blocks), rng, chunk_size)
    start = np.cumsum([0] + [m * sizes[j] for _, j in pairs])
    z_pair = {p: z_all[a:b] for p, a, b in zip(pairs, start[:-1], start[1:])}

    def target(i: int) -> list[np.ndarray]:
        mine = [p for p in pairs if p[0] == i]
        _, preds = fit_predict(predictor, z_train, f_train[:, i], [z_pair[p] for p in mine], backend)
        return preds

    order = sorted(range(k), key=lambda i: -sizes[i])
    with quiet_fits():
        preds = dict(zip(order, parallel_map(target, order, n_jobs)))
    mean_m, max_m = np.zeros((k, k)), np.zeros((k, k))
    for i in range(k):
        for (_, j), pred in zip([p for p in pairs if p[0] == i], preds[i]):
            pred = np.asarray(pred, dtype=np.int64).reshape(sizes[j], m)  # one row per value c
            counts = np.stack([np.bincount(row, minlength=sizes[i]) for row in pred], axis=1)
            mean_m[i, j], max_m[i, j] = inter_group_fairness(counts)
    off = ~np.eye(k, dtype=bool)
    return {
        "mean_fairness": float(mean_m[off].mean()),
        "max_fairness": float(max_m[off].mean()),
        "mean_fairness_matrix": mean_m,
        "max_fairness_matrix": max_m,
        "aggregates": {**fairness_aggregates(mean_m, "mean_fairness"), **fairness_aggregates(max_m, "max_fairness")},
    }
