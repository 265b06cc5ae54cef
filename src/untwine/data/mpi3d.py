"""MPI3D (Gondal et al. 2019): a robot arm moving an object, 7 factors, 64x64 RGB.

One registry entry, ``mpi3d``, with sources ``toy``, ``realistic``, ``real``, ``complex`` (the
official files) and ``procedural`` (an offline stand-in rendered on demand, *not* MPI3D data).

Official files hold one array ``images`` (``N x 64 x 64 x 3`` uint8) in factor-grid order, last
factor fastest; the factor sizes are inferred from ``N`` (1,036,800 -> 6,6,2,3,3,40,40;
460,800 -> complex 4,4,2,3,3,40,40) and any other ``N`` is refused. The first load converts the
file once, in chunks, to a ``N x 3 x 64 x 64`` ``.npy`` cache that is memory-mapped afterwards
(peak memory: one chunk, about 50 MB; the ``.npz`` member is streamed with ``zipfile``).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import UserError, check_choice
from . import _files
from .cache import load_npy
from .protocol import GroundTruthData
from .registry import DatasetSpec, register

FACTOR_NAMES = (
    "object_color",
    "object_shape",
    "object_size",
    "camera_height",
    "background_color",
    "horizontal_axis",
    "vertical_axis",
)
FACTOR_SIZES = (6, 6, 2, 3, 3, 40, 40)
COMPLEX_FACTOR_SIZES = (4, 4, 2, 3, 3, 40, 40)
VARIANTS = ("toy", "realistic", "real", "complex")
SOURCES = VARIANTS + ("procedural",)

FILES: dict[str, tuple[str, ...]] = {
    "toy": ("mpi3d_toy.npz",),
    "realistic": ("mpi3d_realistic.npz",),
    "real": ("mpi3d_real.npz",),
    "complex": ("mpi3d_complex.npz", "real3d_complicated_shapes_ordered.npz"),
}
_BASE_URL = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/"
URLS: dict[str, tuple[str, str | None]] = {  # variant -> (url, md5)
    "toy": (_BASE_URL + "mpi3d_toy.npz", "55889cb7c7dfc655d6e0277beee88868"),
    "realistic": (_BASE_URL + "mpi3d_realistic.npz", "59a6225b88b635365f70c91b3e52f70f"),
    "real": (_BASE_URL + "mpi3d_real.npz", "0f33f609918fb5c97996692f91129802"),
}
_COMPLEX_PAGE = "https://github.com/rr-learning/disentanglement_dataset (link 'real3d_complicated_shapes_ordered.npz')"
CHUNK = 4096  # images per conversion step (~50 MB)


def factor_sizes_for(n: int, path: Path | str = "") -> tuple[int, ...]:
    """Factor sizes of an official MPI3D file with ``n`` images; any other ``n`` is an error."""
    for sizes in (FACTOR_SIZES, COMPLEX_FACTOR_SIZES):
        if n == math.prod(sizes):
            return sizes
    raise UserError(
        f"{path}: MPI3D file has {n} images; expected {math.prod(FACTOR_SIZES)} (toy, realistic, "
        f"real: factors {list(FACTOR_SIZES)}) or {math.prod(COMPLEX_FACTOR_SIZES)} (complex: "
        f"{list(COMPLEX_FACTOR_SIZES)}). The file is truncated or not MPI3D; download it again"
    )


# ---------------------------------------------------------------------------- official files
def _fix(variant: str) -> str:
    return f"run `untwine data download mpi3d --source {variant}` or place the file there by hand (see docs/data.md)"


class _NpyStream:
    """Header and rows of one ``.npy`` member of an ``.npz``, read sequentially (no full decompress)."""

    def __init__(self, path: Path, key: str) -> None:
        self.zf = zipfile.ZipFile(path)
        members = [n[:-4] for n in self.zf.namelist() if n.endswith(".npy")]
        if key not in members:
            self.zf.close()
            raise UserError(f"{path}: no array {key!r} in this .npz (it holds {members}); not an MPI3D file")
        self.f = self.zf.open(key + ".npy")
        version = np.lib.format.read_magic(self.f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        self.shape, fortran, self.dtype = reader(self.f)
        if fortran:
            raise UserError(f"{path}: {key!r} is stored in Fortran order; expected C order as in the official file")

    def read(self, rows: int) -> np.ndarray:
        row_shape = self.shape[1:]
        nbytes = rows * int(np.prod(row_shape)) * self.dtype.itemsize
        buf = self.f.read(nbytes)
        if len(buf) != nbytes:
            raise UserError("unexpected end of data in the .npz member; the file is truncated")
        return np.frombuffer(buf, dtype=self.dtype).reshape((rows, *row_shape))

    def close(self) -> None:
        self.f.close()
        self.zf.close()


def cache_file(variant: str) -> Path:
    """Where the converted ``N x 3 x 64 x 64`` uint8 cache of ``variant`` lives."""
    return _files.cache_path("mpi3d", f"mpi3d_{variant}.nchw.npy")


def load_official(
    variant: str = "toy",
    root: str | Path | None = None,
    *,
    factor_sizes: Sequence[int] | None = None,
    force: bool = False,
) -> GroundTruthData:
    """Load an official MPI3D file (converting it to the memory-mapped cache on first use).

    Args:
        variant: ``toy``, ``realistic``, ``real`` or ``complex``.
        root: folder holding the ``.npz`` (default ``$UNTWINE_DATA``, else the cache dir); the file
            may also sit in ``<root>/mpi3d/``. Once the cache exists the ``.npz`` may be deleted.
        factor_sizes: override the sizes inferred from ``N`` (for small files in the official
            layout, e.g. in tests); their product must equal ``N``.
        force: rebuild the cache even if it exists.
    """
    check_choice(variant, VARIANTS, "variant", where="mpi3d")
    rootp = Path(root).expanduser() if root is not None else None
    cache = cache_file(variant)
    src = _files.find(FILES[variant], rootp, "mpi3d")
    if src is None and not (cache.is_file() and not force):
        raise _files.missing(f"mpi3d ({variant})", FILES[variant], rootp, "mpi3d", _fix(variant))
    if src is None:
        arr = load_npy(cache)
        if arr.dtype != np.uint8 or arr.shape[1:] != (3, 64, 64):
            raise UserError(f"cache {cache} has shape {arr.shape} / {arr.dtype}; delete it and it will be rebuilt")
        n = arr.shape[0]
    else:
        with _files.reading(src, _fix(variant)):
            arr, n = _convert(src, cache, factor_sizes, force, variant)
    sizes = tuple(int(s) for s in factor_sizes) if factor_sizes is not None else factor_sizes_for(n, cache)
    if math.prod(sizes) != n:
        raise UserError(f"mpi3d: factor_sizes {list(sizes)} multiply to {math.prod(sizes)}, but the file has {n} images")
    data = GroundTruthData(
        "mpi3d", FACTOR_NAMES, sizes, _files.as_tensor(arr), _files.grid_factors(sizes),
        source=variant, full_grid=True,
    )
    data.files = {"source": src, "cache": cache}  # type: ignore[attr-defined]
    return data


def _convert(src: Path, cache: Path, factor_sizes: Sequence[int] | None, force: bool,
             variant: str) -> tuple[np.ndarray, int]:
    """Convert the official ``.npz`` ``src`` to the ``N x 3 x 64 x 64`` cache; (cache, N)."""
    stream = _NpyStream(src, "images")
    try:
        n = int(stream.shape[0])
        if stream.dtype != np.uint8 or tuple(stream.shape[1:]) != (64, 64, 3):
            raise UserError(
                f"{src}: 'images' has shape {stream.shape} / {stream.dtype}; expected N x 64 x 64 x 3 uint8"
            )
        if factor_sizes is None:
            factor_sizes_for(n, src)

        def fill(out: np.ndarray) -> None:
            with tqdm(total=n, unit="img", desc=f"mpi3d {variant} -> cache", disable=None) as bar:
                for start in range(0, n, CHUNK):
                    rows = min(CHUNK, n - start)
                    out[start : start + rows] = stream.read(rows).transpose(0, 3, 1, 2)
                    bar.update(rows)

        arr = _files.ensure_npy(cache, (n, 3, 64, 64), "uint8", fill, force=force)
    finally:
        stream.close()
    return arr, n


def download(variant: str = "toy", root: str | Path | None = None) -> Path:
    """Fetch the official ``.npz`` of ``variant`` into ``root`` (checks the MD5)."""
    rootp = Path(root).expanduser() if root is not None else None
    dest = _files.data_root(rootp) / FILES[variant][0] if variant in FILES else None
    if variant not in URLS or dest is None:
        if variant == "complex":
            raise UserError(
                f"mpi3d complex has no direct download URL; get it from {_COMPLEX_PAGE} and place it at {dest}"
            )
        raise UserError(f"mpi3d: nothing to download for source {variant!r}; choose one of {', '.join(URLS)}")
    url, md5 = URLS[variant]
    return _files.fetch(url, dest, md5, f"download {url} in a browser and place it at {dest}")


# ---------------------------------------------------------------------------- procedural stand-in
# Colours (0..1) of the stand-in, picked from the official toy panels.
_OBJECT_RGB = torch.tensor(
    [[225, 225, 225], [60, 165, 75], [205, 45, 40], [45, 105, 220], [125, 75, 45], [150, 150, 55]],
    dtype=torch.float32,
) / 255  # white, green, red, blue, brown, olive
_RAIL_RGB = torch.tensor([[120, 95, 160], [70, 120, 105], [165, 95, 110]], dtype=torch.float32) / 255  # purple, sea green, salmon
_YY, _XX = torch.meshgrid(torch.arange(64, dtype=torch.float32) + 0.5, torch.arange(64, dtype=torch.float32) + 0.5, indexing="ij")


def _cover(d: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage of a signed distance in pixels (inside < 0)."""
    return (0.5 - d).clamp_(0.0, 1.0)


def _segment(px, py, ax, ay, bx, by) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Distance (pixels) from each pixel to the segment a-b (all args broadcast)."""
    vx, vy = bx - ax, by - ay
    t = (((px - ax) * vx + (py - ay) * vy) / (vx * vx + vy * vy + 1e-6)).clamp(0, 1)
    return torch.hypot(px - ax - t * vx, py - ay - t * vy)


_GREY = torch.tensor([0.62, 0.62, 0.62]).view(1, 3, 1, 1)
_JOINT_Y = 40  # joint row at camera_height 1; the camera shifts the scene by 5 px per step
_WIN_TOP, _WIN_LEFT, _WIN = 35, 12, 40  # arm window: rows joint_y-35.., cols 12..51
_PATCH = 16  # object patch side (pixels)
_tables: dict[str, torch.Tensor] = {}


def _tip(hor: torch.Tensor, ver: torch.Tensor, joint_y: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Arm tip position (pixels) for the horizontal / vertical axis indices."""
    swing = (hor.float() / 39.0 - 0.5) * 1.7
    reach = 6.0 + 16.0 * (0.35 + 0.65 * ver.float() / 39.0)
    return 32.0 + 17.0 * torch.sin(swing), joint_y - reach * torch.cos(swing)


def _backgrounds() -> torch.Tensor:
    """The static scene (room, rail, base, lower arm) for each (camera_height, background_color):
    ``9 x 3 x 64 x 64`` uint8, row ``3 * cam + bg``."""
    if "bg" not in _tables:
        cam, bg = (t.reshape(9, 1, 1) for t in torch.meshgrid(torch.arange(3), torch.arange(3), indexing="ij"))
        cam = cam.float()
        py, px = _YY.view(1, 64, 64), _XX.view(1, 64, 64)
        dy = (cam - 1.0) * 5.0
        rail_rgb = _RAIL_RGB[bg.view(9)].view(9, 3, 1, 1)
        radius = 60.0 + 25.0 * cam
        dist = torch.hypot(px - 32.0, py - (34.0 + dy + radius)) - radius  # > 0 below the rail
        floor = _cover(dist).unsqueeze(1)
        img = 0.17 + 0.03 * floor + 0.05 * floor * rail_rgb + 0.02 * (py / 64.0).unsqueeze(1)
        rail = _cover(dist.abs() - 1.3).unsqueeze(1)
        img = img + rail * (rail_rgb * 0.75 - img)
        base_y, joint_y = 57.0 + dy, _JOINT_Y + dy
        base = _cover(torch.hypot(px - 32.0, (py - base_y) * 2.2) - 3.5).unsqueeze(1)
        img = img + base * (_GREY * 0.9 - img)
        lower = _cover(torch.maximum((px - 32.0).abs() - 1.6, torch.maximum(joint_y - py, py - base_y))).unsqueeze(1)
        shade = 0.75 + 0.25 * ((32.0 - px) / 2.0).clamp(-1, 1).unsqueeze(1)
        img = img + lower * (_GREY * shade - img)
        _tables["bg"] = img.clamp(0, 1).mul(255).round().to(torch.uint8)
    return _tables["bg"]


def _upper_arms() -> torch.Tensor:
    """Coverage of the upper arm in the arm window for each (horizontal, vertical) index:
    ``1600 x 40 x 40`` float32, row ``40 * hor + ver`` (the camera only shifts the window)."""
    if "arm" not in _tables:
        hor, ver = (t.reshape(-1, 1, 1) for t in torch.meshgrid(torch.arange(40), torch.arange(40), indexing="ij"))
        jy = float(_WIN_TOP)  # joint row inside the window
        tx, ty = _tip(hor, ver, jy)
        px = (torch.arange(_WIN, dtype=torch.float32) + 0.5 + _WIN_LEFT).view(1, 1, -1)
        py = (torch.arange(_WIN, dtype=torch.float32) + 0.5).view(1, -1, 1)
        _tables["arm"] = _cover(_segment(px, py, 32.0, jy, tx, ty) - 0.8)
    return _tables["arm"]


def _object(shape: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed distance (units of the object radius) and shading of each shape at ``(u, w)``."""
    u, w = torch.broadcast_tensors(u, w)
    tri = torch.maximum(w - 0.9, (u.abs() - (w + 1.0) * 0.5) / 1.118)
    lid = torch.hypot(u / 0.7, (w + 0.75) / 0.3) - 1.0
    sdf = torch.stack(
        [
            torch.minimum(tri, torch.hypot(u, (w - 0.9) / 0.3) - 1.0),  # cone: triangle, round base
            torch.maximum(u.abs(), w.abs()) - 0.8,  # cube
            torch.minimum(torch.maximum(u.abs() - 0.7, w.abs() - 0.75), lid),  # cylinder
            torch.maximum(u.abs() * 0.866 + w.abs() * 0.5, w.abs()) - 0.85,  # hexagonal prism
            torch.maximum(w - 0.9, (u.abs() - (w + 1.0) * 0.62) / 1.18),  # pyramid: wider, flat base
            torch.hypot(u, w) - 0.95,  # sphere
        ],
        1,
    )
    light = torch.stack(
        [
            0.85 - 0.25 * u,  # cone: lit from the left
            torch.where(w < -0.45, 1.05, 0.8 - 0.1 * u),  # cube: bright top face
            torch.where(lid < 0.0, 1.05, 0.85 - 0.2 * u),  # cylinder: bright lid
            torch.where(u < -0.3, 1.0, torch.where(u > 0.3, 0.65, 0.82)),  # hexagonal prism: three faces
            torch.where(u < 0.0, 1.0, 0.7),  # pyramid: two faces
            1.1 - 0.45 * torch.hypot(u + 0.35, w + 0.35),  # sphere: radial highlight
        ],
        1,
    )
    pick = shape.view(-1, 1, 1, 1).expand(-1, 1, *u.shape[-2:])
    return sdf.gather(1, pick).squeeze(1), light.gather(1, pick)


def render(factors: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Render the procedural MPI3D stand-in: ``n x 7`` factor indices -> ``n x 3 x 64 x 64`` uint8.

    A grey room, a coloured rail (``background_color``), a fixed lower arm and a second arm segment
    whose tip is moved by ``horizontal_axis`` (left-right swing) and ``vertical_axis`` (lift, with
    perspective growth) and carries the object (6 colours; 6 shapes: cone, cube, cylinder,
    hexagonal prism, pyramid, sphere; 2 sizes). ``camera_height`` shifts the whole scene by 5 px
    per step and flattens the rail. Deterministic; the static scene and the arm come from
    precomputed tables, only a 16x16 object patch per image is computed.
    """
    f = torch.as_tensor(np.asarray(factors), dtype=torch.int64)
    if f.dim() != 2 or f.shape[1] != 7:
        raise ValueError(f"mpi3d procedural: factors must be n x 7, got {tuple(f.shape)}")
    if (f < 0).any() or (f >= torch.tensor(FACTOR_SIZES)).any():
        raise ValueError(f"mpi3d procedural: factor index out of range; sizes are {list(FACTOR_SIZES)}")
    n = f.shape[0]
    col, shape, size, cam, bg, hor, ver = f.unbind(1)
    out = _backgrounds().index_select(0, 3 * cam + bg)  # n x 3 x 64 x 64 uint8 (a copy)
    ii = torch.arange(n).view(n, 1, 1, 1)
    ch = torch.arange(3).view(1, 3, 1, 1)

    # upper arm, blended in its window (rows shift with the camera)
    joint_y = _JOINT_Y + 5 * (cam - 1)
    rows = (joint_y - _WIN_TOP).view(n, 1, 1, 1) + torch.arange(_WIN).view(1, 1, _WIN, 1)
    cols = torch.arange(_WIN_LEFT, _WIN_LEFT + _WIN).view(1, 1, 1, _WIN)
    flat = out.view(-1)
    at = (((ii * 3 + ch) * 64 + rows) * 64 + cols).view(-1)  # one flat index: fast gather/scatter
    win = flat.index_select(0, at).view(n, 3, _WIN, _WIN).float()
    arm = _upper_arms().index_select(0, 40 * hor + ver).unsqueeze(1)
    flat.index_copy_(0, at, (win + arm * (_GREY * 1.1 * 255.0 - win)).round_().to(torch.uint8).view(-1))

    # object on the tip, in a 16x16 patch around its centre
    verf = ver.float() / 39.0
    r = torch.where(size == 0, 3.6, 5.6) * (0.85 + 0.3 * verf)
    tx, ty = _tip(hor, ver, joint_y.float())
    cy = ty - 0.7 * r
    oy = (cy.floor().long() - _PATCH // 2).clamp(0, 64 - _PATCH)
    ox = (tx.floor().long() - _PATCH // 2).clamp(0, 64 - _PATCH)
    k = torch.arange(_PATCH)
    prow = oy.view(n, 1, 1, 1) + k.view(1, 1, _PATCH, 1)
    pcol = ox.view(n, 1, 1, 1) + k.view(1, 1, 1, _PATCH)
    py = prow[:, 0].float() + 0.5  # n x 16 x 1
    px = pcol[:, 0].float() + 0.5  # n x 1 x 16
    rr = r.view(n, 1, 1)
    d, light = _object(shape, (px - tx.view(n, 1, 1)) / rr, (py - cy.view(n, 1, 1)) / rr)
    obj = _cover(d * rr).unsqueeze(1)
    obj_rgb = _OBJECT_RGB[col].view(n, 3, 1, 1) * light.clamp(0.35, 1.15) * 255.0
    at = (((ii * 3 + ch) * 64 + prow) * 64 + pcol).view(-1)
    patch = flat.index_select(0, at).view(n, 3, _PATCH, _PATCH).float()
    flat.index_copy_(0, at, (patch + obj * (obj_rgb.clamp(max=255.0) - patch)).round_().to(torch.uint8).view(-1))
    return out


class ProceduralMPI3D(GroundTruthData):
    """Offline stand-in for MPI3D (same 7 factors and sizes), rendered per batch; not MPI3D data."""

    def __init__(self) -> None:
        super().__init__(
            "mpi3d", FACTOR_NAMES, FACTOR_SIZES, None, _files.grid_factors(FACTOR_SIZES),
            source="procedural", full_grid=True, num_channels=3,
        )

    def images_at(self, index: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(index, dtype=torch.int64).reshape(-1).cpu()
        return render(self.factors[idx])  # type: ignore[index]


# ---------------------------------------------------------------------------- registry
def _present(source: str, root: Path | None) -> bool:
    if source == "procedural":
        return True
    return _files.find(FILES[source], root, "mpi3d") is not None or cache_file(source).is_file()


def load(source: str | None = None, root: Path | None = None) -> GroundTruthData:
    """``source=None``: the first official variant present (toy, realistic, real, complex), else procedural."""
    source = _files.pick_source("mpi3d", source, SOURCES, _present, root)
    if source == "procedural":
        return ProceduralMPI3D()
    return load_official(source, root)


register(
    DatasetSpec(
        name="mpi3d",
        factor_names=FACTOR_NAMES,
        factor_sizes=FACTOR_SIZES,
        sources=SOURCES,
        load=load,
        present=_present,
        description="robot arm moving an object (MPI3D); 'procedural' is an offline look-alike",
        download=lambda root: download("toy", root),
        extra={
            "factor_sizes_by_source": {"complex": COMPLEX_FACTOR_SIZES},
            "download_source": download,
            "downloadable": tuple(URLS),
        },
    )
)
