"""UDR (untwine.metrics.udr): hand-computed answers on orthogonal codes, structure on random codes,
bad input, trained runs, the CLI, and UDR per setting in a study's results and report."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

import untwine.metrics as um
from untwine.metrics.udr import gaussian_kl, lasso_matrix, relative_strength, spearman_matrix

from conftest import TINY

A = 1 / math.sqrt(2) - 0.1  # Lasso(alpha=0.1) coefficient of x0 on (x0 +- x1) / sqrt(2)
ON = np.ones(3)


def design(reps: int = 4) -> np.ndarray:
    """``8 reps x 3`` codes: every sign pattern of 3 latents, ``reps`` times; the columns are
    orthonormal with zero mean and unit variance (already standardised)."""
    return np.array(list(itertools.product([-1.0, 1.0], repeat=3)) * reps)


def mixed(x: np.ndarray) -> np.ndarray:
    """Latents 0 and 1 rotated by 45 degrees (still orthonormal): each new latent mixes two old ones."""
    return np.stack([(x[:, 0] + x[:, 1]) / math.sqrt(2), (x[:, 0] - x[:, 1]) / math.sqrt(2), x[:, 2]], 1)


# ------------------------------------------------------------------------------ known answers
def test_relative_strength_known_answers():
    assert relative_strength(np.eye(3)) == 1.0
    assert relative_strength(0.9 * np.eye(3)[[2, 0, 1]]) == pytest.approx(0.9)
    assert relative_strength([[1, 1, 0], [1, 1, 0], [0, 0, 1]]) == pytest.approx(2 / 3)
    assert relative_strength(np.ones((3, 3))) == pytest.approx(1 / 3)
    assert relative_strength(np.zeros((3, 3))) == 0.0  # 0 / 0 counts 0
    assert relative_strength([[1.0, np.nan], [0.0, 1.0]]) == pytest.approx(0.5)  # NaN row and column count 0
    assert relative_strength(np.zeros((0, 3))) == 0.0  # no active latent in one model


@pytest.mark.parametrize("correlation, perfect", [("lasso", 0.9), ("spearman", 1.0)])
def test_identical_permuted_and_sign_flipped_models_score_perfect(correlation, perfect):
    """Lasso(alpha=0.1) shrinks the unit coefficient of a standardised latent to 0.9: the reference's
    lasso UDR of identical models is 0.9, its Spearman UDR 1."""
    x = design()
    flipped = -3.0 * x[:, [2, 0, 1]] + 5.0
    r = um.udr([x, x.copy(), flipped], [ON] * 3, correlation=correlation)
    np.testing.assert_allclose(r["udr"], perfect, atol=1e-9)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(r["pairwise"][off], perfect, atol=1e-9)
    assert np.isnan(np.diag(r["pairwise"])).all()
    # model 2's latent 0 is model 0's latent 2 (row: the first model's latent, column: the second's)
    np.testing.assert_allclose(r["correlations"][0, 2], perfect * np.eye(3)[:, [2, 0, 1]], atol=1e-9)
    assert r["correlations"].shape == (3, 3, 3, 3) and not r["correlations"][1, 1].any()
    assert r["num_active"].tolist() == [3, 3, 3] and r["correlation"] == correlation


@pytest.mark.parametrize("correlation, weight", [("lasso", A), ("spearman", 1 / math.sqrt(2))])
def test_mixed_latents_hand_computed_and_the_pick(correlation, weight):
    """Model 2 mixes two latents: its similarity to the others is [[w, w, 0], [w, w, 0], [0, 0, p]],
    pair score (w + p) / 3; the model scores are medians of two and one kind of pair."""
    x = design()
    p = 0.9 if correlation == "lasso" else 1.0
    s = (weight + p) / 3
    r = um.udr([x, -x[:, [1, 0, 2]], mixed(x)], [ON] * 3, correlation=correlation)
    np.testing.assert_allclose(r["pairwise"][2, :2], s, atol=1e-9)
    np.testing.assert_allclose(r["pairwise"][:2, 2], s, atol=1e-9)
    np.testing.assert_allclose(r["udr"], [(p + s) / 2, (p + s) / 2, s], atol=1e-9)
    assert int(np.argmax(r["udr"])) in (0, 1)  # the pick is a consistent model, never the mixed one


@pytest.mark.parametrize("correlation", ["lasso", "spearman"])
def test_inactive_latents_are_filtered_by_kl(correlation):
    """A 4th latent of noise with KL 0.001 nats (<= 0.01): ignored with filter_low_kl; without the
    filter it is zeroed and its row and column count 0: lasso (3 x 0.9 + 0) / 4 = 0.675 per axis;
    Spearman correlations of a constant latent are NaN, which zeroes every row and column (as the
    reference does)."""
    x = design()
    noise = np.random.default_rng(0).normal(size=(len(x), 1))
    codes = [np.hstack([x, noise]), np.hstack([x[:, [1, 2, 0]], -noise[::-1]]), np.hstack([-x, noise ** 2])]
    kl = [np.array([1.0, 2.0, 0.5, 0.001])] * 3
    p = 0.9 if correlation == "lasso" else 1.0
    r = um.udr(codes, kl, correlation=correlation)
    np.testing.assert_allclose(r["udr"], p, atol=1e-9)
    assert r["num_active"].tolist() == [3, 3, 3] and r["active"][:, 3].sum() == 0
    unfiltered = um.udr(codes, kl, correlation=correlation, filter_low_kl=False)
    np.testing.assert_allclose(unfiltered["udr"], 0.675 if correlation == "lasso" else 0.0, atol=1e-9)
    # a threshold below the noise latent's KL makes it active: now it lowers the scores
    low = um.udr(codes, kl, correlation=correlation, kl_threshold=1e-4)
    assert low["num_active"].tolist() == [4, 4, 4] and (low["udr"] < p - 0.05).all()


def test_a_model_without_active_latents_scores_zero():
    x = design()
    r = um.udr([x, x, x], [ON, ON, np.zeros(3)])
    np.testing.assert_allclose(r["udr"], [0.45, 0.45, 0.0], atol=1e-9)  # median(0.9, 0) = 0.45


@pytest.mark.parametrize("correlation", ["lasso", "spearman"])
def test_noise_model_ranks_last_and_the_pick_is_consistent(correlation):
    """Random continuous codes: three models are permuted, rescaled, sign-flipped copies of one
    representation (+ small noise), one model is independent noise, one entangles everything."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(1000, 5))
    good = [z[:, rng.permutation(5)] * rng.choice([-2.0, 0.5], 5) + 0.05 * rng.normal(size=z.shape) for _ in range(3)]
    noise = rng.normal(size=z.shape)
    entangled = z @ rng.normal(size=(5, 5))
    r = um.udr([noise, good[0], entangled, good[1], good[2]], [np.ones(5)] * 5, correlation=correlation)
    s, pair = r["udr"], r["pairwise"]
    assert min(pair[i, j] for i in (1, 3, 4) for j in (1, 3, 4) if i != j) > 0.85
    assert np.nanmax(pair[0]) < 0.05 and np.nanmax(pair[:, 0]) < 0.05  # noise matches nothing
    # a median over all four others: two good pairs (~0.9), the entangled (~0.28), the noise (~0)
    assert s[[1, 3, 4]].min() > 0.55 and s[0] < 0.05 and s[0] + 0.2 < s[2] < s[[1, 3, 4]].min() - 0.2
    assert int(np.argmax(s)) in (1, 3, 4) and int(np.argmin(s)) == 0
    if correlation == "spearman":  # symmetric: the similarity of (j, i) is that of (i, j) transposed
        np.testing.assert_allclose(r["pairwise"], r["pairwise"].T)


def test_spearman_matrix_equals_scipy_with_ties():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 5, size=(200, 3)).astype(float)
    b = np.hstack([rng.normal(size=(200, 2)), a[:, :1] ** 2])
    want = np.array([[abs(spearmanr(a[:, i], b[:, j])[0]) for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(spearman_matrix(a, b), want, atol=1e-12)
    assert np.isnan(spearman_matrix(np.ones((5, 1)), a[:5, :1])).all()  # constant latent: NaN, as scipy


def test_lasso_matrix_orientation():
    x = design()
    r = lasso_matrix(x, x[:, [2, 0, 1]])  # b's latent j is a's latent perm[j]
    np.testing.assert_allclose(r, 0.9 * np.eye(3)[:, [2, 0, 1]], atol=1e-9)
    assert lasso_matrix(x, x[:, :1]).shape == (3, 1)  # one target latent


def test_gaussian_kl_per_latent():
    mu = np.array([[0.0, 1.0], [0.0, -1.0]])
    logvar = np.array([[0.0, math.log(2)], [0.0, math.log(2)]])
    np.testing.assert_allclose(gaussian_kl(mu, logvar), [0.0, 0.5 * (1 + 2 - math.log(2) - 1)])


# ------------------------------------------------------------------------------ bad input
def test_bad_input_messages():
    x = design()
    with pytest.raises(ValueError) as e:
        um.udr([x], [ON])
    assert str(e.value) == ("UDR compares models with each other: got the codes of 1 model(s); pass the codes "
                            "of >= 2 models (e.g. the seeds of one setting)")
    with pytest.raises(ValueError) as e:
        um.udr(x, [ON])
    assert str(e.value) == ("codes must be a list of N x D arrays, one per model; got one array of shape "
                            "(32, 3): pass [codes_of_model_0, codes_of_model_1, ...]")
    with pytest.raises(ValueError) as e:
        um.udr([x, x[:10]], [ON, ON])
    assert str(e.value) == "codes[1] has 10 rows but codes[0] has 32; encode the same observations with every model"
    with pytest.raises(ValueError) as e:
        um.udr([x, x[:, :2]], [ON, ON])
    assert str(e.value) == ("codes[1] has 2 latents but codes[0] has 3; UDR compares models with the same "
                            "number of latents")
    with pytest.raises(ValueError) as e:
        um.udr([x, x], [ON])
    assert str(e.value) == "kl has 1 entries but codes has 2 models; pass one per-latent KL vector per model"
    with pytest.raises(ValueError) as e:
        um.udr([x, x], [ON, np.ones(4)])
    assert str(e.value) == "kl[1] must be a vector of the 3 per-latent KLs (nats) of model 1, got shape (4,)"
    with pytest.raises(ValueError) as e:
        um.udr([x, x], [ON, np.array([1.0, np.nan, 1.0])])
    assert str(e.value) == "kl[1] has NaN or infinite values; check the encoder's log-variances"
    with pytest.raises(ValueError) as e:
        um.udr([x, x], [ON, ON], correlation="pearson")
    assert str(e.value) == "correlation must be 'lasso' or 'spearman', got 'pearson'"
    bad = x.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"^codes\[1\] contain 1 NaN or infinite values \(first at row 3, column 1\)"):
        um.udr([x, bad], [ON, ON])
    assert um.udr(np.stack([x, x]), [ON, ON])["udr"].shape == (2,)  # an M x N x D array is M models
