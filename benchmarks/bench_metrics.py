"""Time each untwine metric at the standard (disentanglement_lib 1.5) sample sizes, against the
reference implementation when it is importable (see ``benchmarks/_reference.py``)::

    .venv/bin/python benchmarks/bench_metrics.py [--rep perfect] [--dci-train 2000 --dci-test 1000] [--skip dci]

Both sides score the same arrays (MIG, SAP, modularity, DCI) or run the same protocol (beta-VAE,
FactorVAE) with the synthetic encoder of ``_reference.py`` (encoding is nearly free, so the times
are the metrics' own). Prints seconds and the ratio reference / untwine, measured in one process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _reference import SyntheticData, load_reference, representation  # noqa: E402
from crosscheck_disentanglement_lib import ref_modularity  # noqa: E402

import untwine.metrics as um  # noqa: E402


def clock(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rep", default="perfect")
    ap.add_argument("--dlib-site", default=None)
    ap.add_argument("--dci-train", type=int, default=10000)
    ap.add_argument("--dci-test", type=int, default=5000)
    ap.add_argument("--skip", default="", help="comma list of metrics to skip (e.g. dci)")
    ap.add_argument("--no-reference", action="store_true")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    ref = None if args.no_reference else load_reference(args.dlib_site)
    data, enc = SyntheticData(), representation(args.rep)
    rs = np.random.RandomState(0)
    ftr, fte = data.sample_factors(10000, rs), data.sample_factors(5000, rs)
    ztr, zte = enc(ftr), enc(fte)
    n, m = args.dci_train, args.dci_test
    ours = {
        "mig": lambda: um.mig(ztr, ftr),
        "sap": lambda: um.sap(ztr, ftr, zte, fte),
        "modularity": lambda: um.modularity_explicitness(ztr, ftr, zte, fte),
        "dci": lambda: um.dci(ztr[:n], ftr[:n], zte[:m], fte[:m]),
        "dci_fast": lambda: um.dci(ztr[:n], ftr[:n], zte[:m], fte[:m], backend="fast"),
        "beta_vae": lambda: um.beta_vae_score(data, enc, np.random.default_rng(0)),
        "factor_vae": lambda: um.factor_vae_score(data, enc, np.random.default_rng(0)),
    }
    theirs = {}
    if ref is not None:
        theirs = {
            "mig": lambda: ref.mig._compute_mig(ztr.T, ftr.T),
            "sap": lambda: ref.sap._compute_sap(ztr.T, ftr.T, zte.T, fte.T, False),
            "modularity": lambda: ref_modularity(ref, ztr.T, ftr.T, zte.T, fte.T),
            "dci_fast": lambda: ref.dci._compute_dci(ztr[:n].T, ftr[:n].T, zte[:m].T, fte[:m].T),
            "dci": lambda: ref.dci._compute_dci(ztr[:n].T, ftr[:n].T, zte[:m].T, fte[:m].T),
            "beta_vae": lambda: ref.beta_vae.compute_beta_vae_sklearn(data, enc, np.random.RandomState(0), None, 64, 10000, 5000),
            "factor_vae": lambda: ref.factor_vae.compute_factor_vae(data, enc, np.random.RandomState(0), None, 64, 10000, 5000, 10000),
        }
    print(f"representation {args.rep!r}; standard sizes; DCI at {n}/{m}; reference: {'yes' if ref else 'no'}")
    print(f"{'metric':12s} {'untwine s':>10s} {'dlib s':>10s} {'ratio':>7s}")
    total = 0.0
    for name, fn in ours.items():
        if name in skip or (name == "dci_fast" and "dci" in skip):
            continue
        t = clock(fn)
        total += t
        if name in theirs:
            tr = clock(theirs[name])
            print(f"{name:12s} {t:10.2f} {tr:10.2f} {tr / t:7.1f}x", flush=True)
        else:
            print(f"{name:12s} {t:10.2f}", flush=True)
    print(f"{'total':12s} {total:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
