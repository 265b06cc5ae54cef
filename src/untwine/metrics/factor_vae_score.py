"""The FactorVAE disentanglement score (Kim & Mnih 2018, "Disentangling by Factorising").

Protocol of disentanglement_lib 1.5 (``factor_vae.py``, ``factor_vae_metric.gin``: batch 64,
10,000 training and 5,000 evaluation points, 10,000 points for the global variances,
``prune_dims.threshold = 0.05``):

1. global variance of each code dimension (``ddof=1``) over 10,000 random observations;
   dimensions with standard deviation ``< 0.05`` are pruned as collapsed ("active" otherwise);
2. each point picks a factor ``k``, draws 64 factor vectors with factor ``k`` fixed to one value,
   encodes them and votes for ``argmin_j var_j / global_var_j`` over the active dimensions
   (``ddof=1``), labelled ``k``;
3. the classifier maps each dimension to the factor it got most training votes for (majority
   vote); accuracy = share of votes that agree with it, on the training and evaluation points.

Same protocol, own random stream (all factors drawn up front, encoded in chunks of
``chunk_size``). One knowing difference: ``num_active_dims`` is the number of active dimensions;
the reference reports ``len(mask)`` (always ``D``, a bug).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..data.protocol import integers
from .utils import CHUNK_SIZE, check_data, check_sizes, encode_factors


def factor_vae_votes(
    data: Any,
    encode: Callable[[Any], Any],
    rng: Any,
    num_points: int,
    global_var: np.ndarray,
    active: np.ndarray,
    batch_size: int = 64,
    chunk_size: int = CHUNK_SIZE,
) -> np.ndarray:
    """``K x (number of active dims)`` int64 vote counts of the FactorVAE protocol."""
    k = data.num_factors
    labels = integers(rng, k, num_points)
    f = data.sample_factors(num_points * batch_size, rng)
    f = f.reshape(num_points, batch_size, k)
    fixed = f[np.arange(num_points), 0, labels]
    f[np.arange(num_points), :, labels] = fixed[:, None]
    chunk = max(batch_size, chunk_size // batch_size * batch_size)
    z = encode_factors(data, encode, f.reshape(-1, k), rng, chunk)
    local = z.reshape(num_points, batch_size, -1).var(axis=1, ddof=1)
    argmin = np.argmin(local[:, active] / global_var[active], axis=1)
    votes = np.zeros((k, int(active.sum())), dtype=np.int64)
    np.add.at(votes, (labels, argmin), 1)
    return votes


def factor_vae_score(
    data: Any,
    encode: Callable[[Any], Any],
    rng: Any,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
    chunk_size: int = CHUNK_SIZE,
) -> dict[str, float | int]:
    """FactorVAE score of ``encode`` (observations -> ``n x D`` codes) on ground-truth ``data``.

    Returns ``{"train_accuracy", "eval_accuracy", "num_active_dims"}``; chance is ``1/K``. With no
    active dimension both accuracies are 0 (as the reference).
    """
    check_data(data)
    check_sizes(
        batch_size=batch_size, num_train=num_train, num_eval=num_eval,
        num_variance_estimate=num_variance_estimate, chunk_size=chunk_size,
    )
    if batch_size < 2:
        raise ValueError("batch_size must be >= 2 (a variance needs two codes)")
    f = data.sample_factors(num_variance_estimate, rng)
    z = encode_factors(data, encode, f, rng, chunk_size)
    global_var = z.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    train = factor_vae_votes(data, encode, rng, num_train, global_var, active, batch_size, chunk_size)
    classifier = np.argmax(train, axis=0)
    cols = np.arange(train.shape[1])
    train_acc = train[classifier, cols].sum() / train.sum()
    ev = factor_vae_votes(data, encode, rng, num_eval, global_var, active, batch_size, chunk_size)
    eval_acc = ev[classifier, cols].sum() / ev.sum()
    return {
        "train_accuracy": float(train_acc),
        "eval_accuracy": float(eval_acc),
        "num_active_dims": int(active.sum()),
    }
