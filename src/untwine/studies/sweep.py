"""Sweeps: run every run of a study (train + evaluate), skip finished ones, resume the rest.

All logic lives in :func:`execute_run`, which runs one run and is idempotent: a finished run
(``summary.json`` status ``finished`` and ``metrics.json`` present) is skipped, an interrupted one
is resumed from its checkpoint (``train(..., resume=True)``), and a failure (NaN, any error) is
written to ``<run>/failed.json`` instead of stopping the sweep. A backend
(:mod:`untwine.studies.backends`) only decides where ``execute_run`` runs.

``sweep(..., pack=K)`` trains up to K compatible runs together as one batched model
(:func:`untwine.train.packed.train_packed`): :func:`plan_units` groups the pending runs into
*units* (lists of runs), :func:`execute_pack` trains one pack, then evaluates and records each
of its runs exactly as :func:`execute_run` does (:func:`finish_run` is that shared part).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from .study import Study

FAILED = "failed.json"


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
    dci_backend: str = "exact"

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


@dataclass
class SweepResult:
    out: Path
    outcomes: list[RunOutcome]
    rows: list[dict[str, Any]]

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


# ---------------------------------------------------------------------------------- one run
def is_finished(run_dir: str | os.PathLike) -> bool:
    """True if the run trained to the end and was evaluated (nothing left to do)."""
    d = Path(run_dir)
    summary = _read_json(d / "summary.json")
    return bool(summary and summary.get("status") == "finished" and (d / "metrics.json").is_file())


def execute_run(spec: RunSpec) -> RunOutcome:
    """Train (resuming if interrupted) and evaluate one run into ``spec.dir``; never raises for a
    failed run (it is recorded in ``failed.json``), only for ``KeyboardInterrupt``."""
    t0 = time.perf_counter()
    d = spec.dir
    if is_finished(d):
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
        summary = getattr(run, "summary", None) or _read_json(d / "summary.json") or {}
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
        write_json(d / "eval_time.json", {"wall_time_s": time.perf_counter() - t_eval})
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
    from untwine.train.packed import train_packed

    return train_packed(configs, progress=False, resume=True)


# ---------------------------------------------------------------------------------- one pack
Unit = Union[RunSpec, Sequence[RunSpec]]  # what a backend hands to a worker: a run, or a pack of runs


def unit_specs(unit: Unit) -> list[RunSpec]:
    """The runs of a unit (a single :class:`RunSpec` is a unit of one)."""
    return [unit] if isinstance(unit, RunSpec) else list(unit)


def execute_pack(specs: Sequence[RunSpec]) -> list[RunOutcome]:
    """Train the runs ``specs`` together (:func:`untwine.train.packed.train_packed`, resuming), then
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
        if is_finished(spec.dir):
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
                summary = _read_json(spec.dir / "summary.json") or {}
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
    training already finished (only evaluation is left); as ``untwine.train`` decides it."""
    from untwine.train import checkpoint

    ckpt = checkpoint.find(run_dir)
    if ckpt is None:
        return 0
    try:
        step = int(checkpoint.model_metadata(ckpt)["step"])
    except (KeyError, ValueError):
        step = int(checkpoint.load_state(ckpt)["step"])
    summary = _read_json(run_dir / "summary.json") or {}
    if step == cfg.steps and summary.get("status") == "finished":
        return None
    return step


def _evaluate(run: Any, data: Any, spec: RunSpec) -> dict[str, Any]:
    from untwine.metrics import evaluate

    extra = {"dci_backend": spec.dci_backend} if spec.dci_backend != "exact" else {}
    return evaluate(run, data, metrics=spec.metrics, seed=spec.eval_seed, progress=False,
                    sizes=spec.sizes, **extra)


def _data(cfg: Any) -> Any:
    """The run's dataset (``untwine.data.load`` keeps recent datasets resident in-process)."""
    import untwine.data

    return untwine.data.load(cfg.dataset, cfg.source, cfg.data_root)


# ---------------------------------------------------------------------------------- the sweep
def specs_for(study: Study, out: str | os.PathLike) -> list[RunSpec]:
    """One :class:`RunSpec` per run of ``study``, folders under ``out`` (absolute)."""
    root = Path(out).resolve()
    names = study.run_names()
    return [
        RunSpec(name, cfg.to_dict(), study.metrics, study.sizes, study.eval_seed, study.dci_backend)
        for name, cfg in zip(names, study.runs(root))
    ]


def plan_units(specs: Sequence[RunSpec], pack: int) -> list[list[RunSpec]]:
    """Group ``specs`` into units of work: runs with equal
    :func:`~untwine.train.packed.pack_key` (dataset, arch, latents, steps, batch size, lr, Adam
    betas, device) in packs of at most ``pack`` (study order within a group), the units ordered
    by their first run's position in ``specs``. ``pack=1``: one unit per run."""
    if pack < 1:
        raise ValueError(f"--pack must be >= 1, got {pack}")
    if pack == 1:
        return [[s] for s in specs]
    from untwine.train.packed import pack_key

    groups: dict[Any, list[int]] = {}
    for i, spec in enumerate(specs):
        try:
            key: Any = pack_key(_config(spec))
        except Exception:  # a bad config: alone (execute_run records why)
            key = ("alone", i)
        groups.setdefault(key, []).append(i)
    chunks = [idx[j: j + pack] for idx in groups.values() for j in range(0, len(idx), pack)]
    return [[specs[i] for i in chunk] for chunk in sorted(chunks, key=lambda c: c[0])]


def default_jobs(n_runs: int) -> int:
    """Worker processes for the local backend: one per two CPU cores (1 on a GPU machine)."""
    try:
        import torch

        if torch.cuda.is_available():
            return 1
    except ImportError:  # pragma: no cover
        pass
    return max(1, min(n_runs, (os.cpu_count() or 1) // 2))


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
    ``pack > 1`` trains up to ``pack`` pending runs that share dataset, arch, latents, steps,
    batch size, lr, Adam betas and device as one batched model (:func:`plan_units`,
    :func:`execute_pack`); each unit (a pack, or a run that has no partner) is one job of the
    backend. Results are those of an unpacked sweep up to float rounding.
    ``KeyboardInterrupt`` propagates after writing results of the runs finished so far.
    """
    from . import backends, results

    if pack < 1:
        raise ValueError(f"--pack must be >= 1, got {pack}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    (root / "study.toml").write_text(study.text, encoding="utf-8")
    write_json(root / "study.json", study_dict(study))
    specs = specs_for(study, root)
    pending = [s for s in specs if not is_finished(s.dir)]
    units = plan_units(pending, pack)
    n_jobs = jobs if jobs is not None else (default_jobs(len(units)) if backend == "local" else None)
    if n_jobs is not None and n_jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {n_jobs}")
    run_all = backends.get(backend)
    todo = {s.name for s in pending}
    outcomes = {s.name: RunOutcome(s.name, "skipped") for s in specs if s.name not in todo}
    t0 = time.time()
    view = _ProgressView(len(specs), len(specs) - len(pending), n_jobs, backend, enabled=progress)

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
            if study.report.get("baseline", True):
                view.note("evaluating an untrained encoder per dataset (baseline)")
                for ds in study.datasets:
                    try:
                        random_baseline(study, ds, root)
                    except Exception as e:  # the baseline is a comparison, never fatal
                        view.note(f"baseline for {ds} failed: {type(e).__name__}: {e}")
    finally:
        rows = results.collect(study, root)
        results.write_results(rows, root / "results.csv")
        results.write_timings(study, root, root / "timings.csv")
        _append_sweep_log(root, backend, n_jobs, time.time() - t0, outcomes, pack)
    ordered = [outcomes.get(s.name, RunOutcome(s.name, "pending")) for s in specs]
    return SweepResult(root, ordered, rows)


def random_baseline(study: Study, dataset: str, root: Path) -> dict[str, Any]:
    """Metrics of an *untrained* encoder (seed = the study's first seed) on ``dataset``, written to
    ``root/baseline/<dataset>/metrics.json`` (cached). The floor a trained model should beat."""
    path = root / "baseline" / dataset / "metrics.json"
    cached = _read_json(path)
    if cached is not None:
        return cached
    import numpy as np
    import torch

    from untwine.metrics import evaluate
    from untwine.models import VAE
    from untwine.train import RunConfig

    kw = next(kw for name, kw in study.expand() if kw["dataset"] == dataset)
    cfg = RunConfig(**{**kw, "out": str(path.parent)})
    data = _data(cfg)
    torch.manual_seed(cfg.seed)
    model = VAE(cfg.arch, data.num_channels, cfg.latents).eval()

    @torch.no_grad()
    def encode(x: Any) -> np.ndarray:
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        return np.concatenate([model.encode(b)[0].numpy() for b in x.split(256)])

    extra = {"dci_backend": study.dci_backend} if study.dci_backend != "exact" else {}
    result = evaluate(encode, data, metrics=study.metrics, seed=study.eval_seed, progress=False,
                      sizes=study.sizes, **extra)
    result = _jsonable(dict(result))
    write_json(path, {**result, "encoder": f"untrained {cfg.arch}, seed {cfg.seed}"})
    return result


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
    with open(root / "sweep_log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


# ---------------------------------------------------------------------------------- progress
class _ProgressView:
    """A live rich view: runs done / running / failed, elapsed and ETA; one line per finished run."""

    def __init__(self, total: int, skipped: int, jobs: int, backend: str, enabled: bool = True) -> None:
        self.total, self.skipped, self.jobs, self.backend = total, skipped, jobs, backend
        self.enabled = enabled
        self.running: list[str] = []
        self.failed = 0
        self.finished = 0
        self._progress = None

    def __enter__(self) -> "_ProgressView":
        if not self.enabled:
            return self
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._progress = Progress(
            TextColumn("[bold]sweep[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("running {task.fields[running]}  failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
        )
        self._progress.__enter__()
        pending = self.total - self.skipped
        self._task = self._progress.add_task("", total=pending, running=0, failed=0)
        self._progress.console.print(
            f"{self.total} runs: {self.skipped} already finished, {pending} to run "
            f"({self.backend} backend, "
            + ("cluster-sized)" if self.jobs is None else f"{self.jobs} job{'s' if self.jobs != 1 else ''})")
        )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def _update(self, advance: int = 0) -> None:
        if self._progress is not None:
            desc = ", ".join(self.running[:2]) + (" ..." if len(self.running) > 2 else "")
            self._progress.update(self._task, advance=advance, running=len(self.running),
                                  failed=self.failed, description=desc)

    def start(self, spec: RunSpec) -> None:
        self.running.append(spec.name)
        self._update()

    def done(self, o: RunOutcome) -> None:
        if o.name in self.running:
            self.running.remove(o.name)
        self.failed += o.status == "failed"
        self.finished += o.status == "finished"
        mark = {"finished": "[green]done[/]", "failed": "[red]FAILED[/]"}.get(o.status, o.status)
        self.note(f"{mark} {o.name} ({o.wall_s:.0f} s){'  ' + o.error if o.error else ''}")
        self._update(advance=1)

    def note(self, msg: str) -> None:
        if self._progress is not None:
            self._progress.console.print(msg, highlight=False)


# ---------------------------------------------------------------------------------- files
def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename): a killed writer never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays -> Python numbers/lists (recursively)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


Executor = Callable[[RunSpec], RunOutcome]
