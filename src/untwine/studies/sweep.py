"""Sweeps: run every run of a study (train + evaluate), skip finished ones, resume the rest.

This module is the driver: it plans the units of work (:func:`plan_units`: one run, or a pack of
runs trained as one batched model with ``sweep(..., pack=K)``), hands them to a backend
(:mod:`untwine.studies.backends`, which decides where they run), shows the live view
(:mod:`.progress`), computes the untrained-encoder baseline
(:func:`untwine.metrics.baseline.random_baseline`), and writes ``results.csv``, ``timings.csv``
and ``sweep_log.jsonl``. What happens to one run or pack (skip, resume, train, evaluate, failure
records) lives in :mod:`untwine.studies.execute` (:func:`execute_run`, :func:`execute_pack`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import UserError
from ..metrics.baseline import random_baseline
from ..train import files
from .execute import (FAILED, RunOutcome, RunSpec, Unit, _config, execute_pack,
                      execute_run, execute_unit, finish_run, is_finished, record_failure, unit_specs,
                      write_json)
from .progress import ProgressView
from .study import STUDY_THREADS, Study


@dataclass
class SweepResult:
    out: Path
    outcomes: list[RunOutcome]
    rows: list[dict[str, Any]]

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


# ---------------------------------------------------------------------------------- the sweep
def specs_for(study: Study, out: str | os.PathLike) -> list[RunSpec]:
    """One :class:`RunSpec` per run of ``study``, folders under ``out`` (absolute)."""
    return _specs_and_configs(study, out)[0]


def _specs_and_configs(study: Study, out: str | os.PathLike) -> tuple[list[RunSpec], dict[str, Any]]:
    """:func:`specs_for`, and each run's validated ``RunConfig`` by name (for :func:`plan_units`)."""
    root = Path(out).resolve()
    configs = dict(zip(study.run_names(), study.runs(root)))
    specs = [RunSpec(name, cfg.to_dict(), study.metrics, study.sizes, study.eval_seed, study.dci_backend)
             for name, cfg in configs.items()]
    return specs, configs


def plan_units(specs: Sequence[RunSpec], pack: int, configs: Mapping[str, Any] | None = None) -> list[list[RunSpec]]:
    """Group ``specs`` into units of work: runs with equal
    :func:`~untwine.train.packed.pack_key` (the fields of :data:`untwine.train.packed.SHARED`) in
    packs of at most ``pack`` (study order within a group), the units ordered by their first
    run's position in ``specs``. ``pack=1``: one unit per run. ``configs``: the specs'
    ``RunConfig`` s by name, already validated (:meth:`Study.runs`), whose resolution
    ``pack_key`` then reuses. The one check of ``pack >= 1`` (``sweep`` and ``untwine sweep
    --pack`` rely on it)."""
    if pack < 1:
        raise UserError(f"--pack must be >= 1, got {pack}")
    if pack == 1:
        return [[s] for s in specs]
    from untwine.train.packed import pack_key

    groups: dict[Any, list[int]] = {}
    for i, spec in enumerate(specs):
        try:
            key: Any = pack_key((configs or {}).get(spec.name) or _config(spec))
        except Exception:  # a bad config: alone (execute_run records why)
            key = ("alone", i)
        groups.setdefault(key, []).append(i)
    chunks = [idx[j: j + pack] for idx in groups.values() for j in range(0, len(idx), pack)]
    return [[specs[i] for i in chunk] for chunk in sorted(chunks, key=lambda c: c[0])]


def default_jobs(n_runs: int, threads: int = STUDY_THREADS) -> int:
    """Worker processes for the local backend: as many runs at once as the CPU has room for at
    ``threads`` torch threads each (one per core at the studies' default, ``STUDY_THREADS``: on the
    2-core test machine two 1-thread runs did 1.26-1.31x the images of one 2-thread run,
    docs/speed.md); 1 on a GPU machine."""
    try:
        import torch

        if torch.cuda.is_available():
            return 1
    except ImportError:  # pragma: no cover
        pass
    return max(1, min(n_runs, (os.cpu_count() or 1) // max(1, threads)))


def sweep(
    study: Study,
    out: str | os.PathLike,
    backend: str = "local",
    jobs: int | None = None,
    progress: bool = True,
    backend_options: Mapping[str, Any] | None = None,
    pack: int = 1,
) -> SweepResult:
    """Run every run of ``study`` under ``out`` and write ``out/results.csv`` + ``timings.csv``.

    Finished runs are skipped, interrupted ones resumed, failed ones retried (and recorded again
    if they fail again). ``jobs=None`` sizes the local pool to the machine (:func:`default_jobs`) and lets other backends
    fill their cluster. ``backend_options`` are passed to the backend's ``run_all`` (Ray: ``address``,
    ``num_cpus``, ``num_gpus``).
    ``pack > 1`` trains up to ``pack`` pending runs that share the fields of
    :data:`untwine.train.packed.SHARED` as one batched model (:func:`plan_units`,
    :func:`execute_pack`); each unit (a pack, or a run that has no partner) is one job of the
    backend. Results are those of an unpacked sweep up to float rounding.
    ``KeyboardInterrupt`` propagates after writing results of the runs finished so far.
    """
    from . import backends

    backends.check_jobs(jobs)
    root = Path(out)
    specs, configs = _specs_and_configs(study, root)
    pending = [s for s in specs if not is_finished(s.dir, s.steps)]
    units = plan_units(pending, pack, configs)  # checks pack >= 1 before anything is written
    root.mkdir(parents=True, exist_ok=True)
    files.write_text(root / "study.toml", study.text)
    write_json(root / "study.json", study_dict(study))
    per_run = max((int(s.config.get("threads") or 0) or (os.cpu_count() or 1) for s in pending), default=1)
    n_jobs = jobs if jobs is not None else (default_jobs(len(units), per_run) if backend == "local" else None)
    run_all = backends.get(backend)
    todo = {s.name for s in pending}
    outcomes = {s.name: RunOutcome(s.name, "skipped") for s in specs if s.name not in todo}
    t0 = time.time()
    view = ProgressView(len(specs), len(specs) - len(pending), n_jobs, backend, enabled=progress, pending=pending)

    def on_done(o: RunOutcome) -> None:
        outcomes[o.name] = o
        if o.status == "failed" and not (root / o.name / FAILED).is_file():
            record_failure(root / o.name, o.name, "worker", o.error)
        if o.note:
            view.note(o.note)
        view.done(o)

    try:
        with view:
            if pack > 1:
                n_packs = sum(len(u) > 1 for u in units)
                view.note(f"packing: {sum(len(u) for u in units if len(u) > 1)} runs in {n_packs} "
                          f"pack{'s' if n_packs != 1 else ''} of up to {pack}, "
                          f"{sum(len(u) == 1 for u in units)} alone")
            work: list[Any] = units if pack > 1 else pending  # pack=1: plain specs, as always
            run_all(work, n_jobs, on_start=view.start, on_done=on_done, **dict(backend_options or {}))
            if study.report_option("baseline"):
                view.note("evaluating an untrained encoder per dataset (baseline)")
                for ds in study.datasets:
                    try:
                        random_baseline(study, ds, root)
                    except Exception as e:  # the baseline is a comparison, never fatal
                        view.note(f"baseline for {ds} failed: {type(e).__name__}: {e}")
    finally:
        # UDR per setting is computed here, except after Ctrl-C (then only read where already written)
        rows = collect_sweep(study, root, compute_udr=not isinstance(sys.exc_info()[1], KeyboardInterrupt))
        _append_sweep_log(root, backend, n_jobs, time.time() - t0, outcomes, pack)
    ordered = [outcomes.get(s.name, RunOutcome(s.name, "pending")) for s in specs]
    return SweepResult(root, ordered, rows)


def collect_sweep(study: Study, out: str | os.PathLike, compute_udr: bool = True) -> list[dict[str, Any]]:
    """Write ``out/results.csv`` and ``out/timings.csv`` from the run folders as they are now and
    return the rows; trains nothing. The one writer of both files: :func:`sweep` calls it at its
    end, ``untwine sweep --collect`` alone (after :func:`check_swept_with`; safe while another sweep
    trains in ``out``: each file is replaced atomically, and a run still training is an
    ``incomplete`` row). UDR is computed where it is due, as at a sweep's end."""
    from . import results

    root = Path(out)
    rows = results.collect(study, root, compute_udr=compute_udr)
    results.write_results(rows, root / "results.csv")
    results.write_timings(study, root, root / "timings.csv")
    return rows


def check_swept_with(study: Study, out: str | os.PathLike) -> None:
    """Raise :class:`UserError` unless ``out`` is a sweep folder swept with ``study`` (its
    ``study.json``): what ``untwine sweep --collect`` needs, so that its rows are that sweep's."""
    from .study import load_sweep_study

    root = Path(out)
    if not (root / "study.toml").is_file():
        raise UserError(f"{root} is not a sweep folder (no study.toml): run `untwine sweep STUDY.toml --out {root}` first")
    if study_dict(load_sweep_study(root)) != study_dict(study):
        raise UserError(f"{root} was swept with another study than this one (its study.json differs): pass the "
                        "study file and the --set values it was swept with")


def study_dict(study: Study) -> dict[str, Any]:
    """The resolved study (after overrides) as plain data: ``out/study.json``."""
    return {
        "name": study.name,
        "description": study.description,
        "datasets": study.datasets,
        "seeds": study.seeds,
        "models": [asdict(m) for m in study.models],
        "train": study.train,
        "eval": study.eval,
        "report": study.report,
        "runs": study.run_names(),
    }


def _append_sweep_log(root: Path, backend: str, jobs: int, wall: float, outcomes: dict[str, RunOutcome],
                      pack: int = 1) -> None:
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "backend": backend,
        "jobs": jobs,
        "pack": pack,
        "wall_time_s": round(wall, 3),
        "host": platform.node(),
        "counts": {s: sum(o.status == s for o in outcomes.values()) for s in ("finished", "skipped", "failed")},
    }
    files.append_line(root / "sweep_log.jsonl", json.dumps(entry))


Executor = Callable[[RunSpec], RunOutcome]

__all__ = [  # the execution names are re-exported for callers of the one-module era
    "FAILED", "Executor", "RunOutcome", "RunSpec", "SweepResult", "Unit", "default_jobs", "execute_pack",
    "execute_run", "execute_unit", "finish_run", "is_finished", "plan_units", "random_baseline",
    "record_failure", "specs_for", "study_dict", "sweep", "unit_specs", "write_json", "collect_sweep", "check_swept_with",
]
