"""Users' own data: arrays in memory, or a folder of images with a CSV of factor labels."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

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


def from_folder(folder: str | os.PathLike, labels_csv: str | os.PathLike | None = None) -> GroundTruthData:
    """A folder of images plus a CSV (``file,<factor1>,<factor2>,...``) of integer labels."""
    raise NotImplementedError("from_folder is being written")
