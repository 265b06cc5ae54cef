"""The beta-VAE disentanglement score (Higgins et al. 2017, "beta-VAE: Learning Basic Visual
Concepts with a Constrained Variational Framework").

Protocol of disentanglement_lib 1.5 (``beta_vae.py``, ``beta_vae_sklearn.gin``: batch 64,
10,000 training and 5,000 evaluation points): each point picks a factor ``k`` uniformly, draws two
batches of 64 factor vectors that agree on factor ``k`` (row by row), encodes both, and uses the
batch mean of ``|z1 - z2|`` (a ``D``-vector) as feature and ``k`` as label. A
``LogisticRegression`` (scikit-learn defaults) is trained on the training points; the score is its
accuracy on the evaluation points.

Same protocol, own random stream: all points' factors are drawn up front and encoded in chunks of
``chunk_size`` observations (the reference encodes 64 at a time), so the numbers agree with the
reference in distribution, not draw for draw.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from ..data.protocol import integers
from .utils import CHUNK_SIZE, check_data, check_sizes, encode_factors


def beta_vae_features(
    data: Any,
    encode: Callable[[Any], Any],
    rng: Any,
    num_points: int,
    batch_size: int = 64,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """``(features num_points x D, labels num_points)`` of the beta-VAE protocol."""
    k = data.num_factors
    labels = integers(rng, k, num_points)
    f1 = data.sample_factors(num_points * batch_size, rng)
    f2 = data.sample_factors(num_points * batch_size, rng)
    rows = np.arange(num_points * batch_size)
    cols = np.repeat(labels, batch_size)
    f2[rows, cols] = f1[rows, cols]
    chunk = max(batch_size, chunk_size // batch_size * batch_size)
    z1 = encode_factors(data, encode, f1, rng, chunk)
    z2 = encode_factors(data, encode, f2, rng, chunk)
    feats = np.abs(z1 - z2).reshape(num_points, batch_size, -1).mean(axis=1)
    return feats, labels


def beta_vae_score(
    data: Any,
    encode: Callable[[Any], Any],
    rng: Any,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    chunk_size: int = CHUNK_SIZE,
) -> dict[str, float]:
    """beta-VAE score of ``encode`` (observations -> ``n x D`` codes) on ground-truth ``data``.

    Returns ``{"train_accuracy", "eval_accuracy"}`` (fractions; chance is ``1/K``).
    """
    check_data(data)
    check_sizes(batch_size=batch_size, num_train=num_train, num_eval=num_eval, chunk_size=chunk_size)
    xtr, ytr = beta_vae_features(data, encode, rng, num_train, batch_size, chunk_size)
    if np.unique(ytr).size < 2:
        raise ValueError(f"num_train={num_train} drew a single factor; use more training points")
    model = LogisticRegression()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(xtr, ytr)
    train_acc = float(np.mean(model.predict(xtr) == ytr))
    xev, yev = beta_vae_features(data, encode, rng, num_eval, batch_size, chunk_size)
    eval_acc = float(np.mean(model.predict(xev) == yev))
    return {"train_accuracy": train_acc, "eval_accuracy": eval_acc}
