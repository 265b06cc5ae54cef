"""untwine: learn and measure disentangled representations.

Pipeline: ``untwine.data`` (datasets with ground-truth factors) -> ``untwine.models`` and
``untwine.objectives`` -> ``untwine.train`` (the loop, run folders) -> ``untwine.metrics`` ->
``untwine.studies`` (sweeps) -> ``untwine.report``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# `untwine.train` is the training subpackage, itself callable: untwine.train(config) -> Run;
# so is `untwine.pretrained`: untwine.pretrained(NAME) -> Run of a shipped model.
_LAZY = {
    "load_run": ("untwine.train", "load_run"),
    "RunConfig": ("untwine.train", "RunConfig"),
    "evaluate": ("untwine.metrics", "evaluate"),
}


def __getattr__(name: str) -> Any:  # lazy: `import untwine` stays fast (no torch until needed)
    if name in ("train", "pretrained"):
        import importlib

        return importlib.import_module(f"untwine.{name}")
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'untwine' has no attribute {name!r}")
