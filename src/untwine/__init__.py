"""untwine: learn and measure disentangled representations.

Pipeline: ``untwine.data`` (datasets with ground-truth factors) -> ``untwine.models`` and
``untwine.objectives`` -> ``untwine.train`` (the loop, run folders) -> ``untwine.metrics`` ->
``untwine.studies`` (sweeps) -> ``untwine.report``.
"""

from __future__ import annotations

from typing import Any

from . import hooks
from ._version import __version__ as __version__  # re-exported

# `untwine.train` is the training subpackage, itself callable: untwine.train(config) -> Run;
# so is `untwine.pretrained`: untwine.pretrained(NAME) -> Run of a shipped model.
_LAZY = {
    "load_run": ("untwine.train", "load_run"),
    "RunConfig": ("untwine.train", "RunConfig"),
    "evaluate": ("untwine.metrics", "evaluate"),
}


def _tensorboard_views(*args: Any) -> dict[str, Any]:
    """The built-in TensorBoard views (MIG, modularity, traversals: :mod:`untwine.report.tensorboard`),
    imported when a run first shows them."""
    from .report.tensorboard import views

    return views(*args)


def _score_names(text: str) -> str:
    from .metrics.evaluate import score_names

    return score_names(text)


def _run_scores(*args: Any) -> dict[str, Any]:
    from .metrics.evaluate import run_scores

    return run_scores(*args)


# Hooks put from above (untwine.hooks): every process that imports untwine gets them here.
hooks.tensorboard_views.append(_tensorboard_views)
hooks.score_names, hooks.run_scores = _score_names, _run_scores


def __getattr__(name: str) -> Any:  # lazy: `import untwine` stays fast (no torch until needed)
    if name in ("train", "pretrained"):
        import importlib

        return importlib.import_module(f"untwine.{name}")
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'untwine' has no attribute {name!r}")
