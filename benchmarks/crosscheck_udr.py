"""Cross-check untwine.metrics.udr against disentanglement_lib's ``compute_udr_sklearn``.

UDR is not in the disentanglement_lib 1.5 release: its code is in the GitHub repository
(google-research/disentanglement_lib, ``disentanglement_lib/evaluation/udr/metrics/udr.py``). Put
that file somewhere (never a dependency of untwine) and install the reference's environment as
``benchmarks/_reference.py`` says::

    git clone https://github.com/google-research/disentanglement_lib /tmp/dlib-src
    mkdir -p /tmp/dlib-udr && cp /tmp/dlib-src/disentanglement_lib/evaluation/udr/metrics/udr.py /tmp/dlib-udr/
    .venv/bin/python benchmarks/crosscheck_udr.py [--udr-file /tmp/dlib-udr/udr.py] [--runs RUN RUN ...]

The reference runs with ``udr.gin`` / ``udr_spearman.gin``'s settings (batch_size 10,
num_data_points 1000, filter_low_kl, kl_filter_threshold 0.01, random_state RandomState(0)) on
Gaussian encoders of dSprites-sized ground truth (observations are the factors): three
disentangled models (permuted, rescaled, sign-flipped; two inactive latents), a partial one (three
factors, two collapsed latents, one latent with a constant mean but KL > 0.01, two noise latents),
a linear mixture and pure noise. Every representation it draws is recorded and handed to
untwine's ``udr`` (codes; KL per latent computed by untwine from the recorded means and
log-variances). With ``--runs``, trained runs (default: the shipped pretrained models) encode
dSprites observations the same way. Prints both libraries' per-model scores, the largest
difference over scores and pair scores, and the tolerance (1e-9: the same estimator on the same
arrays; left for floating-point summation order).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _reference import DSPRITES_SIZES, SyntheticData, find_dlib_site  # noqa: E402

import untwine.metrics as um  # noqa: E402
from untwine.metrics.udr import gaussian_kl  # noqa: E402

TOL = 1e-9
BATCH_SIZE, NUM_DATA_POINTS = 10, 1000  # udr.gin


def load_dlib_udr(path: str, site: str | None) -> Any:
    """Import the reference's udr.py from ``path`` with the reference venv's absl and gin."""
    site = find_dlib_site(site)
    if site is None or not Path(path).is_file():
        sys.exit(f"need disentanglement_lib's udr.py at {path} and its venv (see this file's docstring)")
    if site not in sys.path:
        sys.path.append(site)
    sys.modules.setdefault("gin.tf", types.ModuleType("gin.tf"))  # would import TensorFlow
    spec = importlib.util.spec_from_file_location("dlib_udr", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def synthetic_models(sizes: tuple[int, ...] = DSPRITES_SIZES) -> dict[str, Callable]:
    """Gaussian encoders ``factors (n x K) -> (mu n x D, logvar n x D)``, ``D = K + 2``."""
    k, d = len(sizes), len(sizes) + 2
    scale = 1.0 / (np.asarray(sizes, dtype=np.float64) - 1.0)
    models: dict[str, Callable] = {}

    def disentangled(seed: int) -> Callable:
        p = np.random.default_rng(100 + seed)
        perm, gains = p.permutation(d), p.choice([-1.0, 1.0], d) * 10 ** p.uniform(-1, 1, d)
        noise = np.random.default_rng(200 + seed)

        def enc(f):
            mu = np.concatenate([f * scale + noise.normal(0, 0.02, f.shape), 1e-3 * noise.normal(size=(len(f), 2))], 1)
            lv = np.concatenate([np.full(f.shape, -4.0), np.zeros((len(f), 2))], 1)
            return (mu * gains)[:, perm], lv[:, perm]
        return enc

    for s in range(3):
        models[f"disentangled-{s}"] = disentangled(s)
    noise = np.random.default_rng(300)
    mix = np.random.default_rng(301).normal(size=(k, d))

    def partial(f):
        n = len(f)
        mu = np.concatenate([f[:, :3] * scale[:3] + noise.normal(0, 0.02, (n, 3)), np.zeros((n, 2)),
                             np.full((n, 1), 0.3), noise.normal(size=(n, 1))], 1)
        lv = np.concatenate([np.full((n, 3), -4.0), np.zeros((n, 2)), np.full((n, 1), -1.0), np.full((n, 1), -2.0)], 1)
        return mu, lv

    models["partial"] = partial
    models["mixture"] = lambda f: ((f * scale) @ mix + noise.normal(0, 0.02, (len(f), d)), np.full((len(f), d), -3.0))
    models["noise"] = lambda f: (noise.normal(size=(len(f), d)), np.full((len(f), d), -1.0))
    return models


def recorded(encoders: list[Callable]) -> tuple[list[Callable], list[list[tuple]]]:
    """The reference's representation functions ``obs -> (mu, KL per latent of the batch)`` (its
    ``compute_gaussian_kl``) around ``encoders``, and the list each fills with ``(mu, logvar)``."""
    logs: list[list[tuple]] = [[] for _ in encoders]

    def wrap(enc: Callable, log: list) -> Callable:
        def fn(obs):
            mu, lv = (np.asarray(a, dtype=np.float64) for a in enc(obs))
            log.append((mu, lv))
            return mu, np.mean(0.5 * (np.square(mu) + np.exp(lv) - lv - 1), axis=0)
        return fn

    return [wrap(e, log) for e, log in zip(encoders, logs)], logs


def compare(ref: Any, names: list[str], encoders: list[Callable], data: Any) -> float:
    worst = 0.0
    for corr in ("lasso", "spearman"):
        fns, logs = recorded(encoders)
        t = time.perf_counter()
        with warnings.catch_warnings():  # the reference's 0/0 and constant-input warnings
            warnings.simplefilter("ignore")
            theirs = ref.compute_udr_sklearn(data, fns, np.random.RandomState(0), BATCH_SIZE, NUM_DATA_POINTS,
                                             correlation_matrix=corr, filter_low_kl=True,
                                             include_raw_correlations=True, kl_filter_threshold=0.01)
        t_ref = time.perf_counter() - t
        codes = [np.concatenate([mu for mu, _ in log]) for log in logs]
        kls = [gaussian_kl(np.concatenate([mu for mu, _ in log]), np.concatenate([lv for _, lv in log]))
               for log in logs]
        t = time.perf_counter()
        ours = um.udr(codes, kls, correlation=corr)
        t_ours = time.perf_counter() - t
        pair_ref = np.asarray(theirs["pairwise_disentanglement_scores"])[..., 0]
        off = ~np.eye(len(names), dtype=bool)
        d_pair = float(np.abs(pair_ref[off] - ours["pairwise"][off]).max())
        raw = np.asarray(theirs["raw_correlations"])
        if (np.isnan(raw) != np.isnan(ours["correlations"])).any():
            d_corr = np.inf  # a NaN (a constant latent's Spearman correlation) on one side only
        else:
            d_corr = float(np.nanmax(np.abs(raw - ours["correlations"])))
        print(f"\n{corr}: reference {t_ref:.2f} s (drawing, encoding and UDR), untwine {t_ours:.2f} s (UDR of "
              f"the recorded arrays); active latents {ours['num_active'].tolist()}")
        w = max(len(n) for n in names)
        print(f"{'model':{w}s} {'disentanglement_lib':>20s} {'untwine':>12s} {'|diff|':>9s}")
        for name, a, b in zip(names, theirs["model_scores"], ours["udr"]):
            print(f"{name:{w}s} {a:20.12f} {b:12.9f} {abs(a - b):9.1e}")
            worst = max(worst, abs(a - b))
        print(f"max |diff| of the pair scores {d_pair:.1e}, of the similarity matrices {d_corr:.1e} "
              "(NaN in the same places)")
        print("untwine's pair scores (row: first model, column: second):")
        print(np.array2string(ours["pairwise"], precision=3, suppress_small=True))
        worst = max(worst, d_pair, d_corr)
    return worst


class RunData:
    """disentanglement_lib's ``sample_observations`` over an untwine dataset."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def sample_observations(self, n: int, rs: Any) -> np.ndarray:
        f = self.data.sample_factors(n, rs)
        return np.asarray(self.data.observations_from_factors(f, rs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--udr-file", default="/tmp/dlib-udr/udr.py", help="the reference's udr.py")
    ap.add_argument("--dlib-site", default=None, help="site-packages of the reference venv")
    ap.add_argument("--runs", nargs="*", default=None,
                    help="also compare on trained runs (folders or pretrained names; no value: the shipped models)")
    args = ap.parse_args()
    ref = load_dlib_udr(args.udr_file, args.dlib_site)
    print(f"UDR cross-check, batch_size {BATCH_SIZE}, num_data_points {NUM_DATA_POINTS}, tolerance {TOL:g}")
    models = synthetic_models()
    print(f"synthetic Gaussian encoders on dSprites-sized factors: {', '.join(models)}")
    worst = compare(ref, list(models), [lambda o, m=m: m(np.asarray(o)) for m in models.values()], SyntheticData())
    if args.runs is not None:
        import untwine
        from untwine.data import load
        from untwine.pretrained import names as pretrained_names
        from untwine.train import load_run

        given = args.runs or list(pretrained_names())
        runs = [untwine.pretrained(r) if r in pretrained_names() else load_run(r) for r in given]
        print(f"\ntrained runs ({runs[0].config.dataset}): {', '.join(given)}")
        data = RunData(load(runs[0].config.dataset, runs[0].config.source, runs[0].config.data_root))
        worst = max(worst, compare(ref, given, [r.encode_gaussian for r in runs], data))
    ok = worst <= TOL
    print(f"\nlargest |difference| {worst:.1e}: {'within' if ok else 'OUTSIDE'} the tolerance {TOL:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
