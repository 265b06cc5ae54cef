"""Users' own data: arrays in memory, or a folder of images with a CSV of factor labels."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import MissingFileError, UserError
from . import _files
from .protocol import GroundTruthData


def from_arrays(
    images: np.ndarray | torch.Tensor,
    factors: np.ndarray | torch.Tensor,
    factor_names: Sequence[str],
    *,
    name: str = "custom",
    factor_sizes: Sequence[int] | None = None,
) -> GroundTruthData:
    """Wrap in-memory arrays as a dataset.

    Args:
        images: ``N x H x W``, ``N x H x W x C`` or ``N x C x H x W``; ``uint8`` (0..255) or float in
            ``[0, 1]``.
        factors: ``N x K`` non-negative integer factor indices (labels, not raw values).
        factor_names: ``K`` names.
        factor_sizes: ``K`` sizes; default ``factors.max(0) + 1``.
    """
    img = torch.as_tensor(np.asarray(images))
    if img.dim() == 3:
        img = img[:, None]
    if img.dim() != 4:
        raise ValueError(f"images must be N x H x W (x C), got shape {tuple(img.shape)}")
    if img.shape[1] not in (1, 3) and img.shape[-1] in (1, 3):
        img = img.permute(0, 3, 1, 2)
    if img.dtype != torch.uint8:
        f = img.to(torch.float32)
        if f.min() < 0 or f.max() > 1:
            raise ValueError("float images must lie in [0, 1]; pass uint8 for 0..255 data")
        img = (f * 255.0).round_().to(torch.uint8)
    img = img.contiguous()
    fac = np.asarray(factors)
    if fac.ndim == 1:
        fac = fac[:, None]
    if not np.issubdtype(fac.dtype, np.integer):
        if not np.all(np.equal(np.mod(fac, 1), 0)):
            raise ValueError("factors must be integer indices; map raw values to 0..size-1 first")
    fac = fac.astype(np.int64)
    if (fac < 0).any():
        raise ValueError("factors must be non-negative indices")
    sizes = tuple(int(s) for s in (factor_sizes if factor_sizes is not None else fac.max(0) + 1))
    if len(sizes) != fac.shape[1] or len(factor_names) != fac.shape[1]:
        raise ValueError(
            f"factors have {fac.shape[1]} columns but {len(factor_names)} names / {len(sizes)} sizes"
        )
    full = len(fac) == int(np.prod(sizes)) and _is_grid_order(fac, sizes)
    return GroundTruthData(
        name, factor_names, sizes, img, torch.from_numpy(fac), source="arrays", full_grid=full
    )


def _is_grid_order(fac: np.ndarray, sizes: Sequence[int]) -> bool:
    radix = np.cumprod((tuple(sizes[1:]) + (1,))[::-1])[::-1]
    return bool(np.array_equal(fac @ radix, np.arange(len(fac))))


def from_folder(
    folder: str | os.PathLike,
    labels_csv: str | os.PathLike | None = None,
    *,
    name: str = "custom",
    size: int = 64,
) -> GroundTruthData:
    """A folder of images plus a CSV of integer factor labels.

    Args:
        folder: the images (any format Pillow reads).
        labels_csv: a CSV with a header ``file,<factor1>,<factor2>,...`` and one row per image:
            the file name (relative to ``folder``) and non-negative integer labels. Default
            ``<folder>/labels.csv``.
        size: images are resized to ``size x size`` (Pillow, bilinear with antialiasing).

    Images are grey (``1 x size x size``) if every file is greyscale, else RGB (``3 x ...``).
    Factor sizes are ``max label + 1`` per column.
    """
    from PIL import Image

    root = Path(folder).expanduser()
    csv_path = Path(labels_csv).expanduser() if labels_csv is not None else root / "labels.csv"
    if not root.is_dir():
        raise MissingFileError(f"image folder {root} does not exist")
    if not csv_path.is_file():
        raise MissingFileError(
            f"labels file {csv_path} does not exist; write a CSV with a header file,<factor>,... "
            "and one row per image"
        )
    with _files.reading(csv_path, "Write it as UTF-8 CSV text"), open(csv_path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if not rows or len(rows[0]) < 2 or rows[0][0].strip().lower() != "file":
        raise UserError(f"{csv_path}: the header must be file,<factor1>,...; got {rows[0] if rows else 'nothing'}")
    factor_names = [c.strip() for c in rows[0][1:]]
    if len(rows) < 2:
        raise UserError(f"{csv_path}: no image rows after the header")
    files, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise UserError(f"{csv_path}, line {line}: {len(row)} columns, the header has {len(rows[0])}")
        try:
            values = [int(c) for c in row[1:]]
        except ValueError:
            raise UserError(f"{csv_path}, line {line}: labels must be integers, got {row[1:]}") from None
        if min(values) < 0:
            raise UserError(f"{csv_path}, line {line}: labels must be non-negative, got {values}")
        path = root / row[0].strip()
        if not path.is_file():
            raise MissingFileError(f"{csv_path}, line {line}: image {path} does not exist")
        files.append(path)
        labels.append(values)
    pics = []
    for path in files:
        try:
            with Image.open(path) as im:
                im.load()
                pics.append(im.copy())
        except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError... for damaged files
            raise UserError(f"{path}: not an image Pillow can read ({type(e).__name__}: {e})") from e
    grey = all(p.mode in ("1", "L", "LA") for p in pics)
    mode = "L" if grey else "RGB"
    arr = np.stack(
        [np.asarray(p.convert(mode).resize((size, size), Image.Resampling.BILINEAR)) for p in pics]
    )
    data = from_arrays(arr, np.asarray(labels, np.int64), factor_names, name=name)
    data.source = "folder"
    return data
