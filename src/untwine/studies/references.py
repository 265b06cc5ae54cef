"""Published numbers in a study file: ``[[reference]]`` tables and ``[[claim]]`` scalars.

A reference table is what a publication printed for one dataset and model as a function of one
hyperparameter; the report puts the study's own numbers beside it (``untwine.report.reference``).
A claim is one number such as "best MIG 0.22". See ``docs/studies.md`` for the format::

    [[reference]]
    name = "slides-01"                       # unique id: letters, digits, - and _
    title = "Table 01: beta-VAE on dSprites"
    citation = "Latent Representation Disentanglement: beta and factor VAEs (slides)"
    dataset = "dsprites"
    model = "beta-vae"
    hparam = "beta"
    protocol = "validation, per image; steps and learning rate not stated"
    notes = ["their reconstruction error may not be a sum over pixels"]
    columns = [{ name = "rec", ours = "val_rec", units = "not stated" }, { name = "KL", ours = "val_kl" }]
    rows = [[1, 24.71, 27.29], [2, 32.91, 18.83]]  # hyperparameter value, then one number per column

    [[claim]]
    name = "slides-best-mig-dsprites"
    title = "best MIG on dSprites"
    citation = "..."
    dataset = "dsprites"
    model = "factor-vae"                     # optional: any model when left out
    metric = "mig"
    statistic = "max"                        # max or min over settings of the mean over seeds
    value = 0.22
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..metrics.registry import result_keys

REFERENCE_KEYS = {"name": str, "title": str, "citation": str, "dataset": str, "model": str, "hparam": str,
                  "protocol": str, "notes": (str, list), "columns": list, "rows": list}
COLUMN_KEYS = {"name": str, "ours": str, "units": str}
CLAIM_KEYS = {"name": str, "title": str, "citation": str, "dataset": str, "model": str, "metric": str,
              "statistic": str, "value": float, "notes": (str, list)}
STATISTICS = ("max", "min")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_VAL = re.compile(r"^val_[a-z0-9_]+$")


@dataclass(frozen=True)
class RefColumn:
    """One published column: its label, the results.csv column it compares with, their units."""

    name: str
    ours: str
    units: str = ""


@dataclass(frozen=True)
class Reference:
    """A published table: ``rows`` maps a hyperparameter value to one number per column."""

    name: str
    title: str
    citation: str
    dataset: str
    model: str
    hparam: str
    columns: list[RefColumn]
    rows: dict[float, list[float]]
    protocol: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Claim:
    """A published scalar, e.g. the best MIG: ``statistic`` over settings of ``metric`` (seed means)."""

    name: str
    title: str
    citation: str
    dataset: str
    metric: str
    value: float
    statistic: str = "max"
    model: str = ""
    notes: list[str] = field(default_factory=list)


def parse_references(raw: dict[str, Any], models: dict[str, list[str]], datasets: list[str],
                     where: str, error: type[ValueError]) -> tuple[list[Reference], list[Claim]]:
    """Validate ``raw["reference"]`` and ``raw["claim"]`` (parsed TOML) against the study.

    ``models`` maps each of the study's objective names to its grid's hyperparameters;
    ``error`` is the exception raised (``StudyError``), its message naming the key and the fix.
    """
    refs = [_reference(r, i, models, datasets, where, error) for i, r in enumerate(_array(raw, "reference", where, error))]
    claims = [_claim(c, i, models, datasets, where, error) for i, c in enumerate(_array(raw, "claim", where, error))]
    names = [x.name for x in refs + claims]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise error(f"{where}: reference/claim name {dupes[0]!r} is used twice; give each a unique name")
    return refs, claims


def _array(raw: dict, key: str, where: str, error: type[ValueError]) -> list:
    v = raw.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise error(f"{where}: '{key}' must be an array of tables ([[{key}]])")
    return v


def _check_keys(d: dict, spec: dict, label: str, where: str, error: type[ValueError], required: tuple) -> None:
    unknown = sorted(set(d) - set(spec))
    if unknown:
        raise error(f"{where}: unknown key {unknown[0]!r} in {label}; allowed: {', '.join(sorted(spec))}")
    for k in required:
        if k not in d:
            raise error(f"{where}: {label} needs {k!r}")
    for k, t in spec.items():
        if k not in d:
            continue
        v = d[k]
        ok = isinstance(v, t) if t is not float else isinstance(v, (int, float)) and not isinstance(v, bool)
        if not ok:
            want = {str: "a string", list: "a list", float: "a number"}.get(t, "a string or a list of strings")
            raise error(f"{where}: {label}.{k} must be {want}, got {v!r} ({type(v).__name__})")


def _notes(v: Any, label: str, where: str, error: type[ValueError]) -> list[str]:
    notes = [v] if isinstance(v, str) else list(v or [])
    if not all(isinstance(n, str) for n in notes):
        raise error(f"{where}: {label}.notes must be a string or a list of strings, got {v!r}")
    return notes


def _name(d: dict, label: str, where: str, error: type[ValueError]) -> str:
    n = d["name"]
    if not _NAME.match(n):
        raise error(f"{where}: {label}.name {n!r} may only hold letters, digits, '-' and '_' (it names files)")
    return n


def _model(d: dict, label: str, models: dict[str, list[str]], where: str, error: type[ValueError]) -> str:
    from untwine import objectives

    try:
        name = objectives.get(d["model"]).name
    except ValueError as e:
        raise error(f"{where}: {label}.model: {e}") from None
    if name not in models:
        raise error(f"{where}: {label}.model {d['model']!r} is not one of the study's [[models]] "
                    f"({', '.join(models)}); add it or remove the {label.split('[')[0]}")
    return name


def _dataset(d: dict, label: str, datasets: list[str], where: str, error: type[ValueError]) -> str:
    if d["dataset"] not in datasets:
        raise error(f"{where}: {label}.dataset {d['dataset']!r} is not in study.datasets "
                    f"({', '.join(datasets)}); add it there or remove the {label.split('[')[0]}")
    return d["dataset"]


def _our_column(v: str, label: str, where: str, error: type[ValueError]) -> str:
    metrics = result_keys()  # the metric columns a reference may name
    if not (_VAL.match(v) or v in metrics):
        raise error(f"{where}: {label} {v!r} is not a results.csv column; use val_<term> (val_rec, val_kl, "
                    f"val_tc, val_d_real, val_d_perm, ...) or a metric ({', '.join(metrics)})")
    return v


def _reference(r: dict, i: int, models: dict[str, list[str]], datasets: list[str], where: str,
               error: type[ValueError]) -> Reference:
    label = f"reference[{i}]"
    _check_keys(r, REFERENCE_KEYS, label, where, error,
                ("name", "citation", "dataset", "model", "hparam", "columns", "rows"))
    label = f"reference[{i}] ({r['name']})"
    name = _name(r, label, where, error)
    dataset = _dataset(r, label, datasets, where, error)
    model = _model(r, label, models, where, error)
    if r["hparam"] not in models[model]:
        raise error(f"{where}: {label}.hparam {r['hparam']!r} is not swept for {model} in this study "
                    f"(its grid sets {', '.join(models[model]) or 'nothing'}); use one of those")
    if not r["columns"]:
        raise error(f"{where}: {label}.columns is empty; give at least one {{ name = ..., ours = ... }}")
    cols = []
    for j, c in enumerate(r["columns"]):
        cl = f"{label}.columns[{j}]"
        if not isinstance(c, dict):
            raise error(f"{where}: {cl} must be a table like {{ name = \"rec\", ours = \"val_rec\" }}, got {c!r}")
        _check_keys(c, COLUMN_KEYS, cl, where, error, ("name", "ours"))
        cols.append(RefColumn(c["name"], _our_column(c["ours"], f"{cl}.ours", where, error), c.get("units", "")))
    if len({c.name for c in cols}) != len(cols):
        raise error(f"{where}: {label}.columns has two columns with the same name")
    rows: dict[float, list[float]] = {}
    if not r["rows"]:
        raise error(f"{where}: {label}.rows is empty; give [{r['hparam']}, value per column] rows")
    for j, row in enumerate(r["rows"]):
        rl = f"{label}.rows[{j}]"
        if not isinstance(row, list) or len(row) != 1 + len(cols):
            raise error(f"{where}: {rl} must be [{r['hparam']}, then {len(cols)} number(s): "
                        f"{', '.join(c.name for c in cols)}], got {row!r}")
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in row):
            raise error(f"{where}: {rl} must hold numbers only, got {row!r}")
        key = float(row[0])
        if key in rows:
            raise error(f"{where}: {rl}: {r['hparam']} = {row[0]} appears twice")
        rows[key] = [float(x) for x in row[1:]]
    return Reference(name, r.get("title", name), r["citation"], dataset, model, r["hparam"], cols, rows,
                     r.get("protocol", ""), _notes(r.get("notes"), label, where, error))


def _claim(c: dict, i: int, models: dict[str, list[str]], datasets: list[str], where: str,
           error: type[ValueError]) -> Claim:
    label = f"claim[{i}]"
    _check_keys(c, CLAIM_KEYS, label, where, error, ("name", "citation", "dataset", "metric", "value"))
    label = f"claim[{i}] ({c['name']})"
    name = _name(c, label, where, error)
    dataset = _dataset(c, label, datasets, where, error)
    model = _model(c, label, models, where, error) if "model" in c else ""
    stat = c.get("statistic", "max")
    if stat not in STATISTICS:
        raise error(f"{where}: {label}.statistic must be \"max\" or \"min\", got {stat!r}")
    return Claim(name, c.get("title", name), c["citation"], dataset,
                 _our_column(c["metric"], f"{label}.metric", where, error), float(c["value"]), stat, model,
                 _notes(c.get("notes"), label, where, error))


def references_to_dict(refs: list[Reference], claims: list[Claim]) -> dict[str, Any]:
    """TOML-shaped plain data (``{"reference": [...], "claim": [...]}``) that parses back."""
    out: dict[str, Any] = {}
    if refs:
        out["reference"] = [
            {"name": r.name, "title": r.title, "citation": r.citation, "dataset": r.dataset, "model": r.model,
             "hparam": r.hparam, "protocol": r.protocol, "notes": r.notes,
             "columns": [{"name": c.name, "ours": c.ours, "units": c.units} for c in r.columns],
             "rows": [[k, *v] for k, v in r.rows.items()]}
            for r in refs]
    if claims:
        out["claim"] = [
            {"name": c.name, "title": c.title, "citation": c.citation, "dataset": c.dataset, "metric": c.metric,
             "value": c.value, "statistic": c.statistic, "notes": c.notes, **({"model": c.model} if c.model else {})}
            for c in claims]
    return out
