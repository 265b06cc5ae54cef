"""Color-dSprites (disentanglement_lib's ``color_dsprites``): dSprites with the sprite in a random colour.

Each image is the binary sprite times one colour ``c`` drawn per image, each channel
``uniform(0.5, 1)``, on a black background: pixel ``(k, i, j) = sprite(i, j) * c_k``. Factors,
sizes and grid order are dSprites' (shape 3, scale 6, orientation 40, posX 32, posY 32); images
are ``uint8`` ``N x 3 x 64 x 64``, so ``c`` is quantised to ``round(255 c) / 255`` (128..255).

The colour is a fresh draw each time an image is produced; training batches key it on the
sampler's rows, so a run is deterministic given its seed and resumes bit-identically (see
:mod:`untwine.data._sprite_variants`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from . import dsprites
from ._sprite_variants import Draws, SpriteVariant, load_variant, variant_spec
from .registry import register

NAME = "color-dsprites"


class ColorDSprites(SpriteVariant):
    """dSprites sprites in one random colour per image (each channel uniform(0.5, 1)), black background."""

    SALT = 0xC0102

    def compose(self, sprite: np.ndarray, draws: Draws) -> np.ndarray:
        colour = np.rint((0.5 + 0.5 * draws.uniform(3)) * 255.0).astype(np.uint8)  # n x 3, 128..255
        return sprite[:, None] * colour[:, :, None, None]


def load(
    source: str | None = None, root: str | Path | None = None, *,
    sizes: Sequence[int] = dsprites.FACTOR_SIZES, progress: bool = True,
) -> ColorDSprites:
    """Color-dSprites on dSprites' ``source`` (``None``: official file if present, else procedural).

    ``sizes``: a leading corner of the factor grid (procedural source only; tests, quick looks).
    """
    return load_variant(ColorDSprites, NAME, source, root, sizes, progress)  # type: ignore[return-value]


register(variant_spec(NAME, load, dsprites.present, "dSprites, each sprite in a random colour (disentanglement_lib); drawn per image"))
