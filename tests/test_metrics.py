"""Known-answer tests of untwine.metrics on synthetic ground truth with dSprites' factor sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

import untwine.metrics as um
from untwine.data.protocol import integers
from untwine.metrics.utils import discrete_entropy, discrete_mutual_info, histogram_discretize

SIZES = (3, 6, 40, 32, 32)


class FakeData:
    """Observations are the factors themselves (float64 rows)."""

    def __init__(self, sizes=SIZES):
        self.factor_sizes = tuple(sizes)
        self.num_factors = len(sizes)

    def sample_factors(self, n, rng):
        return integers(rng, np.asarray(self.factor_sizes), (n, self.num_factors))

    def observations_from_factors(self, factors, rng):
        return np.asarray(factors, dtype=np.float64)


def make_encoder(kind, sizes=SIZES, seed=0):
    scale = 1.0 / (np.asarray(sizes) - 1.0)
    k = len(sizes)
    p = np.random.default_rng(seed)
    perm, gains = p.permutation(k + 2), p.choice([-1.0, 1.0], k + 2) * 10 ** p.uniform(-1, 1, k + 2)
    mix = p.normal(0, 1, (k, k + 2))
    noise = np.random.default_rng(seed + 1)

    def perfect(f):
        z = f * scale + noise.normal(0, 0.01, f.shape)
        return np.concatenate([z, noise.normal(0, 1, (len(f), 2))], axis=1)

    def enc(x):
        f = np.asarray(x, dtype=np.float64)
        if kind == "perfect":
            return perfect(f)
        if kind == "permuted":
            return perfect(f)[:, perm] * gains + 3.0
        if kind == "mixture":
            return (f * scale) @ mix + noise.normal(0, 0.01, (len(f), k + 2))
        if kind == "noise":
            return noise.normal(0, 1, (len(f), k + 2))
        if kind == "twice":
            z, j = perfect(f), min(3, k - 1)  # x position on dSprites
            return np.concatenate([z, f[:, j : j + 1] * scale[j] + noise.normal(0, 0.01, (len(f), 1))], axis=1)
        raise AssertionError(kind)

    return enc


def arrays(kind, n_train=2000, n_test=1000, sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    ftr = rng.integers(0, sizes, (n_train, len(sizes)))
    fte = rng.integers(0, sizes, (n_test, len(sizes)))
    enc = make_encoder(kind, sizes)
    return enc(ftr), ftr, enc(fte), fte


# ---------------------------------------------------------------- shared pieces
def test_discretize_matches_reference_recipe():
    z = np.random.default_rng(0).normal(size=(500, 3))
    d = histogram_discretize(z, 20)
    for j in range(3):
        expect = np.digitize(z[:, j], np.histogram(z[:, j], 20)[1][:-1])
        np.testing.assert_array_equal(d[:, j], expect)
    assert d.min() == 1 and d.max() == 20


def test_mutual_info_matches_sklearn():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 7, (400, 3))
    b = np.stack([a[:, 0] // 2, rng.integers(0, 5, 400)], axis=1)
    m = discrete_mutual_info(a, b)
    for i in range(3):
        for j in range(2):
            assert m[i, j] == pytest.approx(mutual_info_score(b[:, j], a[:, i]), abs=1e-12)
    np.testing.assert_allclose(discrete_entropy(b), [mutual_info_score(c, c) for c in b.T], atol=1e-12)


# ---------------------------------------------------------------- MIG / SAP / modularity
def test_perfect_code_scores_high_and_permutation_invariant():
    a, b = arrays("perfect"), arrays("permuted")
    ma, mb = um.mig(a[0], a[1]), um.mig(b[0], b[1])
    assert ma["mig"] > 0.7
    assert ma["per_factor"].shape == (5,) and ma["mutual_info"].shape == (7, 5)
    assert mb["mig"] == pytest.approx(ma["mig"], abs=0.005)
    ra, rb = um.modularity_explicitness(*a), um.modularity_explicitness(*b)
    assert ra["modularity"] > 0.85 and ra["explicitness_test"] > 0.9
    for key in ("modularity", "explicitness_train", "explicitness_test"):
        assert rb[key] == pytest.approx(ra[key], abs=0.005)
    # SAP's LinearSVC(C=0.01) is not scale invariant (the penalty is fixed): permute only.
    perm = np.random.default_rng(5).permutation(7)
    sa, sb = um.sap(*a), um.sap(a[0][:, perm], a[1], a[2][:, perm], a[3])
    assert sb["sap"] == pytest.approx(sa["sap"], abs=1e-12)
    np.testing.assert_array_equal(sb["score_matrix"], sa["score_matrix"][perm])


def test_mixture_and_noise_score_low():
    perfect, mixture, noise = arrays("perfect"), arrays("mixture"), arrays("noise")
    assert um.mig(mixture[0], mixture[1])["mig"] < 0.25
    assert um.mig(noise[0], noise[1])["mig"] < 0.02
    assert um.sap(*mixture)["sap"] < um.sap(*perfect)["sap"]
    assert um.sap(*noise)["sap"] < 0.02


def test_factor_encoded_twice_lowers_mig():
    perfect, twice = arrays("perfect"), arrays("twice")
    mp, mt = um.mig(perfect[0], perfect[1]), um.mig(twice[0], twice[1])
    assert mt["per_factor"][3] < 0.1 < mp["per_factor"][3] - 0.5
    assert mt["mig"] < mp["mig"] - 0.1


def test_torch_inputs_accepted():
    z, f, _, _ = arrays("perfect", 500, 10)
    assert um.mig(torch.from_numpy(z).float(), torch.from_numpy(f))["mig"] == pytest.approx(
        um.mig(z.astype(np.float32), f)["mig"]
    )


# ---------------------------------------------------------------- DCI
def test_dci_formulas_known_answers():
    assert um.disentanglement(np.eye(4))[0] == pytest.approx(1.0, abs=1e-6)
    assert um.completeness(np.eye(4))[0] == pytest.approx(1.0, abs=1e-6)
    assert um.disentanglement(np.ones((4, 4)))[0] == pytest.approx(0.0, abs=1e-6)
    assert um.completeness(np.ones((4, 4)))[0] == pytest.approx(0.0, abs=1e-6)
    # a factor spread over two codes: completeness 1 - log(2)/log(D), disentanglement stays 1
    r = np.array([[1.0, 0, 0], [0, 0.5, 0], [0, 0.5, 0], [0, 0, 1.0]])
    assert um.disentanglement(r)[0] == pytest.approx(1.0, abs=1e-6)
    assert um.completeness(r)[1][1] == pytest.approx(1 - np.log(2) / np.log(4), abs=1e-6)


def test_dci_perfect_code_small():
    p = arrays("perfect", 300, 150, (3, 4, 5))
    r = um.dci(*p)
    assert r["importance"].shape == (5, 3)
    np.testing.assert_allclose(r["importance"].sum(axis=0), 1.0)
    assert r["importance"][3:].sum() < 0.1  # the two noise codes are not used
    assert r["disentanglement"] > 0.8 and r["completeness"] > 0.8
    assert r["informativeness_test"] > 0.9


def test_dci_fast_backend_agrees_on_perfect_code():
    p = arrays("perfect", 300, 150, (3, 4, 5))
    r = um.dci(*p, backend="fast")
    assert r["disentanglement"] > 0.8 and r["importance"][3:].sum() < 0.1
    with pytest.raises(ValueError, match="unknown DCI backend 'slow'; choose one of exact, sklearn, fast"):
        um.dci(*p, backend="slow")


@pytest.mark.slow
def test_dci_mixture_and_twice():
    sizes = (3, 4, 5)
    rp = um.dci(*arrays("perfect", 300, 150, sizes))
    rm = um.dci(*arrays("mixture", 300, 150, sizes))
    rt = um.dci(*arrays("twice", 300, 150, sizes))
    assert rm["disentanglement"] < rp["disentanglement"] - 0.3
    assert rt["disentanglement"] > rp["disentanglement"] - 0.1  # D does not drop; C does
    assert rt["completeness"] < rp["completeness"]


# ---------------------------------------------------------------- sampling scores
def test_beta_vae_and_factor_vae_perfect_vs_noise():
    data = FakeData()
    kw = dict(batch_size=32, num_train=400, num_eval=200)
    bp = um.beta_vae_score(data, make_encoder("perfect"), np.random.default_rng(0), **kw)
    bn = um.beta_vae_score(data, make_encoder("noise"), np.random.default_rng(0), **kw)
    assert bp["eval_accuracy"] > 0.95
    assert bn["eval_accuracy"] < 0.4  # chance is 0.2
    fp = um.factor_vae_score(data, make_encoder("perfect"), np.random.RandomState(0), num_variance_estimate=2000, **kw)
    fn = um.factor_vae_score(data, make_encoder("noise"), np.random.RandomState(0), num_variance_estimate=2000, **kw)
    assert fp["eval_accuracy"] > 0.95 and fp["num_active_dims"] == 7
    assert fn["eval_accuracy"] < 0.45


def test_factor_vae_prunes_collapsed_dims():
    enc = make_encoder("perfect")
    collapsed = lambda x: np.concatenate([enc(x), np.full((len(x), 1), 0.3)], axis=1)  # noqa: E731
    r = um.factor_vae_score(FakeData(), collapsed, np.random.default_rng(0), batch_size=16, num_train=100, num_eval=50, num_variance_estimate=500)
    assert r["num_active_dims"] == 7


def test_factor_vae_all_collapsed_scores_zero():
    const = lambda x: np.zeros((len(x), 3))  # noqa: E731
    r = um.factor_vae_score(FakeData(), const, np.random.default_rng(0), batch_size=8, num_train=10, num_eval=10, num_variance_estimate=100)
    assert r == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}


def test_torch_encoder_accepted():
    enc = make_encoder("perfect")
    tenc = lambda x: torch.from_numpy(enc(x)).float()  # noqa: E731
    r = um.beta_vae_score(FakeData(), tenc, np.random.default_rng(0), batch_size=16, num_train=100, num_eval=50)
    assert 0.0 <= r["eval_accuracy"] <= 1.0


# ---------------------------------------------------------------- sampled MIG, Gaussian TC
def test_mig_sampled_perfect_vs_noise():
    sizes = (3, 4, 5)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, 3)
    f = np.repeat(grid, 4, axis=0)
    mu = f / (np.asarray(sizes) - 1.0)
    logvar = np.full(mu.shape, np.log(0.01**2))
    r = um.mig_sampled(mu, logvar, f, np.random.default_rng(0), num_samples=200)
    assert r["mig"] > 0.8
    assert r["mutual_info"].shape == (3, 3)
    noise = np.random.default_rng(1).normal(size=mu.shape)
    rn = um.mig_sampled(noise, np.zeros(mu.shape), f, np.random.default_rng(0), num_samples=200)
    assert rn["mig"] < 0.1


def test_gaussian_total_correlation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 3))
    assert um.gaussian_total_correlation(x) == pytest.approx(0.0, abs=0.01)
    rho = 0.8
    y = np.stack([x[:, 0], rho * x[:, 0] + np.sqrt(1 - rho**2) * x[:, 1]], axis=1)
    assert um.gaussian_total_correlation(y) == pytest.approx(-0.5 * np.log(1 - rho**2), abs=0.03)


# ---------------------------------------------------------------- validation
def test_input_validation_messages():
    z, f = np.zeros((10, 2)), np.zeros((10, 3), dtype=int)
    with pytest.raises(ValueError, match="codes must be a 2-D array"):
        um.mig(np.zeros(10), f)
    with pytest.raises(ValueError, match="codes has 9 rows but factors has 10"):
        um.mig(np.zeros((9, 2)), f)
    bad = np.random.default_rng(0).normal(size=(10, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values \(first at row 3, column 1\)"):
        um.mig(bad, f)
    with pytest.raises(ValueError, match="must be integer factor indices"):
        um.mig(z + 1.0, f + 0.5)
    with pytest.raises(ValueError, match="codes_train has 2 columns but codes_test has 3"):
        um.sap(z, f, np.zeros((10, 3)), f)
    with pytest.raises(ValueError, match="lacks factor_sizes, num_factors"):
        um.beta_vae_score(object(), lambda x: x, np.random.default_rng(0))
    with pytest.raises(ValueError, match="num_train must be >= 1"):
        um.beta_vae_score(FakeData(), lambda x: x, np.random.default_rng(0), num_train=0)
    with pytest.raises(ValueError, match="one code row per observation"):
        um.factor_vae_score(FakeData(), lambda x: np.zeros(3), np.random.default_rng(0), num_variance_estimate=10)
    with pytest.raises(ValueError, match="logvar has shape"):
        um.mig_sampled(z, np.zeros((10, 3)), f, np.random.default_rng(0))
    # every count goes through the one rule (metrics.utils.check_sizes), with the same message
    with pytest.raises(ValueError, match=r"^num_samples must be >= 1, got 0$"):
        um.mig_sampled(z, np.zeros(z.shape), f, np.random.default_rng(0), num_samples=0)
    with pytest.raises(ValueError, match=r"^chunk_size must be >= 1, got 0$"):
        um.mig_sampled(z, np.zeros(z.shape), f, np.random.default_rng(0), chunk_size=0)
    with pytest.raises(ValueError, match=r"^num_bins must be >= 1, got 0$"):
        histogram_discretize(z, num_bins=0)
    with pytest.raises(ValueError, match=r"^chunk_size must be >= 1, got 0$"):
        um.beta_vae_score(FakeData(), lambda x: x, np.random.default_rng(0), chunk_size=0)
