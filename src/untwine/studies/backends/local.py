"""The local backend: runs in this process (``jobs=1``) or in a pool of ``jobs`` worker processes.

A backend only decides *where* :func:`untwine.studies.execute.execute_run` runs. It calls
``on_start(spec)`` when a run is handed to a worker and ``on_done(outcome)`` when it returns.
A unit of work is one :class:`~untwine.studies.execute.RunSpec` or a list of them (a pack, see
``sweep(..., pack=K)``): a pack goes to one worker as a whole
(:func:`untwine.studies.execute.execute_pack`), and the callbacks still fire once per run.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence

from . import check_jobs
from ..execute import RunOutcome, RunSpec, Unit, execute_pack, execute_run, execute_unit, is_finished, unit_specs


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def _lost(specs: list[RunSpec], why: str) -> list[RunOutcome]:
    """Outcomes of a unit whose worker died: runs it had already finished count as finished."""
    return [RunOutcome(s.name, "finished") if is_finished(s.dir, s.steps) else RunOutcome(s.name, "failed", why)
            for s in specs]


def run_all(
    specs: Sequence[Unit],
    jobs: int = 1,
    on_start: Callable[[RunSpec], None] | None = None,
    on_done: Callable[[RunOutcome], None] | None = None,
    execute: Callable[[RunSpec], RunOutcome] = execute_run,
    execute_pack: Callable[[list[RunSpec]], list[RunOutcome]] = execute_pack,
) -> list[RunOutcome]:
    """Run every unit (a spec, or a list of specs trained as one pack); return the outcomes of
    all runs in order.

    ``jobs == 1`` runs sequentially in this process; ``jobs > 1`` keeps at most ``jobs`` units in
    flight in fresh (spawned) worker processes, each with ``cpu_count // jobs`` torch threads.
    A single run goes to ``execute(spec)``, a pack to ``execute_pack(specs)``.
    ``KeyboardInterrupt`` cancels pending units and propagates (finished runs stay on disk).
    """
    check_jobs(jobs)
    on_start = on_start or (lambda s: None)
    on_done = on_done or (lambda o: None)
    units = [unit_specs(u) for u in specs]
    order = [s.name for u in units for s in u]
    outcomes: dict[str, RunOutcome] = {}

    def finish(outs: list[RunOutcome]) -> None:
        for out in outs:
            outcomes[out.name] = out
            on_done(out)

    if jobs <= 1 or len(units) <= 1:
        for unit in units:
            for spec in unit:
                on_start(spec)
            finish(execute_unit(unit, execute, execute_pack))
        return [outcomes[n] for n in order]

    threads = max(1, (os.cpu_count() or 1) // jobs)
    ctx = multiprocessing.get_context("spawn")

    def new_pool() -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
        )

    pool = new_pool()
    todo = list(units)
    running: dict[cf.Future, list[RunSpec]] = {}
    try:
        while todo or running:
            while todo and len(running) < jobs:
                unit = todo.pop(0)
                for spec in unit:
                    on_start(spec)
                running[pool.submit(execute_unit, unit, execute, execute_pack)] = unit
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                unit = running.pop(fut)
                try:
                    outs = fut.result()
                except Exception as e:  # the worker died (killed, out of memory): record and go on
                    outs = _lost(unit, f"worker process failed: {type(e).__name__}: {e}")
                finish(outs)
            if any(isinstance(fut.exception(), BrokenProcessPool) for fut in done):
                pool.shutdown(wait=False, cancel_futures=True)  # a dead worker breaks the pool
                todo = [running.pop(f) for f in list(running)] + todo
                pool = new_pool()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [outcomes[n] for n in order]
