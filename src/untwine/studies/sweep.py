"""Sweeps: run every run of a study (train + evaluate), skip finished ones, resume the rest.

All logic lives in :func:`execute_run`, which runs one run and is idempotent: a finished run
(``summary.json`` status ``finished`` and ``metrics.json`` present) is skipped, an interrupted one
is resumed from its checkpoint (``train(..., resume=True)``), and a failure (NaN, any error) is
written to ``<run>/failed.json`` instead of stopping the sweep. A backend
(:mod:`untwine.studies.backends`) only decides where ``execute_run`` runs.
"""

from __future__ import annotations

import json
import os
import platform
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

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
    ``failed`` (``error`` says why); ``wall_s`` is this call's wall time in seconds."""

    name: str
    status: str
    error: str = ""
    wall_s: float = 0.0


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
        from untwine.train import RunConfig

        cfg = RunConfig.from_dict(spec.config)
        stage = "train"
        run = _train(cfg)
        summary = getattr(run, "summary", None) or _read_json(d / "summary.json") or {}
        if summary.get("status") != "finished":
            raise RuntimeError(f"training ended with status {summary.get('status')!r}: {summary.get('error', '')}")
        stage = "evaluate"
        t_eval = time.perf_counter()
        result = _evaluate(run, _data(cfg), spec)
        result = dict(result)
        write_json(d / "metrics.json", _jsonable(result))
        write_json(d / "eval_time.json", {"wall_time_s": time.perf_counter() - t_eval})
    except Exception as e:
        error = f"{type(e).__name__}: {e}".strip()
        record_failure(d, spec.name, stage, error, traceback.format_exc())
        return RunOutcome(spec.name, "failed", f"{stage}: {error}", time.perf_counter() - t0)
    (d / FAILED).unlink(missing_ok=True)
    return RunOutcome(spec.name, "finished", "", time.perf_counter() - t0)


def record_failure(run_dir: Path, name: str, stage: str, error: str, tb: str = "") -> None:
    """Write ``run_dir/failed.json``: ``{"run", "stage", "error", "traceback"}``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / FAILED, {"run": name, "stage": stage, "error": error, "traceback": tb})


def _train(cfg: Any) -> Any:
    from untwine.train import train

    return train(cfg, progress=False, resume=True)


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
) -> SweepResult:
    """Run every run of ``study`` under ``out`` and write ``out/results.csv`` + ``timings.csv``.

    Finished runs are skipped, interrupted ones resumed, failed ones retried (and recorded again
    if they fail again). ``jobs=None`` sizes the local pool to the machine (:func:`default_jobs`) and lets other backends
    fill their cluster. ``backend_options`` are passed to the backend's ``run_all`` (Ray: ``address``,
    ``num_cpus``, ``num_gpus``).
    ``KeyboardInterrupt`` propagates after writing results of the runs finished so far.
    """
    from . import backends, results

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    (root / "study.toml").write_text(study.text, encoding="utf-8")
    write_json(root / "study.json", study_dict(study))
    specs = specs_for(study, root)
    pending = [s for s in specs if not is_finished(s.dir)]
    n_jobs = jobs if jobs is not None else (default_jobs(len(pending)) if backend == "local" else None)
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
        view.done(o)

    try:
        with view:
            run_all(pending, n_jobs, on_start=view.start, on_done=on_done, **dict(backend_options or {}))
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
        _append_sweep_log(root, backend, n_jobs, time.time() - t0, outcomes)
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


def _append_sweep_log(root: Path, backend: str, jobs: int, wall: float, outcomes: dict[str, RunOutcome]) -> None:
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "backend": backend,
        "jobs": jobs,
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
