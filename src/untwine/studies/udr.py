"""UDR of a sweep's settings (same dataset, model and hyperparameters; several seeds).

A setting's seeds live in one folder, ``<dataset>/<model>/<hparams>/seed=N``; its UDR
(:func:`untwine.metrics.udr_runs`: both the lasso and the Spearman variant, 1,000 observations
drawn with the study's evaluation seed) is written beside them, to ``<setting>/udr.json``, once the
setting has >= 2 finished seeds, and reused while those seeds' checkpoints are unchanged (a
fingerprint: the SHA-256 of each checkpoint's model file, from its manifest). A study's
``[eval] udr_reference`` (shipped pretrained models) joins every setting's pool as extra members,
named ``pretrained:NAME`` in ``udr.json``: a seed's UDR is then also its agreement with a model
known to disentangle, which lets two seeds (or one) be ranked; the references get no row.
:func:`add_udr` is called by :func:`untwine.studies.results.collect`, which both ``untwine sweep``
(after its runs) and ``untwine report`` go through: a sweep writes UDR into ``results.csv``, and a
report of a folder without ``udr.json`` files computes them. ``untwine evaluate RUN RUN ... --metrics udr``
writes the same file format (:func:`write_udr`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

from ..metrics.udr import CORRELATIONS, NUM_DATA_POINTS, SCORE_KEYS
from ..train import checkpoint, files
from ..train.files import RunFolderError
from ..train.log import write_json

FILE = "udr.json"


def fingerprint(run_dir: str | os.PathLike) -> str | None:
    """SHA-256 of the model file of a run's newest checkpoint, as its manifest records it (read,
    not recomputed: cheap for a study of many runs; loading the run verifies it); computed for a
    checkpoint without a manifest (a shipped model); ``None`` without a checkpoint."""
    manifest = checkpoint.newest_manifest(run_dir) or {}
    try:
        return str(manifest["files"][checkpoint.MODEL_FILE]["sha256"])
    except (KeyError, TypeError):  # no manifest, or one without the model's hash
        pass
    model = Path(run_dir) / checkpoint.LATEST / checkpoint.MODEL_FILE  # a shipped model: no manifest
    if model.is_file():
        import hashlib

        return hashlib.sha256(model.read_bytes()).hexdigest()
    return None


def _rel(p: Path, base: Path) -> str:
    try:
        return p.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(p.resolve())


def write_udr(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike, seed: int = 0,
              num_data_points: int = NUM_DATA_POINTS, labels: Sequence[str | None] | None = None) -> dict[str, Any]:
    """Compute UDR (both variants) of the runs and write it to ``out`` (JSON; run folders relative
    to ``out``'s folder when inside it, or ``labels[i]`` where given). Returns what was written:
    ``runs``, ``fingerprints``, ``udr_lasso``, ``udr_spearman`` (M each), ``pairwise_lasso``,
    ``pairwise_spearman`` (M x M, null diagonal), ``kl`` (M x D, nats), ``num_active``, ``dataset``, ``num_data_points``,
    ``seed``, ``kl_threshold``."""
    from ..metrics import udr_runs
    from ..train import load_run
    from ..train.speed import torch_threads

    out = Path(out)
    dirs = [Path(d) for d in run_dirs]
    runs = [load_run(d) for d in dirs]
    with torch_threads(int(runs[0].config.threads or 0)):  # as the runs were evaluated
        res = udr_runs(runs, num_data_points=num_data_points, seed=seed, correlations=CORRELATIONS)
    labels = list(labels) if labels is not None else [None] * len(dirs)
    res["runs"] = [lab if lab is not None else _rel(d, out.parent) for d, lab in zip(dirs, labels)]
    res["fingerprints"] = [fingerprint(d) for d in dirs]
    write_json(out, res)
    return files.read_json(out, f"delete {out}; it is written again")


def _cached(path: Path, names: list[str], prints: list[str], seed: int) -> dict[str, Any] | None:
    try:
        c = files.read_json(path, f"delete {path}")
    except (FileNotFoundError, RunFolderError):
        return None
    same = (c.get("runs") == names and c.get("fingerprints") == prints and c.get("seed") == seed
            and c.get("num_data_points") == NUM_DATA_POINTS)
    return c if same and all(isinstance(c.get(k), list) for k in SCORE_KEYS) else None


def _references(study: Any) -> list[tuple[str, Path, str | None]]:
    """``(label, run folder, fingerprint)`` of the study's ``[eval] udr_reference`` models."""
    from .. import pretrained

    dirs = [(f"pretrained:{n}", Path(pretrained.path(n))) for n in getattr(study, "udr_reference", [])]
    return [(lab, d, fingerprint(d)) for lab, d in dirs]


def add_udr(study: Any, root: str | os.PathLike, rows: list[dict[str, Any]], compute: bool = True) -> None:
    """Set ``udr_lasso`` and ``udr_spearman`` of the finished rows of every setting with >= 2
    finished seeds that have a checkpoint (>= 1 with ``[eval] udr_reference``), from
    ``<setting>/udr.json`` (computed and written when missing or stale, unless ``compute`` is
    False). A setting whose UDR cannot be computed gets none (a warning says why); UDR never fails a
    sweep or a report."""
    r = Path(root)
    refs = _references(study)
    settings: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("status") == "finished" and "/" in row["run"]:
            settings.setdefault(row["run"].rsplit("/", 1)[0], []).append(row)
    seed = int(getattr(study, "eval_seed", 0))
    for folder, mine in settings.items():
        prints = {row["run"]: fingerprint(r / row["run"]) for row in mine}
        mine = [row for row in mine if prints[row["run"]]]
        if len(mine) + len(refs) < 2 or not mine:
            continue
        path = r / folder / FILE
        names = [row["run"].rsplit("/", 1)[1] for row in mine] + [lab for lab, _, _ in refs]
        dirs = [r / row["run"] for row in mine] + [d for _, d, _ in refs]
        res = _cached(path, names, [prints[row["run"]] for row in mine] + [f for _, _, f in refs], seed)
        if res is None and compute:
            try:
                res = write_udr(dirs, path, seed=seed, labels=[None] * len(mine) + [lab for lab, _, _ in refs])
            except Exception as e:  # a comparison across seeds, never fatal
                warnings.warn(f"UDR of {folder} could not be computed: {type(e).__name__}: {e}", stacklevel=2)
        if res is None:
            continue
        for i, row in enumerate(mine):
            for k in SCORE_KEYS:
                row[k] = float(res[k][i])
