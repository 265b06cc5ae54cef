import numpy as np
import pytest
import torch

from untwine.data import BatchSampler, load
from untwine.data import mpi3d
from untwine.data.cache import partial_path

SMALL = (2, 2, 1, 1, 1, 2, 3)  # 24 images in the official layout


def _write(path, n=24, key="images", compressed=False, shape=None):
    imgs = np.zeros(shape or (n, 64, 64, 3), np.uint8)
    imgs[:, 0, 0, 0] = np.arange(n) % 256  # row i carries i in its top-left red pixel
    imgs[:, 5, 7, 2] = 200
    (np.savez_compressed if compressed else np.savez)(path, **{key: imgs})
    return imgs


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("UNTWINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("UNTWINE_DATA", raising=False)
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.mark.parametrize("compressed", [False, True])
def test_official_layout_converts_to_nchw_cache(env, compressed, monkeypatch):
    monkeypatch.setattr(mpi3d, "CHUNK", 5)  # several chunks, last one partial
    imgs = _write(env / "mpi3d_toy.npz", compressed=compressed)
    d = mpi3d.load_official("toy", env, factor_sizes=SMALL)
    assert d.factor_sizes == SMALL and d.full_grid and d.source == "toy" and len(d) == 24
    assert d.images.shape == (24, 3, 64, 64) and d.images.dtype == torch.uint8
    assert torch.equal(d.images, torch.from_numpy(imgs).permute(0, 3, 1, 2))
    assert mpi3d.cache_file("toy").is_file()
    # factors are mixed radix, last fastest: row i has index i
    assert np.array_equal(d.index_of(d.factors.numpy()), np.arange(24))
    assert d.factors[1].tolist() == [0, 0, 0, 0, 0, 0, 1] and d.factors[3].tolist() == [0, 0, 0, 0, 0, 1, 0]
    f, x = d.sample(10, np.random.default_rng(0))
    assert torch.allclose(x[:, 0, 0, 0] * 255, torch.from_numpy(d.index_of(f)).float())


def test_cache_is_used_without_the_npz(env):
    _write(env / "mpi3d_toy.npz")
    mpi3d.load_official("toy", env, factor_sizes=SMALL)
    (env / "mpi3d_toy.npz").unlink()
    d = mpi3d.load_official("toy", env, factor_sizes=SMALL)
    assert d.images[5, 0, 0, 0] == 5


def test_file_in_subfolder_and_complex_alias(env):
    (env / "mpi3d").mkdir()
    _write(env / "mpi3d" / "real3d_complicated_shapes_ordered.npz")
    d = mpi3d.load_official("complex", env, factor_sizes=SMALL)
    assert d.source == "complex" and len(d) == 24


def test_factor_sizes_are_inferred_from_n():
    assert mpi3d.factor_sizes_for(1_036_800) == (6, 6, 2, 3, 3, 40, 40)
    assert mpi3d.factor_sizes_for(460_800) == (4, 4, 2, 3, 3, 40, 40)
    with pytest.raises(ValueError, match=r"has 1000 images; expected 1036800 .* or 460800"):
        mpi3d.factor_sizes_for(1000)


def test_wrong_n_is_refused(env):
    _write(env / "mpi3d_real.npz")
    with pytest.raises(ValueError, match="has 24 images; expected 1036800"):
        mpi3d.load_official("real", env)
    assert not mpi3d.cache_file("real").exists()
    with pytest.raises(ValueError, match="multiply to 12, but the file has 24"):
        mpi3d.load_official("real", env, factor_sizes=(2, 2, 3))


def test_wrong_key_and_shape(env):
    _write(env / "mpi3d_toy.npz", key="imgs")
    with pytest.raises(ValueError, match=r"no array 'images' in this .npz \(it holds \['imgs'\]\)"):
        mpi3d.load_official("toy", env, factor_sizes=SMALL)
    _write(env / "mpi3d_toy.npz", shape=(24, 32, 32, 3))
    with pytest.raises(ValueError, match=r"expected N x 64 x 64 x 3 uint8"):
        mpi3d.load_official("toy", env, factor_sizes=SMALL)


def test_missing_file_names_paths_and_fix(env):
    with pytest.raises(FileNotFoundError, match=r"looked at .*mpi3d_realistic.npz.*untwine data download mpi3d --source realistic"):
        mpi3d.load_official("realistic", env)


def test_interrupted_build_is_never_used(env, monkeypatch):
    imgs = _write(env / "mpi3d_toy.npz")
    monkeypatch.setattr(mpi3d, "CHUNK", 8)
    real_read = mpi3d._NpyStream.read
    calls = {"n": 0}

    def flaky(self, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_read(self, rows)

    monkeypatch.setattr(mpi3d._NpyStream, "read", flaky)
    with pytest.raises(KeyboardInterrupt):
        mpi3d.load_official("toy", env, factor_sizes=SMALL)
    cache = mpi3d.cache_file("toy")
    assert not cache.exists() and not partial_path(cache).exists()
    # a stale .partial from a killed process is ignored and replaced
    partial_path(cache).write_bytes(b"garbage")
    monkeypatch.setattr(mpi3d._NpyStream, "read", real_read)
    d = mpi3d.load_official("toy", env, factor_sizes=SMALL)
    assert torch.equal(d.images, torch.from_numpy(imgs).permute(0, 3, 1, 2))
    assert not partial_path(cache).exists()


def test_truncated_member_is_an_error(env, tmp_path):
    import zipfile

    _write(tmp_path / "full.npz")
    with zipfile.ZipFile(tmp_path / "full.npz") as z:
        raw = z.read("images.npy")
    with zipfile.ZipFile(env / "mpi3d_toy.npz", "w") as z:
        z.writestr("images.npy", raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated"):
        mpi3d.load_official("toy", env, factor_sizes=SMALL)
    assert not mpi3d.cache_file("toy").exists()


def test_registry_default_is_procedural_offline(env):
    d = load("mpi3d", root=env)
    assert isinstance(d, mpi3d.ProceduralMPI3D) and d.source == "procedural"
    assert d.images is None and d.factor_sizes == (6, 6, 2, 3, 3, 40, 40) and len(d) == 1_036_800
    with pytest.raises(ValueError, match="unknown source 'fake'"):
        load("mpi3d", "fake")


def test_procedural_images_follow_every_factor():
    base = np.array([[1, 2, 1, 1, 1, 20, 20]])
    x0 = mpi3d.render(base)
    assert x0.shape == (1, 3, 64, 64) and x0.dtype == torch.uint8
    assert torch.equal(x0, mpi3d.render(base))  # deterministic
    variants = []
    for k, size in enumerate(mpi3d.FACTOR_SIZES):
        for v in set(range(size)) - {base[0, k]}:
            f = base.copy()
            f[0, k] = v
            variants.append(f[0])
    xs = mpi3d.render(np.stack(variants))  # one batch: every single-factor change
    changed = (xs != x0).flatten(1).any(1)
    assert changed.all(), [variants[i] for i in np.flatnonzero(~changed.numpy())]


def test_procedural_batches_match_factors_and_sampler():
    d = mpi3d.ProceduralMPI3D()
    rng = np.random.default_rng(3)
    f, x = d.sample(16, rng)
    assert x.shape == (16, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal((x * 255).round().to(torch.uint8), mpi3d.render(f))
    batch = BatchSampler(d, 32, seed=0).next()
    assert batch.shape == (32, 3, 64, 64) and batch.std() > 0.05
    with pytest.raises(ValueError, match="out of range"):
        mpi3d.render(np.array([[6, 0, 0, 0, 0, 0, 0]]))
