"""The local backend: runs in this process (``jobs=1``) or in a pool of ``jobs`` worker processes.

A backend only decides *where* :func:`untwine.studies.sweep.execute_run` runs. It calls
``on_start(spec)`` when a run is handed to a worker and ``on_done(outcome)`` when it returns.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Sequence

from ..sweep import RunOutcome, RunSpec, execute_run


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def run_all(
    specs: Sequence[RunSpec],
    jobs: int = 1,
    on_start: Callable[[RunSpec], None] | None = None,
    on_done: Callable[[RunOutcome], None] | None = None,
    execute: Callable[[RunSpec], RunOutcome] = execute_run,
) -> list[RunOutcome]:
    """Run every spec; return the outcomes in ``specs`` order.

    ``jobs == 1`` runs sequentially in this process; ``jobs > 1`` keeps at most ``jobs`` runs in
    flight in fresh (spawned) worker processes, each with ``cpu_count // jobs`` torch threads.
    ``KeyboardInterrupt`` cancels pending runs and propagates (finished runs stay on disk).
    """
    on_start = on_start or (lambda s: None)
    on_done = on_done or (lambda o: None)
    outcomes: dict[str, RunOutcome] = {}
    if jobs <= 1 or len(specs) <= 1:
        for spec in specs:
            on_start(spec)
            out = execute(spec)
            outcomes[spec.name] = out
            on_done(out)
        return [outcomes[s.name] for s in specs]

    threads = max(1, (os.cpu_count() or 1) // jobs)
    ctx = multiprocessing.get_context("spawn")

    def new_pool() -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
        )

    pool = new_pool()
    todo = list(specs)
    running: dict[cf.Future, RunSpec] = {}
    try:
        while todo or running:
            while todo and len(running) < jobs:
                spec = todo.pop(0)
                on_start(spec)
                running[pool.submit(execute, spec)] = spec
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                spec = running.pop(fut)
                try:
                    out = fut.result()
                except Exception as e:  # the worker died (killed, out of memory): record and go on
                    out = RunOutcome(spec.name, "failed", f"worker process failed: {type(e).__name__}: {e}")
                outcomes[spec.name] = out
                on_done(out)
            if any(isinstance(fut.exception(), BrokenProcessPool) for fut in done):
                pool.shutdown(wait=False, cancel_futures=True)  # a dead worker breaks the pool
                todo = [running.pop(f) for f in list(running)] + todo
                pool = new_pool()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [outcomes[s.name] for s in specs]
