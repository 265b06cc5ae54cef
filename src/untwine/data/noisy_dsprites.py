"""Noisy-dSprites (disentanglement_lib's ``noisy_dsprites``): dSprites on uniform noise.

Each image is ``min(sprite + u, 1)`` with ``u`` uniform(0, 1) drawn per pixel and channel: the
sprite is white (exactly 1), the background is noise. Factors, sizes and grid order are
dSprites' (shape 3, scale 6, orientation 40, posX 32, posY 32); images are ``uint8``
``N x 3 x 64 x 64``, so the noise is quantised: uniform on ``{0, 1/255, ..., 1}`` (mean 0.5).

The noise is a fresh draw each time an image is produced; training batches key it on the
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

NAME = "noisy-dsprites"


class NoisyDSprites(SpriteVariant):
    """dSprites sprites (white) over per-pixel, per-channel uniform noise."""

    SALT = 0x7015E

    def compose(self, sprite: np.ndarray, draws: Draws) -> np.ndarray:
        noise = draws.bytes(3 * 64 * 64).reshape(len(sprite), 3, 64, 64)
        return np.maximum(noise, sprite[:, None] * np.uint8(255))


def load(
    source: str | None = None, root: str | Path | None = None, *,
    sizes: Sequence[int] = dsprites.FACTOR_SIZES, progress: bool = True,
) -> NoisyDSprites:
    """Noisy-dSprites on dSprites' ``source`` (``None``: official file if present, else procedural).

    ``sizes``: a leading corner of the factor grid (procedural source only; tests, quick looks).
    """
    return load_variant(NoisyDSprites, NAME, source, root, sizes, progress)  # type: ignore[return-value]


register(variant_spec(NAME, load, dsprites.present, "dSprites, white sprite on uniform noise (disentanglement_lib); drawn per image"))
