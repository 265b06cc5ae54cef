"""The metric registry: one :class:`Metric` entry per metric of the suite, in suite order.

Everything that lists metrics is built from it: :func:`untwine.metrics.evaluate` (which metrics
exist, how each is scored, its default sample sizes, which random stream it draws from, how many
observations it encodes, which need two factors), the ``untwine evaluate`` help and its default
list, and the names a study's ``[eval] metrics`` accepts (:func:`parse_names`, with the result
keys of :attr:`Metric.keys` as aliases). A new metric is one file (its pure function,
``f(codes, factors, ...) -> dict`` or ``f(data, encode, rng, ...) -> dict``) plus one
:func:`register` call at the end of this module, whose ``score`` turns :class:`Inputs` into the
metric's result keys.

Sample sizes default to disentanglement_lib 1.5's ``unsupervised_study_v1`` metric configs
(fairness: ``fairness_study_v1``): a pool metric's in the pool sizes below, a metric that draws
its own points in its function's signature (:func:`signature_sizes` reads them). Costs are at
those sizes on 2 CPU cores (``benchmarks/RESULTS.md``, "The metric suite with the new scores").
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import UserError
from ._gbt import BACKENDS, DEFAULT_BACKEND
from .beta_vae_score import beta_vae_score
from .dci import dci
from .downstream import PREDICTORS, downstream_task
from .factor_vae_score import factor_vae_score
from .fairness import fairness
from .irs import irs
from .mig import mig
from .mig_sampled import gaussian_total_correlation
from .modularity import modularity_explicitness
from .reduced_downstream import reduced_downstream_task
from .sap import sap
from .unsupervised import unsupervised_scores
from .utils import CHUNK_SIZE

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Inputs", "Metric", "NotApplicable", "get", "names", "normalise", "parse_names", "register",
           "signature_sizes", "train_sizes"]


class NotApplicable(Exception):
    """Raised by a metric's ``score`` when it cannot be computed on these inputs; the message is
    the reason ``evaluate`` records under ``skipped``."""


@dataclass(frozen=True)
class Inputs:
    """What :func:`~untwine.metrics.evaluate` hands a metric's ``score``.

    ``sizes``: the metric's resolved sample sizes. A metric scored on the shared pool
    (``Metric.pool``) gets ``train`` and ``test``: ``(codes, factors)`` of the pool's first
    ``num_train`` / ``num_test`` rows (``test`` empty without ``num_test``). A metric that draws its
    own points gets ``data``, ``encode`` and ``rng`` (its own stream). ``n_jobs``, ``chunk_size``
    and ``backend`` (``dci_backend``) are evaluate's arguments."""

    sizes: Mapping[str, int]
    data: Any
    encode: Callable[[Any], Any]
    train: tuple[np.ndarray, np.ndarray] | None = None
    test: tuple[np.ndarray, np.ndarray] | None = None
    rng: np.random.Generator | None = None
    n_jobs: int | None = None
    chunk_size: int = CHUNK_SIZE
    backend: str = DEFAULT_BACKEND

    @property
    def halves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(codes_train, factors_train, codes_test, factors_test)``, as the array metrics take them."""
        assert self.train is not None and self.test is not None
        return (*self.train, *self.test)


@dataclass(frozen=True)
class Metric:
    """One metric of the suite.

    - ``name``: the suite's name (snake_case; ``--metrics``, ``[eval] metrics``, ``sizes`` keys).
    - ``function``: the metric's pure function (its own file).
    - ``score(function, inputs) -> dict``: calls it on :class:`Inputs` and returns the metric's
      result keys (floats), plus optionally ``"per_factor": {key: K floats}``; raises
      :class:`NotApplicable` when the inputs do not allow it.
    - ``sizes``: its sample sizes and their defaults (``num_train`` for a pool metric).
    - ``opt_in``: left out of the default suite (run only when named).
    - ``cost``: what it costs at the default sizes, for the help and docs.
    - ``keys``: the fixed result keys it writes (a study may name a metric by one of them).
    - ``pool``: scored on the shared pool of encoded points; else it draws its own from random
      stream ``stream`` (>= 1, one per metric and never renumbered, so adding a metric changes no
      other metric's draws) and encodes ``draws(sizes, factor_sizes)`` observations.
    - ``two_factors``: ``True`` if the metric needs >= 2 factors (left out whole with one), or the
      result keys that do (dropped, the rest computed).
    - ``backend``: fits boosted trees, so ``dci_backend`` applies to it.
    """

    name: str
    function: Callable[..., Any]
    score: Callable[[Callable[..., Any], Inputs], dict[str, Any]]
    sizes: Mapping[str, int]
    opt_in: bool = False
    cost: str = ""
    keys: tuple[str, ...] = ()
    pool: bool = True
    stream: int = 0
    draws: Callable[[Mapping[str, int], Sequence[int]], int] | None = None
    two_factors: bool | tuple[str, ...] = False
    backend: bool = False

    def run(self, inputs: Inputs) -> dict[str, Any]:
        """``score(function, inputs)``."""
        return self.score(self.function, inputs)


_REGISTRY: dict[str, Metric] = {}


def normalise(name: str) -> str:
    """A metric name as the suite spells it: ``"Beta-VAE "`` -> ``"beta_vae"``."""
    return name.strip().lower().replace("-", "_")


def register(metric: Metric) -> Metric:
    """Add ``metric`` to the suite (after the metrics registered before it)."""
    name = metric.name
    if not name or normalise(name) != name:
        raise ValueError(f"metric name {name!r} must be snake_case (as normalise() writes it)")
    if name in _REGISTRY:
        raise ValueError(f"metric {name!r} registered twice")
    if metric.pool:
        if "num_train" not in metric.sizes or metric.stream or metric.draws is not None:
            raise ValueError(f"{name}: a pool metric has a num_train size and no stream or draws of its own")
    else:
        taken = {m.stream for m in _REGISTRY.values() if not m.pool}
        if metric.stream < 1 or metric.stream in taken or metric.draws is None:
            raise ValueError(f"{name}: a metric that draws its own points needs draws and a new stream >= 1 "
                             f"(taken: {sorted(taken)})")
    _REGISTRY[name] = metric
    return metric


def get(name: str) -> Metric:
    """The registered metric ``name`` (normalised; a result key such as ``beta_vae_score`` names
    its metric)."""
    return _REGISTRY[parse_names([name])[0]]


def names(opt_in: bool | None = None) -> list[str]:
    """Registered names in suite order: all, the default suite (``opt_in=False``) or the opt-in ones."""
    return [n for n, m in _REGISTRY.items() if opt_in is None or m.opt_in == opt_in]


def result_keys() -> list[str]:
    """Every metric's fixed result keys (the results.csv columns they write), in suite order."""
    return list(dict.fromkeys(k for m in _REGISTRY.values() for k in m.keys))


def aliases() -> dict[str, str]:
    """Result key -> the metric that writes it (keys that are not metric names themselves)."""
    out: dict[str, str] = {}
    for m in _REGISTRY.values():
        for k in m.keys:
            if k not in _REGISTRY:
                out.setdefault(k, m.name)
    return out


def parse_names(metrics: Iterable[str] | str) -> list[str]:
    """Metric names (a list or a comma-separated string) -> registered names, normalised, result
    keys mapped to their metric (``beta_vae_score`` -> ``beta_vae``), duplicates dropped; raises
    ``UserError`` for an unknown or empty selection."""
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    raw = [m for m in metrics if m.strip()]
    alias = aliases()
    out = [alias.get(normalise(m), normalise(m)) for m in raw]
    bad = [m.strip() for m, n in zip(raw, out) if n not in _REGISTRY]
    if bad:
        raise UserError(f"unknown metric {', '.join(map(repr, bad))}; choose one of {', '.join(_REGISTRY)}")
    if not out:
        raise UserError(f"no metric selected; choose one of {', '.join(_REGISTRY)}")
    return list(dict.fromkeys(out))


def train_sizes(num_train: int) -> list[int]:
    """The downstream tasks' training sizes: 10, 100, 1,000, ... below ``num_train``, then ``num_train``."""
    return [10**e for e in range(1, 20) if 10**e < num_train] + [int(num_train)]


# ------------------------------------------------------------------------------- the built-ins
# Pool sizes (dlib's): 10,000 training points, and 5,000 test points for the metrics that fit
# predictors. A metric that draws its own points states its sizes once, in its function's signature.
_TRAIN: Mapping[str, int] = MappingProxyType({"num_train": 10000})
_TRAIN_TEST: Mapping[str, int] = MappingProxyType({**_TRAIN, "num_test": 5000})


def signature_sizes(function: Callable[..., Any], *names: str) -> dict[str, int]:
    """``{name: default}`` of ``function``'s sample-size arguments ``names``, read from its signature."""
    params = inspect.signature(function).parameters
    return {n: int(params[n].default) for n in names}


def _mig(f: Callable, x: Inputs) -> dict[str, Any]:
    r = f(*x.train)
    return {"mig": r["mig"], "per_factor": {"mig": [float(v) for v in r["per_factor"]]}}


def _sap(f: Callable, x: Inputs) -> dict[str, Any]:
    return {"sap": f(*x.halves, n_jobs=x.n_jobs)["sap"]}


def _modularity(f: Callable, x: Inputs) -> dict[str, Any]:
    r = f(*x.halves, n_jobs=x.n_jobs)
    return {"modularity": r["modularity"], "explicitness": r["explicitness_test"],
            "explicitness_train": r["explicitness_train"]}


def _dci(f: Callable, x: Inputs) -> dict[str, Any]:
    r = f(*x.halves, n_jobs=x.n_jobs, backend=x.backend)
    return {"dci_disentanglement": r["disentanglement"], "dci_completeness": r["completeness"],
            "dci_informativeness": r["informativeness_test"], "dci_informativeness_train": r["informativeness_train"]}


def _beta_vae(f: Callable, x: Inputs) -> dict[str, Any]:
    r = f(x.data, x.encode, x.rng, chunk_size=x.chunk_size, **x.sizes)
    return {"beta_vae_score": r["eval_accuracy"], "beta_vae_train": r["train_accuracy"]}


def _beta_vae_draws(s: Mapping[str, int], factor_sizes: Sequence[int]) -> int:
    return 2 * s["batch_size"] * (s["num_train"] + s["num_eval"])


def _factor_vae(f: Callable, x: Inputs) -> dict[str, Any]:
    r = f(x.data, x.encode, x.rng, chunk_size=x.chunk_size, **x.sizes)
    return {"factor_vae_score": r["eval_accuracy"], "factor_vae_train": r["train_accuracy"],
            "factor_vae_active_dims": r["num_active_dims"]}


def _factor_vae_draws(s: Mapping[str, int], factor_sizes: Sequence[int]) -> int:
    return s["batch_size"] * (s["num_train"] + s["num_eval"]) + s["num_variance_estimate"]


def _gaussian_tc(f: Callable, x: Inputs) -> dict[str, Any]:
    return {"gaussian_tc": f(x.train[0])}


def _irs(f: Callable, x: Inputs) -> dict[str, Any]:
    r = f(*x.train)
    return {"irs": r["irs"], "irs_active_dims": r["num_active_dims"]}


_UNSUPERVISED = ("gaussian_wasserstein_correlation", "gaussian_wasserstein_correlation_norm", "mutual_info_score")


def _unsupervised(f: Callable, x: Inputs) -> dict[str, Any]:
    r = f(x.train[0])
    return {"gaussian_tc": r["gaussian_total_correlation"], **{k: r[k] for k in _UNSUPERVISED}}


def _downstream(f: Callable, x: Inputs) -> dict[str, Any]:
    sizes = train_sizes(x.sizes["num_train"])
    out: dict[str, Any] = {}
    per_factor: dict[str, list[float]] = {}
    for p in PREDICTORS:
        r = f(*x.halves, sizes, p, x.backend, x.n_jobs)
        for n, mean, accs in zip(sizes, r["mean_test_accuracy"], r["test_accuracy"]):
            out[f"downstream_{p}_{n}"] = float(mean)
            per_factor[f"downstream_{p}_{n}"] = [float(a) for a in accs]
    return {**out, "per_factor": per_factor}


def _reduced_downstream(f: Callable, x: Inputs) -> dict[str, Any]:
    ztr = x.train[0]
    if ztr.shape[1] < 2:
        raise NotApplicable(f"needs >= 2 code dimensions (one is removed); the encoder has {ztr.shape[1]}")
    sizes = train_sizes(x.sizes["num_train"])
    r = f(*x.halves, sizes, backend=x.backend, n_jobs=x.n_jobs)
    out: dict[str, Any] = {}
    per_factor: dict[str, list[float]] = {}
    for i, n in enumerate(sizes):
        out[f"reduced_downstream_{n}"] = float(r["mean_test_accuracy_reduced_factor"][i])
        out[f"reduced_downstream_{n}_others"] = float(r["mean_test_accuracy_other_factors"][i])
        per_factor[f"reduced_downstream_{n}"] = [float(a) for a in r["reduced_factor_test_accuracy"][i]]
    return {**out, "per_factor": per_factor}


def _fairness(f: Callable, x: Inputs) -> dict[str, Any]:
    s = x.sizes
    r = f(x.data, x.encode, x.rng, s["num_train"], s["num_test_points_per_class"], backend=x.backend,
          chunk_size=x.chunk_size, n_jobs=x.n_jobs)
    return {"fairness_mean": r["mean_fairness"], "fairness_max": r["max_fairness"]}


def _fairness_draws(s: Mapping[str, int], factor_sizes: Sequence[int]) -> int:
    sizes = [int(v) for v in factor_sizes]  # counted only when the factor sizes are known
    return s["num_train"] + (len(sizes) - 1) * s["num_test_points_per_class"] * sum(sizes) if sizes else 0


register(Metric("mig", mig, _mig, _TRAIN, cost="~0.01 s", keys=("mig",)))
register(Metric("sap", sap, _sap, _TRAIN_TEST, cost="~0.5 s", keys=("sap",)))
register(Metric("modularity", modularity_explicitness, _modularity, _TRAIN_TEST,
                cost="~1 s", keys=("modularity", "explicitness", "explicitness_train"), two_factors=("modularity",)))
register(Metric("dci", dci, _dci, _TRAIN_TEST, backend=True,
                cost="~15 s: boosted trees, one per factor, exact backend",
                keys=("dci_disentanglement", "dci_completeness", "dci_informativeness", "dci_informativeness_train"),
                two_factors=("dci_disentanglement",)))
register(Metric("beta_vae", beta_vae_score, _beta_vae,
                signature_sizes(beta_vae_score, "batch_size", "num_train", "num_eval"),
                cost="~1 s plus encoding 1.92 M observations", keys=("beta_vae_score", "beta_vae_train"),
                pool=False, stream=1, draws=_beta_vae_draws, two_factors=True))
register(Metric("factor_vae", factor_vae_score, _factor_vae,
                signature_sizes(factor_vae_score, "batch_size", "num_train", "num_eval", "num_variance_estimate"),
                cost="~0.2 s plus encoding 0.97 M observations",
                keys=("factor_vae_score", "factor_vae_train", "factor_vae_active_dims"),
                pool=False, stream=2, draws=_factor_vae_draws, two_factors=True))
register(Metric("gaussian_tc", gaussian_total_correlation, _gaussian_tc, _TRAIN, cost="~0.01 s",
                keys=("gaussian_tc",)))
register(Metric("irs", irs, _irs, _TRAIN, cost="~0.01 s", keys=("irs", "irs_active_dims")))
register(Metric("unsupervised", unsupervised_scores, _unsupervised, _TRAIN, cost="~0.01 s",
                keys=("gaussian_tc", *_UNSUPERVISED)))
# The opt-in scores fit many classifiers: minutes each. The downstream tasks train on 10, 100, ...
# below num_train, and num_train (the reference: 10 .. 10,000).
register(Metric("downstream", downstream_task, _downstream, _TRAIN_TEST, opt_in=True,
                backend=True, cost="~3 min: logistic regression and boosted trees on 10..10,000 points"))
register(Metric("reduced_downstream", reduced_downstream_task, _reduced_downstream,
                _TRAIN_TEST, opt_in=True, backend=True, two_factors=True,
                cost="~5-9 min: boosted trees after removing each factor's most important dimension"))
register(Metric("fairness", fairness, _fairness, signature_sizes(fairness, "num_train", "num_test_points_per_class"),
                opt_in=True, backend=True, cost="~1 min: boosted trees predicting each factor under "
                "interventions on each other factor", keys=("fairness_mean", "fairness_max"),
                pool=False, stream=3, draws=_fairness_draws, two_factors=True))
