"""Scream-dSprites (disentanglement_lib's ``scream_dsprites``): dSprites inverted on The Scream.

Per image: a random 64x64 crop ``s`` of the Scream image (thumbnailed to fit 350 x 274 px,
width x height, as disentanglement_lib does with ``PIL.Image.thumbnail``; values in ``[0, 1]``)
and a random colour ``c`` (each channel uniform(0, 1)) give the background ``b = (s + c) / 2``;
where the sprite is on the pixels are inverted, ``1 - b``. Crop corners are uniform over
``[0, H - 64) x [0, W - 64)`` (disentanglement_lib's ``randint(0, H - 64)``). Factors, sizes and
grid order are dSprites'; images are ``uint8`` ``N x 3 x 64 x 64`` (quantised to 1/255).

The image file is not shipped and never downloaded: put ``scream.jpg`` (the JPEG of The Scream
that disentanglement_lib uses, :data:`SCREAM_URL`) in the data root (``--root``,
``$UNTWINE_DATA``, else the cache dir) or in ``<root>/scream/``. Without it, loading raises
``MissingFileError`` (a ``FileNotFoundError``) naming those paths, and ``untwine data list``
shows no source as present.

Crop and colour are a fresh draw each time an image is produced; training batches key them on
the sampler's rows, so a run is deterministic given its seed and resumes bit-identically (see
:mod:`untwine.data._sprite_variants`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import UserError
from . import _files, dsprites
from ._sprite_variants import Draws, SpriteVariant, load_variant, variant_spec
from .registry import register

NAME = "scream-dsprites"
SCREAM_FILE = "scream.jpg"
SUBDIR = "scream"
SCREAM_URL = "https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg"
#: ``PIL.Image.thumbnail`` box (width, height), disentanglement_lib's.
THUMBNAIL = (350, 274)
FIX = (
    f"put {SCREAM_FILE} (The Scream, e.g. {SCREAM_URL}, downloaded in a browser) at one of those "
    f"paths: the data root (--root or a run's data_root, else $UNTWINE_DATA, else the cache dir) or "
    f"its {SUBDIR}/ subfolder; untwine never downloads it"
)


def find_scream(root: Path | None = None) -> Path | None:
    """``<root>/scream.jpg`` or ``<root>/scream/scream.jpg`` if present (root: see ``data_root``)."""
    return _files.find([SCREAM_FILE], root, SUBDIR)


def read_scream(path: Path) -> np.ndarray:
    """The Scream as disentanglement_lib uses it: thumbnailed to fit :data:`THUMBNAIL`, RGB,
    ``3 x H x W`` float32 in ``[0, 1]``. Smaller than 65 px on a side -> ``UserError``."""
    from PIL import Image

    path = Path(path)
    with _files.reading(path, f"Replace it: {FIX}"):
        with Image.open(path) as im:
            im.thumbnail(THUMBNAIL)  # before convert, as disentanglement_lib (JPEG draft scaling)
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    if arr.shape[0] < 65 or arr.shape[1] < 65:
        raise UserError(
            f"{path}: {arr.shape[1]} x {arr.shape[0]} px after thumbnailing to fit {THUMBNAIL[0]} x "
            f"{THUMBNAIL[1]}; random 64x64 crops need at least 65 x 65. {FIX}"
        )
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


class ScreamDSprites(SpriteVariant):
    """dSprites sprites as inverted pixels on a random crop of The Scream mixed with a random colour.

    ``scream``: ``3 x H x W`` float32 in ``[0, 1]`` (:func:`read_scream`), ``H, W >= 65``.
    """

    SALT = 0x5C4EA

    def __init__(self, name: str, bits: np.ndarray, sizes: Sequence[int], source: str, scream: np.ndarray) -> None:
        super().__init__(name, bits, sizes, source)
        if scream.ndim != 3 or scream.shape[0] != 3 or min(scream.shape[1:]) < 65:
            raise ValueError(f"scream must be 3 x H x W with H, W >= 65, got {scream.shape}")
        self.scream = np.asarray(scream, dtype=np.float32)
        # every 64x64 window of 255 * scream / 2, indexed [top, left] -> 3 x 64 x 64 (a view, no copy)
        half = self.scream * np.float32(127.5)
        self._windows = np.moveaxis(sliding_window_view(half, (64, 64), axis=(1, 2)), 0, 2)

    def compose(self, sprite: np.ndarray, draws: Draws) -> np.ndarray:
        _, h, w = self.scream.shape
        u = draws.uniform(5)  # crop top, crop left, colour r, g, b
        top = (u[:, 0] * (h - 64)).astype(np.int64)  # uniform on 0 .. h - 65
        left = (u[:, 1] * (w - 64)).astype(np.int64)
        colour = (u[:, 2:] * 127.5).astype(np.float32)[:, :, None, None]  # 255 c / 2, n x 3 x 1 x 1
        background = self._windows[top, left] + colour  # 255 (crop + c) / 2, n x 3 x 64 x 64
        np.subtract(np.float32(255.0), background, out=background, where=sprite[:, None].astype(bool))
        background += np.float32(0.5)  # >= 0.5: truncation rounds to the nearest level
        return background.astype(np.uint8)


def load(
    source: str | None = None, root: str | Path | None = None, *,
    sizes: Sequence[int] = dsprites.FACTOR_SIZES, progress: bool = True,
) -> ScreamDSprites:
    """Scream-dSprites on dSprites' ``source`` (``None``: official file if present, else procedural).

    Needs ``scream.jpg`` (see the module docstring): without it ``MissingFileError`` names every
    path looked at. ``sizes``: a leading corner of the factor grid (procedural source only).
    """
    rootp = Path(root).expanduser() if root is not None else None
    path = find_scream(rootp)
    if path is None:
        raise _files.missing(NAME, [SCREAM_FILE], rootp, SUBDIR, FIX)
    data = load_variant(ScreamDSprites, NAME, source, root, sizes, progress, read_scream(path))
    data.files = {**data.files, "scream": str(path)}
    return data  # type: ignore[return-value]


def _present(source: str, root: Path | None) -> bool:
    return find_scream(root) is not None and dsprites.present(source, root)


register(variant_spec(NAME, load, _present,
                     "dSprites inverted on a random crop of The Scream (disentanglement_lib); needs scream.jpg"))
