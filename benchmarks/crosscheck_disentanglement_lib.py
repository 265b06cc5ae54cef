"""Cross-check untwine.metrics against disentanglement_lib 1.5 on the same inputs.

Optional script (disentanglement_lib is never a runtime or test dependency; see
``benchmarks/_reference.py`` for installing it into a separate venv)::

    .venv/bin/python benchmarks/crosscheck_disentanglement_lib.py [--dci-train 2000 --dci-test 1000]

For each representation of dSprites-sized ground truth (perfect, permuted/rescaled, linear
mixture, noise, a factor encoded twice) both libraries score the *same* arrays (MIG, SAP,
modularity/explicitness, DCI, Gaussian TC; 10,000 train / 5,000 test points unless overridden);
the sampling scores (beta-VAE, FactorVAE) run the same protocol with each library's own random
stream. Prints both values, the absolute difference and the tolerance it is held to.
"""

from __future__ import annotations

import argparse
import sys
import time
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
}


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
    ap.add_argument("--skip", default="", help="comma list of: arrays,dci,beta_vae,factor_vae")
    args = ap.parse_args()
    ref = load_reference(args.dlib_site)
    if ref is None:
        print("disentanglement_lib 1.5 not found; see benchmarks/_reference.py", file=sys.stderr)
        return 1
    skip = set(filter(None, args.skip.split(",")))
    data = SyntheticData()
    worst: dict[str, float] = {}
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
        print(f"\n== {kind}  (DCI on {args.dci_train}/{args.dci_test} points)")
        print(f"{'score':22s} {'untwine':>10s} {'dlib 1.5':>10s} {'|diff|':>9s} {'tol':>7s}")
        for key, a, b in rows:
            d = abs(float(a) - float(b))
            if not np.isfinite(d) and float(a) == float(b):
                d = 0.0
            tol = TOL[key.replace("[fast]", "")]
            flag = "" if d <= tol else "  <-- over"
            worst[key] = max(worst.get(key, 0.0), d)
            print(f"{key:22s} {float(a):10.4f} {float(b):10.4f} {d:9.4f} {tol:7.3f}{flag}")
        print("seconds (untwine / dlib): " + ", ".join(f"{k} {x:.2f}/{y:.2f}" for k, (x, y) in times.items()), flush=True)
    print("\nworst |diff| over representations:")
    for key, d in worst.items():
        print(f"  {key:22s} {d:.4f}  (tol {TOL[key.replace('[fast]', '')]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
