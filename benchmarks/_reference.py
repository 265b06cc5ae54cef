"""Shared helpers of the benchmark scripts: synthetic ground truth, test representations, and an
optional import of disentanglement_lib 1.5 from a separate environment (never a dependency).

Install the reference once, outside the project venv::

    python3 -m venv /tmp/dlib-venv
    /tmp/dlib-venv/bin/pip install --no-deps disentanglement-lib==1.5 gin-config==0.4.0
    /tmp/dlib-venv/bin/pip install absl-py six numpy scipy scikit-learn

The scripts append that venv's site-packages to ``sys.path`` (``--dlib-site`` or ``$DLIB_SITE``),
stub ``gin.tf`` (which would import TensorFlow; the metrics do not need it) and bind the gin
parameters of the ``unsupervised_study_v1`` metric configs (plus ``fairness.gin``'s boosted-trees
predictor and ``reduced_downstream_task.gin``'s ``factorwise_dci``). Both sides then use the project's own
numpy/scipy/scikit-learn, so differences come from the metric code only.
"""

from __future__ import annotations

import glob
import os
import sys
import types
from typing import Any, Callable

import numpy as np

DSPRITES_SIZES = (3, 6, 40, 32, 32)
REPRESENTATIONS = ("perfect", "permuted", "mixture", "noise", "twice")


class SyntheticData:
    """Ground truth with dSprites' factor sizes whose observations are the factors themselves.

    Offers both APIs: untwine's (``sample_factors``, ``observations_from_factors``) and
    disentanglement_lib's (``sample_observations_from_factors``, ``sample_observations``).
    """

    def __init__(self, factor_sizes: tuple[int, ...] = DSPRITES_SIZES) -> None:
        self.factor_sizes = tuple(factor_sizes)
        self.num_factors = len(factor_sizes)
        self.factors_num_values = list(factor_sizes)  # disentanglement_lib's name (fairness)

    def sample_factors(self, n: int, rng: Any) -> np.ndarray:
        sizes = np.asarray(self.factor_sizes)
        if isinstance(rng, np.random.Generator):
            return rng.integers(0, sizes, size=(n, self.num_factors))
        return np.stack([rng.randint(s, size=n) for s in sizes], axis=1).astype(np.int64)

    def observations_from_factors(self, factors: np.ndarray, rng: Any) -> np.ndarray:
        return np.asarray(factors, dtype=np.float64)

    sample_observations_from_factors = observations_from_factors

    def sample_observations(self, n: int, rng: Any) -> np.ndarray:
        return self.observations_from_factors(self.sample_factors(n, rng), rng)

    def sample(self, n: int, rng: Any) -> tuple[np.ndarray, np.ndarray]:
        f = self.sample_factors(n, rng)
        return f, self.observations_from_factors(f, rng)


def representation(kind: str, factor_sizes: tuple[int, ...] = DSPRITES_SIZES, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A fixed encoder ``factors (n x K) -> codes``; ``seed`` fixes its parameters, not its noise.

    perfect: one latent per factor (factor / (size - 1) + N(0, 0.01^2) jitter) + 2 pure-noise dims.
    permuted: perfect with columns permuted, rescaled (x0.1 .. x10, sign flips) and shifted.
    mixture: a random dense linear mixture of the normalised factors into 7 dims (+ jitter).
    noise: 7 dims of N(0, 1), independent of the factors.
    twice: perfect plus a second copy of the x-position factor (independent jitter).
    """
    k = len(factor_sizes)
    scale = 1.0 / (np.asarray(factor_sizes, dtype=np.float64) - 1.0)
    p = np.random.default_rng(1000 + seed)
    perm = p.permutation(k + 2)
    gains = p.choice([-1.0, 1.0], k + 2) * 10 ** p.uniform(-1, 1, k + 2)
    shift = p.normal(0, 3, k + 2)
    mix = p.normal(0, 1, (k, k + 2))
    noise_rng = np.random.default_rng(2000 + seed)

    def perfect(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        z = f * scale + noise_rng.normal(0, 0.01, f.shape)
        return np.concatenate([z, noise_rng.normal(0, 1, (len(f), 2))], axis=1)

    def enc(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        if kind == "perfect":
            return perfect(f)
        if kind == "permuted":
            return perfect(f)[:, perm] * gains + shift
        if kind == "mixture":
            return (f * scale) @ mix + noise_rng.normal(0, 0.01, (len(f), k + 2))
        if kind == "noise":
            return noise_rng.normal(0, 1, (len(f), k + 2))
        if kind == "twice":
            z = perfect(f)
            return np.concatenate([z, f[:, 3:4] * scale[3] + noise_rng.normal(0, 0.01, (len(f), 1))], axis=1)
        raise ValueError(f"unknown representation {kind!r}; choose from {REPRESENTATIONS}")

    return enc


def find_dlib_site(site: str | None = None) -> str | None:
    site = site or os.environ.get("DLIB_SITE")
    if site:
        return site
    hits = glob.glob("/tmp/dlib-venv/lib/python3*/site-packages")
    return hits[0] if hits else None


def load_reference(site: str | None = None) -> Any | None:
    """Import disentanglement_lib's metric modules, or ``None`` if unavailable."""
    site = find_dlib_site(site)
    if site is None:
        return None
    if site not in sys.path:
        sys.path.append(site)
    sys.modules.setdefault("gin.tf", types.ModuleType("gin.tf"))
    try:
        import logging

        logging.getLogger().setLevel(logging.ERROR)
        import gin
        from disentanglement_lib.evaluation.metrics import (  # type: ignore
            beta_vae,
            dci,
            downstream_task,
            factor_vae,
            fairness,
            irs,
            mig,
            modularity_explicitness,
            reduced_downstream_task,
            sap_score,
            unsupervised_metrics,
            utils,
        )
    except ImportError as e:  # pragma: no cover - optional
        print(f"disentanglement_lib not importable from {site}: {e}", file=sys.stderr)
        return None
    gin.clear_config()
    gin.parse_config(
        [
            "discretizer.discretizer_fn = @histogram_discretizer",
            "discretizer.num_bins = 20",
            "prune_dims.threshold = 0.05",
            "predictor.predictor_fn = @gradient_boosting_classifier",
            "reduced_representation.correlation_measure = @factorwise_dci",
        ]
    )
    return types.SimpleNamespace(
        beta_vae=beta_vae, dci=dci, factor_vae=factor_vae, mig=mig,
        modularity=modularity_explicitness, sap=sap_score, unsupervised=unsupervised_metrics,
        utils=utils, irs=irs, downstream=downstream_task, reduced=reduced_downstream_task,
        fairness=fairness,
    )
