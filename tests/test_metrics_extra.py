"""Known-answer tests of IRS, the downstream tasks, the unsupervised scores and fairness, and their
place in the suite (``untwine.metrics.evaluate``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

import untwine.metrics as um
from untwine.metrics.evaluate import planned_draws, resolve_sizes, train_sizes
from untwine.studies import StudyError, parse_study
from untwine.studies.results import metric_values

from test_metrics import FakeData, make_encoder

SMALL_SIZES = (3, 4, 5)


def exact_factors(f):
    """Codes that are the factors themselves (no noise): every factor in its own dimension."""
    return np.asarray(f, dtype=np.float64)


def grid_sample(n, sizes=SMALL_SIZES, seed=0):
    return np.random.default_rng(seed).integers(0, sizes, (n, len(sizes)))


# ---------------------------------------------------------------------------------------- IRS
def test_irs_perfect_codes_score_one_and_find_their_factor():
    f = grid_sample(3000)
    r = um.irs(exact_factors(f), f)
    assert r["irs"] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(r["parents"], [0, 1, 2])
    assert r["irs_matrix"].shape == (3, 3) and r["num_active_dims"] == 3


def test_irs_under_permuting_rescaling_and_flipping_codes():
    """Per code, IRS ignores order, scale, sign and shift; the average weights codes by their
    largest deviation, so only a common scale leaves the score itself unchanged."""
    f = grid_sample(3000)
    z = make_encoder("perfect", SMALL_SIZES)(f)
    perm, gain = np.array([4, 0, 3, 1, 2]), np.array([-10.0, 0.1, 3.0, -1.0, 7.0])
    a, b = um.irs(z, f), um.irs(z[:, perm] * gain + 5.0, f)
    np.testing.assert_allclose(b["irs_matrix"], a["irs_matrix"][perm], rtol=1e-9, atol=1e-12)
    expect = np.average(a["per_code"][perm], weights=a["max_deviations"][perm] * np.abs(gain))
    assert b["irs"] == pytest.approx(expect, rel=1e-9) and b["irs"] != pytest.approx(a["irs"], rel=1e-3)
    assert um.irs(-3.0 * z[:, perm] + 1.0, f)["irs"] == pytest.approx(a["irs"], rel=1e-9)


def test_irs_of_a_mixture_is_half_and_of_noise_near_zero():
    f = grid_sample(20000, (20, 20))
    # z0 = f0 + f1: fixing either factor leaves the other's full range, half the code's range
    mixed = um.irs(np.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1]], axis=1).astype(float), f)
    assert mixed["irs"] == pytest.approx(0.5, abs=0.03)
    # uniform noise: the 99% quantile of |u - E u| within any group is ~0.495 of a max deviation ~0.5
    noise = um.irs(np.random.default_rng(1).uniform(size=(20000, 2)), f)
    assert noise["irs"] < 0.03
    paper = um.irs(np.random.default_rng(1).uniform(size=(20000, 2)), f, diff_quantile=1.0)
    assert paper["irs"] < noise["irs"]


def test_irs_drops_constant_codes_and_scores_all_constant_as_zero():
    f = grid_sample(2000)
    z = np.concatenate([exact_factors(f), np.full((2000, 1), 3.0)], axis=1)
    r = um.irs(z, f)
    assert r["num_active_dims"] == 3 and r["active"].tolist() == [True, True, True, False]
    assert r["irs"] == pytest.approx(1.0, abs=1e-12)
    c = um.irs(np.ones((2000, 4)), f)
    assert c["irs"] == 0.0 and c["num_active_dims"] == 0


def test_irs_groups_factors_into_20_bins_like_the_reference():
    f = grid_sample(8000, (40, 2))
    z = exact_factors(f)
    # 40 values in 20 bins: each group holds two neighbouring values, so the code of that factor
    # deviates within its group; with 40 bins every value is its own group again
    assert um.irs(z, f)["per_code"][0] < 0.99
    assert um.irs(z, f, num_bins=40)["per_code"][0] == pytest.approx(1.0, abs=1e-12)


def test_irs_bad_inputs():
    f = grid_sample(100)
    with pytest.raises(ValueError, match=r"diff_quantile must be in \[0, 1\], got 1.5"):
        um.irs(exact_factors(f), f, diff_quantile=1.5)
    with pytest.raises(ValueError, match="codes must be a 2-D array N x D"):
        um.irs(np.zeros(100), f)
    with pytest.raises(ValueError, match="codes has 99 rows but factors has 100"):
        um.irs(np.zeros((99, 2)), f)


# ------------------------------------------------------------------------ unsupervised scores
def test_wasserstein_correlation_known_answers():
    r = 0.6
    cov = np.array([[1.0, r], [r, 1.0]])
    # unit variances: W = 2 tr C - 2 tr C^(1/2) = 4 - 2 (sqrt(1 + r) + sqrt(1 - r))
    assert um.gaussian_wasserstein_correlation(cov) == pytest.approx(4 - 2 * (np.sqrt(1 + r) + np.sqrt(1 - r)))
    a = np.random.default_rng(0).normal(size=(4, 4))
    c = a @ a.T + np.diag([0.1, 2.0, 5.0, 0.5])
    expect = 2 * np.trace(c) - 2 * np.trace(scipy.linalg.sqrtm(np.diag(np.diag(c)) @ c)).real
    assert um.gaussian_wasserstein_correlation(c) == pytest.approx(expect, rel=1e-9)
    assert um.gaussian_wasserstein_correlation(np.diag([1.0, 4.0])) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"cov must be a square D x D covariance matrix, got shape \(2, 3\)"):
        um.gaussian_wasserstein_correlation(np.zeros((2, 3)))


def test_unsupervised_scores_of_correlated_gaussian_codes():
    r = 0.8
    z = np.random.default_rng(0).multivariate_normal([0, 0], [[1, r], [r, 1]], size=50000)
    s = um.unsupervised_scores(z)
    assert s["gaussian_total_correlation"] == pytest.approx(-0.5 * np.log(1 - r * r), rel=0.03)
    w = 4 - 2 * (np.sqrt(1 + r) + np.sqrt(1 - r))
    assert s["gaussian_wasserstein_correlation"] == pytest.approx(w, rel=0.05)
    assert s["gaussian_wasserstein_correlation_norm"] == pytest.approx(w / 2, rel=0.05)
    assert s["mutual_info"].shape == (2, 2) and np.all(np.diag(s["mutual_info"]) == 0)
    ind = um.unsupervised_scores(np.random.default_rng(1).normal(size=(50000, 2)))
    assert ind["gaussian_total_correlation"] < 1e-3 and ind["gaussian_wasserstein_correlation_norm"] < 1e-3
    assert ind["mutual_info_score"] < 0.2 * s["mutual_info_score"]


def test_unsupervised_scores_under_rescaling_and_degenerate_codes():
    z = make_encoder("mixture", SMALL_SIZES)(grid_sample(5000))
    a, b = um.unsupervised_scores(z), um.unsupervised_scores(3.0 * z)
    for key in ("gaussian_total_correlation", "gaussian_wasserstein_correlation_norm", "mutual_info_score"):
        assert b[key] == pytest.approx(a[key], rel=1e-9), key
    assert b["gaussian_wasserstein_correlation"] == pytest.approx(9 * a["gaussian_wasserstein_correlation"], rel=1e-9)
    one = um.unsupervised_scores(z[:, :1])
    assert one["mutual_info_score"] == 0.0 and one["gaussian_wasserstein_correlation"] == pytest.approx(0, abs=1e-12)
    dup = um.unsupervised_scores(np.concatenate([z[:, :1], z[:, :1]], axis=1))
    assert dup["gaussian_total_correlation"] == np.inf
    assert dup["mutual_info_score"] == pytest.approx(um.discrete_entropy(um.histogram_discretize(z[:, :1]))[0])
    const = um.unsupervised_scores(np.ones((100, 3)))
    assert const["gaussian_wasserstein_correlation_norm"] == 0.0
    bad = z.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"codes contain 1 NaN or infinite values \(first at row 3, column 1\)"):
        um.unsupervised_scores(bad)


def test_latent_nmi_known_answers():
    rng = np.random.default_rng(0)
    u = rng.uniform(size=(20000, 1))
    # a copy, a flipped and rescaled copy (a bijection of the 20 bins), an independent draw, a constant
    z = np.concatenate([u, u, 5.0 - 2.0 * u, rng.uniform(size=(20000, 1)), np.ones((20000, 1))], axis=1)
    n = um.latent_nmi(z)
    assert n.shape == (5, 5) and np.allclose(n, n.T)
    assert np.allclose(np.diag(n)[:4], 1.0) and n[4, 4] == 0.0 and not n[4].any()
    assert n[0, 1] == pytest.approx(1.0) and n[0, 2] == pytest.approx(1.0)
    assert 0.0 < n[0, 3] < 0.01  # independent: only the plug-in estimate's small positive bias
    with pytest.raises(ValueError, match=r"codes contain 1 NaN or infinite values \(first at row 3, column 1\)"):
        um.latent_nmi(np.where(np.arange(20).reshape(10, 2) == 7, np.nan, 1.0))  # row 3, column 1


def test_array_scores_accept_torch_tensors():
    f = grid_sample(500)
    z = make_encoder("mixture", SMALL_SIZES)(f)
    assert um.irs(torch.from_numpy(z), torch.from_numpy(f))["irs"] == um.irs(z, f)["irs"]
    assert (um.unsupervised_scores(torch.from_numpy(z))["mutual_info_score"]
            == um.unsupervised_scores(z)["mutual_info_score"])


# ---------------------------------------------------------------------------- downstream task
def _halves(kind, n_train=300, n_test=300, sizes=SMALL_SIZES):
    ftr, fte = grid_sample(n_train, sizes, 0), grid_sample(n_test, sizes, 1)
    enc = exact_factors if kind == "exact" else make_encoder(kind, sizes)
    return enc(ftr), ftr, enc(fte), fte


@pytest.mark.parametrize("predictor", ["lr", "gbt"])
def test_downstream_perfect_codes_predict_every_factor_and_noise_is_near_chance(predictor):
    r = um.downstream_task(*_halves("perfect"), train_sizes=(10, 300), predictor=predictor, n_jobs=1)
    assert r["train_accuracy"].shape == r["test_accuracy"].shape == (2, 3)
    assert r["train_sizes"].tolist() == [10, 300]
    assert r["test_accuracy"][1].min() > 0.97
    np.testing.assert_allclose(r["mean_test_accuracy"], r["test_accuracy"].mean(axis=1))
    np.testing.assert_allclose(r["min_test_accuracy"], r["test_accuracy"].min(axis=1))
    noise = um.downstream_task(*_halves("noise"), train_sizes=(300,), predictor=predictor, n_jobs=1)
    chance = np.mean([1 / 3, 1 / 4, 1 / 5])
    assert noise["mean_test_accuracy"][0] < chance + 0.1


def test_downstream_fits_in_threads_raise_no_sklearn_warnings():
    """Convergence/deprecation warnings of the reference estimators are silenced, also when the fits
    run in worker threads (the filters are process-wide)."""
    import warnings

    ctr, ftr, cte, fte = _halves("noise", n_train=200, sizes=(20, 20))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        um.downstream_task(ctr, ftr, cte, fte, train_sizes=(100, 200), predictor="lr", n_jobs=2)
    assert [str(w.message)[:60] for w in caught] == []


def test_downstream_accuracy_grows_with_training_points_on_a_mixture():
    ctr, ftr, cte, fte = _halves("mixture", n_train=1000, sizes=(8, 8))
    r = um.downstream_task(ctr, ftr, cte, fte, train_sizes=(10, 1000), predictor="gbt", n_jobs=1)
    assert r["mean_test_accuracy"][1] > r["mean_test_accuracy"][0] + 0.2


def test_downstream_uses_the_references_estimators():
    """lr: LogisticRegressionCV(Cs=10, cv=KFold(5)) on the first n rows (deterministic, so equal);
    gbt exact: the same predictions as GradientBoostingClassifier() up to its tie-breaking."""
    import warnings

    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import KFold

    ctr, ftr, cte, fte = _halves("mixture", n_train=200, n_test=200)
    r = um.downstream_task(ctr, ftr, cte, fte, train_sizes=(50, 200), predictor="lr", n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s, n in enumerate((50, 200)):
            for j in range(3):
                m = LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5)).fit(ctr[:n], ftr[:n, j])
                assert r["test_accuracy"][s, j] == np.mean(m.predict(cte) == fte[:, j])
                assert r["train_accuracy"][s, j] == np.mean(m.predict(ctr[:n]) == ftr[:n, j])
        g = um.downstream_task(ctr, ftr, cte, fte, train_sizes=(200,), predictor="gbt", n_jobs=1)
        ref = [np.mean(GradientBoostingClassifier(random_state=0).fit(ctr, ftr[:, j]).predict(cte) == fte[:, j])
               for j in range(3)]
    np.testing.assert_allclose(g["test_accuracy"][0], ref, atol=0.03)


def test_downstream_constant_factor_and_bad_inputs():
    ctr, ftr, cte, fte = _halves("perfect", n_train=100, n_test=50)
    ftr[:, 1], fte[:, 1] = 2, 2
    r = um.downstream_task(ctr, ftr, cte, fte, train_sizes=(100,), predictor="lr", n_jobs=1)
    assert r["test_accuracy"][0, 1] == 1.0  # constant predictor (the reference fails here)
    with pytest.raises(ValueError, match="train size 500 exceeds the 100 training rows given"):
        um.downstream_task(ctr, ftr, cte, fte, train_sizes=(10, 500))
    with pytest.raises(ValueError, match="unknown predictor 'svm'; choose one of lr, gbt"):
        um.downstream_task(ctr, ftr, cte, fte, predictor="svm")
    with pytest.raises(ValueError, match="unknown GBT backend 'xgb'; choose one of exact, sklearn, fast"):
        um.downstream_task(ctr, ftr, cte, fte, predictor="gbt", backend="xgb")
    with pytest.raises(ValueError, match=r"needs >= 5 training points \(5-fold CV\), got 4"):
        um.downstream_task(ctr, ftr, cte, fte, train_sizes=(4,), predictor="lr")
    with pytest.raises(ValueError, match="train_sizes must be a non-empty list of sizes >= 2"):
        um.downstream_task(ctr, ftr, cte, fte, train_sizes=())
    with pytest.raises(ValueError, match="codes_train has 5 columns but codes_test has 4"):
        um.downstream_task(ctr, ftr, cte[:, :4], fte)


# -------------------------------------------------------------------- reduced downstream task
def test_reduced_downstream_removes_each_factors_own_code():
    ctr, ftr, cte, fte = _halves("perfect")
    r = um.reduced_downstream_task(ctr, ftr, cte, fte, train_sizes=(300,), n_jobs=1)
    assert r["removed"].shape == (1, 3, 1) and r["removed"][0, :, 0].tolist() == [0, 1, 2]
    assert r["accuracy_test"].shape == (1, 3, 3)
    chance = np.array([1 / 3, 1 / 4, 1 / 5])
    # the removed factor drops to about chance; the others keep their own code
    assert np.all(r["reduced_factor_test_accuracy"][0] < chance + 0.15)
    assert r["mean_test_accuracy_other_factors"][0] > 0.97
    np.testing.assert_allclose(r["reduced_factor_test_accuracy"][0], np.diag(r["accuracy_test"][0]))


def test_reduced_downstream_a_factor_coded_twice_survives_one_removal():
    f_tr, f_te = grid_sample(300, (3, 5), 0), grid_sample(300, (3, 5), 1)
    twice = lambda f: np.stack([f[:, 0], f[:, 1], 2.0 * f[:, 1] + 1.0], axis=1).astype(float)  # noqa: E731
    r = um.reduced_downstream_task(twice(f_tr), f_tr, twice(f_te), f_te, train_sizes=(300,), n_jobs=1)
    assert r["reduced_factor_test_accuracy"][0, 0] < 0.5  # its only code is gone
    assert r["reduced_factor_test_accuracy"][0, 1] == 1.0  # the copy still tells it
    r2 = um.reduced_downstream_task(twice(f_tr), f_tr, twice(f_te), f_te, train_sizes=(300,),
                                    num_factors_to_remove=2, n_jobs=1)
    assert sorted(r2["removed"][0, 1].tolist()) == [1, 2] and r2["reduced_factor_test_accuracy"][0, 1] < 0.4


def test_reduced_downstream_one_factor_and_bad_inputs():
    ctr, ftr, cte, fte = _halves("perfect", n_train=100, n_test=50)
    one = um.reduced_downstream_task(ctr, ftr[:, :1], cte, fte[:, :1], train_sizes=(100,), n_jobs=1)
    assert np.isnan(one["mean_test_accuracy_other_factors"][0]) and one["removed"][0, 0, 0] == 0
    with pytest.raises(ValueError, match=r"num_factors_to_remove must be in \[0, D\) = \[0, 5\)"):
        um.reduced_downstream_task(ctr, ftr, cte, fte, num_factors_to_remove=5)
    with pytest.raises(ValueError, match="train size 10000 exceeds the 100 training rows given"):
        um.reduced_downstream_task(ctr, ftr, cte, fte)


# --------------------------------------------------------------------------------- fairness
def test_inter_group_fairness_known_answers():
    # same prediction histogram under every sensitive value: fair
    assert um.inter_group_fairness([[10, 10, 10], [30, 30, 30]]) == (0.0, 0.0)
    # each sensitive value gets its own predicted class: pooled (1/2, 1/2), each TV 1/2
    assert um.inter_group_fairness([[50, 0], [0, 50]]) == pytest.approx((0.5, 0.5))
    # pooled (1/5, 4/5); columns (0, 1): TV 1/5 (weight 3/5), (1/2, 1/2): TV 3/10 (weight 2/5)
    mean, mx = um.inter_group_fairness([[0, 20], [60, 20]])
    assert mean == pytest.approx(3 / 5 * 1 / 5 + 2 / 5 * 3 / 10) and mx == pytest.approx(3 / 10)
    with pytest.raises(ValueError, match="every sensitive value"):
        um.inter_group_fairness([[1, 0], [2, 0]])
    with pytest.raises(ValueError, match="non-negative counts"):
        um.inter_group_fairness([[1, -1], [2, 3]])


def test_fairness_aggregates_by_hand():
    m = np.array([[0.0, 1, 5], [3, 0, 2], [6, 4, 0]])
    a = um.fairness_aggregates(m, "f")
    assert len(a) == 6 + 6 + 6 + 8
    assert a["f:pred0:sens2"] == 5 and a["f:pred2:sens1"] == 4
    assert a["f:pred1:mean_sens"] == 2.5 and a["f:pred1:max_sens"] == 3
    assert a["f:sens0:mean_pred"] == 4.5 and a["f:sens0:max_pred"] == 6
    expect = {"mean_pred:mean_sens": 3.5, "mean_sens:mean_pred": 3.5, "mean_pred:max_sens": 14 / 3,
              "max_pred:mean_sens": 5, "max_pred:max_sens": 6, "mean_sens:max_pred": 5,
              "max_sens:mean_pred": 4.5, "max_sens:max_pred": 6}
    for k, v in expect.items():
        assert a[f"f:{k}"] == pytest.approx(v), k
    with pytest.raises(ValueError, match=r"matrix must be K x K with K >= 2, got shape \(1, 1\)"):
        um.fairness_aggregates(np.zeros((1, 1)), "f")


class CountingEncoder:
    def __init__(self, fn):
        self.fn, self.rows = fn, 0

    def __call__(self, x):
        self.rows += len(x)
        return self.fn(np.asarray(x))


def test_fairness_is_zero_for_factorised_codes_and_positive_for_entangled_ones():
    data = FakeData((3, 4))
    enc = CountingEncoder(exact_factors)
    r = um.fairness(data, enc, np.random.default_rng(0), num_train=400, num_test_points_per_class=50, n_jobs=1)
    assert r["mean_fairness"] == 0.0 and r["max_fairness"] == 0.0
    assert enc.rows == 400 + (2 - 1) * 50 * (3 + 4)
    assert r["mean_fairness_matrix"].shape == (2, 2) and len(r["aggregates"]) == 2 * (2 + 4 + 4 + 8)
    # one code, the sum of the factors: intervening on one factor shifts the other's prediction
    summed = um.fairness(data, lambda x: np.asarray(x).sum(axis=1, keepdims=True), np.random.default_rng(0),
                         num_train=400, num_test_points_per_class=50, n_jobs=1)
    assert summed["mean_fairness"] > 0.2 and summed["max_fairness"] >= summed["mean_fairness"]
    assert summed["aggregates"]["mean_fairness:mean_pred:mean_sens"] == pytest.approx(summed["mean_fairness"])
    assert np.all(np.diag(summed["max_fairness_matrix"]) == 0)


def test_fairness_bad_inputs():
    with pytest.raises(ValueError, match="fairness needs >= 2 factors .*; data has 1"):
        um.fairness(FakeData((5,)), exact_factors, np.random.default_rng(0), num_train=50)
    with pytest.raises(ValueError, match="num_test_points_per_class must be >= 1, got 0"):
        um.fairness(FakeData((3, 4)), exact_factors, np.random.default_rng(0), num_test_points_per_class=0)
    with pytest.raises(ValueError, match="data must provide factor_sizes"):
        um.fairness(object(), exact_factors, np.random.default_rng(0))


# ------------------------------------------------------------------------------- in the suite
TINY = {"num_train": 200, "num_test": 100, "num_eval": 50, "batch_size": 8, "num_variance_estimate": 200,
        "num_test_points_per_class": 20}


def test_suite_default_adds_irs_and_unsupervised_but_not_the_slow_scores():
    assert set(um.METRICS) == set(um.DEFAULT_METRICS) | set(um.SLOW_METRICS)
    r = um.evaluate(make_encoder("perfect", SMALL_SIZES), FakeData(SMALL_SIZES), metrics=["irs", "unsupervised"],
                    progress=False, sizes=TINY)
    for key in ("irs", "gaussian_tc", "gaussian_wasserstein_correlation", "gaussian_wasserstein_correlation_norm",
                "mutual_info_score"):
        assert isinstance(r[key], float) and np.isfinite(r[key]), key
    assert r["irs_active_dims"] == 5
    assert "irs" in um.DEFAULT_METRICS and not set(um.SLOW_METRICS) & set(um.DEFAULT_METRICS)


def test_suite_slow_scores_keys_reproducible_and_csv_ready():
    sizes, metrics = (3, 4), "downstream,reduced_downstream,fairness"
    tiny = {**TINY, "num_train": 120, "num_test": 60}
    a = um.evaluate(make_encoder("perfect", sizes), FakeData(sizes), metrics=metrics, seed=2, progress=False,
                    sizes=tiny, n_jobs=1)
    for n in (10, 100, 120):
        for key in (f"downstream_lr_{n}", f"downstream_gbt_{n}", f"reduced_downstream_{n}", f"reduced_downstream_{n}_others"):
            assert 0.0 <= a[key] <= 1.0, key
        assert len(a["per_factor"][f"downstream_lr_{n}"]) == 2
        assert a[f"downstream_lr_{n}"] == pytest.approx(np.mean(a["per_factor"][f"downstream_lr_{n}"]))
    assert a["downstream_gbt_120"] > 0.95 and a["reduced_downstream_120_others"] > 0.9
    assert 0.0 <= a["fairness_mean"] <= a["fairness_max"] <= 1.0
    assert a["sizes"]["fairness"] == {"num_train": 120, "num_test_points_per_class": 20}
    row = metric_values(a)  # results.csv: the scalars, not the per-factor lists
    assert "downstream_lr_120" in row and not any(k.startswith("per_factor") for k in row)
    b = um.evaluate(make_encoder("perfect", sizes), FakeData(sizes), metrics=metrics, seed=2, progress=False,
                    sizes=tiny, n_jobs=2)
    assert {k: v for k, v in a.items() if k != "timings_s"} == {k: v for k, v in b.items() if k != "timings_s"}


def test_suite_skips_fairness_and_reduced_downstream_with_one_factor():
    r = um.evaluate(make_encoder("perfect", (6,)), FakeData((6,)), metrics="irs,fairness,reduced_downstream",
                    progress=False, sizes=TINY)
    why = "needs >= 2 factors; FakeData has 1"
    assert r["skipped"] == {"fairness": why, "reduced_downstream": why}
    assert np.isfinite(r["irs"]) and "fairness_mean" not in r and "fairness" not in r["timings_s"]


def test_sizes_train_sizes_and_planned_draws():
    assert train_sizes(10000) == [10, 100, 1000, 10000]
    assert train_sizes(2000) == [10, 100, 1000, 2000] and train_sizes(10) == [10] and train_sizes(7) == [7]
    s = resolve_sizes({"num_test_points_per_class": 7, "downstream": {"num_train": 500}})
    assert s["fairness"]["num_test_points_per_class"] == 7 and s["downstream"]["num_train"] == 500
    assert s["reduced_downstream"] == {"num_train": 10000, "num_test": 5000}
    sz = resolve_sizes(None)
    assert planned_draws(["fairness"], sz, (3, 4)) == 10000 + 1 * 100 * 7
    assert planned_draws(["irs", "downstream"], sz) == 15000


def test_study_eval_section_accepts_the_new_metrics():
    text = """
[study]
name = "t"
datasets = ["dsprites"]
seeds = [0]
[eval]
metrics = ["irs", "unsupervised", "downstream", "reduced-downstream", "fairness"]
sizes = { fairness = { num_test_points_per_class = 10 } }
[[models]]
name = "vae"
"""
    s = parse_study(text)
    assert s.metrics == ["irs", "unsupervised", "downstream", "reduced_downstream", "fairness"]
    with pytest.raises(StudyError, match="unknown metric 'irss'"):
        parse_study(text.replace('"irs",', '"irss",'))
