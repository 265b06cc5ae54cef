"""untwine.metrics._gbt against scikit-learn's GradientBoostingClassifier (DCI's estimator).

scikit-learn breaks exact ties between candidate splits by its random feature order (and, within
a feature, by its rounding), so exact agreement is asserted on data without such ties (checked
when the cases were chosen): one splittable code, or few stages; data with ties get a looser
bound.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

import untwine.metrics as um
from untwine.metrics import _gbt
from untwine.metrics._gbt import fit_gbt, predict_gbt

ONE_ULP = float(np.nextafter(np.float32(1.0), np.float32(2.0)))  # tied with 1.0 for scikit-learn
TWO_ULP = float(np.nextafter(np.float32(ONE_ULP), np.float32(2.0)))  # separable from 1.0


def data(kind: str, n: int, d: int, k: int, seed: int):
    """``n`` train and ``n // 2`` test rows: ``k`` classes from quantiles of a noisy first code."""
    rng = np.random.default_rng(seed)
    m = n + n // 2
    x = rng.standard_normal((m, d))
    z = 1.5 * x[:, 0] + 0.7 * rng.standard_normal(m)
    y = np.digitize(z, np.quantile(z, np.linspace(0, 1, k + 1)[1:-1]))
    if kind == "discrete":  # many tied values
        x = np.round(x * 2) / 2
    if kind == "constant":
        x[:, 1:] = 3.0
    if kind in ("one_ulp", "two_ulp"):  # code 1 encodes the class parity in the last bits
        x[:, 1] = np.where(y % 2 == 0, 1.0, ONE_ULP if kind == "one_ulp" else TWO_ULP)
    return x[:n], y[:n], x[n:], y[n:]


def sklearn_fit(x, y, n_estimators=100):
    return GradientBoostingClassifier(n_estimators=n_estimators, random_state=0).fit(x, y)


@pytest.mark.parametrize(
    "kind,n,d,k,stages,seed",
    [
        ("continuous", 400, 1, 2, 100, 0),  # binary: one tree per stage, its own loss
        ("continuous", 500, 1, 7, 100, 1),
        ("discrete", 400, 1, 3, 100, 0),  # tied values: positions only between distinct ones
        ("constant", 400, 3, 2, 100, 0),  # two constant codes
        ("one_ulp", 400, 2, 3, 100, 0),  # 1.0 vs next float32: never split (float32(1e-7) rule)
        ("discrete", 400, 3, 3, 10, 0),  # three codes, few stages
    ],
)
def test_matches_sklearn(kind, n, d, k, stages, seed):
    x, y, xt, yt = data(kind, n, d, k, seed)
    ref = sklearn_fit(x, y, stages)
    imp, pred, (pred_t,) = predict_gbt(x, y, (xt,), n_estimators=stages)
    np.testing.assert_allclose(imp, ref.feature_importances_, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(pred, ref.predict(x))
    np.testing.assert_array_equal(pred_t, ref.predict(xt))
    if kind == "one_ulp":
        assert imp[1] == 0.0
    _, acc, acc_t = fit_gbt(x, y, xt, yt, n_estimators=stages)
    assert acc == pytest.approx(np.mean(ref.predict(x) == y), abs=0)
    assert acc_t == pytest.approx(np.mean(ref.predict(xt) == yt), abs=0)


@pytest.mark.parametrize("kind,d,k", [("continuous", 4, 7), ("two_ulp", 2, 3)])
def test_close_to_sklearn_with_ties(kind, d, k):
    """Several splittable codes: tiny nodes have tied splits; scikit-learn picks one at random."""
    x, y, xt, yt = data(kind, 500, d, k, 0)
    ref = sklearn_fit(x, y)
    imp, pred, (pred_t,) = predict_gbt(x, y, (xt,))
    assert np.abs(imp - ref.feature_importances_).max() < 0.03
    assert np.mean(pred == ref.predict(x)) > 0.95
    assert np.mean(pred_t == ref.predict(xt)) > 0.9
    if kind == "two_ulp":  # 2 ulps apart: separable, and the parity code is used
        assert imp[1] > 0.3 and ref.feature_importances_[1] > 0.3


def test_dci_exact_matches_sklearn_backend():
    # one splittable code (plus a constant and a 1-ulp one); seed without ties (within a code,
    # scikit-learn resolves exactly tied positions by rounding)
    rng = np.random.default_rng(0)
    n = 300
    f = np.stack([rng.integers(0, 3, 2 * n), rng.integers(0, 2, 2 * n)], axis=1)
    x0 = f[:, 0] + 0.6 * f[:, 1] + 0.5 * rng.standard_normal(2 * n)
    codes = np.stack([x0, np.full(2 * n, 3.0), np.where(f[:, 1] == 1, 1.0, ONE_ULP)], axis=1)
    args = (codes[:n], f[:n], codes[n:], f[n:])
    r = um.dci(*args, backend="exact", n_jobs=1)
    s = um.dci(*args, backend="sklearn", n_jobs=1)
    np.testing.assert_allclose(r["importance"], s["importance"], rtol=0, atol=1e-9)
    for key in ("disentanglement", "completeness", "informativeness_train", "informativeness_test"):
        assert r[key] == pytest.approx(s[key], abs=1e-9), key
    np.testing.assert_array_equal(r["per_factor_accuracy"], s["per_factor_accuracy"])


def test_threads_and_bins_do_not_change_results(monkeypatch):
    x, y, xt, _ = data("continuous", 400, 4, 7, 2)
    base = predict_gbt(x, y, (xt,), n_estimators=15)
    monkeypatch.setattr(_gbt, "_TREES_PER_THREAD", 1)
    monkeypatch.setattr(_gbt, "_WORK_PER_THREAD", 1)
    threaded = predict_gbt(x, y, (xt,), n_estimators=15, n_threads=3)
    np.testing.assert_array_equal(threaded[0], base[0])
    np.testing.assert_array_equal(threaded[1], base[1])
    np.testing.assert_array_equal(threaded[2][0], base[2][0])
    coarse = predict_gbt(x, y, (xt,), n_estimators=15, n_bins=8)  # more candidates per bin
    np.testing.assert_allclose(coarse[0], base[0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(coarse[1], base[1])
    np.testing.assert_array_equal(coarse[2][0], base[2][0])


def test_degenerate_inputs():
    x, y, xt, yt = data("continuous", 50, 2, 3, 0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        fit_gbt(x, np.zeros(50, dtype=int), xt, yt)
    with pytest.raises(ValueError, match="N x D"):
        fit_gbt(x[:, 0], y, xt, yt)
    # no code can split: all trees are single leaves, the prediction is the majority class
    imp, acc, _ = fit_gbt(np.ones((50, 2)), y, np.ones((5, 2)), yt[:5], n_estimators=5)
    np.testing.assert_array_equal(imp, 0.0)
    assert acc == pytest.approx(np.bincount(y).max() / 50)
