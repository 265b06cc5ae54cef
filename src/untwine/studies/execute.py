"""Executing one unit of a sweep: a run (:func:`execute_run`) or a pack of runs (:func:`execute_pack`).

Both are idempotent: a finished run (``summary.json`` status ``finished`` and ``metrics.json``
present) is skipped, an interrupted one is resumed from its checkpoint (where it resumes:
:func:`untwine.train.resume.resume_point`), and a failure (NaN, any error) is written to
``<run>/failed.json`` (:func:`record_failure`) instead of stopping the sweep. After training,
both evaluate and record each run the same way (:func:`finish_run`). A backend
(:mod:`untwine.studies.backends`) only decides where these run (:func:`execute_unit`).
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, Union

from untwine.metrics.registry import DEFAULT_BACKEND
from untwine.train.files import peek_json
from untwine.train.log import jsonable as _jsonable, write_json

FAILED = "failed.json"
EVAL_TIME = "eval_time.json"  # {"wall_time_s": the evaluation's seconds}


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to run one run (plain data, picklable).

    ``config`` is ``RunConfig.to_dict()`` with ``out`` the run's folder; ``metrics``/``sizes``/
    ``eval_seed`` are handed to :func:`untwine.metrics.evaluate`.
    """

    name: str
    config: dict[str, Any]
    metrics: list[str] | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    eval_seed: int = 0
    dci_backend: str = DEFAULT_BACKEND

    @property
    def steps(self) -> int | None:
        """The run's training length (``config["steps"]``)."""
        return self.config.get("steps")

    @property
    def dir(self) -> Path:
        return Path(self.config["out"])


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one run: ``status`` is ``finished``, ``skipped`` (already finished) or
    ``failed`` (``error`` says why); ``wall_s`` is this call's wall time in seconds; ``note``: a
    line for the sweep's progress view (e.g. why a pack's runs were run one by one)."""

    name: str
    status: str
    error: str = ""
    wall_s: float = 0.0
    note: str = ""


def finished(summary: dict[str, Any] | None, evaluated: bool, steps: int | None = None) -> bool:
    """The rule for a finished run, from its ``summary.json`` (``None`` if absent) and whether its
    ``metrics.json`` exists: trained to the end and evaluated. With ``steps`` (the study's
    length), a run trained to fewer steps is not finished: raising a study's ``steps`` continues
    its runs from their checkpoints and evaluates them again."""
    done = bool(summary and summary.get("status") == "finished" and evaluated)
    return done and (steps is None or summary.get("steps") == steps)


def is_finished(run_dir: str | os.PathLike, steps: int | None = None) -> bool:
    """True if the run in ``run_dir`` is :func:`finished` (nothing left to do)."""
    d = Path(run_dir)
    return finished(peek_json(d / "summary.json"), (d / "metrics.json").is_file(), steps)


def execute_run(spec: RunSpec) -> RunOutcome:
    """Train (resuming if interrupted) and evaluate one run into ``spec.dir``; never raises for a
    failed run (it is recorded in ``failed.json``), only for ``KeyboardInterrupt``."""
    t0 = time.perf_counter()
    d = spec.dir
    if is_finished(d, spec.steps):
        return RunOutcome(spec.name, "skipped")
    d.mkdir(parents=True, exist_ok=True)
    stage = "config"
    try:
        cfg = _config(spec)
        stage = "train"
        run = _train(cfg)
    except Exception as e:
        return _failed(spec, stage, e, t0)
    return finish_run(spec, cfg, run, t0)


def finish_run(spec: RunSpec, cfg: Any, run: Any, t0: float) -> RunOutcome:
    """Everything after training, shared by :func:`execute_run` and :func:`execute_pack`: check
    that training finished, evaluate ``run`` into ``metrics.json`` + ``eval_time.json``, record a
    failure in ``failed.json`` (or remove a stale one). ``t0``: when the call started."""
    d = spec.dir
    stage = "train"
    try:
        summary = getattr(run, "summary", None) or peek_json(d / "summary.json") or {}
        status = summary.get("status")
        if status == "failed" and summary.get("error"):
            # a packed run that went NaN: its summary holds what train() would have raised
            record_failure(d, spec.name, stage, summary["error"])
            return RunOutcome(spec.name, "failed", f"{stage}: {summary['error']}", time.perf_counter() - t0)
        if status != "finished":
            raise RuntimeError(f"training ended with status {status!r}: {summary.get('error', '')}")
        stage = "evaluate"
        t_eval = time.perf_counter()
        result = _evaluate(run, _data(cfg), spec)
        result = dict(result)
        write_json(d / "metrics.json", _jsonable(result))
        write_json(d / EVAL_TIME, {"wall_time_s": time.perf_counter() - t_eval})
    except Exception as e:
        return _failed(spec, stage, e, t0)
    (d / FAILED).unlink(missing_ok=True)
    return RunOutcome(spec.name, "finished", "", time.perf_counter() - t0)


def _failed(spec: RunSpec, stage: str, e: BaseException, t0: float) -> RunOutcome:
    """Record exception ``e`` (being handled) in ``failed.json``; the failed outcome."""
    error = f"{type(e).__name__}: {e}".strip()
    record_failure(spec.dir, spec.name, stage, error, traceback.format_exc())
    return RunOutcome(spec.name, "failed", f"{stage}: {error}", time.perf_counter() - t0)


def record_failure(run_dir: Path, name: str, stage: str, error: str, tb: str = "") -> None:
    """Write ``run_dir/failed.json``: ``{"run", "stage", "error", "traceback"}``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / FAILED, {"run": name, "stage": stage, "error": error, "traceback": tb})


def _config(spec: RunSpec) -> Any:
    from untwine.train import RunConfig

    return RunConfig.from_dict(spec.config)


def _train(cfg: Any) -> Any:
    from untwine.train import train

    return train(cfg, progress=False, resume=True)


def _train_pack(configs: list[Any]) -> list[Any]:
    from untwine.train import train_packed

    return train_packed(configs, progress=False, resume=True)


# ---------------------------------------------------------------------------------- one pack
Unit = Union[RunSpec, Sequence[RunSpec]]  # what a backend hands to a worker: a run, or a pack of runs


def unit_specs(unit: Unit) -> list[RunSpec]:
    """The runs of a unit (a single :class:`RunSpec` is a unit of one)."""
    return [unit] if isinstance(unit, RunSpec) else list(unit)


def execute_pack(specs: Sequence[RunSpec]) -> list[RunOutcome]:
    """Train the runs ``specs`` together (:func:`untwine.train.train_packed`, resuming), then
    evaluate and record each one as :func:`execute_run` does; outcomes in ``specs`` order.

    Finished runs are skipped (never re-trained). The runs must share ``pack_key`` (see
    :func:`plan_units`). If the unfinished runs would resume from different steps (a pack cannot),
    they are run one by one with :func:`execute_run` instead (the first outcome's ``note`` says
    so). An exception of the pack as a whole is recorded in ``failed.json`` (stage ``train``) of
    each run whose training did not finish; runs that did are still evaluated. Never raises for
    a failed run, only for ``KeyboardInterrupt``.
    """
    t0 = time.perf_counter()
    outcomes: dict[str, RunOutcome] = {}
    todo: list[tuple[RunSpec, Any]] = []
    for spec in specs:
        if is_finished(spec.dir, spec.steps):
            outcomes[spec.name] = RunOutcome(spec.name, "skipped")
            continue
        spec.dir.mkdir(parents=True, exist_ok=True)
        try:
            todo.append((spec, _config(spec)))
        except Exception as e:
            outcomes[spec.name] = _failed(spec, "config", e, t0)
    note = ""
    if len(todo) > 1:
        try:
            steps = sorted({s for s in (_start_step(spec.dir, cfg) for spec, cfg in todo) if s is not None})
        except Exception as e:  # an unreadable checkpoint: let each run deal with (or report) it
            steps, note = [], f"reading a checkpoint failed ({type(e).__name__}: {e})"
        if len(steps) > 1:
            note = f"its runs stopped at different steps ({', '.join(map(str, steps))})"
        if note:
            note = f"pack of {len(todo)} ({todo[0][0].name}, ...): {note}; running them one by one"
    if len(todo) == 1 or note:
        for i, (spec, _) in enumerate(todo):
            out = execute_run(spec)
            outcomes[spec.name] = dataclasses.replace(out, note=note) if i == 0 and note else out
    elif todo:
        try:
            runs = _train_pack([cfg for _, cfg in todo])
        except Exception as e:
            error = f"{type(e).__name__}: {e}".strip()
            tb = traceback.format_exc()
            for spec, cfg in todo:
                summary = peek_json(spec.dir / "summary.json") or {}
                if summary.get("status") == "finished":  # trained before the pack failed: evaluate it
                    outcomes[spec.name] = execute_run(spec)
                else:
                    record_failure(spec.dir, spec.name, "train", error, tb)
                    outcomes[spec.name] = RunOutcome(spec.name, "failed", f"train: {error}",
                                                     time.perf_counter() - t0)
        else:
            for (spec, cfg), run in zip(todo, runs):
                outcomes[spec.name] = finish_run(spec, cfg, run, t0)
    return [outcomes[s.name] for s in specs]


def execute_unit(
    unit: Unit,
    execute: Callable[[RunSpec], RunOutcome] = execute_run,
    pack: Callable[[list[RunSpec]], list[RunOutcome]] | None = None,
) -> list[RunOutcome]:
    """Run one unit: ``execute(spec)`` for a single run, ``pack(specs)`` (default
    :func:`execute_pack`) for a pack; the outcomes in the unit's order. What backends call."""
    specs = unit_specs(unit)
    if len(specs) == 1:
        return [execute(specs[0])]
    return (pack or execute_pack)(specs)

def _start_step(run_dir: Path, cfg: Any) -> int | None:
    """The step training of ``run_dir`` would resume from (0: from scratch), ``None`` when its
    training already finished (only evaluation is left): :func:`untwine.train.resume.resume_point`."""
    from untwine.train.resume import resume_point

    point = resume_point(run_dir, cfg.steps)
    return None if point.finished else point.step


def _evaluate(run: Any, data: Any, spec: RunSpec) -> dict[str, Any]:
    from untwine.metrics import evaluate
    from untwine.train.speed import torch_threads

    with torch_threads(int(spec.config.get("threads") or 0)):  # as the run trained: same numbers everywhere
        return evaluate(run, data, metrics=spec.metrics, seed=spec.eval_seed, progress=False,
                        sizes=spec.sizes, dci_backend=spec.dci_backend)


def _data(cfg: Any) -> Any:
    """The run's dataset (``untwine.data.load`` keeps recent datasets resident in-process)."""
    import untwine.data

    return untwine.data.load(cfg.dataset, cfg.source, cfg.data_root)
