"""Weak supervision's cost: pairs against single images, in the same process.

    python benchmarks/bench_weak.py [--batches 300] [--steps 60] [--threads 1] [--precision fp32]

1. Sampling: batches of 64 pairs from the resident procedural dSprites with ``PairSampler``
   (k = 1, k = Rnd, dlib's dynamics) against batches of 128 single images with ``BatchSampler``
   (the same number of images): images/s each and the ratio to ``BatchSampler``.
2. Training: ``--steps`` steps of conv64 (batch 64 pairs = 128 images) with ``ada-gvae`` against
   ``beta-vae`` at batch 128 (the same images per step) and at batch 64, alternated A B A B over
   ``--rounds``; images/s (a pair counts as two images) and the ratio to beta-VAE at batch 128.
Timings depend on the machine's load; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from untwine.data import BatchSampler, load
from untwine.data.pairs import PairSampler
from untwine.train import RunConfig, train
from untwine.train.speed import cpu_model


def _rate(fn, n_batches: int, images: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(n_batches):
        fn()
    return n_batches * images / (time.perf_counter() - t)


def _train_rate(model: str, batch: int, steps: int, threads: int, precision: str, hparams: dict) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(dataset="dsprites", source="procedural", model=model, hparams=hparams, arch="conv64",
                        steps=steps, batch_size=batch, eval_every=10**9, eval_images=64,
                        checkpoint_every=10**9, log_every=steps, threads=threads, precision=precision, out=tmp)
        run = train(cfg, progress=False)
        return float(run.summary["images_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}; threads {a.threads}")
    data = load("dsprites", "procedural")
    rows = np.arange(len(data))
    single = BatchSampler(data, 128, rows, seed=0)
    kinds = {"k 1": {"k": 1}, "k Rnd": {"k": 0}, "dlib k 1": {"k": 1, "mode": "dlib"}}
    pairs = {label: PairSampler(data, 64, rows, seed=0, **kw) for label, kw in kinds.items()}
    rates: dict[str, list[float]] = {"base": [], **{k: [] for k in kinds}}
    for _ in range(max(a.rounds, 2)):  # A B A B: the first touch of the images is not charged to one side
        rates["base"].append(_rate(single.next, a.batches, 128))
        for label, s in pairs.items():
            rates[label].append(_rate(s.next, a.batches, 128))
    base = statistics.median(rates["base"])
    print(f"sampling  BatchSampler (128 images)     {base:10.0f} images/s")
    for label in kinds:
        r = statistics.median(rates[label])
        print(f"sampling  PairSampler {label:9s} (64 pairs) {r:10.0f} images/s   ratio {r / base:.2f}x")
    took: dict[str, list[float]] = {"ada-gvae b64 pairs": [], "beta-vae b128": [], "beta-vae b64": []}
    for _ in range(a.rounds):  # A B A B
        took["ada-gvae b64 pairs"].append(_train_rate("ada-gvae", 64, a.steps, a.threads, a.precision, {"beta": 1.0}))
        took["beta-vae b128"].append(_train_rate("beta-vae", 128, a.steps, a.threads, a.precision, {"beta": 1.0}))
        took["beta-vae b64"].append(_train_rate("beta-vae", 64, a.steps, a.threads, a.precision, {"beta": 1.0}))
    ref = statistics.median(took["beta-vae b128"])
    for k, v in took.items():
        m = statistics.median(v)
        print(f"training  {k:20s} {a.precision}  {m:8.0f} images/s   ratio {m / ref:.2f}x (vs beta-vae b128)")


if __name__ == "__main__":
    main()
