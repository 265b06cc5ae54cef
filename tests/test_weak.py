"""Weak supervision: the pair sampler's invariants and the four pair objectives against a numpy
transcription of disentanglement_lib's formulas (``methods/weak/weak_vae.py``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from untwine import objectives
from untwine.data import from_arrays, load
from untwine.data.pairs import Pairing, PairSampler, pair_factors, partner_rows
from untwine.objectives.weak import adaptive_mask, label_mask
from untwine.train import RunConfig, train, train_packed

SIZES = (3, 6, 40, 32, 32)  # dSprites' factors


# ---------------------------------------------------------------- dlib's formulas, in numpy
def np_compute_kl(z1, z2, lv1, lv2):
    v1, v2 = np.exp(lv1), np.exp(lv2)
    return v1 / v2 + np.square(z2 - z1) / v2 - 1 + lv2 - lv1


def np_bins(x):
    """tf.histogram_fixed_width_bins(x, [min(x), max(x)], nbins=2) of one row."""
    lo, hi = x.min(), x.max()
    with np.errstate(invalid="ignore", divide="ignore"):
        idx = np.floor(2 * ((x - lo) / (hi - lo)))
    idx = np.clip(idx, 0, 1)
    return np.where(np.isnan(idx), -1, idx).astype(int)


def np_weak(kind, adaptive, mu, lv, labels):
    """dlib's model_fn up to the sampled posteriors: (mean_1, logvar_1), (mean_2, logvar_2)."""
    b = len(mu) // 2
    m1, m2, l1, l2 = mu[:b], mu[b:], lv[:b], lv[b:]
    v1, v2 = np.exp(l1), np.exp(l2)
    if kind == "group":
        new_m, new_l = 0.5 * m1 + 0.5 * m2, np.log(0.5 * v1 + 0.5 * v2)
    else:
        new_v = 2 * v1 * v2 / (v1 + v2)
        new_m, new_l = (m1 / v1 + m2 / v2) * new_v * 0.5, np.log(new_v)
    if adaptive:
        kl = np_compute_kl(m1, m2, l1, l2)
        mask = np.stack([np_bins(r) for r in kl]) == 1
    else:
        hot = np.eye(mu.shape[1])[labels]
        mask = hot == hot.max(1, keepdims=True)
    return (np.where(mask, m1, new_m), np.where(mask, l1, new_l),
            np.where(mask, m2, new_m), np.where(mask, l2, new_l))


CASES = [("gvae", "group", False), ("ml-vae", "ml", False), ("ada-gvae", "group", True), ("ada-ml-vae", "ml", True)]


@pytest.mark.parametrize("name,kind,adaptive", CASES)
def test_aggregation_equals_dlib(name, kind, adaptive):
    rng = np.random.default_rng(0)
    b, d = 7, 10
    mu, lv = rng.normal(size=(2 * b, d)), rng.normal(scale=0.7, size=(2 * b, d))
    mu[b:, :6] = mu[:b, :6] + rng.normal(scale=0.01, size=(b, 6))  # nearly shared dims, as pairs give
    labels = rng.integers(0, 5, b)
    obj = objectives.build(name, dataset_size=100, latents=d)
    m, l = obj.aggregate(torch.tensor(mu), torch.tensor(lv), torch.tensor(labels))
    e1m, e1l, e2m, e2l = np_weak(kind, adaptive, mu, lv, labels)
    np.testing.assert_allclose(m.numpy(), np.concatenate([e1m, e2m]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(l.numpy(), np.concatenate([e1l, e2l]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,kind,adaptive", CASES)
def test_aggregation_gradients_equal_dlib(name, kind, adaptive):
    """d(sum(w1 * mean + w2 * logvar))/d(mu, logvar): autograd against central differences of the
    numpy transcription (the mask is piecewise constant; no tie lies within the step)."""
    rng = np.random.default_rng(1)
    b, d = 3, 6
    mu, lv = rng.normal(size=(2 * b, d)), rng.normal(scale=0.5, size=(2 * b, d))
    labels = rng.integers(0, 5, b)
    w1, w2 = rng.normal(size=(2 * b, d)), rng.normal(size=(2 * b, d))
    obj = objectives.build(name, dataset_size=100, latents=d)
    tm, tl = torch.tensor(mu, requires_grad=True), torch.tensor(lv, requires_grad=True)
    m, l = obj.aggregate(tm, tl, torch.tensor(labels))
    (m * torch.tensor(w1) + l * torch.tensor(w2)).sum().backward()

    def f(mu_, lv_):
        a1m, a1l, a2m, a2l = np_weak(kind, adaptive, mu_, lv_, labels)
        return (np.concatenate([a1m, a2m]) * w1 + np.concatenate([a1l, a2l]) * w2).sum()

    eps = 1e-6
    for arr, grad in ((mu, tm.grad), (lv, tl.grad)):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            hi, lo = arr.copy(), arr.copy()
            hi[idx] += eps
            lo[idx] -= eps
            num[idx] = (f(hi, lv) - f(lo, lv)) / (2 * eps) if arr is mu else (f(mu, hi) - f(mu, lo)) / (2 * eps)
        np.testing.assert_allclose(grad.numpy(), num, rtol=1e-5, atol=1e-6)


def test_threshold_edge_cases():
    # the midpoint itself and the maximum are "not shared"; equal values share every dimension
    x = torch.tensor([[0.0, 1.0, 2.0, 0.5], [3.0, 3.0, 3.0, 3.0]])
    assert adaptive_mask(x).tolist() == [[False, True, True, False], [False] * 4]
    assert [r.tolist() for r in (np_bins(x[0].numpy()) == 1, np_bins(x[1].numpy()) == 1)] == adaptive_mask(x).tolist()
    # dlib's one-hot: a label beyond the latents shares nothing
    assert label_mask(torch.tensor([1, 7]), 4).tolist() == [[False, True, False, False], [True] * 4]


def test_loss_is_dlibs():
    """mean of the two reconstructions + beta * mean of the two aggregated KLs, nats per image."""
    rng = np.random.default_rng(2)
    b, d = 4, 5
    x = torch.tensor(rng.random((2 * b, 1, 8, 8)) > 0.5, dtype=torch.float64)
    logits = torch.tensor(rng.normal(size=(2 * b, 1, 8, 8)))
    mu, lv = torch.tensor(rng.normal(size=(2 * b, d))), torch.tensor(rng.normal(size=(2 * b, d)))
    obj = objectives.build("ada-gvae", dataset_size=100, latents=d, beta=3.0)
    t = obj.terms(x, mu, lv, mu, logits, 0)
    p = torch.sigmoid(logits).numpy()
    rec = -(x.numpy() * np.log(p) + (1 - x.numpy()) * np.log(1 - p)).reshape(2 * b, -1).sum(1)
    kl = 0.5 * (mu.numpy() ** 2 + np.exp(lv.numpy()) - lv.numpy() - 1).sum(1)
    expected = 0.5 * rec[:b].mean() + 0.5 * rec[b:].mean() + 3.0 * (0.5 * kl[:b].mean() + 0.5 * kl[b:].mean())
    assert float(t["loss"]) == pytest.approx(expected, rel=1e-12)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match=r"^ada-gvae: beta must be > 0, got 0.0$"):
        objectives.build("ada-gvae", dataset_size=1, latents=2, beta=0.0)
    with pytest.raises(ValueError, match=r"^gvae: k must be an integer \(0: uniform over 1..K-1 per pair\), got 1.5$"):
        objectives.build("gvae", dataset_size=1, latents=2, k=1.5)
    with pytest.raises(ValueError, match=r"^ml-vae: dlib_pairs must be 0"):
        objectives.build("ml-vae", dataset_size=1, latents=2, dlib_pairs=2.0)


# ---------------------------------------------------------------- the pair sampler
def _factors(n, seed=0):
    g = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([g.integers(0, s, n) for s in SIZES], 1))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_paper_pairs_share_exactly_K_minus_k(k):
    f = _factors(4000)
    f2, labels = pair_factors(f, SIZES, k, "paper", torch.Generator().manual_seed(0))
    changed = f2 != f
    assert (changed.sum(1) == k).all()
    assert changed[torch.arange(len(f)), labels].all()  # the label is a changed factor
    assert ((f2 >= 0) & (f2 < torch.tensor(SIZES))).all()
    # every factor is changed about equally often, and new values cover all the others
    share = changed.float().mean(0) * len(SIZES) / k
    assert torch.allclose(share, torch.ones(len(SIZES)), atol=0.1)


def test_rnd_pairs():
    f = _factors(6000)
    f2, labels = pair_factors(f, SIZES, 0, "paper", torch.Generator().manual_seed(1))
    n = (f2 != f).sum(1)
    counts = torch.bincount(n, minlength=6)
    assert counts[0] == 0 and counts[5] == 0  # always shares 1..4 factors
    assert (counts[1:5].float() / len(f) - 0.25).abs().max() < 0.03


def test_dlib_pairs_as_coded():
    f = _factors(8000)
    f2, labels = pair_factors(f, SIZES, 3, "dlib", torch.Generator().manual_seed(2))
    n = (f2 != f).sum(1)
    assert n.max() <= 3
    assert (n == 0).any()  # a redrawn factor may keep its value: identical pairs happen
    # one factor redrawn in half the pairs (then it keeps its value with prob 1/size)
    assert ((n <= 1).float().mean() - 0.5).abs() < 0.05
    assert not (f2 == f).all(1).all()


def test_pair_that_shares_nothing_is_rejected():
    msg = (r"^k=5 changes every factor of dsprites \(5 that vary\): the two images of a pair would "
           r"share no factor; choose k in 1..4, or 0 for k uniform over 1..4 per pair$")
    data = load("dsprites", "procedural")
    with pytest.raises(ValueError, match=msg):
        PairSampler(data, 8, k=5)
    with pytest.raises(ValueError, match=msg.replace("dsprites", "dataset")):
        pair_factors(_factors(3), SIZES, 5, "paper", torch.Generator())


def test_an_unknown_pair_mode_is_rejected_when_the_sampler_is_built():
    data = load("dsprites", "procedural")
    with pytest.raises(ValueError, match=r"^unknown pair mode 'papers'; choose one of paper, dlib$"):
        PairSampler(data, 8, k=1, mode="papers")


def test_a_pairing_is_its_checked_arguments_and_draws_known_partners():
    """Partners pinned for generator seed 3 (the draws of the code before Pairing, commit 6ac03c0,
    which drew them in pair_factors: the refactor changed no draw)."""
    p = Pairing((3, 6, 40, 32, 32), k=2, mode="paper", name="toy")
    assert (p.sizes, p.k, p.mode) == ((3, 6, 40, 32, 32), 2, "paper") and p == Pairing((3, 6, 40, 32, 32), 2, name="toy")
    f = torch.tensor([[0, 0, 0, 0, 0], [2, 5, 39, 31, 31], [1, 3, 20, 10, 7]])
    f2, labels = p.draw(f, torch.Generator().manual_seed(3))
    assert f2.tolist() == [[1, 0, 0, 6, 0], [1, 5, 39, 6, 31], [1, 3, 32, 10, 13]] and labels.tolist() == [0, 0, 4]
    f2, labels = Pairing(p.sizes, 0, "dlib").draw(f, torch.Generator().manual_seed(3))
    assert f2.tolist() == [[0, 0, 0, 0, 6], [2, 5, 39, 9, 31], [2, 3, 20, 10, 7]] and labels.tolist() == [4, 3, 0]
    one = Pairing((3, 1, 6), k=1)  # a factor with one value never changes
    g2, l2 = one.draw(torch.tensor([[0, 0, 5], [2, 0, 0]] * 50), torch.Generator().manual_seed(7))
    assert (g2[:, 1] == 0).all() and set(l2.tolist()) <= {0, 2}


def test_sampler_pairs_images_and_repeatability():
    data = load("dsprites", "procedural")
    rows = np.arange(0, len(data), 7)
    s = PairSampler(data, 16, rows, seed=3, k=2)
    idx = s.next_indices()
    f1, f2 = data.factors[idx[:16]], data.factors[idx[16:]]
    assert ((f1 != f2).sum(1) == 2).all()
    assert np.isin(idx[:16].numpy(), rows).all()
    x = s.batch_at(idx)
    assert x.shape == (32, 1, 64, 64)
    torch.testing.assert_close(x[16:], data.images_at(idx[16:]).float() / 255)
    # same seed, same pairs; a saved state continues the stream
    t = PairSampler(data, 16, rows, seed=3, k=2)
    assert torch.equal(t.next_indices(), idx) and torch.equal(t.labels, s.labels)
    state = s.state_dict()
    a = s.next_indices()
    u = PairSampler(data, 16, rows, seed=99, k=2)
    u.load_state_dict(state)
    assert torch.equal(u.next_indices(), a)
    assert not torch.equal(PairSampler(data, 16, rows, seed=4, k=2).next_indices(), idx)


def test_sampler_on_a_dataset_that_is_not_a_grid():
    g = np.random.default_rng(0)
    f = np.array([[a, b] for a in range(4) for b in range(5) if (a + b) % 3])  # some cells missing
    data = from_arrays(g.integers(0, 255, (len(f), 1, 64, 64), dtype=np.uint8), f, factor_names=["a", "b"])
    s = PairSampler(data, 64, seed=0, k=1)
    idx = s.next_indices()
    f1, f2 = data.factors[idx[:64]], data.factors[idx[64:]]
    assert ((f1 != f2).sum(1) == 1).all()


@pytest.mark.parametrize("k", [1, 3, 0])
def test_sampler_on_mpi3d_pairs_the_right_images(k):
    """MPI3D (7 factors, one of them binary; the procedural stand-in, rendered per batch): each
    partner is the image with the drawn factors, and shares exactly 7 - k of them (k 0: 1..6)."""
    data = load("mpi3d", "procedural")
    s = PairSampler(data, 64, np.arange(0, len(data), 11), seed=5, k=k)
    idx = s.next_indices()
    f1, f2 = data.factors[idx[:64]], data.factors[idx[64:]]
    changed = (f1 != f2).sum(1)
    assert ((changed == k).all() if k else ((changed >= 1) & (changed <= 6)).all())
    assert (f1 != f2)[np.arange(64), s.labels.numpy()].all()
    torch.testing.assert_close(s.batch_at(idx)[64:], data.images_at(idx[64:]).float() / 255)


def test_partner_rows_on_the_shapes3d_grid():
    """3DShapes' grid (10x10x10x8x4x15, files absent here): a partner's row in mixed-radix order
    holds exactly the partner's factors (the row -> factors map of any full grid)."""
    sizes = (10, 10, 10, 8, 4, 15)
    grid = type("Grid", (), {"factor_sizes": sizes, "full_grid": True, "name": "shapes3d",
                             "radix": np.cumprod((1,) + sizes[:0:-1])[::-1].copy()})()
    f = torch.stack([torch.randint(0, n, (500,), generator=torch.Generator().manual_seed(i))
                     for i, n in enumerate(sizes)], 1)
    rows, labels = partner_rows(grid, f, Pairing(sizes, 2), torch.Generator().manual_seed(0))
    back = torch.from_numpy(np.stack(np.unravel_index(rows.numpy(), sizes), 1))
    assert ((back != f).sum(1) == 2).all() and (back != f)[torch.arange(500), labels].all()


# ---------------------------------------------------------------- training
BASE = dict(dataset="dsprites", source="procedural", arch="mlp", latents=10, steps=12, batch_size=8,
            lr=1e-3, eval_every=6, eval_images=32, checkpoint_every=6, log_every=3, threads=1, precision="fp32")


def _max_diff(a, b):
    pa, pb = dict(a.model.named_parameters()), dict(b.model.named_parameters())
    return max(float((pa[k] - pb[k]).detach().abs().max()) for k in pa)


def test_pack_equals_runs_alone_and_rejects_mixing(tmp_path):
    c1 = RunConfig(model="ada-gvae", hparams={"beta": 2.0}, seed=0, out=str(tmp_path / "a"), **BASE)
    c2 = RunConfig(model="ml-vae", hparams={"k": 0.0}, seed=1, out=str(tmp_path / "b"), **BASE)
    packed = train_packed([c1, c2], progress=False)
    alone = train(dataclasses.replace(c1, out=str(tmp_path / "c")), progress=False)
    assert _max_diff(packed[0], alone) < 1e-6
    assert packed[1].summary["status"] == "finished"
    other = RunConfig(model="beta-vae", seed=2, out=str(tmp_path / "d"), **BASE)
    with pytest.raises(ValueError, match=r"^a pack cannot mix objectives trained on pairs with others \(ada-gvae, beta-vae\)"):
        train_packed([c1, other], progress=False)


def test_resume_is_bit_identical(tmp_path):
    c = RunConfig(model="gvae", hparams={"beta": 2.0}, seed=0, out=str(tmp_path / "r"), **{**BASE, "steps": 6})
    train(c, progress=False)
    resumed = train(dataclasses.replace(c, steps=12), progress=False, resume=True)
    whole = train(dataclasses.replace(c, steps=12, out=str(tmp_path / "w")), progress=False)
    assert _max_diff(resumed, whole) == 0.0


def test_compile_is_ignored_with_a_warning(tmp_path):
    c = RunConfig(model="ada-gvae", seed=0, out=str(tmp_path / "c"), compile="on", **{**BASE, "steps": 2})
    with pytest.warns(UserWarning, match=r"^ada-gvae trains on pairs and runs uncompiled \(compile='on' is ignored\)$"):
        train(c, progress=False)


def test_vmap_pack_forward_equals_loop_pack():
    """PackedVAE with posteriors: the vmap backend (GPUs) encodes and decodes batched and aggregates
    run by run; its outputs equal the loop backend's."""
    import functools

    from untwine.models import VAE
    from untwine.train.packed import PackedVAE

    torch.manual_seed(0)
    models = [VAE("mlp", 1, 10) for _ in range(2)]
    objs = [objectives.build(m, dataset_size=100, latents=10) for m in ("ada-gvae", "ml-vae")]
    x, eps = torch.rand(2, 16, 1, 64, 64), torch.randn(2, 16, 10)
    posts = [functools.partial(o.aggregate, labels=torch.tensor([0, 3, 1, 4, 2, 0, 1, 3])) for o in objs]
    out = {b: PackedVAE(models, b)(x, eps, posts) for b in ("loop", "vmap")}
    for a, b in zip(out["loop"], out["vmap"]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # the posteriors did act: the pair's shared dimensions are equal
    mu = out["loop"][0][0]
    assert (mu[:8] == mu[8:]).any() and not torch.equal(mu[:8], mu[8:])
