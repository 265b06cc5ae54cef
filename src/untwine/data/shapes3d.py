"""3DShapes (Burgess & Kim 2018): a shape in a room, 6 factors, 480,000 RGB 64x64 images.

Official file ``3dshapes.h5``: ``images`` (``480000 x 64 x 64 x 3`` uint8) and ``labels``
(``480000 x 6`` float, the factor *values*). Factor sizes ``[10, 10, 10, 8, 4, 15]``: floor hue,
wall hue, object hue, scale, shape, orientation. Values are mapped to indices per column (sorted
unique values -> 0..size-1; a column with a different number of values is an error). The first
load converts the file in chunks to ``N x 3 x 64 x 64`` and ``N x 6`` ``.npy`` caches that are
memory-mapped afterwards (peak memory: one chunk, about 50 MB, plus the labels).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import UserError
from . import _files
from .cache import load_npy
from .protocol import GroundTruthData
from .registry import DatasetSpec, register

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
FILES = ("3dshapes.h5",)
URL, MD5 = "https://storage.googleapis.com/3d-shapes/3dshapes.h5", "099a2078d58cec4daad0702c55d06868"
CHUNK = 4096
_FIX = "run `untwine data download shapes3d` or place 3dshapes.h5 there by hand (see docs/data.md)"


def cache_files() -> tuple[Path, Path]:
    """``(images N x 3 x 64 x 64 uint8, factors N x 6 int64)`` cache paths."""
    return _files.cache_path("shapes3d", "3dshapes.nchw.npy"), _files.cache_path("shapes3d", "3dshapes.factors.npy")


def labels_to_indices(labels: np.ndarray, sizes: Sequence[int], where: str = "") -> np.ndarray:
    """``N x K`` factor values -> ``N x K`` int64 indices (rank among the column's sorted values)."""
    if labels.ndim != 2 or labels.shape[1] != len(sizes):
        raise UserError(f"{where}: 'labels' has shape {labels.shape}; expected N x {len(sizes)}")
    out = np.empty(labels.shape, np.int64)
    for k, size in enumerate(sizes):
        values, out[:, k] = np.unique(labels[:, k], return_inverse=True)
        if len(values) != size:
            raise UserError(
                f"{where}: factor {k} ({FACTOR_NAMES[k] if len(sizes) == 6 else k}) has {len(values)} "
                f"distinct values, expected {size}; not the official 3dshapes.h5 or a damaged file"
            )
    return out


def load_official(
    root: str | Path | None = None, *, factor_sizes: Sequence[int] | None = None, force: bool = False
) -> GroundTruthData:
    """Load ``3dshapes.h5`` (converted once to memory-mapped caches).

    Args:
        root: folder holding ``3dshapes.h5`` (default ``$UNTWINE_DATA``, else the cache dir; also
            ``<root>/shapes3d/``). Once the caches exist the ``.h5`` may be deleted.
        factor_sizes: override ``[10, 10, 10, 8, 4, 15]`` (small files in the official layout).
        force: rebuild the caches.
    """
    sizes = tuple(int(s) for s in (factor_sizes if factor_sizes is not None else FACTOR_SIZES))
    rootp = Path(root).expanduser() if root is not None else None
    img_cache, fac_cache = cache_files()
    src = _files.find(FILES, rootp, "shapes3d")
    cached = img_cache.is_file() and fac_cache.is_file() and not force
    if src is None and not cached:
        raise _files.missing("shapes3d", FILES, rootp, "shapes3d", _FIX)
    if src is None:
        fac = load_npy(fac_cache)
        n = fac.shape[0]
        imgs = load_npy(img_cache, (n, 3, 64, 64), "uint8")
    else:
        import h5py

        with _files.reading(src, f"Delete it and {_FIX}"), h5py.File(src, "r") as h5:
            for key in ("images", "labels"):
                if key not in h5:
                    raise UserError(f"{src}: no dataset {key!r} (it holds {sorted(h5)}); not a 3dshapes file")
            images, labels = h5["images"], h5["labels"]
            n = int(images.shape[0])
            if images.dtype != np.uint8 or tuple(images.shape[1:]) != (64, 64, 3):
                raise UserError(f"{src}: 'images' has shape {images.shape} / {images.dtype}; expected N x 64 x 64 x 3 uint8")
            if labels.shape[0] != n:
                raise UserError(f"{src}: {n} images but {labels.shape[0]} label rows")
            if n != math.prod(sizes):
                raise UserError(
                    f"{src}: {n} images, but factor sizes {list(sizes)} give {math.prod(sizes)}; "
                    "the file is truncated or not 3dshapes"
                )

            def fill_factors(out: np.ndarray) -> None:
                out[:] = labels_to_indices(np.asarray(labels[:]), sizes, str(src))

            def fill_images(out: np.ndarray) -> None:
                with tqdm(total=n, unit="img", desc="3dshapes -> cache", disable=None) as bar:
                    for start in range(0, n, CHUNK):
                        chunk = images[start : start + CHUNK]
                        out[start : start + len(chunk)] = chunk.transpose(0, 3, 1, 2)
                        bar.update(len(chunk))

            fac = _files.ensure_npy(fac_cache, (n, len(sizes)), "int64", fill_factors, force=force)
            imgs = _files.ensure_npy(img_cache, (n, 3, 64, 64), "uint8", fill_images, force=force)
    if fac.shape != (n, len(sizes)) or math.prod(sizes) != n:
        raise UserError(f"cache {fac_cache} has shape {fac.shape}, expected {(n, len(sizes))}; delete it and it will be rebuilt")
    radix = np.cumprod((sizes[1:] + (1,))[::-1])[::-1]
    grid = bool(np.array_equal(np.asarray(fac) @ radix, np.arange(n)))
    data = GroundTruthData(
        "shapes3d", FACTOR_NAMES if len(sizes) == 6 else [f"f{k}" for k in range(len(sizes))], sizes,
        _files.as_tensor(imgs), torch.from_numpy(np.array(fac)), source="official", full_grid=grid,
    )
    data.files = {"source": src, "cache": img_cache}  # type: ignore[attr-defined]
    return data


def download(root: str | Path | None = None) -> Path:
    """Fetch ``3dshapes.h5`` (255 MiB) into ``root``, MD5-checked."""
    dest = _files.data_root(Path(root).expanduser() if root is not None else None) / FILES[0]
    return _files.fetch(URL, dest, MD5, f"download {URL} in a browser and place it at {dest}")


def _present(source: str, root: Path | None) -> bool:
    img_cache, fac_cache = cache_files()
    return _files.find(FILES, root, "shapes3d") is not None or (img_cache.is_file() and fac_cache.is_file())


register(
    DatasetSpec(
        name="shapes3d",
        factor_names=FACTOR_NAMES,
        factor_sizes=FACTOR_SIZES,
        sources=("official",),
        load=lambda source, root: load_official(root),
        present=_present,
        description="3D shape in a room (DeepMind 3DShapes)",
        download=download,
    )
)
