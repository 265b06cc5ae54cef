"""Caches built once and never trusted half-written.

A cache file is written to ``<name>.partial`` and renamed into place only when complete, so an
interrupted build leaves a ``.partial`` file (detected, deleted and rebuilt), never a truncated
cache under the final name. ``.npy`` caches are memory-mapped on load.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


@contextmanager
def building(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; move it into place on success.

    On any exception (Ctrl-C included) the partial file is removed and the error propagates.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(final)
    if tmp.exists():
        tmp.unlink()
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def open_npy(path: str | os.PathLike, shape: tuple[int, ...], dtype: str | np.dtype) -> np.lib.format.open_memmap:
    """Create a writable ``.npy`` memmap of ``shape``/``dtype`` at ``path`` (use inside ``building``)."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=shape)


def load_npy(
    path: str | os.PathLike, shape: tuple[int, ...] | None = None, dtype: str | np.dtype | None = None
) -> np.ndarray:
    """Memory-map a finished ``.npy`` cache, checking shape/dtype; a mismatch raises ``ValueError``
    telling the user to delete the file (it will be rebuilt)."""
    arr = np.load(path, mmap_mode="r")
    if (shape is not None and tuple(arr.shape) != tuple(shape)) or (
        dtype is not None and arr.dtype != np.dtype(dtype)
    ):
        raise ValueError(
            f"cache {path} has shape {arr.shape} / {arr.dtype}, expected {shape} / {dtype}; "
            f"delete it and it will be rebuilt"
        )
    return arr
