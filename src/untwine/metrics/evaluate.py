"""The metric suite: ``evaluate(run_or_encoder, data) -> dict`` with the reference sample sizes.

Sample sizes default to disentanglement_lib 1.5's ``unsupervised_study_v1`` metric configs
(:data:`DEFAULT_SIZES`; fairness: ``fairness_study_v1``). One knowing difference in protocol: the
array metrics (MIG, SAP, modularity/explicitness, DCI, Gaussian TC, IRS, the unsupervised scores,
the downstream tasks) share one pool of ``max(num_train)`` training and ``max(num_test)`` test
points, drawn and encoded once (the reference draws a fresh sample for each metric); each metric
uses the first ``num_train``/``num_test`` rows. The three sampling scores (beta-VAE, FactorVAE,
fairness) draw their own points from independent streams of the same seed.

Which metrics exist, how each is scored, its sizes and whether it is in the default suite come
from the registry (:mod:`untwine.metrics.registry`); this module only runs them.
:data:`DEFAULT_METRICS` (what ``metrics=None`` runs, ~30 s at the standard sizes on 2 cores) leaves
out the scores that fit many classifiers (:data:`SLOW_METRICS`: downstream, reduced downstream,
fairness; minutes each); :data:`METRICS` names them all.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..errors import UserError, check_choice
from . import registry
from .code_table import CodeTable, supports_table
from .registry import Inputs, NotApplicable, train_sizes
from .utils import CHUNK_SIZE, check_data, encode_factors

# The built-in suite, from the registry (:mod:`untwine.metrics.registry`): every name, the default
# suite, the opt-in scores, the default sample sizes.
METRICS = tuple(registry.names())
DEFAULT_METRICS = tuple(registry.names(opt_in=False))
SLOW_METRICS = tuple(registry.names(opt_in=True))  # classifier fits: minutes each
DEFAULT_SIZES: dict[str, dict[str, int]] = {n: dict(registry.get(n).sizes) for n in METRICS}

__all__ = ["DEFAULT_METRICS", "DEFAULT_SIZES", "METRICS", "SLOW_METRICS", "evaluate", "not_applicable",
           "planned_draws", "resolve_sizes", "run_scores", "score_names", "train_sizes"]


def _two_factor_names() -> dict[str, str]:
    """Metric names and result keys that need >= 2 factors -> the metric (see ``Metric.two_factors``)."""
    out: dict[str, str] = {}
    for n in registry.names():
        need = registry.get(n).two_factors
        out.update({n: n} if need is True else {k: n for k in need or ()})
    return out


def not_applicable(name: str, data: Any) -> str | None:
    """Why metric (or result key) ``name`` does not apply to ``data``, in one line; ``None`` if it does."""
    k = int(data.num_factors)
    if name in _two_factor_names() and k < 2:
        label = getattr(data, "name", None) or type(data).__name__
        return f"needs >= 2 factors; {label} has {k}"
    return None


def resolve_sizes(sizes: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    """Merge overrides into the registry's default sizes (:data:`DEFAULT_SIZES`).

    ``sizes`` maps a metric name to ``{param: value}``, or a parameter name (``num_train``,
    ``num_test``, ``num_eval``, ``batch_size``, ``num_variance_estimate``,
    ``num_test_points_per_class``) to a value applied to every metric that has it; per-metric
    entries win.
    """
    known = registry.names()
    out = {m: dict(registry.get(m).sizes) for m in known}
    params = {p for v in out.values() for p in v}
    given = [(registry.normalise(k), v) for k, v in (sizes or {}).items()]
    for key, val in given:
        if key in known:
            continue
        if key not in params:
            raise UserError(
                f"unknown size {key!r}; use a metric name ({', '.join(known)}) or one of "
                f"{', '.join(sorted(params))}"
            )
        for m in out.values():
            if key in m:
                m[key] = int(val)
    for key, val in given:
        if key in known:
            for p, v in dict(val).items():
                if p not in out[key]:
                    raise UserError(f"{key} has no size {p!r}; it has {', '.join(out[key])}")
                out[key][p] = int(v)
    for m, v in out.items():
        for p, n in v.items():
            if n < 1:
                raise UserError(f"{m}.{p} must be >= 1, got {n}")
    return out


def _encoder(run_or_encoder: Any) -> Callable[[Any], Any]:
    enc = getattr(run_or_encoder, "encode", None)
    if callable(enc):
        return enc
    if callable(run_or_encoder):
        return run_or_encoder
    raise ValueError(
        "run_or_encoder must be a callable encode(observations) -> n x D codes, or a run with "
        f".encode; got {type(run_or_encoder).__name__}"
    )


def evaluate(
    run_or_encoder: Any,
    data: Any,
    metrics: Iterable[str] | str | None = None,
    seed: int = 0,
    progress: bool = True,
    sizes: Mapping[str, Any] | None = None,
    n_jobs: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    dci_backend: str = registry.DEFAULT_BACKEND,
    code_table: bool | str = "auto",
) -> dict[str, Any]:
    """Compute the metric suite for an encoder on ground-truth ``data``.

    Args:
        run_or_encoder: ``encode(observations) -> n x D`` mean codes (numpy or torch), or an object
            with such an ``.encode`` (a run from ``untwine.train.load_run``).
        data: a :class:`~untwine.data.GroundTruthData` or any object with ``factor_sizes``,
            ``num_factors``, ``sample_factors(n, rng)``, ``observations_from_factors(f, rng)``.
        metrics: names of registered metrics (:data:`METRICS`; list or comma-separated string;
            ``-`` or ``_``; a result key such as ``beta_vae_score`` names its metric, see
            :func:`untwine.metrics.registry.parse_names`); default :data:`DEFAULT_METRICS` (all but
            the opt-in ``downstream``, ``reduced_downstream`` and ``fairness``).
        seed: seeds every random draw (results are reproducible for a fixed seed and sizes).
        progress: show a progress bar (tqdm) on stderr.
        sizes: sample-size overrides, see :func:`resolve_sizes`.
        n_jobs: threads for the per-factor/per-pair fits (``None``: all CPUs).
        chunk_size: observations encoded per call of ``encode``.
        dci_backend: one of :data:`untwine.metrics.registry.BACKENDS`, see
            :func:`untwine.metrics.dci` (``"exact"``: the reference's estimator); also the
            gradient-boosted trees of ``downstream``, ``reduced_downstream`` and ``fairness``.
        code_table: encode every image of ``data`` once and look codes up (see
            :mod:`untwine.metrics.code_table`; same scores). ``"auto"`` does so when ``data`` can be
            enumerated and the metrics would draw at least ``len(data)`` observations.

    Returns:
        Flat dict of floats: ``mig``, ``sap``, ``modularity``, ``explicitness`` (test),
        ``explicitness_train``, ``dci_disentanglement``, ``dci_completeness``,
        ``dci_informativeness`` (test accuracy), ``dci_informativeness_train``, ``beta_vae_score``
        (eval accuracy), ``beta_vae_train``, ``factor_vae_score`` (eval accuracy),
        ``factor_vae_train``, ``factor_vae_active_dims``, ``gaussian_tc`` (nats), ``irs``,
        ``irs_active_dims``, ``gaussian_wasserstein_correlation``,
        ``gaussian_wasserstein_correlation_norm``, ``mutual_info_score`` (nats),
        ``downstream_{lr,gbt}_{n}`` (mean test accuracy over factors at training size ``n``, see
        :func:`train_sizes`), ``reduced_downstream_{n}`` (test accuracy of the reduced factor)
        and ``reduced_downstream_{n}_others`` (of the other factors), ``fairness_mean`` and
        ``fairness_max`` for the selected metrics; ``per_factor`` maps ``mig`` (each factor's MIG term) and each downstream key to
        its ``K`` per-factor test accuracies (lists, factor order); plus ``timings_s`` (seconds
        per metric, ``encode`` for the shared pool), ``seed`` and ``sizes``. A metric that does
        not apply to ``data`` (see :func:`not_applicable`: the beta-VAE and FactorVAE scores,
        modularity, DCI disentanglement, fairness and the reduced downstream task need >= 2
        factors) is left out and ``skipped`` maps its name to the reason, e.g.
        ``{"beta_vae": "needs >= 2 factors; mnist has 1"}``; the rest are computed.
    """
    check_data(data)
    encode = _encoder(run_or_encoder)
    names = registry.names(opt_in=False) if metrics is None else registry.parse_names(metrics)
    sz = resolve_sizes(sizes)
    entries = {n: registry.get(n) for n in names}
    skipped = {key: why for key, n in _two_factor_names().items() if n in names and (why := not_applicable(key, data))}
    names = [n for n in names if n not in skipped or entries[n].two_factors is not True]
    if any(entries[n].backend for n in names):
        check_choice(dci_backend, registry.BACKENDS, "dci_backend")
    if code_table not in ("auto", True, False):
        raise ValueError(f"code_table must be 'auto', True or False, got {code_table!r}")
    use_table = bool(code_table) and supports_table(data)
    if code_table is True and not use_table:
        raise ValueError(f"code_table=True needs enumerable data; {type(data).__name__} is not (see code_table.supports_table)")
    if code_table == "auto":
        use_table = use_table and planned_draws(names, sz, data.factor_sizes) >= len(data)
    # Stream 0 draws the shared pool, stream i >= 1 the metric registered with it; spawn(n)[:k] ==
    # spawn(k), so a metric registered with a new stream leaves every other metric's draws unchanged.
    n_streams = 1 + max(m.stream for m in entries.values())
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_streams)]
    out: dict[str, Any] = {}
    per_factor: dict[str, list[float]] = {}
    timings: dict[str, float] = {}
    array_metrics = [n for n in names if entries[n].pool]
    steps = (1 if array_metrics else 0) + len(names)

    from tqdm.auto import tqdm

    bar = tqdm(total=steps + use_table, desc="evaluate", disable=not progress, unit="step")
    try:
        if use_table:
            bar.set_postfix_str(f"encode all {len(data)} images")
            t = time.perf_counter()
            table = CodeTable(data, encode, chunk_size, progress)
            data, encode = table, table.encode
            timings["encode_table"] = time.perf_counter() - t
            bar.update(1)
        if array_metrics:
            bar.set_postfix_str("encode")
            t = time.perf_counter()
            n_tr, n_te = _pool_size(array_metrics, sz)
            f_pool = data.sample_factors(n_tr + n_te, streams[0])
            z_pool = encode_factors(data, encode, f_pool, streams[0], chunk_size)
            ztr, ftr, zte, fte = z_pool[:n_tr], f_pool[:n_tr], z_pool[n_tr:], f_pool[n_tr:]
            timings["encode"] = time.perf_counter() - t
            bar.update(1)
        for name in names:
            bar.set_postfix_str(name)
            t = time.perf_counter()
            m, s = entries[name], sz[name]
            inputs = Inputs(s, data, encode, n_jobs=n_jobs, chunk_size=chunk_size, backend=dci_backend)
            if m.pool:
                n_train, n_test = s["num_train"], s.get("num_test", 0)
                inputs = dataclasses.replace(inputs, train=(ztr[:n_train], ftr[:n_train]),
                                             test=(zte[:n_test], fte[:n_test]))
            else:
                inputs = dataclasses.replace(inputs, rng=streams[m.stream])
            try:
                r = m.run(inputs)
            except NotApplicable as e:
                skipped[name], r = str(e), {}
            per_factor.update(r.pop("per_factor", {}))
            drop = () if m.two_factors is True else [k for k in m.two_factors or () if k in skipped]
            out.update({k: v for k, v in r.items() if k not in drop})
            timings[name] = time.perf_counter() - t
            bar.update(1)
    finally:
        bar.close()
    if per_factor:
        out["per_factor"] = per_factor
    if skipped:
        out["skipped"] = skipped
    out["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    out["seed"] = int(seed)
    out["sizes"] = {m: sz[m] for m in names}
    if any(entries[n].backend for n in names):
        out["dci_backend"] = dci_backend
    out["code_table"] = use_table
    return out


def _pool_size(names: Iterable[str], sz: Mapping[str, Mapping[str, int]]) -> tuple[int, int]:
    """Training and test rows of the shared pool that the pool metrics ``names`` use at sizes ``sz``."""
    names = list(names)
    return (max(sz[m]["num_train"] for m in names), max([sz[m].get("num_test", 0) for m in names] + [0]))


def planned_draws(names: Iterable[str], sz: Mapping[str, Mapping[str, int]], factor_sizes: Iterable[int] = ()) -> int:
    """Observations the metrics ``names`` encode at sizes ``sz`` without a code table (fairness is
    counted only with ``factor_sizes``)."""
    entries = [registry.get(n) for n in names]
    pool = [m.name for m in entries if m.pool]
    n = sum(_pool_size(pool, sz)) if pool else 0
    sizes = [int(x) for x in factor_sizes]
    return n + sum(m.draws(sz[m.name], sizes) for m in entries if m.draws is not None)


# ------------------------------------------------------------------------------- scores while training
def score_names(text: str) -> str:
    """``RunConfig.score`` -> its registered metric names, comma-separated (``"mig, gaussian-tc"`` ->
    ``"mig,gaussian_tc"``); raises ``UserError`` naming an unknown one (:func:`registry.parse_names`)."""
    return ",".join(registry.parse_names(text))


def run_scores(run: Any, data: Any, names: str) -> dict[str, Any]:
    """The ``metrics.jsonl`` row of a run scored while it trains (``RunConfig.score``): :func:`evaluate`
    of ``names`` at the standard sizes, seed 0 and the run's threads, as ``untwine evaluate RUN
    --metrics NAMES`` scores its checkpoint at that step; its numbers, each per-factor list as
    ``<key>_per_factor``, and ``skipped`` when a metric did not apply."""
    res = evaluate(run, data, metrics=names, seed=0, progress=False, n_jobs=int(run.config.threads) or None)
    out: dict[str, Any] = {k: v for k, v in res.items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"}
    out.update({f"{k}_per_factor": list(v) for k, v in res.get("per_factor", {}).items()})
    if res.get("skipped"):
        out["skipped"] = dict(res["skipped"])
    return out
