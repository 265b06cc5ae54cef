"""Study files: one TOML file -> a deterministic list of runs (:class:`~untwine.train.RunConfig`).

A study crosses datasets x models (each with a hyperparameter grid) x seeds. Every run gets a
folder named by its settings, e.g. ``dsprites/beta-vae/beta=4/seed=0``. The file format is
described in ``docs/studies.md``; :func:`load_study` validates it and names the offending key.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import MissingFileError, check_choice
from ..metrics.udr import SCORE_KEYS
from ..naming import format_value
from ..train.files import read_study_json
from ._schema import StudyError, as_table, check_keys, check_types, list_of, type_name, type_ok
from .references import Claim, Reference, parse_references

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Keys each section accepts (the [train] section accepts RunConfig's fields, checked against it).
STUDY_KEYS = {"name": str, "datasets": list, "seeds": list, "description": str}
EVAL_KEYS = {"metrics": list, "sizes": dict, "seed": int, "dci_backend": str, "udr_reference": list}
MODEL_KEYS = {"name": str, "grid": dict, "train": dict}
REPORT_KEYS = {
    "title": str,  # page title (default: "Study NAME")
    "cluster_factor": str,  # factor that colours the latent-cluster figure (default: report.figures.pick_factor's)
    "traversal_range": float,  # latent traversal goes from -r to r (default: report.figures.TRAVERSAL_SPAN)
    "baseline": bool,  # evaluate an untrained encoder per dataset for comparison
    "figures": bool,  # draw figures
    "pretrained": list,  # shipped pretrained models shown beside the study's runs (untwine pretrained list)
    "keep": str,  # "udr_lasso"/"udr_spearman": name the seed this label-free score keeps per setting
}
# The [report] defaults that are plain values (Study.report_option reads a key with its default).
REPORT_DEFAULTS: dict[str, Any] = {"baseline": True, "figures": True, "pretrained": ()}  # immutable: shared
# A study's runs default to this many torch threads each (RunConfig's default is torch's own):
# a sweep runs several at once, one per core (studies.sweep.default_jobs).
STUDY_THREADS = 1
KEEP_SCORES = SCORE_KEYS  # the label-free scores a setting can keep a seed by
# RunConfig fields a study sets itself (per run) and that [train] may therefore not set.
RUN_OWNED = ("dataset", "model", "hparams", "seed", "out")


@dataclass(frozen=True)
class ModelGrid:
    """One ``[[models]]`` entry: an objective name, its grid (``name -> values``), train overrides."""

    name: str
    grid: dict[str, list[float]] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> list[dict[str, float]]:
        """Every grid point as ``{hparam: value}``, keys sorted, values in file order."""
        keys = sorted(self.grid)
        return [dict(zip(keys, vals)) for vals in itertools.product(*(self.grid[k] for k in keys))]


@dataclass(frozen=True)
class Study:
    """A validated study file. ``runs()`` expands it; ``run_names()`` gives the folder names."""

    name: str
    datasets: list[str]
    seeds: list[int]
    models: list[ModelGrid]
    train: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    path: Path | None = None
    text: str = ""  # the TOML source (copied into the sweep folder)
    references: list[Reference] = field(default_factory=list)  # [[reference]]: published tables
    claims: list[Claim] = field(default_factory=list)  # [[claim]]: published scalars (best MIG...)

    def report_option(self, key: str) -> Any:
        """``[report] key`` as set, else its default in :data:`REPORT_DEFAULTS` (``None`` for a key
        whose default the report computes: title, cluster_factor, traversal_range, keep)."""
        return self.report.get(key, REPORT_DEFAULTS.get(key))

    @property
    def metrics(self) -> list[str] | None:
        """Metric names to compute (``None``: the full suite)."""
        return self.eval.get("metrics")

    @property
    def sizes(self) -> dict[str, Any]:
        """Metric sample-size overrides handed to :func:`untwine.metrics.evaluate`."""
        return dict(self.eval.get("sizes", {}))

    @property
    def eval_seed(self) -> int:
        return int(self.eval.get("seed", 0))

    @property
    def udr_reference(self) -> list[str]:
        """Shipped pretrained models added to every setting's UDR pool (``[eval] udr_reference``)."""
        return list(self.eval.get("udr_reference", []))

    @property
    def dci_backend(self) -> str:
        from untwine.metrics.registry import DEFAULT_BACKEND

        return str(self.eval.get("dci_backend", DEFAULT_BACKEND))

    def hparam_names(self) -> list[str]:
        """Every hyperparameter any model's grid sets, sorted (the results' columns)."""
        return sorted({k for m in self.models for k in m.grid})

    def expand(self) -> list[tuple[str, dict[str, Any]]]:
        """``(folder name, RunConfig keyword arguments)`` per run, in deterministic order:
        datasets (file order) x models (file order) x grid points x seeds."""
        out = []
        for ds in self.datasets:
            for m in self.models:
                for hp in m.settings():
                    for seed in self.seeds:
                        # one torch thread per run unless the study says otherwise: the thread
                        # count is part of what a run computes, so every backend gets the same one
                        kw = {"threads": STUDY_THREADS, **self.train, **m.train}
                        kw.update(dataset=ds, model=m.name, hparams=dict(hp), seed=int(seed))
                        out.append((run_name(ds, m.name, hp, seed), kw))
        return out

    def run_names(self) -> list[str]:
        return [name for name, _ in self.expand()]

    def runs(self, out: str | os.PathLike | None = None) -> list[Any]:
        """One validated ``RunConfig`` per run; ``config.out`` is ``out / <folder name>``
        (just the folder name when ``out`` is None)."""
        from untwine.train import RunConfig

        configs = []
        for name, kw in self.expand():
            kw = dict(kw, out=str(Path(out) / name) if out is not None else name)
            cfg = RunConfig(**kw)
            try:
                cfg.validate()
            except ValueError as e:
                raise StudyError(f"{self._where()}: run {name}: {e}") from None
            configs.append(cfg)
        return configs

    def _where(self) -> str:
        return f"study {self.path}" if self.path else f"study {self.name!r}"


def run_name(dataset: str, model: str, hparams: Mapping[str, float], seed: int) -> str:
    """Folder of one run relative to the sweep folder, e.g. ``dsprites/beta-vae/beta=4/seed=0``
    (several hyperparameters: ``beta=4,gamma=10``; none: ``dsprites/vae/seed=0``)."""
    parts = [dataset, model]
    if hparams:
        parts.append(",".join(f"{k}={format_value(hparams[k])}" for k in sorted(hparams)))
    parts.append(f"seed={int(seed)}")
    return "/".join(parts)


# ---------------------------------------------------------------------------------- loading
def load_study(
    path: str | os.PathLike, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> Study:
    """Read and validate a study file.

    Args:
        path: the ``.toml`` file.
        overrides: ``{section: {key: value}}`` applied on top of the file before validation
            (``{"train": {"steps": 20}}``; ``"study"``, ``"train"``, ``"eval"``, ``"report"``).

    Raises:
        FileNotFoundError: no such file.
        StudyError (a ValueError): bad TOML, unknown key, wrong type, empty grid, unknown model,
            or a hyperparameter the model does not take. The message names the key.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"study file {p} not found")
    text = p.read_text(encoding="utf-8")
    return parse_study(text, path=p, overrides=overrides)


def parse_study(
    text: str,
    path: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Study:
    """Validate study TOML ``text`` (see :func:`load_study`)."""
    where = f"study {path}" if path else "study"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{where}: invalid TOML: {e}") from None
    raw = copy.deepcopy(raw)
    for section, values in (overrides or {}).items():
        if section not in ("study", "train", "eval", "report"):
            raise StudyError(f"{where}: cannot override section [{section}]")
        raw.setdefault(section, {}).update(values)

    check_keys(raw, {"study", "train", "eval", "models", "report", "reference", "claim"}, where, "top level")
    if "study" not in raw:
        raise StudyError(f"{where}: missing [study] section (name, datasets, seeds)")
    st = as_table(raw["study"], where, "[study]")
    check_keys(st, set(STUDY_KEYS), where, "[study]")
    check_types(st, STUDY_KEYS, where, "study")
    for key in ("name", "datasets"):
        if key not in st:
            raise StudyError(f"{where}: [study] needs {key!r}")
    name = st["name"]
    if not name or "/" in name:
        raise StudyError(f"{where}: study.name must be a non-empty name without '/', got {name!r}")
    datasets = list_of(st["datasets"], str, where, "study.datasets")
    _check_datasets(datasets, where)
    seeds = list_of(st.get("seeds", [0]), int, where, "study.seeds")
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"{where}: study.seeds has duplicates: {seeds}")

    train = _train_section(as_table(raw.get("train", {}), where, "[train]"), where, "train")
    ev = _eval_section(as_table(raw.get("eval", {}), where, "[eval]"), where)
    rep = as_table(raw.get("report", {}), where, "[report]")
    check_keys(rep, set(REPORT_KEYS), where, "[report]")
    check_types(rep, REPORT_KEYS, where, "report")
    if "keep" in rep:
        check_choice(rep["keep"], KEEP_SCORES, "report.keep", StudyError, where)

    models_raw = raw.get("models")
    if not models_raw:
        raise StudyError(f"{where}: no [[models]]; add at least one, e.g. [[models]] name = \"beta-vae\"")
    if not isinstance(models_raw, list):
        raise StudyError(f"{where}: 'models' must be an array of tables ([[models]])")
    models = [_model(m, i, where) for i, m in enumerate(models_raw)]
    seen: set[tuple[str, tuple]] = set()
    for m in models:
        key = (m.name, tuple(sorted((k, tuple(v)) for k, v in m.grid.items())))
        if key in seen:
            raise StudyError(f"{where}: model {m.name!r} is listed twice with the same grid")
        seen.add(key)
    names = [n for n, _ in Study(name, datasets, seeds, models).expand()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise StudyError(f"{where}: several runs would share the folder {dupes[0]}; merge their grids")
    refs, claims = study_references(raw, models, datasets, where)

    return Study(
        name=name,
        datasets=datasets,
        seeds=seeds,
        models=models,
        train=train,
        eval=ev,
        report=rep,
        description=st.get("description", ""),
        path=path,
        text=text,
        references=refs,
        claims=claims,
    )


def study_references(raw: Mapping[str, Any], models: list[ModelGrid], datasets: list[str],
                     where: str = "study") -> tuple[list[Reference], list[Claim]]:
    """The ``[[reference]]`` tables and ``[[claim]]`` scalars of parsed study TOML ``raw``,
    validated against the study's models, their grids and datasets (``StudyError`` otherwise)."""
    grids: dict[str, list[str]] = {}
    for m in models:
        grids.setdefault(m.name, []).extend(k for k in m.grid if k not in grids.get(m.name, []))
    return parse_references(dict(raw), grids, datasets, where, StudyError)


def _model(m: Any, i: int, where: str) -> ModelGrid:
    label = f"models[{i}]"
    m = as_table(m, where, label)
    check_keys(m, set(MODEL_KEYS), where, label)
    check_types(m, MODEL_KEYS, where, label)
    if "name" not in m:
        raise StudyError(f"{where}: {label} needs a name (one of {', '.join(_objective_names())})")
    from untwine import objectives

    try:
        cls = objectives.get(m["name"])
    except ValueError as e:
        raise StudyError(f"{where}: {label}: {e}") from None
    name = cls.name
    index, label = label, f"{label} ({name})"
    grid: dict[str, list[float]] = {}
    for hp, values in m.get("grid", {}).items():
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise StudyError(f"{where}: {label}: grid.{hp} is empty; give at least one value")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise StudyError(
                    f"{where}: {label}: grid.{hp} values must be numbers, got {v!r} ({type(v).__name__})"
                )
        if len(set(values)) != len(values):
            raise StudyError(f"{where}: {label}: grid.{hp} has duplicate values: {values}")
        grid[hp] = [float(v) for v in values]
    train = _train_section(m.get("train", {}), where, f"{label}.train")
    model = ModelGrid(name=name, grid=grid, train=train)
    for point in model.settings():  # names and values: the objective's one check
        try:
            cls.check_hparams(point)
        except ValueError as e:
            raise StudyError(f"{where}: {index}: {e}") from None
    return model


def _eval_section(ev: dict, where: str) -> dict:
    """``metrics`` (names from the metric registry, or result keys such as ``beta_vae_score``:
    :func:`untwine.metrics.registry.parse_names`), ``sizes`` (see
    :func:`untwine.metrics.resolve_sizes`), ``seed``, ``dci_backend``."""
    check_keys(ev, set(EVAL_KEYS), where, "[eval]")
    check_types(ev, EVAL_KEYS, where, "eval")
    from untwine import metrics as M
    from untwine.metrics import registry

    out: dict[str, Any] = {}
    if "metrics" in ev:
        names = list_of(ev["metrics"], str, where, "eval.metrics", allow_empty=True)
        if not names:
            raise StudyError(f"{where}: eval.metrics is empty; omit it for the full suite")
        try:
            out["metrics"] = registry.parse_names(names)
        except ValueError as e:
            raise StudyError(f"{where}: eval.metrics: {e}") from None
    if "sizes" in ev:
        sizes = ev["sizes"]
        for k, v in sizes.items():
            vals = v.values() if isinstance(v, dict) else [v]
            if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in vals):
                raise StudyError(f"{where}: eval.sizes.{k} must be a positive integer (or a table of them), got {v!r}")
        try:
            M.resolve_sizes(sizes)
        except (ValueError, TypeError) as e:
            raise StudyError(f"{where}: eval.sizes: {e}") from None
        out["sizes"] = sizes
    if "seed" in ev:
        out["seed"] = ev["seed"]
    if "dci_backend" in ev:
        check_choice(ev["dci_backend"], registry.BACKENDS, "eval.dci_backend", StudyError, where)
        out["dci_backend"] = ev["dci_backend"]
    if "udr_reference" in ev:
        from untwine import pretrained

        refs = list_of(ev["udr_reference"], str, where, "eval.udr_reference")
        for n in refs:
            try:
                pretrained.path(n)  # for a renamed model, the error says what it became and why
            except KeyError as e:
                raise StudyError(f"{where}: eval.udr_reference: {e}") from None
        out["udr_reference"] = refs
    return out


def _train_section(train: dict, where: str, label: str) -> dict:
    """Check ``[train]`` keys and value types against ``RunConfig``'s fields."""
    train = as_table(train, where, f"[{label}]")
    hints = _run_config_hints()
    for key, value in train.items():
        if key in RUN_OWNED:
            raise StudyError(
                f"{where}: {label}.{key} is set by the study itself "
                "(use study.datasets, [[models]], grid and study.seeds)"
            )
        if key not in hints:
            raise StudyError(
                f"{where}: unknown key {label}.{key}; [train] takes RunConfig fields: "
                f"{', '.join(k for k in hints if k not in RUN_OWNED)}"
            )
        if not type_ok(value, hints[key]):
            raise StudyError(
                f"{where}: {label}.{key} must be {type_name(hints[key])}, "
                f"got {value!r} ({type(value).__name__})"
            )
    return dict(train)


# ---------------------------------------------------------------------------------- helpers
def _run_config_hints() -> dict[str, Any]:
    from untwine.train import RunConfig

    hints = typing.get_type_hints(RunConfig)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(RunConfig)}


def _objective_names() -> list[str]:
    from untwine import objectives

    return list(objectives.names())


def _check_datasets(datasets: list[str], where: str) -> None:
    from untwine import data

    for ds in datasets:
        try:
            data.get(ds)  # accepts aliases (3dshapes -> shapes3d)
        except KeyError as e:
            raise StudyError(f"{where}: study.datasets: {e}") from None
    if len(set(datasets)) != len(datasets):
        raise StudyError(f"{where}: study.datasets has duplicates: {datasets}")


def study_from_dict(d: Mapping[str, Any], text: str = "", path: Path | None = None) -> Study:
    """Rebuild a :class:`Study` from its resolved form (``<sweep>/study.json``, written by
    :func:`untwine.studies.sweep.sweep`)."""
    return Study(
        name=d["name"],
        datasets=list(d["datasets"]),
        seeds=[int(s) for s in d["seeds"]],
        models=[ModelGrid(m["name"], {k: list(v) for k, v in m.get("grid", {}).items()}, dict(m.get("train", {})))
                for m in d["models"]],
        train=dict(d.get("train", {})),
        eval=dict(d.get("eval", {})),
        report=dict(d.get("report", {})),
        description=d.get("description", ""),
        path=path,
        text=text,
    )


def with_references(study: Study, text: str, path: Path | None = None) -> Study:
    """``study`` with the ``[[reference]]`` / ``[[claim]]`` entries of study TOML ``text``
    (validated against ``study``); the rest of ``text`` is ignored."""
    where = f"study {path}" if path else "study"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{where}: invalid TOML: {e}") from None
    refs, claims = study_references(raw, study.models, study.datasets, where)
    return dataclasses.replace(study, references=refs, claims=claims)


def load_sweep_study(root: str | os.PathLike, references: str | os.PathLike | None = None) -> Study:
    """The study a sweep folder was run with (``study.json``; ``study.toml`` as a fallback).

    Published references come from the folder's ``study.toml``, or from the study file
    ``references`` if given (e.g. a newer version of the study file that added them)."""
    r = Path(root)
    js, toml = r / "study.json", r / "study.toml"
    text = toml.read_text(encoding="utf-8") if toml.is_file() else ""
    if js.is_file():
        study = study_from_dict(read_study_json(js), text, toml)
        study = with_references(study, text, toml) if text else study
    elif text:
        study = parse_study(text, path=toml)
    else:
        study = None
    if study is not None and references is not None:
        p = Path(references)
        if not p.is_file():
            raise MissingFileError(f"study file {p} not found (--references)")
        study = with_references(study, p.read_text(encoding="utf-8"), p)
    if study is not None:
        return study
    raise MissingFileError(
        f"{r} is not a sweep folder (no study.json); run `untwine sweep STUDY.toml --out {r}` first"
    )
