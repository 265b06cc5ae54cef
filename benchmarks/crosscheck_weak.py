"""Cross-check untwine's weakly-supervised objectives (``untwine.objectives.weak``) against the
peers' own code, each run in its own virtual environment on the same fixed arrays.

Optional, like ``crosscheck_disentanglement_lib.py`` and ``bench_peers.py``: no peer is a
dependency of untwine and no peer code is copied here. This script runs under the project's venv,
writes the arrays to a ``.npz`` in a temporary folder and starts ``_weak_peers.py`` (standard
library only at the top) with each peer's Python; a peer whose venv is missing is skipped.

Peers (Python 3.11):

* **disent 0.8.0**: the venv of ``bench_peers.py`` (``/tmp/disent-venv``, ``--disent-python`` or
  ``$DISENT_PYTHON``), installed as its docstring says (torch 2.13.0 pin, the torchvision shim of
  ``_peers.py``). Its ``AdaVae`` (``disent/frameworks/vae/_weaklysupervised__adavae.py``).
* **disentanglement_lib**: ``methods/weak/weak_vae.py`` is not in the PyPI release 1.5 (the newest;
  the file was added on GitHub in 2020). Take it from GitHub master, commit
  ``86a644d4ed35c771560dc3360756363d35477357`` (2020-08-27, the newest; the file's sha256 starts
  ``d43ca709262458ce``), and run it beside the PyPI package's ``losses``/``vae`` with TensorFlow 2::

      python3 -m venv /tmp/dlib-weak-venv
      /tmp/dlib-weak-venv/bin/pip install --no-deps disentanglement-lib==1.5
      /tmp/dlib-weak-venv/bin/pip install tensorflow-cpu gin-config==0.4.0   # 2.21.0 here
      mkdir -p /tmp/dlib-weak && git clone https://github.com/google-research/disentanglement_lib /tmp/dlib-src
      git -C /tmp/dlib-src show 86a644d4ed35c771560dc3360756363d35477357:disentanglement_lib/methods/weak/weak_vae.py \\
          > /tmp/dlib-weak/weak_vae.py
      echo 86a644d4ed35c771560dc3360756363d35477357 > /tmp/dlib-weak/COMMIT

  ``--dlib-python`` / ``$DLIB_WEAK_PYTHON`` and ``--weak-vae`` / ``$DLIB_WEAK_VAE`` locate them.
  What the worker stubs (imports that TensorFlow 2 no longer ships or these functions never use)
  is in ``_weak_peers.py``'s docstring.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/crosscheck_weak.py [--pairs-random 4096] [--seed 0]

The arrays (float64 everywhere, ``D = 10`` latents): 12 pairs drawn like an encoder's pairs
(about 60% of the dimensions nearly equal, the others redrawn), then the edge cases (named in the
output): every divergence equal and non-zero; an identical pair; a divergence exactly at the
midpoint of its row (1, 25, 49); large and small variances (log-variances -12..12, means to
+-50); one changed dimension and the rest identical; every divergence equal up to ~1e-13. Labels
(for ``gvae``/``ml-vae``) include ``D`` and ``D + 3`` (beyond the latents: nothing shared, as
dlib's one-hot). The full loss uses a fixed linear decoder (``D -> 1 x 4 x 4`` logits), binary
images, stored noise for ``z`` and beta 3. A second set of ``--pairs-random`` random pairs checks
the divergence and the mask at scale.

What is compared (the mask: True where a dimension keeps its own posterior, i.e. is not shared):
divergence, masks, the GVAE and ML-VAE aggregates, each objective's aggregated posteriors, and its
loss, reconstruction and KL terms. Continuous values agree when ``|a - b| <= atol + rtol * |b|``
(``rtol = atol = 1e-12``; all sides compute the same formulas in float64, in different orders);
masks must be equal. disent's defaults (``symmetric_kl``; ``kl`` in its own order) differ from
dlib by design; their differences are printed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from untwine import objectives
from untwine.objectives.weak import (
    adaptive_mask,
    group_mean,
    label_mask,
    pair_divergence,
    product_of_experts,
)

HERE = Path(__file__).resolve().parent
RTOL = ATOL = 1e-12
OBJECTIVES = ("gvae", "ml-vae", "ada-gvae", "ada-ml-vae")
D, IMG = 10, (1, 4, 4)


# ---------------------------------------------------------------------- the arrays
def build_arrays(seed: int, n_random: int) -> tuple[dict[str, np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)

    def encoder_pairs(n):
        mu1, lv1 = rng.normal(size=(n, D)), rng.normal(-1.0, 1.0, (n, D))
        shared = rng.random((n, D)) < 0.6
        mu2 = np.where(shared, mu1 + rng.normal(0, 0.05, (n, D)), rng.normal(size=(n, D)))
        lv2 = np.where(shared, lv1 + rng.normal(0, 0.05, (n, D)), rng.normal(-1.0, 1.0, (n, D)))
        return mu1, lv1, mu2, lv2

    rows = [list(r) for r in zip(*encoder_pairs(12))]
    names = [f"pair {i}" for i in range(12)]
    zero = np.zeros(D)
    m = rng.integers(-4, 5, D) * 0.5
    rows.append([m, zero, m + 1.0, zero]); names.append("all divergences equal (1)")
    m, lv = rng.normal(size=D), rng.normal(-1, 1, D)
    rows.append([m, lv, m.copy(), lv.copy()]); names.append("identical pair")
    rows.append([zero, zero, np.array([1.0, 5, 7, 1, 5, 7, 1, 5, 7, 1]), zero]); names.append("divergence at the midpoint (1, 25, 49)")
    lv1 = rng.uniform(-12, 12, D)
    rows.append([rng.uniform(-50, 50, D), lv1, rng.uniform(-50, 50, D), np.clip(lv1 + rng.uniform(-8, 8, D), -12, 12)])
    names.append("large and small variances")
    m, lv = rng.normal(size=D), rng.normal(-1, 1, D)
    m2 = m.copy(); m2[3] += 2.0
    rows.append([m, lv, m2, lv.copy()]); names.append("one changed dimension")
    m = rng.integers(-4, 5, D) * 0.5
    rows.append([m, zero, m + 1.0 + rng.normal(0, 1e-13, D), zero]); names.append("divergences equal up to ~1e-13")
    mu1, lv1, mu2, lv2 = (np.stack(c) for c in zip(*rows))
    b = len(names)
    labels = rng.integers(0, D, b)
    labels[12], labels[14] = D, D + 3
    pixels = int(np.prod(IMG))
    arr = {"mu1": mu1, "lv1": lv1, "mu2": mu2, "lv2": lv2, "labels": labels.astype(np.int64),
           "x": (rng.random((2 * b, *IMG)) < 0.5).astype(np.float64), "eps": rng.normal(size=(2 * b, D)),
           "W": rng.normal(0, 0.3, (D, pixels)), "b": rng.normal(0, 0.1, pixels), "beta": np.array(3.0)}
    arr["r_mu1"], arr["r_lv1"], arr["r_mu2"], arr["r_lv2"] = encoder_pairs(n_random)  # last: the rest does not depend on n_random
    div = pair_divergence(*(torch.from_numpy(arr[k]) for k in ("mu1", "lv1", "mu2", "lv2")))
    # rows whose divergences are all equal: dlib shares every dimension, disent's strict "<" none
    arr["tie_free"] = np.flatnonzero((div.amax(1) > div.amin(1)).numpy()).astype(np.int64)
    return arr, names


# ---------------------------------------------------------------------- untwine's side
def untwine_side(arr: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    t = {k: torch.from_numpy(v) for k, v in arr.items()}
    out: dict[str, np.ndarray] = {}
    for sfx in ("", "r_"):
        m1, l1, m2, l2 = (t[sfx + k] for k in ("mu1", "lv1", "mu2", "lv2"))
        div = pair_divergence(m1, l1, m2, l2)
        out[sfx + "div"], out[sfx + "mask_ada"] = div.numpy(), adaptive_mask(div).numpy()
    out["mask_labels"] = label_mask(t["labels"], D).numpy()
    for name, fn in (("gvae", group_mean), ("mlvae", product_of_experts)):
        m, lv = fn(t["mu1"], t["lv1"], t["mu2"], t["lv2"])
        out[name + "_mean"], out[name + "_logvar"] = m.numpy(), lv.numpy()
    b = len(arr["mu1"])
    for tag, rows in (("", np.arange(b)), ("tf_", arr["tie_free"])):
        idx = torch.from_numpy(rows)
        mu = torch.cat([t["mu1"][idx], t["mu2"][idx]])
        lv = torch.cat([t["lv1"][idx], t["lv2"][idx]])
        x = torch.cat([t["x"][:b][idx], t["x"][b:][idx]])
        eps = torch.cat([t["eps"][:b][idx], t["eps"][b:][idx]])
        for name in OBJECTIVES:
            obj = objectives.build(name, dataset_size=100, latents=D, beta=float(arr["beta"]))
            m, l = obj.aggregate(mu, lv, t["labels"][idx])
            z = m + torch.exp(0.5 * l) * eps  # VAE.reparameterize with the stored noise
            logits = (z @ t["W"] + t["b"]).view(-1, *IMG)
            terms = obj.terms(x, m, l, z, logits, 0)
            out[f"agg_mean/{tag}{name}"], out[f"agg_logvar/{tag}{name}"] = m.numpy(), l.numpy()
            for k in ("loss", "rec", "kl"):
                out[f"{k}/{tag}{name}"] = terms[k].detach().numpy()
    return out


# ---------------------------------------------------------------------- the peers
def run_peer(side: str, python: str, work: Path, extra: list[str]) -> tuple[dict | None, str]:
    if not Path(python).exists():
        return None, f"skipped: {python} not found"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    p = subprocess.run([python, str(HERE / "_weak_peers.py"), side, "--work", str(work), *extra],
                       capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0:
        tail = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "no output"
        return None, f"failed (exit {p.returncode}): {tail}"
    info = json.loads(p.stdout.strip().splitlines()[-1])
    with np.load(work / f"{side}.npz") as z:
        info["arrays"] = {k: z[k] for k in z.files}
    return info, "ran"


def diff(a: np.ndarray, b: np.ndarray) -> tuple[float, bool]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("nan"), False
    d = np.abs(a - b)
    return float(d.max(initial=0.0)), bool(np.all(d <= ATOL + RTOL * np.abs(b)))


def bits(row: np.ndarray) -> str:
    return "".join("1" if v else "0" for v in row)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--disent-python", default=os.environ.get("DISENT_PYTHON", "/tmp/disent-venv/bin/python"))
    ap.add_argument("--dlib-python", default=os.environ.get("DLIB_WEAK_PYTHON", "/tmp/dlib-weak-venv/bin/python"))
    ap.add_argument("--weak-vae", default=os.environ.get("DLIB_WEAK_VAE", "/tmp/dlib-weak/weak_vae.py"))
    ap.add_argument("--pairs-random", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    arr, names = build_arrays(a.seed, a.pairs_random)
    mine = untwine_side(arr)
    peers: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        np.savez(work / "arrays.npz", **arr)
        for side, py, extra in (("dlib", a.dlib_python, ["--weak-vae", a.weak_vae]), ("disent", a.disent_python, [])):
            info, status = run_peer(side, py, work, extra)
            print(f"{side}: {status}" + (f"; versions {info['versions']}" if info else ""))
            if info and info.get("stubbed"):
                print(f"  stubbed: {', '.join(info['stubbed'])}")
            if info:
                peers[side] = info
    if not peers:
        print("no peer ran: nothing to compare (see the module docstring for the venvs)", file=sys.stderr)
        return 1
    b, n = len(names), a.pairs_random
    tf_rows = arr["tie_free"]
    print(f"\n{b} fixed pairs x {D} latents ({len(tf_rows)} tie-free: without the rows whose divergences are all equal), "
          f"{n} random pairs; float64; tolerance |diff| <= {ATOL:g} + {RTOL:g} |peer|; masks exactly")
    every = np.arange(b)
    quantities = [("divergence (dlib compute_kl = 2 KL(q1||q2))", "div", every),
                  ("shared mask, adaptive, all rows", "mask_ada", every),
                  ("shared mask, adaptive, tie-free rows", "mask_ada", tf_rows),
                  ("shared mask, labels", "mask_labels", every), ("GVAE aggregate mean", "gvae_mean", every),
                  ("GVAE aggregate logvar", "gvae_logvar", every), ("ML-VAE aggregate mean", "mlvae_mean", every),
                  ("ML-VAE aggregate logvar", "mlvae_logvar", every)]
    for tag, label in (("", "all rows"), ("tf_", "tie-free rows")):
        for obj in OBJECTIVES:
            quantities += [(f"{obj} aggregated mean, {label}", f"agg_mean/{tag}{obj}", None),
                           (f"{obj} aggregated logvar, {label}", f"agg_logvar/{tag}{obj}", None)]
            quantities += [(f"{obj} {k}, {label}", f"{k}/{tag}{obj}", None) for k in ("loss", "rec", "kl")]
    quantities += [(f"random set: divergence ({n} x {D})", "r_div", None),
                   ("random set: shared mask, adaptive", "r_mask_ada", None)]
    sides = [s for s in ("dlib", "disent") if s in peers]
    print(f"\n{'quantity':58s}" + "".join(f" {s + ' |diff|':>14s} {'agree':>6s}" for s in sides))
    worst: dict[str, list[str]] = {s: [] for s in sides}
    for label, key, rows in quantities:
        line, any_ = f"{label:58s}", False
        for s in sides:
            theirs = peers[s]["arrays"].get(key)
            if theirs is None:
                line += f" {'n/a':>14s} {'':>6s}"
                continue
            any_ = True
            ours = mine[key] if rows is None else mine[key][rows]
            theirs = theirs if rows is None else theirs[rows]
            if "mask" in key:
                bad = int(np.sum(theirs != ours))
                ok = bad == 0
                line += f" {str(bad) + ' differ':>14s} {'yes' if ok else 'NO':>6s}"
            else:
                dd, ok = diff(ours, theirs)
                line += f" {dd:14.2e} {'yes' if ok else 'NO':>6s}"
            if not ok:
                worst[s].append(label)
        if any_:
            print(line)
    # the edge rows' masks, side by side
    print("\nadaptive masks of the edge rows (1: keeps its own posterior, 0: shared); untwine | " + " | ".join(sides))
    for i in range(12, b):
        print(f"  {names[i]:40s} {bits(mine['mask_ada'][i])}" + "".join(f" | {bits(peers[s]['arrays']['mask_ada'][i])}" for s in sides))
    if "disent" in peers:
        p = peers["disent"]["arrays"]
        print(f"\ndisent's defaults {peers['disent'].get('defaults')} against untwine/dlib (by design, not compared for agreement):")
        for mk, what in (("mask_default", "symmetric_kl"), ("mask_kl_natural", "kl, disent's order: KL(q2||q1)")):
            rows_f = int(np.any(p[mk] != mine["mask_ada"], 1).sum())
            rows_r = int(np.any(p["r_" + mk] != mine["r_mask_ada"], 1).sum())
            print(f"  mask with {what}: fixed set {rows_f}/{b} rows differ "
                  f"({int(np.sum(p[mk] != mine['mask_ada']))} entries), random set {rows_r}/{n} rows "
                  f"({int(np.sum(p['r_' + mk] != mine['r_mask_ada']))} of {n * D} entries)")
        for tag, label in (("", "all rows"), ("tf_", "tie-free rows")):
            for obj, key in (("ada-gvae", "ada-gvae@default"), ("ada-ml-vae", "ada-ml-vae@default"), ("ada-gvae", "ada-gvae@kl-natural")):
                dd = float(p[f"loss/{tag}{key}"]) - float(mine[f"loss/{tag}{obj}"])
                print(f"  loss {key:22s} - untwine {obj:10s} ({label}): {dd:+.6g} (untwine {float(mine[f'loss/{tag}{obj}']):.6g})")
    print()
    for s in sides:
        print(f"{s}: " + ("every compared quantity agrees" if not worst[s] else "differs in: " + "; ".join(worst[s])))
        rows_bad = np.flatnonzero(np.any(peers[s]["arrays"]["mask_ada"] != mine["mask_ada"], 1))
        if len(rows_bad):
            print(f"  its adaptive masks differ in rows {', '.join(names[i] for i in rows_bad)}"
                  + (" (all of them rows whose divergences are all equal)" if not set(rows_bad) & set(tf_rows) else ""))
    for s in ("dlib", "disent"):
        if s not in peers:
            print(f"{s}: not compared (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
