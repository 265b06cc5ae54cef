"""The metric suite: ``evaluate(run_or_encoder, data) -> dict`` with the reference sample sizes.

Sample sizes default to disentanglement_lib 1.5's ``unsupervised_study_v1`` metric configs
(:data:`DEFAULT_SIZES`; fairness: ``fairness_study_v1``). One knowing difference in protocol: the
array metrics (MIG, SAP, modularity/explicitness, DCI, Gaussian TC, IRS, the unsupervised scores,
the downstream tasks) share one pool of ``max(num_train)`` training and ``max(num_test)`` test
points, drawn and encoded once (the reference draws a fresh sample for each metric); each metric
uses the first ``num_train``/``num_test`` rows. The three sampling scores (beta-VAE, FactorVAE,
fairness) draw their own points from independent streams of the same seed.

:data:`DEFAULT_METRICS` (what ``metrics=None`` runs, ~30 s at the standard sizes on 2 cores) leaves
out the scores that fit many classifiers (:data:`SLOW_METRICS`: downstream, reduced downstream,
fairness; minutes each); :data:`METRICS` names them all.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .beta_vae_score import beta_vae_score
from .code_table import CodeTable, supports_table
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
from .utils import check_data, encode_factors

DEFAULT_METRICS = ("mig", "sap", "modularity", "dci", "beta_vae", "factor_vae", "gaussian_tc", "irs", "unsupervised")
SLOW_METRICS = ("downstream", "reduced_downstream", "fairness")  # classifier fits: minutes each
METRICS = DEFAULT_METRICS + SLOW_METRICS
# Metrics scored on the shared pool of encoded points (the rest draw their own).
ARRAY_METRICS = ("mig", "sap", "modularity", "dci", "gaussian_tc", "irs", "unsupervised", "downstream",
                 "reduced_downstream")

DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "mig": {"num_train": 10000},
    "sap": {"num_train": 10000, "num_test": 5000},
    "modularity": {"num_train": 10000, "num_test": 5000},
    "dci": {"num_train": 10000, "num_test": 5000},
    "beta_vae": {"batch_size": 64, "num_train": 10000, "num_eval": 5000},
    "factor_vae": {"batch_size": 64, "num_train": 10000, "num_eval": 5000, "num_variance_estimate": 10000},
    "gaussian_tc": {"num_train": 10000},
    "irs": {"num_train": 10000},
    "unsupervised": {"num_train": 10000},
    # training sizes 10, 100, ... below num_train, and num_train (the reference: 10 .. 10,000)
    "downstream": {"num_train": 10000, "num_test": 5000},
    "reduced_downstream": {"num_train": 10000, "num_test": 5000},
    "fairness": {"num_train": 10000, "num_test_points_per_class": 100},
}


# Metrics (and result keys) that need at least two factors: the beta-VAE and FactorVAE scores
# classify *which* factor was fixed, modularity and DCI disentanglement normalise by K - 1 / log K,
# fairness pairs a predicted with a sensitive factor, the reduced downstream task compares the
# reduced factor with the others.
NEEDS_TWO_FACTORS = ("beta_vae", "factor_vae", "modularity", "dci_disentanglement", "fairness", "reduced_downstream")
# Metrics left out whole when they do not apply (the others lose only the result keys named above).
WHOLE_METRICS = ("beta_vae", "factor_vae", "fairness", "reduced_downstream")


def train_sizes(num_train: int) -> list[int]:
    """The downstream tasks' training sizes: 10, 100, 1,000, ... below ``num_train``, then ``num_train``."""
    return [10**e for e in range(1, 20) if 10**e < num_train] + [int(num_train)]


def not_applicable(name: str, data: Any) -> str | None:
    """Why metric (or result key) ``name`` does not apply to ``data``, in one line; ``None`` if it does."""
    k = int(data.num_factors)
    if name in NEEDS_TWO_FACTORS and k < 2:
        label = getattr(data, "name", None) or type(data).__name__
        return f"needs >= 2 factors; {label} has {k}"
    return None


def resolve_sizes(sizes: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    """Merge overrides into :data:`DEFAULT_SIZES`.

    ``sizes`` maps a metric name to ``{param: value}``, or a parameter name (``num_train``,
    ``num_test``, ``num_eval``, ``batch_size``, ``num_variance_estimate``,
    ``num_test_points_per_class``) to a value applied to every metric that has it; per-metric
    entries win.
    """
    out = {m: dict(v) for m, v in DEFAULT_SIZES.items()}
    params = {p for v in DEFAULT_SIZES.values() for p in v}
    for key, val in (sizes or {}).items():
        if key in METRICS:
            continue
        if key not in params:
            raise ValueError(
                f"unknown size {key!r}; use a metric name ({', '.join(METRICS)}) or one of "
                f"{', '.join(sorted(params))}"
            )
        for m in out.values():
            if key in m:
                m[key] = int(val)
    for key, val in (sizes or {}).items():
        if key in METRICS:
            for p, v in dict(val).items():
                if p not in out[key]:
                    raise ValueError(f"{key} has no size {p!r}; it has {', '.join(out[key])}")
                out[key][p] = int(v)
    for m, v in out.items():
        for p, n in v.items():
            if n < 1:
                raise ValueError(f"{m}.{p} must be >= 1, got {n}")
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


def _parse_metrics(metrics: Iterable[str] | str | None) -> list[str]:
    if metrics is None:
        return list(DEFAULT_METRICS)
    if isinstance(metrics, str):
        metrics = [m for m in metrics.split(",") if m.strip()]
    names = [m.strip().lower().replace("-", "_") for m in metrics]
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metric(s) {', '.join(bad)}; choose from {', '.join(METRICS)}")
    if not names:
        raise ValueError(f"no metric selected; choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def evaluate(
    run_or_encoder: Any,
    data: Any,
    metrics: Iterable[str] | str | None = None,
    seed: int = 0,
    progress: bool = True,
    sizes: Mapping[str, Any] | None = None,
    n_jobs: int | None = None,
    chunk_size: int = 4096,
    dci_backend: str = "exact",
    code_table: bool | str = "auto",
) -> dict[str, Any]:
    """Compute the metric suite for an encoder on ground-truth ``data``.

    Args:
        run_or_encoder: ``encode(observations) -> n x D`` mean codes (numpy or torch), or an object
            with such an ``.encode`` (a run from ``untwine.train.load_run``).
        data: a :class:`~untwine.data.GroundTruthData` or any object with ``factor_sizes``,
            ``num_factors``, ``sample_factors(n, rng)``, ``observations_from_factors(f, rng)``.
        metrics: subset of :data:`METRICS` (list or comma-separated string); default
            :data:`DEFAULT_METRICS` (all but the slow ``downstream``, ``reduced_downstream`` and
            ``fairness``).
        seed: seeds every random draw (results are reproducible for a fixed seed and sizes).
        progress: show a progress bar (tqdm) on stderr.
        sizes: sample-size overrides, see :func:`resolve_sizes`.
        n_jobs: threads for the per-factor/per-pair fits (``None``: all CPUs).
        chunk_size: observations encoded per call of ``encode``.
        dci_backend: see :func:`untwine.metrics.dci` (``"exact"``: the reference's estimator); also
            the gradient-boosted trees of ``downstream``, ``reduced_downstream`` and ``fairness``.
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
    names = _parse_metrics(metrics)
    sz = resolve_sizes(sizes)
    skipped = {n: why for n in NEEDS_TWO_FACTORS if (why := not_applicable(n, data))
               and (n in names or (n == "dci_disentanglement" and "dci" in names))}
    names = [n for n in names if n not in WHOLE_METRICS or n not in skipped]
    if code_table not in ("auto", True, False):
        raise ValueError(f"code_table must be 'auto', True or False, got {code_table!r}")
    use_table = bool(code_table) and supports_table(data)
    if code_table is True and not use_table:
        raise ValueError(f"code_table=True needs enumerable data; {type(data).__name__} is not (see code_table.supports_table)")
    if code_table == "auto":
        use_table = use_table and planned_draws(names, sz, data.factor_sizes) >= len(data)
    # spawn(4)[:3] == spawn(3): the fourth stream (fairness) leaves the others' draws unchanged
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    out: dict[str, Any] = {}
    per_factor: dict[str, list[float]] = {}
    timings: dict[str, float] = {}
    array_metrics = [m for m in names if m in ARRAY_METRICS]
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
            n_tr = max(sz[m]["num_train"] for m in array_metrics)
            n_te = max([sz[m].get("num_test", 0) for m in array_metrics] + [0])
            f_pool = data.sample_factors(n_tr + n_te, streams[0])
            z_pool = encode_factors(data, encode, f_pool, streams[0], chunk_size)
            ztr, ftr, zte, fte = z_pool[:n_tr], f_pool[:n_tr], z_pool[n_tr:], f_pool[n_tr:]
            timings["encode"] = time.perf_counter() - t
            bar.update(1)
        for name in names:
            bar.set_postfix_str(name)
            t = time.perf_counter()
            s = sz[name]
            if name == "mig":
                r = mig(ztr[: s["num_train"]], ftr[: s["num_train"]])
                out["mig"] = r["mig"]
                per_factor["mig"] = [float(v) for v in r["per_factor"]]
            elif name == "gaussian_tc":
                out["gaussian_tc"] = gaussian_total_correlation(ztr[: s["num_train"]])
            elif name in ("sap", "modularity", "dci"):
                args = (ztr[: s["num_train"]], ftr[: s["num_train"]], zte[: s["num_test"]], fte[: s["num_test"]])
                if name == "sap":
                    out["sap"] = sap(*args, n_jobs=n_jobs)["sap"]
                elif name == "modularity":
                    r = modularity_explicitness(*args, n_jobs=n_jobs)
                    if "modularity" not in skipped:
                        out["modularity"] = r["modularity"]
                    out["explicitness"] = r["explicitness_test"]
                    out["explicitness_train"] = r["explicitness_train"]
                else:
                    r = dci(*args, n_jobs=n_jobs, backend=dci_backend)
                    if "dci_disentanglement" not in skipped:
                        out["dci_disentanglement"] = r["disentanglement"]
                    out["dci_completeness"] = r["completeness"]
                    out["dci_informativeness"] = r["informativeness_test"]
                    out["dci_informativeness_train"] = r["informativeness_train"]
            elif name == "beta_vae":
                r = beta_vae_score(data, encode, streams[1], chunk_size=chunk_size, **s)
                out["beta_vae_score"] = r["eval_accuracy"]
                out["beta_vae_train"] = r["train_accuracy"]
            elif name == "factor_vae":
                r = factor_vae_score(data, encode, streams[2], chunk_size=chunk_size, **s)
                out["factor_vae_score"] = r["eval_accuracy"]
                out["factor_vae_train"] = r["train_accuracy"]
                out["factor_vae_active_dims"] = r["num_active_dims"]
            else:
                n, m = s["num_train"], s.get("num_test", 0)
                pool = (ztr[:n], ftr[:n], zte[:m], fte[:m]) if name in ARRAY_METRICS else None
                why = _extra_scores(name, out, per_factor, pool, data, encode, streams[3], s, n_jobs,
                                    chunk_size, dci_backend)
                if why:
                    skipped[name] = why
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
    if any(n in names for n in ("dci", "downstream", "reduced_downstream", "fairness")):
        out["dci_backend"] = dci_backend
    out["code_table"] = use_table
    return out


def _extra_scores(
    name: str, out: dict[str, Any], per_factor: dict[str, list[float]], pool: tuple | None, data: Any,
    encode: Callable[[Any], Any], rng: Any, s: Mapping[str, int], n_jobs: int | None, chunk_size: int,
    backend: str,
) -> str | None:
    """Score IRS, the unsupervised scores, the downstream tasks or fairness into ``out``; returns
    why the metric was skipped (``None`` if computed)."""
    if name == "fairness":
        r = fairness(data, encode, rng, s["num_train"], s["num_test_points_per_class"], backend=backend,
                     chunk_size=chunk_size, n_jobs=n_jobs)
        out["fairness_mean"], out["fairness_max"] = r["mean_fairness"], r["max_fairness"]
        return None
    assert pool is not None
    ztr, ftr, zte, fte = pool
    if name == "irs":
        r = irs(ztr, ftr)
        out["irs"], out["irs_active_dims"] = r["irs"], r["num_active_dims"]
    elif name == "unsupervised":
        r = unsupervised_scores(ztr)
        out["gaussian_tc"] = r["gaussian_total_correlation"]
        for key in ("gaussian_wasserstein_correlation", "gaussian_wasserstein_correlation_norm", "mutual_info_score"):
            out[key] = r[key]
    elif name == "downstream":
        sizes = train_sizes(s["num_train"])
        for p in PREDICTORS:
            r = downstream_task(ztr, ftr, zte, fte, sizes, p, backend, n_jobs)
            for n, mean, accs in zip(sizes, r["mean_test_accuracy"], r["test_accuracy"]):
                out[f"downstream_{p}_{n}"] = float(mean)
                per_factor[f"downstream_{p}_{n}"] = [float(a) for a in accs]
    elif name == "reduced_downstream":
        if ztr.shape[1] < 2:
            return f"needs >= 2 code dimensions (one is removed); the encoder has {ztr.shape[1]}"
        sizes = train_sizes(s["num_train"])
        r = reduced_downstream_task(ztr, ftr, zte, fte, sizes, backend=backend, n_jobs=n_jobs)
        for i, n in enumerate(sizes):
            out[f"reduced_downstream_{n}"] = float(r["mean_test_accuracy_reduced_factor"][i])
            out[f"reduced_downstream_{n}_others"] = float(r["mean_test_accuracy_other_factors"][i])
            per_factor[f"reduced_downstream_{n}"] = [float(a) for a in r["reduced_factor_test_accuracy"][i]]
    else:  # pragma: no cover - names are checked by _parse_metrics
        raise AssertionError(name)
    return None


def planned_draws(names: Iterable[str], sz: Mapping[str, Mapping[str, int]], factor_sizes: Iterable[int] = ()) -> int:
    """Observations the metrics ``names`` encode at sizes ``sz`` without a code table (fairness is
    counted only with ``factor_sizes``)."""
    names = list(names)
    arr = [m for m in names if m in ARRAY_METRICS]
    n = 0
    if arr:
        n += max(sz[m]["num_train"] for m in arr) + max([sz[m].get("num_test", 0) for m in arr] + [0])
    if "beta_vae" in names:
        s = sz["beta_vae"]
        n += 2 * s["batch_size"] * (s["num_train"] + s["num_eval"])
    if "factor_vae" in names:
        s = sz["factor_vae"]
        n += s["batch_size"] * (s["num_train"] + s["num_eval"]) + s["num_variance_estimate"]
    sizes = [int(x) for x in factor_sizes]
    if "fairness" in names and sizes:
        s = sz["fairness"]
        n += s["num_train"] + (len(sizes) - 1) * s["num_test_points_per_class"] * sum(sizes)
    return n
