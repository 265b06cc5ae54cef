"""Throughput of the procedural MPI3D stand-in vs. batches from resident uint8 images.

Usage: python benchmarks/bench_mpi3d_procedural.py [--batch 256] [--seconds 3] [--threads 1]
Prints images/s of both paths (same process, same batch size) and their ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from untwine.data import BatchSampler, from_arrays
from untwine.data.mpi3d import ProceduralMPI3D


def rate(sampler: BatchSampler, seconds: float) -> float:
    sampler.next()  # warm-up (builds the renderer's tables)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += sampler.next().shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    proc = ProceduralMPI3D()
    resident = from_arrays(torch.randint(0, 256, (100_000, 3, 64, 64), dtype=torch.uint8), torch.zeros(100_000, 1, dtype=torch.int64), ["x"])
    r_proc = rate(BatchSampler(proc, a.batch), a.seconds)
    r_res = rate(BatchSampler(resident, a.batch), a.seconds)
    print(f"threads={torch.get_num_threads()} batch={a.batch}")
    print(f"procedural mpi3d : {r_proc:10.0f} images/s")
    print(f"resident uint8   : {r_res:10.0f} images/s (baseline)")
    print(f"ratio            : {r_proc / r_res:10.3f}")


if __name__ == "__main__":
    main()
