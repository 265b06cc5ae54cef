"""Hooks: the few places where a lower layer runs code of a higher one (this module imports nothing
of untwine).

A layer imports only the layers below it (docs/architecture.md). Where a lower layer must call
up, it calls the functions listed here, and the higher layer's code is put in the list from above:
the built-in hooks by the package's entry, ``untwine/__init__.py``, which every process that uses
untwine imports first (the ``untwine`` command, the Python API, a sweep's worker processes and
Ray tasks), so all of them have the same hooks.

``tensorboard_views``: what a run with ``tensorboard`` on shows at each evaluation besides the
rows of ``metrics.jsonl`` (:class:`untwine.train.tensorboard.TensorBoardLog`). Each is called as
``view(run, data, val_x, val_factors, step)`` (``run``: a :class:`untwine.train.Run` of the model
being trained, its ``summary["val"]`` the evaluation's row; ``val_x``: the validation images on
the device, ``val_factors`` their factors) and returns ``{tag: value}``: a number is written as a
scalar, an ``H x W x 3`` uint8 array as an image. The built-in one,
:func:`untwine.report.tensorboard.views`, gives ``metrics/mig``, ``metrics/modularity`` and
``traversals``. Views must not draw from torch's or numpy's global random streams.

``run_scores`` and ``score_names``: what scores a run while it trains (``RunConfig.score``: suite
metrics at each evaluation, written to ``metrics.jsonl`` as ``split = "score"`` rows).
``score_names(text)`` gives the canonical comma-separated metric names of ``text``, raising a
``UserError`` for an unknown one (so a bad name fails when the run is configured, not at its first
evaluation); ``run_scores(run, data, names)`` scores a :class:`untwine.train.Run` of the model being
trained on ``data`` and returns ``{result key: number}`` plus ``"<key>_per_factor": [...]``. The
built-ins are :func:`untwine.metrics.evaluate.score_names` and :func:`~untwine.metrics.evaluate.run_scores`;
they must not draw from torch's or numpy's global random streams (training goes on unchanged).
"""

from __future__ import annotations

from typing import Any, Callable

TensorBoardView = Callable[..., "dict[str, Any]"]

tensorboard_views: list[TensorBoardView] = []

ScoreNames = Callable[[str], str]
RunScores = Callable[..., "dict[str, Any]"]

score_names: ScoreNames | None = None
run_scores: RunScores | None = None
