"""Cross-check untwine.metrics against disentanglement_lib 1.5 on the same inputs.

Optional script (disentanglement_lib is never a runtime or test dependency; see
``benchmarks/_reference.py`` for installing it into a separate venv)::

    .venv/bin/python benchmarks/crosscheck_disentanglement_lib.py [--dci-train 2000 --dci-test 1000]

For each representation of dSprites-sized ground truth (perfect, permuted/rescaled, linear
mixture, noise, a factor encoded twice) both libraries score the *same* arrays (MIG, SAP,
modularity/explicitness, DCI, Gaussian TC, IRS, the unsupervised scores, the downstream and
reduced downstream tasks at each training size; 10,000 train / 5,000 test points unless
overridden); the sampling scores (beta-VAE, FactorVAE, fairness) run the same protocol with each
library's own random stream, and fairness's total-variation and aggregation steps are also fed the
same counts and matrices. Prints both values, the absolute difference and the tolerance it is held
to. Keys ``name@n`` are at ``n`` training points.

Tolerances: 0.005-0.01 or 1e-6 where both compute the same deterministic formula or estimator
(logistic regression included); for scikit-learn's ``GradientBoostingClassifier`` (random
tie-breaking, ``random_state=None`` in the reference) 0.02-0.03 on means over factors, 0.05 at
<= 10 training points where ties decide most splits (its own run-to-run spread there: up to
0.01-0.03); 0.03 for the scores that each library samples with its own stream (measured spread
of untwine over seeds: fairness std <= 0.008 at 2,000 training points).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _reference import REPRESENTATIONS, SyntheticData, load_reference, representation  # noqa: E402

import untwine.metrics as um  # noqa: E402

TOL = {
    "mig": 0.005, "sap": 0.005, "modularity": 0.005, "explicitness_train": 0.01,
    "explicitness_test": 0.01, "dci_d": 0.03, "dci_c": 0.03, "dci_i_train": 0.03,
    "dci_i_test": 0.03, "gaussian_tc": 1e-6, "beta_vae_train": 0.03, "beta_vae_eval": 0.03,
    "factor_vae_train": 0.03, "factor_vae_eval": 0.03,
    "irs": 1e-6, "wasserstein_corr": 1e-6, "wasserstein_corr_norm": 1e-6, "mutual_info_score": 1e-6,
    "downstream_lr": 0.001, "downstream_gbt": 0.02, "reduced": 0.03, "reduced_others": 0.03,
    "fairness_mean": 0.03, "fairness_max": 0.03, "fairness_tv[same]": 1e-6, "fairness_agg[same]": 1e-9,
}
GBT_KEYS = {"downstream_gbt", "reduced", "reduced_others"}
SMALL_N_TOL = 0.05  # GBT at <= 10 training points: ties between features decide most splits


def _num(d: float, tol: float) -> str:
    """A difference at the precision its tolerance needs (4 decimals, or 2 digits below 1e-3)."""
    return f"{d:9.4f}" if tol >= 1e-3 else f"{d:9.1e}"


def tol_of(key: str) -> float:
    base, _, n = key.replace("[fast]", "").partition("@")
    t = TOL[base]
    return max(t, SMALL_N_TOL) if base in GBT_KEYS and n and int(n) <= 10 else t


def ref_irs(ref, mus, ys):
    """Body of disentanglement_lib's compute_irs on given arrays (codes x points)."""
    active = ref.irs._drop_constant_dims(mus)
    if not active.any():
        return 0.0
    return ref.irs.scalable_disentanglement_score(ref.utils.make_discretizer(ys).T, active.T, 0.99)["avg_score"]


def ref_unsupervised(ref, mus):
    """Body of disentanglement_lib's unsupervised_metrics on given arrays (codes x points)."""
    cov = np.cov(mus)
    w = ref.unsupervised.gaussian_wasserstein_correlation(cov)
    if abs(np.imag(w)) > 1e-9:
        print(f"  (reference sqrtm returned a complex trace, imaginary part {np.imag(w):.2e})")
    w = float(np.real(w))
    binned = ref.utils.make_discretizer(mus)
    mi = ref.utils.discrete_mutual_info(binned, binned)
    np.fill_diagonal(mi, 0)
    d = mus.shape[0]
    return {"wasserstein_corr": w, "wasserstein_corr_norm": w / np.sum(np.diag(cov)),
            "mutual_info_score": np.sum(mi) / (d * d - d)}


def ref_reduced(ref, mus_train, ys_train, mus_test, ys_test, num_remove=1):
    """Body of compute_reduced_downstream_task for one training size on given arrays."""
    k = ys_train.shape[0]
    reduced, others = [], []
    for f in range(k):
        a, b = mus_train.copy(), mus_test.copy()
        for _ in range(num_remove):
            a, b = ref.reduced.compute_reduced_representation(a, ys_train, b, ys_test, f)
        _, te = ref.reduced.compute_predictive_accuracy(a.T, ys_train, b.T, ys_test, ref.utils.gradient_boosting_classifier)
        reduced.append(te[f])
        others.append(np.mean([te[i] for i in range(k) if i != f]))
    return float(np.mean(reduced)), float(np.mean(others))


def same_input_fairness(ref) -> list[tuple[str, float, float]]:
    """Both libraries' total-variation and aggregation steps on the same random counts/matrices:
    the largest difference over 20 cases each (reported as untwine = difference, dlib = 0)."""
    rng = np.random.default_rng(0)
    tv, agg = 0.0, 0.0
    for _ in range(20):
        counts = rng.integers(0, 100, (rng.integers(2, 41), rng.integers(2, 41)))
        counts[0] += 1  # every sensitive value has predictions
        tv = max(tv, float(np.max(np.abs(np.subtract(um.inter_group_fairness(counts), ref.fairness.inter_group_fairness(counts))))))
        m = rng.random((5, 5))
        a, b = um.fairness_aggregates(m, "x"), ref.fairness.compute_scores_dict(m, "x")
        assert set(a) == set(b), "aggregate keys differ"
        agg = max(agg, max(abs(a[key] - b[key]) for key in a))
    return [("fairness_tv[same]", tv, 0.0), ("fairness_agg[same]", agg, 0.0)]


def ref_modularity(ref, mus_train, ys_train, mus_test, ys_test):
    """Body of disentanglement_lib's compute_modularity_explicitness on given arrays."""
    u, me = ref.utils, ref.modularity
    mi = u.discrete_mutual_info(u.make_discretizer(mus_train), ys_train)
    scores = {"modularity": me.modularity(mi)}
    tr, te = np.zeros(ys_train.shape[0]), np.zeros(ys_train.shape[0])
    mtr, mean, std = u.normalize_data(mus_train)
    mte, _, _ = u.normalize_data(mus_test, mean, std)
    for i in range(ys_train.shape[0]):
        tr[i], te[i] = me.explicitness_per_factor(mtr, ys_train[i], mte, ys_test[i])
    scores["explicitness_train"], scores["explicitness_test"] = tr.mean(), te.mean()
    return scores


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dlib-site", default=None, help="site-packages holding disentanglement_lib")
    ap.add_argument("--num-train", type=int, default=10000)
    ap.add_argument("--num-test", type=int, default=5000)
    ap.add_argument("--dci-train", type=int, default=10000)
    ap.add_argument("--dci-test", type=int, default=5000)
    ap.add_argument("--reps", default=",".join(REPRESENTATIONS))
    ap.add_argument("--lr-sizes", default="10,100,1000,10000", help="downstream logistic-regression training sizes")
    ap.add_argument("--gbt-sizes", default="10,100,1000,10000", help="downstream boosted-trees training sizes")
    ap.add_argument("--reduced-sizes", default="10,100,1000,10000", help="reduced downstream training sizes")
    ap.add_argument("--fairness-train", type=int, default=10000)
    ap.add_argument("--fairness-points", type=int, default=100, help="num_test_points_per_class")
    ap.add_argument("--jobs", type=int, default=1, help="untwine's threads for the downstream, reduced and fairness fits")
    ap.add_argument("--skip", default="", help="comma list of: arrays,dci,beta_vae,factor_vae,irs,unsupervised,"
                    "downstream,reduced,fairness")
    args = ap.parse_args()
    # the reference's estimators warn (convergence, scikit-learn deprecations); untwine's silence them
    warnings.simplefilter("ignore", FutureWarning)
    warnings.filterwarnings("ignore", message=".*(converge|ITERATIONS|populated).*")
    ref = load_reference(args.dlib_site)
    if ref is None:
        print("disentanglement_lib 1.5 not found; see benchmarks/_reference.py", file=sys.stderr)
        return 1
    skip = set(filter(None, args.skip.split(",")))
    data = SyntheticData()
    worst: dict[str, float] = {}
    sizes = {k: [int(n) for n in getattr(args, k + "_sizes").split(",") if n] for k in ("lr", "gbt", "reduced")}
    if "fairness" not in skip:
        print("\n== same inputs (no representation)")
        for key, a, b in same_input_fairness(ref):
            worst[key] = max(worst.get(key, 0.0), abs(a - b))
            print(f"{key:22s} {a:10.1e} {b:10.1e} {_num(abs(a - b), tol_of(key))} {tol_of(key):7.3g}"
                  f"{'' if abs(a - b) <= tol_of(key) else '  <-- over'}")
    for kind in args.reps.split(","):
        enc = representation(kind)
        rs = np.random.RandomState(0)
        ftr, fte = data.sample_factors(args.num_train, rs), data.sample_factors(args.num_test, rs)
        ztr, zte = enc(ftr), enc(fte)
        rows: list[tuple[str, float, float]] = []
        times: dict[str, tuple[float, float]] = {}

        def timed(key, fn):
            t = time.perf_counter()
            v = fn()
            return v, time.perf_counter() - t

        if "arrays" not in skip:
            (a, ta), (b, tb) = timed("mig", lambda: um.mig(ztr, ftr)["mig"]), timed("mig", lambda: ref.mig._compute_mig(ztr.T, ftr.T)["discrete_mig"])
            rows.append(("mig", a, b)); times["mig"] = (ta, tb)
            (a, ta), (b, tb) = timed("sap", lambda: um.sap(ztr, ftr, zte, fte)["sap"]), timed("sap", lambda: ref.sap._compute_sap(ztr.T, ftr.T, zte.T, fte.T, False)["SAP_score"])
            rows.append(("sap", a, b)); times["sap"] = (ta, tb)
            (a, ta), (b, tb) = timed("mod", lambda: um.modularity_explicitness(ztr, ftr, zte, fte)), timed("mod", lambda: ref_modularity(ref, ztr.T, ftr.T, zte.T, fte.T))
            for key in ("modularity", "explicitness_train", "explicitness_test"):
                rows.append((key, a[key], b[key]))
            times["modularity"] = (ta, tb)
            rows.append(("gaussian_tc", um.gaussian_total_correlation(ztr), ref.unsupervised.gaussian_total_correlation(np.cov(ztr.T))))
        if "dci" not in skip:
            n, m = args.dci_train, args.dci_test
            b, tb = timed("dci", lambda: ref.dci._compute_dci(ztr[:n].T, ftr[:n].T, zte[:m].T, fte[:m].T))
            for be in ("fast", "exact"):
                a, ta = timed("dci", lambda: um.dci(ztr[:n], ftr[:n], zte[:m], fte[:m], backend=be))
                sfx = "" if be == "exact" else "[fast]"
                for key, rk in (("dci_d", "disentanglement"), ("dci_c", "completeness"), ("dci_i_train", "informativeness_train"), ("dci_i_test", "informativeness_test")):
                    rows.append((key + sfx, a[rk], b[rk]))
                times["dci_" + be] = (ta, tb)
        if "irs" not in skip:
            (a, ta), (b, tb) = timed("irs", lambda: um.irs(ztr, ftr)["irs"]), timed("irs", lambda: ref_irs(ref, ztr.T, ftr.T))
            rows.append(("irs", a, b)); times["irs"] = (ta, tb)
        if "unsupervised" not in skip:
            (a, ta), (b, tb) = timed("u", lambda: um.unsupervised_scores(ztr)), timed("u", lambda: ref_unsupervised(ref, ztr.T))
            mine = {"wasserstein_corr": "gaussian_wasserstein_correlation",
                    "wasserstein_corr_norm": "gaussian_wasserstein_correlation_norm", "mutual_info_score": "mutual_info_score"}
            rows += [(key, a[mine[key]], b[key]) for key in mine]
            times["unsupervised"] = (ta, tb)
        if "downstream" not in skip:
            for p, fn in (("lr", ref.utils.logistic_regression_cv), ("gbt", ref.utils.gradient_boosting_classifier)):
                if not sizes[p]:
                    continue
                a, ta = timed("ds", lambda: um.downstream_task(ztr, ftr, zte, fte, sizes[p], p, n_jobs=args.jobs))
                tb = 0.0
                for i, n in enumerate(sizes[p]):
                    (_, te), t = timed("ds", lambda: ref.downstream._compute_loss(ztr[:n], ftr[:n].T, zte, fte.T, fn))
                    tb += t
                    rows.append((f"downstream_{p}@{n}", a["mean_test_accuracy"][i], np.mean(te)))
                times[f"downstream_{p}"] = (ta, tb)
        if "reduced" not in skip and sizes["reduced"]:
            a, ta = timed("red", lambda: um.reduced_downstream_task(ztr, ftr, zte, fte, sizes["reduced"], n_jobs=args.jobs))
            tb = 0.0
            for i, n in enumerate(sizes["reduced"]):
                (red, oth), t = timed("red", lambda: ref_reduced(ref, ztr[:n].T, ftr[:n].T, zte.T, fte.T))
                tb += t
                rows += [(f"reduced@{n}", a["mean_test_accuracy_reduced_factor"][i], red),
                         (f"reduced_others@{n}", a["mean_test_accuracy_other_factors"][i], oth)]
            times["reduced"] = (ta, tb)
        if "fairness" not in skip:
            n, m = args.fairness_train, args.fairness_points
            a, ta = timed("fair", lambda: um.fairness(data, enc, np.random.default_rng(0), n, m, n_jobs=args.jobs))
            b, tb = timed("fair", lambda: ref.fairness.compute_fairness(data, enc, np.random.RandomState(0), None, n, m))
            rows += [("fairness_mean", a["mean_fairness"], b["mean_fairness:mean_pred:mean_sens"]),
                     ("fairness_max", a["max_fairness"], b["max_fairness:mean_pred:mean_sens"])]
            times["fairness"] = (ta, tb)
        if "beta_vae" not in skip:
            (a, ta) = timed("bv", lambda: um.beta_vae_score(data, enc, np.random.default_rng(0)))
            (b, tb) = timed("bv", lambda: ref.beta_vae.compute_beta_vae_sklearn(data, enc, np.random.RandomState(0), None, 64, 10000, 5000))
            rows += [("beta_vae_train", a["train_accuracy"], b["train_accuracy"]), ("beta_vae_eval", a["eval_accuracy"], b["eval_accuracy"])]
            times["beta_vae"] = (ta, tb)
        if "factor_vae" not in skip:
            (a, ta) = timed("fv", lambda: um.factor_vae_score(data, enc, np.random.default_rng(0)))
            (b, tb) = timed("fv", lambda: ref.factor_vae.compute_factor_vae(data, enc, np.random.RandomState(0), None, 64, 10000, 5000, 10000))
            rows += [("factor_vae_train", a["train_accuracy"], b["train_accuracy"]), ("factor_vae_eval", a["eval_accuracy"], b["eval_accuracy"])]
            times["factor_vae"] = (ta, tb)
        print(f"\n== {kind}" + ("" if "dci" in skip else f"  (DCI on {args.dci_train}/{args.dci_test} points)"))
        print(f"{'score':22s} {'untwine':>10s} {'dlib 1.5':>10s} {'|diff|':>9s} {'tol':>7s}")
        for key, a, b in rows:
            d = abs(float(a) - float(b))
            if not np.isfinite(d) and float(a) == float(b):
                d = 0.0
            tol = tol_of(key)
            flag = "" if d <= tol else "  <-- over"
            worst[key] = max(worst.get(key, 0.0), d)
            print(f"{key:22s} {float(a):10.4f} {float(b):10.4f} {_num(d, tol)} {tol:7.3g}{flag}")
        print("seconds (untwine / dlib): " + ", ".join(f"{k} {x:.2f}/{y:.2f}" for k, (x, y) in times.items()), flush=True)
    print("\nworst |diff| over representations:")
    for key, d in worst.items():
        print(f"  {key:22s} {_num(d, tol_of(key)).strip()}  (tol {tol_of(key):g}){'' if d <= tol_of(key) else '  <-- over'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
