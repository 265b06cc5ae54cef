import numpy as np
import pytest
import torch

from untwine.data import BatchSampler, from_arrays, train_val_split


def _grid(sizes=(2, 3, 4)):
    fac = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
    imgs = np.zeros((len(fac), 64, 64), np.uint8)
    for i, f in enumerate(fac):
        imgs[i, : f[0] + 1, : f[1] + 1] = 255
        imgs[i, -1, f[2]] = 255
    return imgs, fac


def test_full_grid_index_is_mixed_radix_last_fastest():
    imgs, fac = _grid()
    d = from_arrays(imgs, fac, ["a", "b", "c"])
    assert d.full_grid and d.factor_sizes == (2, 3, 4) and d.observation_shape == (1, 64, 64)
    assert np.array_equal(d.index_of(fac), np.arange(24))
    assert d.index_of([[0, 0, 1]]).tolist() == [1] and d.index_of([[1, 0, 0]]).tolist() == [12]


@pytest.mark.parametrize("rng", [np.random.RandomState(0), np.random.default_rng(0)])
def test_observations_match_factors(rng):
    imgs, fac = _grid()
    d = from_arrays(imgs, fac, ["a", "b", "c"])
    f, x = d.sample(50, rng)
    assert f.dtype == np.int64 and f.shape == (50, 3)
    assert x.dtype == torch.float32 and x.shape == (50, 1, 64, 64) and 0 <= x.min() and x.max() <= 1
    for fi, xi in zip(f, x):
        assert torch.equal(xi[0], torch.from_numpy(imgs[d.index_of(fi)[0]] / 255.0).float())


def test_non_grid_lookup_picks_matching_rows():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 40)
    imgs = np.zeros((40, 64, 64), np.uint8)
    imgs[:, 0, 0] = labels * 100
    d = from_arrays(imgs, labels, ["digit"])
    assert not d.full_grid
    f, x = d.sample(30, rng)
    assert torch.allclose(x[:, 0, 0, 0] * 255, torch.from_numpy(f[:, 0] * 100).float())


def test_bad_factors_raise():
    imgs, fac = _grid()
    d = from_arrays(imgs, fac, ["a", "b", "c"])
    with pytest.raises(ValueError, match="out of range"):
        d.index_of([[2, 0, 0]])
    with pytest.raises(ValueError, match="must be n x 3"):
        d.index_of([[0, 0]])
    with pytest.raises(TypeError, match="RandomState or Generator"):
        d.sample_factors(3, 42)


def test_sampler_resumes_identically():
    imgs, fac = _grid()
    d = from_arrays(imgs, fac, ["a", "b", "c"])
    s = BatchSampler(d, 8, seed=3)
    s.next()
    state = s.state_dict()
    a = s.next()
    s2 = BatchSampler(d, 8, seed=99)
    s2.load_state_dict(state)
    assert torch.equal(a, s2.next())


def test_sampler_state_from_another_device_type_reseeds_deterministically():
    imgs, fac = _grid()
    d = from_arrays(imgs, fac, ["a", "b", "c"])
    cuda_like = {"generator": torch.tensor([7, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8),
                 "device_type": "cuda"}  # a CUDA generator's state: seed, offset
    draws = []
    for _ in range(2):
        s = BatchSampler(d, 8, seed=0)
        s.load_state_dict(cuda_like)
        draws.append(s.next_indices())
    fresh = BatchSampler(d, 8, seed=0).next_indices()
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], fresh)
    assert BatchSampler(d, 8, seed=0).state_dict()["device_type"] == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_sampler_draws_indices_on_the_device_and_resumes():
    imgs, fac = _grid()
    d = from_arrays(imgs, fac, ["a", "b", "c"])
    s = BatchSampler(d, 8, indices=np.arange(0, len(d), 2), seed=3, device="cuda")
    assert s.next_indices().device.type == "cuda" and s.next().device.type == "cuda"
    state = s.state_dict()
    a = s.next()
    s2 = BatchSampler(d, 8, indices=np.arange(0, len(d), 2), seed=5, device="cuda")
    s2.load_state_dict(state)
    assert torch.equal(a, s2.next())


def test_split_is_disjoint_and_complete():
    tr, va = train_val_split(100, 0.2, seed=0)
    assert len(va) == 20 and len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 100


def test_non_grid_index_of_and_missing_combination():
    labels = np.array([[0, 1], [2, 0], [0, 1], [1, 1]])
    imgs = np.zeros((4, 64, 64), np.uint8)
    d = from_arrays(imgs, labels, ["a", "b"], factor_sizes=[3, 2])
    assert not d.full_grid
    assert d.index_of([[2, 0], [1, 1], [0, 1]]).tolist() == [1, 3, 0]
    with pytest.raises(KeyError, match=r"no image has factors \(2, 1\)"):
        d.observations_from_factors(np.array([[0, 1], [2, 1]]), np.random.default_rng(0))
    # both rows carrying (0, 1) are drawn
    picks = set()
    for seed in range(20):
        d.images = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 1, 64, 64).contiguous()
        x = d.observations_from_factors(np.array([[0, 1]]), np.random.default_rng(seed))
        picks.add(round(float(x[0, 0, 0, 0]) * 255))
    assert picks == {0, 2}


def test_images_on_a_device_are_copied_once_and_shared():
    imgs, fac = _grid()
    d = from_arrays(imgs, fac, ["a", "b", "c"])
    assert d.images_on("cpu") is d.images  # resident already: no copy
    meta = d.images_on("meta")  # any non-CPU device goes through the per-device cache
    assert meta.device.type == "meta" and meta.shape == d.images.shape
    assert d.images_on(torch.device("meta")) is meta
