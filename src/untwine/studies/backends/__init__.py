"""Sweep backends: where :func:`untwine.studies.execute.execute_run` runs.

A backend is a function ``run_all(units, jobs, on_start=None, on_done=None) -> list[RunOutcome]``.
Each unit is a :class:`~untwine.studies.execute.RunSpec` (run it with ``execute_run(spec)``) or a
list of them (a pack, ``sweep --pack K``: run it with ``execute_pack(specs)``), anywhere: this
process, a process pool, a cluster. It calls ``on_start(spec)`` / ``on_done(outcome)`` per run in
the driver process and returns the outcomes. All run logic (skip, resume, failure records) lives
in ``execute_run`` / ``execute_pack``.
"""

from __future__ import annotations

import importlib
from typing import Callable

from ...errors import UserError, check_choice

# name -> module defining run_all (imported on demand: optional backends need extra packages)
BACKENDS: dict[str, str] = {
    "local": "untwine.studies.backends.local",
    "ray": "untwine.studies.backends.ray",
}


def check_jobs(jobs: int | None) -> None:
    """The one rule for a backend's ``jobs`` (runs or packs in flight at once): ``None`` (the
    backend decides) or >= 1; a ``UserError`` otherwise. :func:`~untwine.studies.sweep.sweep`
    checks it before writing anything; every ``run_all`` checks it for direct callers."""
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")


def names() -> list[str]:
    return list(BACKENDS)


def get(name: str) -> Callable:
    """The ``run_all`` function of backend ``name``."""
    check_choice(name, BACKENDS, "sweep backend")
    try:
        module = importlib.import_module(BACKENDS[name])
    except ModuleNotFoundError as e:
        if e.name == BACKENDS[name]:
            raise UserError(f"backend {name!r} is not available in this version") from None
        raise UserError(
            f"backend {name!r} needs the package {e.name!r}: pip install 'untwine[{name}]'"
        ) from None
    return module.run_all
