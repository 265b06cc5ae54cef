"""What disentanglement_lib's dSprites variants share (``color-``, ``noisy-``, ``scream-dsprites``).

A variant has dSprites' 5 factors, sizes and grid order (:mod:`untwine.data.dsprites`) and
3-channel ``uint8`` images ``n x 3 x 64 x 64`` rendered on demand from the binary sprite and a few
random numbers per image (its colour, its noise, its crop). ``images`` is ``None``: the sprites
are kept bit-packed (``N x 64 x 8`` uint8, 377 MB for the full grid), either the procedural cache
memory-mapped (as procedural dSprites keeps it) or the official file packed once on load, and
unpacked per batch by the helper dSprites uses (:mod:`untwine.data._sprite_bits`).

Randomness: a fresh draw per image each time it is produced, as disentanglement_lib does.

* ``observations_from_factors(f, rng)`` and ``sample(n, rng)`` (metrics, figures) draw from
  ``rng``: reproducible from its seed, fresh for every image of every call.
* ``images_at(rows)`` (training batches, the validation images, the explorer, the metrics' code
  table) takes no generator: its draws are a counter-based hash (splitmix64) of the call's
  *rows*. Image ``i`` is keyed by its aligned block of :data:`BLOCK` rows (``rows[4*(i//4) :
  4*(i//4)+4]``) and by ``i % 4``. The training sampler's rows come from its seeded, checkpointed
  generator, so the draws are deterministic given the run's seed and a resumed run sees exactly
  the batches an uninterrupted run sees (bit-identical on CPU), with no state in the dataset. A
  row drawn again in a later batch gets a fresh draw unless its whole block of 4 rows recurs in
  the same order (about ``1/N**4`` per pair of blocks: never, in practice). A pack of K runs
  gathers its K batches in one call; with ``batch_size % 4 == 0`` each run's blocks are its own,
  so packed runs see what they would alone. The same ``rows`` give the same images (a fixed
  validation set).

Images are stored ``uint8``: colours, noise and backgrounds are quantised to steps of 1/255 (the
noise is uniform on ``{0, 1/255, ..., 1}``, mean 0.5).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import UserError
from . import _files, _sprite_bits, dsprites
from .protocol import RNG, GroundTruthData, to_float
from .registry import DatasetSpec

#: Rows per block that keys an image's draws in :meth:`SpriteVariant.images_at`.
BLOCK = 4
#: Rows composed at once (bounds the temporary memory of large calls; a multiple of BLOCK).
CHUNK = 2048

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a ``uint64`` array (a bijection that scrambles bits)."""
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    z ^= z >> _S31
    return z


def row_keys(rows: np.ndarray, salt: int) -> np.ndarray:
    """One 64-bit key per image (``n`` rows -> ``n`` uint64) from its aligned block of
    :data:`BLOCK` rows, its place in the block and ``salt`` (one per variant)."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    n = len(rows)
    padded = np.concatenate([rows.astype(np.uint64), np.full(-n % BLOCK, ~np.uint64(0))])  # no row
    blocks = padded.reshape(-1, BLOCK)
    h = np.full(len(blocks), np.uint64(salt), dtype=np.uint64)
    for j in range(BLOCK):
        h = _mix(h ^ _mix(blocks[:, j] + _GOLDEN))
    place = np.arange(1, BLOCK + 1, dtype=np.uint64) * _GOLDEN
    return _mix((h[:, None] + place[None, :]).reshape(-1))[:n]


class Draws:
    """Random numbers for ``n`` images: ``uniform(k)`` -> ``n x k`` float64 in ``[0, 1)``,
    ``bytes(m)`` -> ``n x m`` uint8 uniform on 0..255. Successive calls give independent numbers."""

    n: int

    def uniform(self, k: int) -> np.ndarray:
        raise NotImplementedError

    def bytes(self, m: int) -> np.ndarray:
        raise NotImplementedError


class KeyedDraws(Draws):
    """Draws hashed from one 64-bit key per image (:func:`row_keys`): word ``w`` of image ``i`` is
    ``mix(key_i ^ mix(w + golden))``, ``w`` counting up across calls."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys, self.n, self.used = np.asarray(keys, dtype=np.uint64), len(keys), 0

    def _words(self, m: int) -> np.ndarray:
        counter = _mix(np.arange(self.used, self.used + m, dtype=np.uint64) + _GOLDEN)
        self.used += m
        return _mix(self.keys[:, None] ^ counter[None, :])

    def uniform(self, k: int) -> np.ndarray:
        return (self._words(k) >> _S11).astype(np.float64) * 2.0**-53

    def bytes(self, m: int) -> np.ndarray:
        words = self._words(-(-m // 8)).astype("<u8", copy=False)
        return words.view(np.uint8)[:, :m]


class RngDraws(Draws):
    """Draws from a numpy ``Generator`` or ``RandomState`` (both have ``uniform`` and ``bytes``)."""

    def __init__(self, rng: RNG, n: int) -> None:
        if not isinstance(rng, (np.random.Generator, np.random.RandomState)):
            raise TypeError(
                f"rng must be a numpy RandomState or Generator, got {type(rng).__name__}; "
                "pass e.g. np.random.default_rng(0)"
            )
        self.rng, self.n = rng, int(n)

    def uniform(self, k: int) -> np.ndarray:
        return self.rng.uniform(0.0, 1.0, (self.n, k))

    def bytes(self, m: int) -> np.ndarray:
        return np.frombuffer(self.rng.bytes(self.n * m), dtype=np.uint8).reshape(self.n, m)


class SpriteVariant(GroundTruthData):
    """dSprites' factors with 3-channel images composed on demand (see the module docstring).

    Args:
        name: registry name.
        bits: bit-packed binary sprites, ``N x 64 x 8`` uint8 (``np.packbits`` of each row) in
            dSprites' grid order over ``sizes``.
        sizes: factor sizes (``dsprites.FACTOR_SIZES``, or a leading corner of that grid).
        source: ``"official"`` or ``"procedural"``, where the sprites came from.

    Subclasses set :attr:`SALT` and implement :meth:`compose`.
    """

    SALT = 0
    #: Observations are random given the row (a fresh draw each time they are produced).
    random_observations = True

    def __init__(self, name: str, bits: np.ndarray, sizes: Sequence[int], source: str) -> None:
        super().__init__(
            name, dsprites.FACTOR_NAMES, sizes, None, _files.grid_factors(sizes),
            source=source, full_grid=True, num_channels=3,
        )
        _sprite_bits.check_bits(bits, len(self), name)
        self.bits = bits
        self.files: dict[str, str] = {}

    def sprites(self, rows: np.ndarray) -> np.ndarray:
        """Binary sprites at ``rows``: ``n`` int64 -> ``n x 64 x 64`` uint8 0/1 (only those rows
        are read and unpacked: :func:`~untwine.data._sprite_bits.unpack_rows`, as dSprites does)."""
        return _sprite_bits.unpack_rows(self.bits, rows, on=1)

    def compose(self, sprite: np.ndarray, draws: Draws) -> np.ndarray:
        """``n x 64 x 64`` uint8 0/1 sprites and their draws -> ``n x 3 x 64 x 64`` uint8 images."""
        raise NotImplementedError

    def images_at(self, index: torch.Tensor) -> torch.Tensor:
        """``uint8`` images ``n x 3 x 64 x 64`` at rows ``index`` (``n`` int64); draws keyed by the rows."""
        rows = torch.as_tensor(index, dtype=torch.int64).reshape(-1).cpu().numpy()
        keys = row_keys(rows, self.SALT)
        if len(rows) <= CHUNK:  # a training batch: no copy
            return torch.from_numpy(self.compose(self.sprites(rows), KeyedDraws(keys)))
        out = np.empty((len(rows), 3, 64, 64), dtype=np.uint8)
        for s in range(0, len(rows), CHUNK):
            out[s : s + CHUNK] = self.compose(self.sprites(rows[s : s + CHUNK]), KeyedDraws(keys[s : s + CHUNK]))
        return torch.from_numpy(out)

    def observations_from_factors(self, factors: np.ndarray, rng: RNG) -> torch.Tensor:
        """``float32`` ``n x 3 x 64 x 64`` in ``[0, 1]`` showing ``factors`` (``n x 5``), drawn from ``rng``."""
        rows = self.index_of(factors)
        draws = RngDraws(rng, len(rows))
        return to_float(torch.from_numpy(self.compose(self.sprites(rows), draws)))


def packed_sprites(
    source: str, root: Path | None = None, sizes: Sequence[int] = dsprites.FACTOR_SIZES, *, progress: bool = True
) -> tuple[np.ndarray, dict[str, str]]:
    """The binary sprites of ``source`` as ``N x 64 x 8`` packed bits and the files used.

    ``procedural``: the dSprites cache, memory-mapped (built on first use; ``sizes`` may be a
    leading corner of the grid). ``official``: the official file read and packed (full grid only).
    """
    if source == "procedural":
        bits = dsprites.procedural_bits(sizes, progress=progress)
        return bits, {"sprites": str(dsprites.procedural_cache_path(tuple(int(s) for s in sizes)))}
    if tuple(sizes) != dsprites.FACTOR_SIZES:
        raise UserError("the official dSprites file holds the full grid; sizes apply to the procedural source")
    data = dsprites.load_official(root)
    imgs = data.images.numpy()[:, 0]  # type: ignore[union-attr]
    bits = np.packbits(imgs, axis=-1)  # nonzero (255) -> 1
    return bits, dict(getattr(data, "files", {}))


def load_variant(cls: type[SpriteVariant], name: str, source: str | None, root: str | Path | None,
                 sizes: Sequence[int], progress: bool, *args: object) -> SpriteVariant:
    """``cls(name, sprites, sizes, source, *args)`` on dSprites' ``source`` (``None``: the official
    file if present, else procedural); ``data.files`` lists the files used."""
    rootp = Path(root).expanduser() if root is not None else None
    source = _files.pick_source(name, source, dsprites.SOURCES, dsprites.present, rootp)
    bits, files = packed_sprites(source, rootp, sizes, progress=progress)
    data = cls(name, bits, sizes, source, *args)
    data.files = files
    return data


def variant_spec(name: str, load: Callable[..., SpriteVariant], present: Callable[[str, Path | None], bool],
                 description: str) -> DatasetSpec:
    """A variant's registry entry: dSprites' factors and sources, its own loader."""
    return DatasetSpec(name=name, factor_names=dsprites.FACTOR_NAMES, factor_sizes=dsprites.FACTOR_SIZES,
                       sources=dsprites.SOURCES, load=lambda source, root: load(source, root), present=present,
                       description=description)
