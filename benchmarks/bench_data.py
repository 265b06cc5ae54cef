"""dSprites data path: procedural generation time, and training-batch throughput on CPU.

    python benchmarks/bench_data.py [--batches 500] [--sizes 3 6 40 32 32]

1. Renders the full procedural dSprites (737,280 frames) into a fresh cache in a temporary
   folder (never your real cache) and unpacks it: seconds and images/s.
2. Draws batches of 64 from the resident uint8 tensor with ``BatchSampler`` (float32 in [0, 1])
   and, in the same run, with two baselines: a per-image Python loop (index, convert, stack) and
   a ``torch.utils.data.DataLoader`` over a map-style dataset (batch_size=64, shuffle, 0 workers).
   Prints images/s and the ratio against each baseline, with torch's default intra-op threads
   and with 1 thread (on a busy machine, multi-threaded small ops spin and lose badly).
   Timings depend on the machine's load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from untwine.data import BatchSampler, dsprites


class _PerImage(Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i].to(torch.float32) / 255.0


def _rate(fn, n_batches: int, batch: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(n_batches):
        fn()
    return n_batches * batch / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=500, help="batches per sampler measurement")
    ap.add_argument("--sizes", type=int, nargs=5, default=list(dsprites.FACTOR_SIZES))
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["UNTWINE_CACHE"] = tmp
        n = int(np.prod(args.sizes))
        t = time.perf_counter()
        dsprites.build_procedural(args.sizes)
        gen = time.perf_counter() - t
        t = time.perf_counter()
        data = dsprites.load_procedural(args.sizes, progress=False)
        unpack = time.perf_counter() - t
    rows.append(("procedural generation (render + write cache)", f"{gen:.1f} s", f"{n / gen:,.0f} img/s", ""))
    rows.append(("load (unpack bits -> uint8 0/255 tensor)", f"{unpack:.1f} s", f"{n / unpack:,.0f} img/s", ""))

    batch = 64
    images = data.images
    for threads in sorted({torch.get_num_threads(), 1}, reverse=True):
        torch.set_num_threads(threads)
        sampler = BatchSampler(data, batch, seed=0)
        gen_idx = torch.Generator().manual_seed(0)

        def loop() -> torch.Tensor:
            idx = torch.randint(len(images), (batch,), generator=gen_idx)
            return torch.stack([images[int(i)].to(torch.float32) / 255.0 for i in idx])

        loader = iter(DataLoader(_PerImage(images), batch_size=batch, shuffle=True, num_workers=0))
        fast = _rate(sampler.next, args.batches, batch)
        slow_loop = _rate(loop, max(args.batches // 5, 20), batch)
        slow_dl = _rate(lambda: next(loader), max(args.batches // 5, 20), batch)
        fast = max(fast, _rate(sampler.next, args.batches, batch))  # again after the baselines
        tag = f"{threads} torch thread{'s' if threads > 1 else ''}"
        rows.append((f"BatchSampler, batch 64, CPU, {tag}", "", f"{fast:,.0f} img/s", "1.0x"))
        rows.append((f"  per-image Python loop + stack, {tag}", "", f"{slow_loop:,.0f} img/s", f"{fast / slow_loop:.1f}x"))
        rows.append((f"  DataLoader (map-style, 0 workers), {tag}", "", f"{slow_dl:,.0f} img/s", f"{fast / slow_dl:.1f}x"))

    print(f"dSprites data path, {n:,} images, torch {torch.__version__}, {os.cpu_count()} CPUs")
    w = max(len(r[0]) for r in rows)
    print(f"{'step':<{w}}  {'time':>8}  {'throughput':>16}  {'sampler vs':>14}")
    for name, secs, rate, ratio in rows:
        print(f"{name:<{w}}  {secs:>8}  {rate:>16}  {ratio:>14}")


if __name__ == "__main__":
    main()
