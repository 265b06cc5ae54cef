"""How untwine writes values in names, shared by every layer (this module imports nothing of untwine).

:func:`format_value` is the one spelling of a hyperparameter value: in run folder names
(``beta=4``, :func:`untwine.studies.run_name`), in ``results.csv``, and in the report's tables,
figures and captions.
"""

from __future__ import annotations


def format_value(v: float | int) -> str:
    """A hyperparameter value as it appears in folder names: ``4``, ``0.5``, ``0.001``, ``1e-05``."""
    f = float(v)
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    return repr(f)
