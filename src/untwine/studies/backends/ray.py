"""The Ray backend: each run is one Ray task, on this machine or on a Ray cluster.

Like :mod:`.local`, it only decides *where* :func:`untwine.studies.execute.execute_run` runs; skipping
finished runs, resuming from checkpoints and failure records all live in ``execute_run``.

- ``address=None`` starts a private Ray instance in this process (one machine, no set-up; honours
  ``RAY_ADDRESS`` like :func:`ray.init`); ``"auto"``, ``"HOST:6379"`` or ``"ray://HOST:10001"``
  joins a running cluster. If Ray is already initialised in this process it is used as is (and
  left running).
- Each task declares ``num_cpus`` CPUs and ``num_gpus`` GPUs (a fraction such as ``0.25`` lets four
  small runs share one GPU); Ray places it where those resources are free.
- A task whose worker process or node dies is resubmitted (``max_retries``) and ``execute_run``
  continues the run from its last checkpoint. Application errors are *not* retried by Ray
  (``retry_exceptions=False``): ``execute_run`` records them in ``failed.json``.
- Each task pins ``torch.set_num_threads(threads)`` (default: ``num_cpus``), so results do not
  depend on the worker node's core count.
- A pack of runs (``sweep(..., pack=K)``: a list of specs among ``specs``) is one task running
  :func:`~untwine.studies.execute.execute_pack`; its ``num_cpus``/``num_gpus`` are then per pack.

Run folders are written by the workers: on a cluster ``out`` must be a shared filesystem path
mounted at the same place on every node (see ``docs/ray.md``).
"""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import ray  # a missing ray -> ModuleNotFoundError(name="ray"): backends.get() names the extra

from ...errors import UserError
from . import check_jobs
from ..execute import RunOutcome, RunSpec, Unit, execute_pack, execute_run, execute_unit, is_finished, unit_specs


def _run_unit(unit: list[RunSpec], threads: int, execute: Callable[[RunSpec], RunOutcome],
              pack: Callable[[list[RunSpec]], list[RunOutcome]]) -> list[RunOutcome]:
    """The body of one Ray task: fix the torch thread count, then run (or resume, or skip) one
    run or one pack."""
    import torch

    torch.set_num_threads(threads)
    return execute_unit(unit, execute, pack)


def connect(address: str | None = None, runtime_env: dict[str, Any] | None = None,
            num_cpus: int | None = None) -> tuple[bool, str]:
    """Initialise Ray unless it already is; returns ``(started_here, dashboard_url)``.

    ``address=None`` joins ``$RAY_ADDRESS`` if set, else starts a local instance (``num_cpus`` caps
    its CPUs, default: all); any other address joins that cluster. ``dashboard_url`` is ``""``
    when there is no dashboard (plain ``pip install ray`` has none; ``ray[default]`` does).
    """
    if ray.is_initialized():
        return False, _dashboard_url(None)
    kw: dict[str, Any] = {"log_to_driver": False, "runtime_env": runtime_env}
    if address is None:  # never attach to a cluster `ray start` left running here by accident
        address = os.environ.get("RAY_ADDRESS") or "local"
    if address == "local":
        kw["num_cpus"] = num_cpus
    elif num_cpus is not None:
        raise UserError("local_cpus sizes a local Ray instance only; drop it when joining a "
                         f"cluster (address={address!r})")
    try:
        ctx = ray.init(address=address, **kw)
    except ConnectionError as e:
        raise ValueError(
            f"cannot reach a Ray cluster at {address!r} ({e}); start one with `ray start --head`, "
            "or leave --address out to run on a local Ray instance"
        ) from None
    return True, _dashboard_url(ctx)


def _dashboard_url(ctx: Any) -> str:
    url = getattr(ctx, "dashboard_url", None) if ctx is not None else None
    if not url:
        try:  # already-initialised Ray: ask the worker context
            url = ray._private.worker.get_dashboard_url()  # noqa: SLF001 (no public getter)
        except Exception:
            url = ""
    if url and not url.startswith("http"):
        url = "http://" + url
    return url or ""


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:$")


def _check_paths(specs: Sequence[RunSpec]) -> None:
    """Run folders must be filesystem paths: ``s3://b/x`` resolved by pathlib ends up as
    ``/cwd/s3:/b/x``, which would silently write to the local disk."""
    for spec in specs:
        parts = Path(spec.config.get("out", "")).parts
        if any(_URI.match(p) for p in parts):
            raise ValueError(
                f"run folder {spec.config['out']!r} looks like a cloud URI; untwine writes run folders "
                "with ordinary file I/O: mount the bucket (s3fs, gcsfuse, blobfuse) or use a shared "
                "filesystem (NFS) at the same path on every node, and pass that path to --out"
            )


def capacity(num_cpus: float, num_gpus: float) -> int:
    """How many tasks of this size the cluster can run at once now (at least 1)."""
    res = ray.cluster_resources()
    fits = [res.get("CPU", 0) / num_cpus] if num_cpus > 0 else []
    if num_gpus > 0:
        fits.append(res.get("GPU", 0) / num_gpus)
    n = math.floor(min(fits) + 1e-9) if fits else 1
    return max(1, n)


def run_all(
    specs: Sequence[Unit],
    jobs: int | None = None,
    on_start: Callable[[RunSpec], None] | None = None,
    on_done: Callable[[RunOutcome], None] | None = None,
    execute: Callable[[RunSpec], RunOutcome] = execute_run,
    execute_pack: Callable[[list[RunSpec]], list[RunOutcome]] = execute_pack,
    *,
    address: str | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    threads: int | None = None,
    max_retries: int = 3,
    runtime_env: dict[str, Any] | None = None,
    local_cpus: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[RunOutcome]:
    """Run every spec as a Ray task; return the outcomes in ``specs`` order.

    Args:
        specs: the runs (folders are absolute paths; on a cluster, on a shared filesystem); an
            entry may be a list of specs, a pack: one task trains it (``execute_pack``), and
            ``num_cpus``/``num_gpus``/``threads`` apply to that task.
        jobs: at most this many tasks in flight; ``None``: as many as the cluster's resources fit
            now (``cluster CPUs / num_cpus``, and ``GPUs / num_gpus`` when ``num_gpus > 0``).
            ``on_start`` is called when a task is submitted, so keeping the window at the
            cluster's size makes "running" mean running.
        on_start, on_done: driver-side callbacks (the sweep's progress view).
        execute: the function a task calls (default :func:`execute_run`); must be importable on
            the workers (or picklable by value).
        execute_pack: the function a pack's task calls (default
            :func:`~untwine.studies.execute.execute_pack`).
        address: ``None`` (``$RAY_ADDRESS`` if set, else a local instance), ``"auto"``,
            ``"HOST:6379"`` or ``"ray://HOST:10001"`` (Ray Client: needs ``ray[client]``).
        num_cpus: CPUs each task reserves (may be fractional; > 0).
        num_gpus: GPUs each task reserves, e.g. ``0.25`` to pack four runs on one GPU (>= 0).
        threads: torch intra-op threads per task (default ``max(1, int(num_cpus))``).
        max_retries: resubmissions of a task whose worker or node died (then the run is failed).
        runtime_env: handed to :func:`ray.init` when this call starts Ray (e.g. ``env_vars``).
        local_cpus: CPUs of the local instance started when ``address`` is ``None``.
        log: where one-line notices go (cluster size, dashboard URL); default stderr.

    ``KeyboardInterrupt`` cancels the tasks in flight (their runs keep their last checkpoint)
    and propagates. A task that still fails after ``max_retries`` (worker killed each time, out
    of memory) gives a ``failed`` outcome saying why.
    """
    if not num_cpus > 0:
        raise UserError(f"num_cpus per run must be > 0, got {num_cpus}")
    if num_gpus < 0:
        raise UserError(f"num_gpus per run must be >= 0, got {num_gpus}")
    check_jobs(jobs)
    if max_retries < 0:
        raise UserError(f"max_retries must be >= 0, got {max_retries}")
    on_start = on_start or (lambda s: None)
    on_done = on_done or (lambda o: None)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    units = [unit_specs(u) for u in specs]
    if not units:
        return []
    _check_paths([s for u in units for s in u])

    started_here, dashboard = connect(address, runtime_env, local_cpus)
    try:
        window = jobs if jobs is not None else capacity(num_cpus, num_gpus)
        res = ray.cluster_resources()
        packed = any(len(u) > 1 for u in units)
        local = started_here and (address or os.environ.get("RAY_ADDRESS") or "local") == "local"
        where = "local Ray instance" if local else "Ray cluster"
        log(f"ray: {where} with {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs, "
            f"{len(ray.nodes())} node(s); {window} {'task' if packed else 'run'}(s) at a time "
            f"({num_cpus:g} CPU{', %g GPU' % num_gpus if num_gpus else ''} each)"
            + (f"; dashboard {dashboard}" if dashboard else ""))
        if num_gpus > 0 and not res.get("GPU", 0):
            log("ray: no GPU in the cluster now: the runs wait until a GPU node joins "
                "(Ctrl-C to stop; --num-gpus 0 runs on CPUs)")
        task = ray.remote(_run_unit)
        n_threads = threads if threads is not None else max(1, int(num_cpus))
        return _drive(units, window, on_start, on_done, execute, execute_pack, task, n_threads,
                      num_cpus, num_gpus, max_retries)
    finally:
        if started_here:
            ray.shutdown()


def _drive(units: list[list[RunSpec]], window: int, on_start: Callable, on_done: Callable,
           execute: Callable, execute_pack: Callable, task: Any, threads: int, num_cpus: float,
           num_gpus: float, max_retries: int) -> list[RunOutcome]:
    outcomes: dict[str, RunOutcome] = {}
    todo = list(units)
    running: dict[Any, list[RunSpec]] = {}
    try:
        while todo or running:
            while todo and len(running) < window:
                unit = todo.pop(0)
                for spec in unit:
                    on_start(spec)
                name = unit[0].name + (f" (+{len(unit) - 1} packed)" if len(unit) > 1 else "")
                ref = task.options(
                    name=f"untwine:{name}", num_cpus=num_cpus, num_gpus=num_gpus,
                    max_retries=max_retries, retry_exceptions=False,
                ).remote(unit, threads, execute, execute_pack)
                running[ref] = unit
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                unit = running.pop(ref)
                try:
                    outs = ray.get(ref)
                except ray.exceptions.RayError as e:  # worker/node died max_retries + 1 times
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    why = f"ray task failed: {type(e).__name__}: {first}"
                    outs = [RunOutcome(s.name, "finished") if is_finished(s.dir, s.steps) else RunOutcome(s.name, "failed", why)
                            for s in unit]
                for out in outs:
                    outcomes[out.name] = out
                    on_done(out)
    except BaseException:
        for ref in running:
            ray.cancel(ref, force=True)
        raise
    return [outcomes[s.name] for u in units for s in u]
