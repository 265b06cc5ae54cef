import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from untwine.data import GroundTruthData, _sprite_bits, cache, get
from untwine.data import dsprites as ds

FIXTURE = Path(__file__).parent / "fixtures" / "dsprites_reference_frames.npz"
THRESHOLD = {0: 0.995, 1: 0.995, 2: 0.99}


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNTWINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("UNTWINE_DATA", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture(scope="module")
def reference():
    z = np.load(FIXTURE)
    return z["factors"], z["imgs"]


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


# ------------------------------------------------------------------ renderer vs real frames
def test_render_matches_real_frames(reference):
    factors, imgs = reference
    out = ds.render(factors)
    assert out.shape == (160, 64, 64) and out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 255}
    for shape, threshold in THRESHOLD.items():
        rows = np.nonzero(factors[:, 0] == shape)[0]
        scores = [iou(out[i] > 0, imgs[i] > 0) for i in rows]
        assert np.mean(scores) >= threshold, (ds.SHAPES[shape], np.mean(scores))
    exact = np.mean([(out[i] > 0).tolist() == (imgs[i] > 0).tolist() for i in range(160)])
    assert exact >= 0.5


def test_render_conventions():
    # square at scale 1, orientation 0, position 0: a 20 x 20 block at rows/cols 6..25
    img = ds.render([[0, 5, 0, 0, 0]])[0]
    rows, cols = np.nonzero(img)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 25, 6, 25)
    # posX moves along columns, posY along rows (0 at the top); position 1 is 32 px further
    assert np.array_equal(ds.render([[0, 5, 0, 31, 0]])[0], np.roll(img, 32, axis=1))
    assert np.array_equal(ds.render([[0, 5, 0, 0, 31]])[0], np.roll(img, 32, axis=0))
    # orientation 0 and 39 (0 and 2 pi) give the same image; the heart's tip points down
    assert np.array_equal(ds.render([[2, 5, 0, 9, 9]]), ds.render([[2, 5, 39, 9, 9]]))
    heart = ds.render([[2, 5, 0, 16, 16]])[0] > 0
    widths = heart.sum(1)
    assert np.argmax(widths) < 32 < np.nonzero(widths)[0].max()
    with pytest.raises(ValueError, match=r"factors must be n x 5"):
        ds.render(np.zeros((2, 4), int))
    with pytest.raises(ValueError, match=r"out of range; sizes are \[3, 6, 40, 32, 32\]"):
        ds.render([[3, 0, 0, 0, 0]])


def test_fill_packed_matches_render():
    sizes = (3, 1, 2, 3, 4)
    out = np.zeros((int(np.prod(sizes)), 64, 8), np.uint8)
    ds._fill_packed(out, sizes, progress=False)
    factors = np.stack(np.unravel_index(np.arange(len(out)), sizes), 1)
    assert np.array_equal(np.unpackbits(out, axis=-1) * 255, ds.render(factors))


def test_index_of_matches_file_order(reference):
    factors, _ = reference
    data = GroundTruthData("dsprites", ds.FACTOR_NAMES, ds.FACTOR_SIZES, None, None, full_grid=True, num_channels=1)
    assert len(data) == ds.N_IMAGES == 737_280
    idx = data.index_of(factors)
    # mixed radix, posY fastest: the official file order
    expected = (((factors[:, 0] * 6 + factors[:, 1]) * 40 + factors[:, 2]) * 32 + factors[:, 3]) * 32 + factors[:, 4]
    assert np.array_equal(idx, expected)
    assert data.index_of([[0, 0, 0, 0, 1]])[0] == 1 and data.index_of([[0, 0, 0, 1, 0]])[0] == 32


# ------------------------------------------------------------------ procedural cache
def test_procedural_small_grid(tmp_cache):
    sizes = (2, 1, 1, 4, 4)
    data = ds.load_procedural(sizes, progress=False)
    assert data.source == "procedural" and data.full_grid
    assert len(data) == 32 and data.observation_shape == (1, 64, 64) and data.num_channels == 1
    imgs = data.images_at(torch.arange(32))
    assert imgs.shape == (32, 1, 64, 64) and imgs.dtype == torch.uint8
    f = np.array([[1, 0, 0, 2, 3], [0, 0, 0, 3, 1]])
    rows = data.index_of(f)
    assert torch.equal(data.images_at(torch.from_numpy(rows))[:, 0], torch.from_numpy(ds.render(f)))
    assert torch.equal(data.factors[rows], torch.from_numpy(f))
    assert Path(data.files["cache"]).is_file()


def test_interrupted_cache_is_rebuilt(tmp_cache, monkeypatch):
    sizes = (1, 1, 2, 2, 2)
    path = ds.procedural_cache_path(sizes)
    # a leftover .partial from a killed build is never used
    path.parent.mkdir(parents=True)
    cache.partial_path(path).write_bytes(b"half-written")
    calls = []
    real = ds._fill_packed

    def interrupted(out, s, progress):
        calls.append(1)
        if len(calls) == 1:
            out[:] = 1
            raise KeyboardInterrupt

        real(out, s, progress)

    monkeypatch.setattr(ds, "_fill_packed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ds.build_procedural(sizes, progress=False)
    assert not path.exists() and not cache.partial_path(path).exists()
    data = ds.load_procedural(sizes, progress=False)
    assert len(calls) == 2 and path.is_file()
    factors = np.stack(np.unravel_index(np.arange(8), sizes), 1)
    assert torch.equal(data.images_at(torch.arange(8))[:, 0], torch.from_numpy(ds.render(factors)))
    ds.load_procedural(sizes, progress=False)
    assert len(calls) == 2  # built once


def _unpack_resident(packed: np.ndarray) -> torch.Tensor:
    """How load_procedural unpacked the cache before it stayed packed: ``N x 1 x 64 x 64`` 0/255."""
    return torch.from_numpy(np.unpackbits(np.asarray(packed), axis=-1) * np.uint8(255)).unsqueeze(1)


@pytest.mark.parametrize("sizes", [(2, 2, 3, 5, 6), (1, 1, 1, 1, 1), (3, 1, 2, 32, 32)])
def test_packed_rows_equal_the_resident_images(tmp_cache, sizes):
    """images_at unpacks exactly the pixels the resident tensor held: first and last row of the
    grid, a random sample, repeats, any index shape, and the device copy (run here on the CPU)."""
    data = ds.load_procedural(sizes, progress=False)
    n = int(np.prod(sizes))
    resident = _unpack_resident(data.bits)
    rows = torch.cat([torch.tensor([0, n - 1, n - 1, 0]), torch.randint(0, n, (61,), generator=torch.Generator().manual_seed(0))])
    got = data.images_at(rows)
    assert got.dtype == torch.uint8 and got.shape == (len(rows), 1, 64, 64)
    assert torch.equal(got, resident[rows])
    assert torch.equal(data.images_at(rows.numpy()), resident[rows])
    assert torch.equal(data.images_at(rows[:4].view(2, 2)), resident[rows[:4]].view(2, 2, 1, 64, 64))
    assert torch.equal(data.images_at(torch.tensor(n - 1)), resident[n - 1])
    assert torch.equal(data.images_at(torch.arange(n)), resident)
    assert set(resident.unique().tolist()) <= {0, 255}
    assert torch.equal(data._resident_copy(torch.device("cpu")), resident)  # the GPU branch's unpack
    assert torch.equal(_sprite_bits.unpack_to(data.bits, "cpu", chunk=7), resident)  # chunk edges
    f = data.factors[rows].numpy()
    assert torch.equal(data.observations_from_factors(f, np.random.default_rng(0)), resident[rows].float() / 255)
    with pytest.raises(IndexError):
        data.images_at(torch.tensor([n]))


def test_procedural_keeps_the_cache_packed_and_mapped(tmp_cache):
    """No unpacked copy is held: ``images`` is None and the only large array is the memory-mapped
    cache (so processes share its pages); batches come from images_at, also through the sampler."""
    from untwine.data import BatchSampler

    sizes = (3, 2, 4, 8, 8)
    data = ds.load_procedural(sizes, progress=False)
    n = len(data)
    assert isinstance(data, ds.PackedDSprites) and data.images is None
    assert isinstance(data.bits, np.memmap) and data.bits.shape == (n, 64, 8) and data.bits.dtype == np.uint8
    assert Path(data.bits.filename).resolve() == ds.procedural_cache_path(sizes).resolve()
    assert not data.bits.flags.writeable
    big = {k for k, v in vars(data).items() if isinstance(v, (np.ndarray, torch.Tensor)) and v.nbytes >= n * 64 * 8}
    assert big == {"bits"}  # factors (n x 5 int64) is smaller than the packed bits; no n x 4096 array
    assert data.images_on("cpu") is None  # the sampler unpacks per batch on the CPU
    s = BatchSampler(data, 16, seed=0)
    rows = s.next_indices()
    assert torch.equal(s.batch_at(rows), _unpack_resident(data.bits)[rows].float() / 255)
    assert data.images_on("meta").shape == (n, 1, 64, 64)  # a device copy is unpacked once, shared
    assert data.images_on("meta") is data.images_on(torch.device("meta"))


# ------------------------------------------------------------------ official file
def write_official(path, n, keys=ds.OFFICIAL_KEYS, imgs_shape=None):
    rng = np.random.default_rng(0)
    arrays = {
        "imgs": rng.integers(0, 2, imgs_shape or (n, 64, 64)).astype(np.uint8),
        "latents_classes": np.zeros((n, 6), np.int64),
        "latents_values": np.zeros((n, 6), np.float64),
        "metadata": np.array("{}"),
    }
    np.savez(path, **{k: v for k, v in arrays.items() if k in keys})
    return arrays["imgs"]


def md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_read_official_small_file(tmp_cache):
    p = tmp_cache / "small.npz"
    imgs = write_official(p, 5)
    got = ds.read_official(p, n=5, md5=md5(p))
    assert np.array_equal(got, imgs)


def test_read_official_errors(tmp_cache):
    p = tmp_cache / "nokeys.npz"
    write_official(p, 5, keys=("imgs", "latents_values", "metadata"))
    with pytest.raises(ValueError, match=r"nokeys.npz: missing key\(s\) latents_classes; a dSprites file has keys"):
        ds.read_official(p, n=5, md5=None)
    p = tmp_cache / "shape.npz"
    write_official(p, 5, imgs_shape=(5, 32, 32))
    with pytest.raises(ValueError, match=r"imgs has shape \(5, 32, 32\) uint8, expected \(5, 64, 64\) uint8"):
        ds.read_official(p, n=5, md5=None)
    with pytest.raises(ValueError, match=r"imgs has shape \(5, 32, 32\) uint8, expected \(737280, 64, 64\)"):
        ds.read_official(p, md5=None)
    with pytest.raises(ValueError, match=r"MD5 [0-9a-f]{32} does not match the official dSprites file \(7da33b31b13a06f4b04a70402ce90c2e\)"):
        ds.read_official(p)


def test_md5_verification_is_cached(tmp_cache, monkeypatch):
    p = tmp_cache / "f.npz"
    write_official(p, 3)
    good = md5(p)
    ds.verify_md5(p, good)
    monkeypatch.setattr(ds._files, "md5sum", lambda path: pytest.fail("MD5 recomputed"))
    ds.verify_md5(p, good)  # remembered: no hashing
    p.write_bytes(p.read_bytes() + b"x")  # changed size -> hashed again
    monkeypatch.setattr(ds._files, "md5sum", lambda path: "0" * 32)
    with pytest.raises(ValueError, match="does not match"):
        ds.verify_md5(p, good)


def test_missing_official_file(tmp_cache):
    with pytest.raises(FileNotFoundError) as e:
        ds.load_official(tmp_cache / "nowhere")
    msg = str(e.value)
    assert str(tmp_cache / "nowhere" / ds.OFFICIAL_FILE) in msg
    assert "untwine data download dsprites" in msg and "--source procedural" in msg


def test_download_offline_says_how_to_place_file(tmp_cache):
    with pytest.raises(OSError, match=r"could not download .*place it at .*dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"):
        ds.download(tmp_cache / "dl", url="http://127.0.0.1:9/dsprites.npz")
    assert not (tmp_cache / "dl" / ds.OFFICIAL_FILE).exists()


# ------------------------------------------------------------------ registry
def test_registry_entry(tmp_cache, monkeypatch):
    spec = get("dsprites")
    assert spec.sources == ("official", "procedural")
    assert spec.factor_sizes == (3, 6, 40, 32, 32)
    assert spec.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert not spec.present("official", tmp_cache / "data") and spec.present("procedural", None)
    seen = []
    monkeypatch.setattr(ds, "load_procedural", lambda: seen.append("procedural") or "P")
    monkeypatch.setattr(ds, "load_official", lambda root: seen.append("official") or "O")
    assert spec.load(None, tmp_cache / "data") == "P"  # no official file: procedural
    (tmp_cache / "data").mkdir()
    (tmp_cache / "data" / ds.OFFICIAL_FILE).write_bytes(b"")
    assert spec.present("official", tmp_cache / "data")
    assert spec.load(None, tmp_cache / "data") == "O"
    assert seen == ["procedural", "official"]
