"""Binary 64x64 sprites kept bit-packed, unpacked only for the rows asked for.

One mechanism for procedural dSprites (:class:`untwine.data.dsprites.PackedDSprites`) and its
disentanglement_lib variants (:mod:`untwine.data._sprite_variants`). The sprites are an ``N x 64
x 8`` uint8 array, each image row ``np.packbits`` of its 64 pixels (column ``j`` is bit ``7 - j %
8`` of byte ``j // 8``): 377 MB for dSprites' 737,280 images against 3 GB unpacked. The
procedural cache is memory-mapped, so its pages are file pages in the page cache, shared by every
process that maps it (a sweep's workers, background runs); a process's private memory holds only
the rows of the batch it is unpacking.

Unpacking a batch is a gather of its packed rows (512 bytes each) and one ``np.unpackbits`` over
them; that is as fast as gathering the rows of a resident unpacked tensor (it reads 8x fewer bytes
from memory); see ``benchmarks/bench_data.py``.
"""

from __future__ import annotations

import numpy as np
import torch

#: Rows unpacked at once by :func:`unpack_to` (bounds its temporaries: 16 MB of uint8 pixels).
CHUNK = 4096


def check_bits(bits: np.ndarray, n: int, name: str) -> None:
    """``ValueError`` unless ``bits`` is ``n x 64 x 8`` uint8 (packed 64x64 binary sprites)."""
    if tuple(bits.shape) != (n, 64, 8) or bits.dtype != np.uint8:
        raise ValueError(f"{name}: sprites must be {n} x 64 x 8 uint8 packed bits, got {bits.shape} {bits.dtype}")


def unpack_rows(bits: np.ndarray, rows: np.ndarray, on: int = 255) -> np.ndarray:
    """Sprites at ``rows`` of the packed ``bits`` (``N x 64 x 8``, may be memory-mapped):
    ``n`` int64 rows -> ``n x 64 x 64`` uint8, pixels 0 or ``on`` (255: dSprites' images; 1: the
    variants' masks). Reads only those rows; equal to ``np.unpackbits(bits[rows], axis=-1) * on``."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    packed = np.take(np.asarray(bits), rows, axis=0)  # n x 64 x 8: the only read of the sprites
    px = np.unpackbits(packed.reshape(-1))  # flat: 2x faster than axis=-1, the same bit order
    if on == 255:
        np.negative(px, out=px)  # uint8: 1 -> 255
    elif on != 1:
        np.multiply(px, np.uint8(on), out=px)
    return px.reshape(len(rows), 64, 64)


def unpack_to(bits: np.ndarray, device: str | torch.device, chunk: int = CHUNK) -> torch.Tensor:
    """Every sprite of ``bits`` unpacked onto ``device``: ``N x 1 x 64 x 64`` uint8 0/255.

    For a GPU that keeps the images resident (3 GB there for dSprites): the packed rows travel
    ``chunk`` at a time and are unpacked on the device, so the host never holds the unpacked images.
    """
    device = torch.device(device)
    n = len(bits)
    out = torch.empty((n, 1, 64, 64), dtype=torch.uint8, device=device)
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=device)  # most significant bit first
    for s in range(0, n, chunk):
        part = torch.from_numpy(np.array(bits[s : s + chunk])).to(device)  # m x 64 x 8
        px = torch.bitwise_right_shift(part.unsqueeze(-1), shifts).bitwise_and_(1).mul_(255)  # m x 64 x 8 x 8
        out[s : s + len(part), 0] = px.view(len(part), 64, 64)
    return out
