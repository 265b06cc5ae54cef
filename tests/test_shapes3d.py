import h5py
import numpy as np
import pytest
import torch

from untwine.data import shapes3d

SMALL = (2, 3, 2, 2, 2, 3)  # 144 images


def write_h5(path, sizes=SMALL, shuffle=False, labels_fn=None):
    n = int(np.prod(sizes))
    idx = np.stack(np.unravel_index(np.arange(n), sizes), 1)
    labels = idx / np.maximum(np.array(sizes) - 1, 1) * np.array([1, 1, 1, 0.5, 3, 60]) + np.array([0, 0, 0, 0.75, 0, -30])
    if labels_fn:
        labels = labels_fn(labels)
    imgs = np.zeros((n, 64, 64, 3), np.uint8)
    imgs[:, 0, 0, 1] = np.arange(n)
    order = np.random.default_rng(0).permutation(n) if shuffle else np.arange(n)
    with h5py.File(path, "w") as f:
        f["images"] = imgs[order]
        f["labels"] = labels[order].astype(np.float64)
    return imgs[order], idx[order]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("UNTWINE_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_h5_converts_values_to_indices(env):
    imgs, idx = write_h5(env / "3dshapes.h5")
    d = shapes3d.load_official(env, factor_sizes=SMALL)
    assert d.full_grid and d.factor_sizes == SMALL and d.observation_shape == (3, 64, 64)
    assert np.array_equal(d.factors.numpy(), idx)
    assert torch.equal(d.images, torch.from_numpy(imgs).permute(0, 3, 1, 2))
    f, x = d.sample(12, np.random.default_rng(1))
    assert torch.allclose(x[:, 1, 0, 0] * 255, torch.from_numpy(d.index_of(f)).float())
    (env / "3dshapes.h5").unlink()  # the caches are enough afterwards
    assert np.array_equal(shapes3d.load_official(env, factor_sizes=SMALL).factors.numpy(), idx)


def test_shuffled_file_still_matches(env):
    imgs, idx = write_h5(env / "3dshapes.h5", shuffle=True)
    d = shapes3d.load_official(env, factor_sizes=SMALL)
    assert not d.full_grid and np.array_equal(d.factors.numpy(), idx)
    f, x = d.sample(12, np.random.default_rng(2))
    grid_index = np.ravel_multi_index(f.T, SMALL)  # what the pixel of the matching image holds
    assert torch.allclose(x[:, 1, 0, 0] * 255, torch.from_numpy(grid_index).float())


def test_labels_with_wrong_counts_are_refused(env):
    write_h5(env / "3dshapes.h5", labels_fn=lambda l: np.where(np.arange(len(l))[:, None] == 0, l + 0.01, l))
    with pytest.raises(ValueError, match=r"factor 0 \(floor_hue\) has 3 distinct values, expected 2"):
        shapes3d.load_official(env, factor_sizes=SMALL)
    assert not shapes3d.cache_files()[1].exists()


def test_wrong_n_keys_and_missing(env):
    write_h5(env / "3dshapes.h5")
    with pytest.raises(ValueError, match=r"144 images, but factor sizes \[10, 10, 10, 8, 4, 15\] give 480000"):
        shapes3d.load_official(env)
    with h5py.File(env / "3dshapes.h5", "w") as f:
        f["imgs"] = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"no dataset 'images' \(it holds \['imgs'\]\)"):
        shapes3d.load_official(env)
    (env / "3dshapes.h5").unlink()
    with pytest.raises(FileNotFoundError, match=r"looked at .*3dshapes.h5.*untwine data download shapes3d"):
        shapes3d.load_official(env)


def test_labels_to_indices():
    lab = np.array([[0.5, 3.0], [0.1, 3.0], [0.5, -1.0]])
    assert shapes3d.labels_to_indices(lab, (2, 2)).tolist() == [[1, 1], [0, 1], [1, 0]]
