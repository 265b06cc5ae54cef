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

from ..errors import DiskFullError, UserError, is_disk_full


def cache_dir() -> Path:
    """Where untwine keeps built caches: ``$UNTWINE_CACHE`` or ``~/.cache/untwine``."""
    return Path(os.environ.get("UNTWINE_CACHE", Path.home() / ".cache" / "untwine")).expanduser()


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


@contextmanager
def build_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (waiting for it) while ``path`` is built, so that
    of several processes that find a cache missing at once (the runs of a sweep on a fresh
    machine) one builds it and the others wait, then find it built: check ``path`` again inside.
    POSIX ``flock``; where ``fcntl`` does not exist the block runs unlocked."""
    final = Path(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.with_name(final.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def building(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; move it into place on success.

    On any exception (Ctrl-C included) the partial file is removed and the error propagates; a full
    disk becomes :class:`~untwine.errors.DiskFullError` saying so.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(final)
    if tmp.exists():
        tmp.unlink()
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException as e:
        if tmp.exists():
            tmp.unlink()
        if is_disk_full(e):
            kept = f"the previous {final.name} is intact" if final.exists() else "nothing was written"
            raise DiskFullError(
                f"no space left on the device while writing the cache {final}; {kept}. Free some disk "
                "space (or point $UNTWINE_CACHE at a bigger disk), then run the same command again"
            ) from e
        raise


def open_npy(path: str | os.PathLike, shape: tuple[int, ...], dtype: str | np.dtype) -> np.lib.format.open_memmap:
    """Create a writable ``.npy`` memmap of ``shape``/``dtype`` at ``path`` (use inside ``building``)."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=shape)


def load_npy(
    path: str | os.PathLike, shape: tuple[int, ...] | None = None, dtype: str | np.dtype | None = None
) -> np.ndarray:
    """Memory-map a finished ``.npy`` cache, checking shape/dtype; a mismatch raises ``ValueError``
    telling the user to delete the file (it will be rebuilt)."""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as e:  # truncated or overwritten
        if isinstance(e, FileNotFoundError):
            raise
        raise UserError(f"cache {path} is damaged ({e}); delete it and it will be rebuilt") from None
    if (shape is not None and tuple(arr.shape) != tuple(shape)) or (
        dtype is not None and arr.dtype != np.dtype(dtype)
    ):
        raise UserError(
            f"cache {path} has shape {arr.shape} / {arr.dtype}, expected {shape} / {dtype}; "
            f"delete it and it will be rebuilt"
        )
    return arr
