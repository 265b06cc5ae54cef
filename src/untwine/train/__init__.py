"""Training: ``train(RunConfig) -> Run``, run folders, checkpoints, ``load_run(dir) -> Run``.

The package itself is callable, so ``untwine.train(config)`` is ``untwine.train.train(config)``.
"""

import sys
import types

from .config import RunConfig
from .loop import train, train_packed
from .run import Run, load_run

__all__ = ["Run", "RunConfig", "load_run", "train", "train_packed"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):  # noqa: D102 - see train()
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
