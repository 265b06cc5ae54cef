"""Collect a sweep's run folders into ``results.csv`` (deterministic) and ``timings.csv``.

``results.csv`` has one row per run in the study's run order and only quantities that the runs
determine (settings, status, final validation losses, metrics): no timings, paths or dates, and
floats written with 6 significant digits, so two backends' files can be compared byte for byte.
Columns: ``run, dataset, model, <hyperparameters>, seed, status, error, val_<term>..., <metric>...``.
``val_tc`` is the Gaussian TC of the validation codes (never negative), ``val_tc_batch`` the
objective's own or minibatch TC estimate (FactorVAE: its discriminator's), see
:func:`validation_terms`. ``val_rec_step0`` is the untrained model's validation reconstruction (its
step-0 evaluation), so a results folder committed without its run folders keeps the report's
learning check.
``status`` is ``finished`` (:func:`~untwine.studies.execute.finished`: trained to the study's
``steps`` and evaluated), ``failed``, ``incomplete`` (started: a log, a checkpoint or a summary,
but not finished: still training, or trained to fewer steps than the study now asks), ``missing``
(no run folder files) or ``damaged`` (a file of the run folder is damaged: ``error`` names it and
the fix).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Iterable

from ..naming import format_value
from ..train import files
from ..train.files import RunFolderError
from .execute import EVAL_TIME, FAILED, finished
from .study import Study

# Preferred column orders; anything else follows alphabetically.
VAL_ORDER = ["loss", "rec", "kl", "elbo", "tc", "tc_batch", "d_real", "d_perm", "d_loss", "rec_step0"]
METRIC_ORDER = [
    "mig", "beta_vae_score", "factor_vae_score", "dci_disentanglement", "dci_completeness",
    "dci_informativeness", "sap", "modularity", "explicitness", "gaussian_tc",
]
SKIP_METRIC_KEYS = {"timings_s", "sizes", "seed", "metrics", "encoder", "dci_backend", "code_table", "skipped"}
FIXED = ["run", "dataset", "model"]


def _read(reader: Any, path: Path, damage: list[str]) -> Any:
    """``reader(path)`` (None if missing); damage is appended to ``damage`` (the row's error)."""
    try:
        return reader(path)
    except FileNotFoundError:
        return None
    except RunFolderError as e:
        damage.append(str(e))
        return None


def _scalars(d: Any, prefix: str = "") -> dict[str, float]:
    """Numeric scalar entries of a (nested) dict, flattened with ``_``; lists are dropped."""
    out: dict[str, float] = {}
    if not isinstance(d, dict):
        return out
    for k, v in d.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[prefix + str(k)] = float(v)
        elif isinstance(v, dict):
            out.update(_scalars(v, prefix + str(k) + "_"))
    return out


def metric_values(metrics_json: Any) -> dict[str, float]:
    """The metric numbers of a ``metrics.json`` (timings and settings left out)."""
    if not isinstance(metrics_json, dict):
        return {}
    kept = {k: v for k, v in metrics_json.items() if k not in SKIP_METRIC_KEYS}
    # an undefined metric is written as null (JSON has no NaN) and shown as nan
    return _scalars({k: float("nan") if v is None else v for k, v in kept.items()})


def validation_terms(val: Any) -> dict[str, float]:
    """A summary's final validation terms. ``tc`` is the Gaussian TC of all validation codes and
    ``tc_batch`` the objective's own / minibatch estimate (see ``docs/objectives.md``); runs written
    before ``tc_batch`` existed logged only the latter, as ``tc``: it is reported as ``tc_batch``."""
    terms = _scalars(val)
    if "tc" in terms and "tc_batch" not in terms:
        terms["tc_batch"] = terms.pop("tc")
    return terms


def run_row(study: Study, root: Path, name: str, kw: dict[str, Any]) -> dict[str, Any]:
    """One results row (values unformatted: floats, ints, strings)."""
    d = root / name
    row: dict[str, Any] = {"run": name, "dataset": kw["dataset"], "model": kw["model"]}
    for hp in study.hparam_names():
        row[hp] = kw["hparams"].get(hp)
    row["seed"] = kw["seed"]
    damage: list[str] = []
    summary = _read(files.read_summary, d / "summary.json", damage) or {}
    metrics = _read(files.read_metrics_json, d / "metrics.json", damage)
    failed = _read(files.read_failed_json, d / FAILED, damage)
    if damage:
        row["status"] = "damaged"
        row["error"] = damage[0].splitlines()[0]
    elif failed is not None:
        row["status"] = "failed"
        row["error"] = f"{failed.get('stage', '')}: {failed.get('error', '')}".splitlines()[0]
    elif finished(summary, metrics is not None, kw["steps"]):
        row["status"] = "finished"
        row["error"] = ""
    else:
        started = summary or (d / "metrics.jsonl").is_file() or (d / "checkpoint").is_dir()
        row["status"] = "incomplete" if started else "missing"
        row["error"] = ""
    for k, v in validation_terms(summary.get("val")).items():
        row[f"val_{k}"] = v
    if (rec0 := _scalars(summary.get("initial_val")).get("rec")) is not None:
        row["val_rec_step0"] = rec0  # the untrained model's (step 0): the report's learning check
    row.update(metric_values(metrics))
    return row


def collect(study: Study, root: str | os.PathLike, compute_udr: bool = True) -> list[dict[str, Any]]:
    """One row per run of ``study`` (study order), read from the run folders under ``root``; the
    finished seeds of settings with >= 2 of them get ``udr_lasso``/``udr_spearman``
    (:func:`untwine.studies.udr.add_udr`: computed once per setting into ``<setting>/udr.json``,
    or with ``compute_udr=False`` only read from there)."""
    from .udr import add_udr

    r = Path(root)
    rows = [run_row(study, r, name, kw) for name, kw in study.expand()]
    add_udr(study, r, rows, compute=compute_udr)
    return rows


def _ordered(keys: Iterable[str], order: list[str]) -> list[str]:
    keys = set(keys)
    return [k for k in order if k in keys] + sorted(keys - set(order))


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Column order: fixed settings, hyperparameters, seed/status/error, val_*, metrics."""
    if not rows:
        return FIXED + ["seed", "status", "error"]
    first = list(rows[0])
    hps = first[len(FIXED): first.index("seed")]
    all_keys = {k for row in rows for k in row}
    val = [f"val_{k}" for k in _ordered((k[4:] for k in all_keys if k.startswith("val_")), VAL_ORDER)]
    fixed = set(FIXED) | set(hps) | {"seed", "status", "error"} | set(val)
    metrics = _ordered((k for k in all_keys if k not in fixed), METRIC_ORDER)
    return FIXED + hps + ["seed", "status", "error"] + val + metrics


def format_cell(v: Any, column: str = "") -> str:
    """Deterministic text for a value: floats with 6 significant digits, ``nan``, empty for None."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if column and not column.startswith("val_") and column not in METRIC_ORDER:
            return format_value(v)  # hyperparameters: as in folder names
        s = f"{v:.6g}"
        return "0" if s == "-0" else s
    return str(v)


def to_csv(rows: list[dict[str, Any]]) -> str:
    cols = columns(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    hp_cols = set(cols[len(FIXED): cols.index("seed")])
    for row in rows:
        w.writerow([format_cell(row.get(c), c if c in hp_cols else "") for c in cols])
    return buf.getvalue()


def write_results(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write ``results.csv`` atomically; returns its path. A full disk raises
    :class:`~untwine.train.files.DiskFullError` and leaves the previous table intact."""
    return files.write_text(path, to_csv(rows), kept="the previous results.csv (if any) is intact; "
                            "`untwine sweep` writes it again from the run folders")


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read ``results.csv`` back: numbers as float (seed as int), empty cells as None. Damage
    raises :class:`~untwine.train.files.RunFolderError` naming the file and line."""
    p = Path(path)
    fix = (f"restore {p} from where it came from (a copy, git), or delete it and run `untwine sweep` with the "
           f"same study and --out {p.parent}, which writes it again from the run folders")
    text = files.read_text(p, fix)
    if not text.strip():
        raise files.damaged(p, "the file is empty", fix)
    if not text.endswith("\n"):  # to_csv ends every line with one: the file was cut short
        last = text.count("\n") + 1
        raise files.damaged(p, f"it is cut short (its last line, {last}, has no newline)", fix)
    rows = []
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        if not reader.fieldnames or reader.fieldnames[:3] != FIXED or "seed" not in reader.fieldnames:
            raise files.damaged(p, "its header is not run,dataset,model,...,seed,...", fix)
        for rec in reader:
            line = reader.line_num
            if None in rec or None in rec.values():
                raise files.damaged(p, f"line {line} does not have the header's {len(reader.fieldnames)} columns", fix)
            row: dict[str, Any] = {}
            for k, v in rec.items():
                try:
                    if k in ("run", "dataset", "model", "status", "error"):
                        row[k] = v
                    elif k == "seed":
                        row[k] = int(v)
                    else:
                        row[k] = float(v) if v != "" else None
                except ValueError:
                    raise files.damaged(p, f"line {line}, column {k}: {v!r} is not a number", fix) from None
            rows.append(row)
    except csv.Error as e:
        raise files.damaged(p, f"not valid CSV ({e})", fix) from None
    return rows


def collect_for_report(study: Study, root: str | os.PathLike) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows as :func:`collect`, except that a run whose folder is not under ``root`` takes its row
    from ``root/results.csv`` when that file has it (a results folder committed without its run
    folders). Returns the rows and the names of the runs whose rows came from results.csv.
    results.csv is read only when a run folder is missing; damage raises
    :class:`~untwine.train.files.RunFolderError` (see :func:`read_results`)."""
    r = Path(root)
    rows = collect(study, r)
    gone = {row["run"] for row in rows if not (r / row["run"]).is_dir()}
    if not gone or not (r / "results.csv").is_file():
        return rows, []
    recorded = {row["run"]: row for row in read_results(r / "results.csv")}
    used = []
    for i, row in enumerate(rows):
        rec = recorded.get(row["run"]) if row["run"] in gone else None
        if rec is not None:
            settings = list(row)[: list(row).index("seed") + 1]  # run..seed as the study gives them
            rows[i] = {**{k: row[k] for k in settings}, **{k: v for k, v in rec.items() if k not in settings}}
            used.append(row["run"])
    return rows, used


def write_timings(study: Study, root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``timings.csv``: run, status, train and evaluation wall time (s), images/s, folder."""
    r = Path(root)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run", "status", "steps", "train_wall_s", "images_per_s", "eval_wall_s", "dir"])
    for name, _ in study.expand():
        d = r / name
        s = _read(files.read_summary, d / "summary.json", []) or {}
        e = _read(lambda q: files.read_json(q, f"delete {q}"), d / EVAL_TIME, []) or {}
        status = "failed" if (d / FAILED).is_file() else s.get("status", "missing")
        w.writerow([
            name, status, s.get("steps", ""),
            _num(s.get("wall_time_s")), _num(s.get("images_per_s")), _num(e.get("wall_time_s")),
            str(d.resolve()),
        ])
    return files.write_text(path, buf.getvalue())


def _num(v: Any) -> str:
    return f"{float(v):.3f}" if isinstance(v, (int, float)) else ""
