"""Finding, checking and downloading official dataset files (shared by the dataset modules)."""

from __future__ import annotations

import errno
import os
import hashlib
import shutil
import struct
import zipfile
import zlib
from contextlib import contextmanager
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import MissingFileError, UserError, check_choice
from .cache import build_lock, building, cache_dir, load_npy, open_npy


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where official files are looked for: ``root``, else ``$UNTWINE_DATA``, else the cache dir."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("UNTWINE_DATA")
    return Path(env).expanduser() if env else cache_dir()


def candidates(filenames: Sequence[str], root: Path | None, subdir: str) -> list[Path]:
    """Where an official file is looked for, in order: ``<root>/<file>``, ``<root>/<subdir>/<file>``.

    ``root`` defaults to ``$UNTWINE_DATA``, else the cache dir (see :func:`data_root`).
    """
    base = data_root(root)
    return [p for name in filenames for p in (base / name, base / subdir / name)]


def find(filenames: Sequence[str], root: Path | None, subdir: str) -> Path | None:
    """The first existing candidate path, or ``None``."""
    return next((p for p in candidates(filenames, root, subdir) if p.is_file()), None)


def missing(what: str, filenames: Sequence[str], root: Path | None, subdir: str, fix: str) -> FileNotFoundError:
    """A ``FileNotFoundError`` naming every path looked at and the command that fixes it."""
    looked = ", ".join(str(p) for p in candidates(filenames, root, subdir))
    return MissingFileError(f"{what}: file not found; looked at {looked}. Fix: {fix}")


def md5sum(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: Path, md5: str | None, how_by_hand: str) -> Path:
    """Download ``url`` to ``dest`` (atomically, with a progress bar) and check its MD5.

    Raises ``OSError`` (no network: the message says how to place the file by hand) or
    ``ValueError`` (checksum mismatch: the download is deleted, never used).
    """
    if dest.is_file() and (md5 is None or md5sum(dest) == md5):
        return dest
    try:
        with building(dest) as tmp:
            with urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as f:
                total = int(r.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar:
                    for block in iter(lambda: r.read(1 << 20), b""):
                        f.write(block)
                        bar.update(len(block))
            if md5 is not None:
                got = md5sum(tmp)
                if got != md5:
                    raise UserError(
                        f"download of {url} has MD5 {got}, expected {md5}; the file was deleted. "
                        f"Retry, or {how_by_hand}"
                    )
    except (urllib.error.URLError, OSError) as e:
        raise OSError(f"could not download {url} ({e}). {how_by_hand}") from e
    return dest


def ensure_npy(
    path: Path,
    shape: tuple[int, ...],
    dtype: str,
    fill: Callable[[np.ndarray], None],
    force: bool = False,
) -> np.ndarray:
    """Memory-map the ``.npy`` cache at ``path``, building it first with ``fill(memmap)`` if needed.

    The cache is written under ``<path>.partial`` and renamed only when ``fill`` returns, so an
    interrupted build is never used: the leftover ``.partial`` is deleted and the build redone.
    Processes that need it at once build it once (:func:`~untwine.data.cache.build_lock`).
    """
    if force and path.exists():
        path.unlink()
    if not path.is_file():
        with build_lock(path):
            if not path.is_file():  # another process may have built it while this one waited
                _build_npy(path, shape, dtype, fill)
    return load_npy(path, shape, dtype)


def _build_npy(path: Path, shape: tuple[int, ...], dtype: str, fill: Callable[[np.ndarray], None]) -> None:
    with building(path) as tmp:  # removes a leftover .partial first
        need = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if free_bytes(path.parent) < need:
            raise OSError(
                f"not enough disk space for the cache {path} ({need / 2**30:.1f} GiB needed); "
                "free some space or point $UNTWINE_CACHE at a bigger disk"
            )
        arr = open_npy(tmp, shape, dtype)
        fill(arr)
        arr.flush()
        del arr


def as_tensor(arr: np.ndarray) -> torch.Tensor:
    """A tensor sharing memory with a (read-only) memmap; no copy."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return torch.from_numpy(arr)


def grid_factors(sizes: Sequence[int]) -> torch.Tensor:
    """``prod(sizes) x K`` int64 factor indices in mixed-radix order (last factor fastest)."""
    n = int(np.prod(sizes))
    return torch.from_numpy(np.stack(np.unravel_index(np.arange(n), tuple(sizes)), 1).astype(np.int64))


def cache_path(subdir: str, name: str) -> Path:
    return cache_dir() / subdir / name


def free_bytes(path: Path) -> int:
    p = path
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


@contextmanager
def reading(path: Path, fix: str) -> Iterator[None]:
    """Turn any error of a damaged data file read inside the block (``BadZipFile``, ``zlib.error``,
    an ``OSError`` from h5py or Pillow, a ``ValueError`` that does not name the file...) into a
    ``ValueError`` naming ``path``, what went wrong and ``fix``. ``FileNotFoundError`` and
    ``ValueError``s that already name the file pass through unchanged."""
    try:
        yield
    except FileNotFoundError:
        raise
    except ValueError as e:
        if str(path) in str(e) or type(e).__name__ == "DiskFullError":
            raise
        raise UserError(f"{path}: damaged or not the expected format ({e}). {fix}") from e
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, struct.error, KeyError, IndexError,
            RuntimeError, TypeError) as e:
        if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise UserError(f"{path}: damaged or not the expected format ({type(e).__name__}: {e}). {fix}") from e


def pick_source(name: str, source: str | None, sources: Sequence[str],
                present: Callable[[str, Path | None], bool], root: Path | None) -> str:
    """The source a loader reads: ``source`` itself if it is one of ``sources`` (else a
    :class:`UserError` naming them, after ``NAME:``), or for ``None`` the first of ``sources`` that
    ``present(s, root)`` finds (their order puts official files before offline fallbacks)."""
    if source is None:
        return next(s for s in sources if present(s, root))
    check_choice(source, sources, "source", where=name)
    return source
