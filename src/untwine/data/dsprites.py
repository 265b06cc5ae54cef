"""dSprites (Matthey et al. 2017): 737,280 binary 64x64 sprites over 5 factors.

| # | factor | size | values |
|---|---|---|---|
| 0 | shape | 3 | square, ellipse, heart |
| 1 | scale | 6 | ``linspace(0.5, 1, 6)`` |
| 2 | orientation | 40 | ``linspace(0, 2 pi, 40)`` radians (0 and 2 pi are both present) |
| 3 | posX | 32 | ``linspace(0, 1, 32)``, image column (left to right) |
| 4 | posY | 32 | ``linspace(0, 1, 32)``, image row (0 at the top) |

The official file's constant colour factor is dropped. Rows are in the official file order:
mixed radix over the sizes ``[3, 6, 40, 32, 32]``, posY fastest. Images are ``uint8`` 0/255.

Sources, in the order ``source=None`` tries them:

- ``official``: ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (MD5-checked once; the
  verification is remembered in a sidecar keyed on size and mtime).
- ``procedural``: an offline re-rendering of the same images (:func:`render`), fitted to real
  frames, built once into a bit-packed cache (``<cache>/dsprites/``, 377 MB) that stays
  memory-mapped: batches are unpacked per call (:class:`PackedDSprites`, ``images`` is ``None``),
  so every process shares the cache's pages instead of holding 3 GB of unpacked images.

Geometry of the renderer (fitted against 160 real frames; see docs/dsprites.md): a pixel ``(row
i, column j)`` is on iff its centre ``(j + 0.5, i + 0.5)`` lies inside the shape. The shape
centre is at ``16 + 32 * pos`` pixels on each axis; shapes are scaled by ``scale`` and turned
counter-clockwise on screen by ``orientation``. At scale 1 the square has side 19.2 px, the
ellipse semi-axes 12.77 x 7.215 px (wide), the heart a fixed 30-vertex polygon
(:data:`HEART`, lobes up). Each image row is then one or two runs of pixels, computed
exactly from the outline's crossings with the row's centre line and written as 64-bit masks.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import DiskFullError, UserError
from . import _files, _sprite_bits
from .cache import building, cache_dir
from .protocol import GroundTruthData
from .registry import DatasetSpec, register

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
N_IMAGES = 737_280
SOURCES = ("official", "procedural")
SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)

OFFICIAL_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
OFFICIAL_URL = "https://github.com/deepmind/dsprites-dataset/raw/master/" + OFFICIAL_FILE
OFFICIAL_MD5 = "7da33b31b13a06f4b04a70402ce90c2e"
OFFICIAL_KEYS = ("imgs", "latents_classes", "latents_values", "metadata")
SUBDIR = "dsprites"

# ------------------------------------------------------------------------------ geometry
#: Pixel coordinate of the shape centre at position 0, and the span for position 0 -> 1.
CENTRE_OFFSET = 16.0
CENTRE_SPAN = 32.0
#: Square side and ellipse semi-axes (x, y) at scale 1, in pixels.
SQUARE_SIDE = 19.2
ELLIPSE_AXES = (12.77, 7.215)
#: Heart outline at scale 1 and orientation 0: (x, y) pixels from the rotation centre, y down
#: (lobes up, tip down). A polygon symmetric about x = 0: the right half from the notch (0, -5.4)
#: over the right lobe to the tip (0, 9.5), mirrored. Fitted to the real frames (docs/dsprites.md).
_HEART_RIGHT = np.array(
    [
        [0.000, -5.364],
        [1.217, -7.735],
        [3.184, -9.185],
        [5.769, -9.336],
        [7.597, -8.334],
        [8.998, -6.810],
        [9.775, -4.006],
        [8.920, -1.187],
        [7.907, 0.313],
        [6.782, 1.644],
        [5.551, 2.922],
        [5.473, 2.921],
        [3.663, 4.675],
        [2.820, 5.435],
        [0.702, 7.952],
        [0.000, 9.542],
    ]
)
HEART = np.concatenate([_HEART_RIGHT, _HEART_RIGHT[-2:0:-1] * [-1.0, 1.0]])
_SQUARE = 0.5 * SQUARE_SIDE * np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [1.0, -1.0]])


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    """Turn ``(x, y)`` points (y down) counter-clockwise on screen by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * points[:, 0] + s * points[:, 1], -s * points[:, 0] + c * points[:, 1]], 1)


def _crossings(shape: int, scale: int, orientation: int, dy: np.ndarray) -> np.ndarray:
    """Sorted x offsets (pixels, from the shape centre) where horizontal lines at vertical offsets
    ``dy`` (any shape ``S``) cross the outline: ``S x M`` float64, ``M`` even, padded with +inf.
    Between crossings ``2k`` and ``2k + 1`` the line is inside the shape."""
    s = float(SCALES[scale])
    angle = float(ORIENTATIONS[orientation])
    if shape == 1:  # ellipse: solve the quadratic in x along each line
        a, b = ELLIPSE_AXES[0] * s, ELLIPSE_AXES[1] * s
        c, n = np.cos(angle), np.sin(angle)
        # local u = c x - n y, v = n x + c y; inside iff (u/a)^2 + (v/b)^2 < 1
        qa = c * c / a**2 + n * n / b**2
        qb = 2 * dy * c * n * (1 / b**2 - 1 / a**2)
        qc = dy * dy * (n * n / a**2 + c * c / b**2) - 1
        disc = qb * qb - 4 * qa * qc
        root = np.sqrt(np.where(disc > 0, disc, 0.0))
        lo = np.where(disc > 0, (-qb - root) / (2 * qa), np.inf)
        hi = np.where(disc > 0, (-qb + root) / (2 * qa), np.inf)
        return np.stack([lo, hi], -1)
    verts = _rotate((_SQUARE if shape == 0 else HEART) * s, angle)
    a, b = verts, np.roll(verts, -1, axis=0)
    y = dy[..., None]
    hit = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    x = np.sort(np.where(hit, x, np.inf), axis=-1)
    m = int(hit.sum(-1).max(initial=0))
    m += m % 2
    return x[..., : max(m, 2)]


_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


def _row_bits(crossings: np.ndarray) -> np.ndarray:
    """Row masks from absolute crossing columns (``... x M``): ``...`` uint64, column ``j`` is bit
    ``63 - j`` (so the big-endian bytes are ``np.packbits`` of the row). Pixel ``j`` is on iff
    ``x[2k] < j + 0.5 < x[2k + 1]`` for some ``k``."""
    out = np.zeros(crossings.shape[:-1], dtype=np.uint64)
    for k in range(0, crossings.shape[-1], 2):
        with np.errstate(invalid="ignore"):
            left = np.clip(np.floor(crossings[..., k] - 0.5) + 1, 0, 64)
            right = np.clip(np.ceil(crossings[..., k + 1] - 0.5) - 1, -1, 63)
        length = right - left + 1
        ok = length > 0
        shift = np.where(ok, 64 - length, 0).astype(np.uint64)
        low = np.where(ok, 63 - right, 0).astype(np.uint64)
        out |= np.where(ok, (_ONES >> shift) << low, np.uint64(0))
    return out


def _unpack(bits: np.ndarray) -> np.ndarray:
    """``... x 64`` uint64 row masks -> ``... x 64 x 64`` uint8 0/1."""
    packed = bits.astype(">u8").view(np.uint8).reshape(*bits.shape, 8)
    return np.unpackbits(packed, axis=-1).reshape(*bits.shape, 64)


def _centres(index: np.ndarray) -> np.ndarray:
    return CENTRE_OFFSET + CENTRE_SPAN * POSITIONS[index]


def render(factors: np.ndarray | torch.Tensor) -> np.ndarray:
    """Render dSprites frames: ``n x 5`` factor indices -> ``n x 64 x 64`` uint8 (0/255)."""
    f = np.asarray(factors, dtype=np.int64)
    if f.ndim != 2 or f.shape[1] != 5:
        raise ValueError(f"dsprites.render: factors must be n x 5 ({', '.join(FACTOR_NAMES)}), got {f.shape}")
    if (f < 0).any() or (f >= np.asarray(FACTOR_SIZES)).any():
        raise ValueError(f"dsprites.render: factor index out of range; sizes are {list(FACTOR_SIZES)}")
    bits = np.zeros((len(f), 64), dtype=np.uint64)
    rows = np.arange(64) + 0.5
    keys = f[:, 0] * 240 + f[:, 1] * 40 + f[:, 2]
    for key in np.unique(keys):
        sel = np.nonzero(keys == key)[0]
        sh, sc, ori = f[sel[0], :3]
        dy = rows[None, :] - _centres(f[sel, 4])[:, None]  # n x 64
        x = _crossings(int(sh), int(sc), int(ori), dy) + _centres(f[sel, 3])[:, None, None]
        bits[sel] = _row_bits(x)
    return _unpack(bits) * np.uint8(255)


def _fill_packed(out: np.ndarray, sizes: Sequence[int], progress: bool = True) -> None:
    """Write the packed frames of the grid ``sizes`` (a leading corner of the full grid) into
    ``out`` (``prod(sizes) x 64 x 8`` uint8), one (shape, scale, orientation) block at a time."""
    ns, nsc, nori, nx, ny = (int(v) for v in sizes)
    block = nx * ny
    rows = np.arange(64) + 0.5
    dy = rows[None, :] - _centres(np.arange(ny))[:, None]  # ny x 64
    cx = _centres(np.arange(nx))[:, None, None, None]  # nx x 1 x 1 x 1
    total = ns * nsc * nori
    with tqdm(total=total * block, unit="img", unit_scale=True, desc="dsprites (procedural)", disable=not progress or None) as bar:
        for b, (sh, sc, ori) in enumerate(np.ndindex(ns, nsc, nori)):
            x = _crossings(sh, sc, ori, dy)[None] + cx  # nx x ny x 64 x M
            bits = _row_bits(x)  # nx x ny x 64
            out[b * block : (b + 1) * block] = bits.astype(">u8").view(np.uint8).reshape(block, 64, 8)
            bar.update(block)


# ------------------------------------------------------------------------------ procedural source
def procedural_cache_path(sizes: Sequence[int] = FACTOR_SIZES) -> Path:
    """``<cache>/dsprites/procedural_v1_<sizes>.bits.npy`` (``N x 64 x 8`` uint8, np.packbits rows)."""
    return cache_dir() / SUBDIR / f"procedural_v1_{'x'.join(map(str, sizes))}.bits.npy"


def build_procedural(sizes: Sequence[int] = FACTOR_SIZES, *, force: bool = False, progress: bool = True) -> Path:
    """Render every frame of the grid ``sizes`` into the packed cache once (atomic: an interrupted
    build leaves no usable file and is redone). ``sizes`` smaller than ``FACTOR_SIZES`` render the
    leading corner of the grid (tests, quick looks). Returns the cache path."""
    sizes = _check_sizes(sizes)
    path = procedural_cache_path(sizes)
    n = int(np.prod(sizes))
    _files.ensure_npy(path, (n, 64, 8), "uint8", lambda arr: _fill_packed(arr, sizes, progress), force=force)
    return path


def _check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) != 5 or any(not 1 <= s <= m for s, m in zip(sizes, FACTOR_SIZES)):
        raise UserError(f"dsprites: sizes must be 5 ints with 1 <= size <= {list(FACTOR_SIZES)}, got {list(sizes)}")
    return sizes


class PackedDSprites(GroundTruthData):
    """dSprites whose images stay bit-packed and are unpacked per call of :meth:`images_at`.

    ``bits`` is the procedural cache (``N x 64 x 8`` uint8, 377 MB for the full grid),
    memory-mapped: its pages are shared through the page cache by every process that loads
    dSprites, and a process's private memory holds only the batch being unpacked (not the 3 GB
    of unpacked images). ``images`` is ``None``; ``images_at(rows)`` gives exactly the ``uint8``
    0/255 images a resident tensor would (:func:`~untwine.data._sprite_bits.unpack_rows`). On a
    GPU, ``images_on(device)`` unpacks every image onto the device once (3 GB there), so training
    keeps gathering batches from resident images with no host work per step.
    """

    def __init__(self, bits: np.ndarray, sizes: Sequence[int] = FACTOR_SIZES, source: str = "procedural") -> None:
        super().__init__(
            "dsprites", FACTOR_NAMES, sizes, None, _files.grid_factors(sizes),
            source=source, full_grid=True, num_channels=1,
        )
        _sprite_bits.check_bits(bits, len(self), "dsprites")
        self.bits = bits

    def images_at(self, index: torch.Tensor) -> torch.Tensor:
        """``uint8`` images ``... x 1 x 64 x 64`` (0/255) at rows ``index`` (int64, any shape)."""
        idx = torch.as_tensor(index, dtype=torch.int64)
        rows = idx.reshape(-1).cpu().numpy()
        return torch.from_numpy(_sprite_bits.unpack_rows(self.bits, rows)).view(*idx.shape, 1, 64, 64)

    def _resident_copy(self, device: torch.device) -> torch.Tensor:
        return _sprite_bits.unpack_to(self.bits, device)


def procedural_bits(sizes: Sequence[int] = FACTOR_SIZES, *, progress: bool = True) -> np.ndarray:
    """The packed cache of the grid ``sizes`` (built on first use), memory-mapped read-only:
    ``N x 64 x 8`` uint8. Shared by :func:`load_procedural` and the dSprites variants."""
    sizes = _check_sizes(sizes)
    path = build_procedural(sizes, progress=progress)
    return _files.load_npy(path, (int(np.prod(sizes)), 64, 8), "uint8")


def load_procedural(sizes: Sequence[int] = FACTOR_SIZES, *, progress: bool = True) -> PackedDSprites:
    """The re-rendered dSprites (building the cache on first use) as a full-grid dataset whose
    images stay in the memory-mapped packed cache (:class:`PackedDSprites`)."""
    sizes = _check_sizes(sizes)
    bits = procedural_bits(sizes, progress=progress)
    data = PackedDSprites(bits, sizes)
    data.files = {"cache": str(procedural_cache_path(sizes))}  # type: ignore[attr-defined]
    return data


# ------------------------------------------------------------------------------ official source
_FIX = (
    f"run `untwine data download dsprites`, or place {OFFICIAL_FILE} (from {OFFICIAL_URL}) there "
    "by hand, or use `--source procedural` (an exact offline re-rendering)"
)


def find_official(root: Path | None = None) -> Path | None:
    """The official ``.npz`` in ``<root>/`` or ``<root>/dsprites/`` (root: see ``data_root``)."""
    return _files.find([OFFICIAL_FILE], root, SUBDIR)


def _verified_sidecar(path: Path) -> Path:
    return cache_dir() / SUBDIR / "verified.json"


def verify_md5(path: Path, md5: str = OFFICIAL_MD5) -> None:
    """Check ``path``'s MD5 once; the result is remembered (keyed on path, size and mtime) in
    ``<cache>/dsprites/verified.json`` so later loads skip the hash. Mismatch -> ``ValueError``."""
    path = Path(path)
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{md5}"
    sidecar = _verified_sidecar(path)
    try:
        known = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        known = {}
    if known.get(key) is True:
        return
    got = _files.md5sum(path)
    if got != md5:
        raise UserError(
            f"{path}: MD5 {got} does not match the official dSprites file ({md5}); the file is "
            f"damaged or not dSprites. Delete it and {_FIX}"
        )
    known[key] = True
    try:
        with building(sidecar) as tmp:
            tmp.write_text(json.dumps(known))
    except (OSError, DiskFullError):
        pass  # read-only or full cache: verify again next time


def read_official(path: Path, *, n: int = N_IMAGES, md5: str | None = OFFICIAL_MD5) -> np.ndarray:
    """Read and check an official-format ``.npz``: returns ``imgs`` as ``n x 64 x 64`` uint8 0/1.

    Checks the keys, the shapes (``imgs`` ``n x 64 x 64``, ``latents_classes`` ``n x 6``), that
    the classes enumerate the grid in file order, and the MD5 (``md5=None`` skips it: tests).
    """
    path = Path(path)
    if md5 is not None:
        verify_md5(path, md5)
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{path}: not a readable .npz file ({e}). Delete it and {_FIX}") from e
    with z, _files.reading(path, f"Delete it and {_FIX}"):
        missing = [k for k in OFFICIAL_KEYS if k not in z.files]
        if missing:
            raise UserError(
                f"{path}: missing key(s) {', '.join(missing)}; a dSprites file has keys "
                f"{', '.join(OFFICIAL_KEYS)} (found {', '.join(z.files) or 'none'})"
            )
        imgs = z["imgs"]
        classes = z["latents_classes"]
    if imgs.shape != (n, 64, 64) or imgs.dtype != np.uint8:
        raise UserError(f"{path}: imgs has shape {imgs.shape} {imgs.dtype}, expected ({n}, 64, 64) uint8")
    if classes.shape != (n, 6):
        raise UserError(f"{path}: latents_classes has shape {classes.shape}, expected ({n}, 6)")
    sizes = FACTOR_SIZES if n == N_IMAGES else None
    if sizes is not None and not np.array_equal(classes[:, 1:], _files.grid_factors(sizes).numpy()):
        raise UserError(f"{path}: latents_classes are not in the official grid order (posY fastest)")
    if imgs.max(initial=0) > 1:
        raise UserError(f"{path}: imgs has values above 1; the official file is binary 0/1")
    return imgs


def load_official(root: Path | None = None, *, path: Path | None = None) -> GroundTruthData:
    """The official file (from ``path`` or looked up under ``root``) as a full-grid dataset."""
    if path is None:
        path = find_official(root)
        if path is None:
            raise _files.missing("dsprites (official)", [OFFICIAL_FILE], root, SUBDIR, _FIX)
    imgs = read_official(path)
    np.multiply(imgs, np.uint8(255), out=imgs)
    data = GroundTruthData(
        "dsprites", FACTOR_NAMES, FACTOR_SIZES, torch.from_numpy(imgs).unsqueeze(1),
        _files.grid_factors(FACTOR_SIZES), source="official", full_grid=True,
    )
    data.files = {"official": str(path)}  # type: ignore[attr-defined]
    return data


def download(root: Path | None = None, *, url: str = OFFICIAL_URL) -> Path:
    """Fetch the official file into ``<root>/`` (default ``data_root()``), MD5-checked.

    Offline this raises ``OSError`` saying how to place the file by hand.
    """
    dest = _files.data_root(Path(root).expanduser() if root is not None else None) / OFFICIAL_FILE
    how = f"download {OFFICIAL_URL} in a browser and place it at {dest}, or use `--source procedural`"
    return _files.fetch(url, dest, OFFICIAL_MD5, how)


# ------------------------------------------------------------------------------ registry
def present(source: str, root: Path | None) -> bool:
    """Whether dSprites' ``source`` can be loaded offline now (the sprite variants' too)."""
    if source == "official":
        return find_official(root) is not None
    return source == "procedural"


def load_dsprites(source: str | None = None, root: str | Path | None = None) -> GroundTruthData:
    """dSprites from ``source`` (``None``: official if present, else procedural); ``.source`` says which."""
    rootp = Path(root).expanduser() if root is not None else None
    source = _files.pick_source("dsprites", source, SOURCES, present, rootp)
    loaders: dict[str, Callable[[], GroundTruthData]] = {
        "official": lambda: load_official(rootp),
        "procedural": lambda: load_procedural(),
    }
    return loaders[source]()


register(
    DatasetSpec(
        name="dsprites",
        factor_names=FACTOR_NAMES,
        factor_sizes=FACTOR_SIZES,
        sources=SOURCES,
        load=load_dsprites,
        present=present,
        description="2D sprites (Matthey et al. 2017); 'procedural' re-renders the same images offline",
        prepare=load_dsprites,
        download=download,
    )
)
