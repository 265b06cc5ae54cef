"""Studies: a TOML file of datasets x models x grids x seeds, swept into run folders + results.csv."""

from .results import collect, write_results
from .study import ModelGrid, Study, StudyError, load_study, parse_study, run_name
from .sweep import RunOutcome, RunSpec, SweepResult, execute_run, is_finished, sweep

__all__ = [
    "ModelGrid",
    "RunOutcome",
    "RunSpec",
    "Study",
    "StudyError",
    "SweepResult",
    "collect",
    "execute_run",
    "is_finished",
    "load_study",
    "parse_study",
    "run_name",
    "sweep",
    "write_results",
]
