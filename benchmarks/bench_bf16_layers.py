"""Why bf16 autocast does or does not pay on this CPU: each conv64 layer's forward + backward at
batch 64, float32 vs under ``torch.autocast("cpu", dtype=torch.bfloat16)``, ``channels_last`` (as
the trainer runs it), interleaved rounds, medians. Then the whole training step as
``precision="auto"`` measures it (:func:`untwine.train.speed.measure_cpu_bf16`). First, bare
square matrix products (``torch.mm``, no autograd, no casts timed): what the CPU's bfloat16 units
give at all, apart from anything a network adds.

Usage::

    .venv/bin/python benchmarks/bench_bf16_layers.py [--threads 1] [--repeats 3] [--iters 20]

Prints one line per layer: ms fp32, ms bf16 and the speed ratio fp32 / bf16 (> 1: bf16 faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from untwine.models.conv64 import Conv64Decoder, Conv64Encoder
from untwine.train.speed import bf16_native, cpu_model, measure_cpu_bf16


def layers() -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(name, layer, input shape at batch 64) for every conv/deconv/linear of the conv64 VAE."""
    enc, dec = Conv64Encoder(1, 10), Conv64Decoder(1, 10)
    out, shape = [], (64, 1, 64, 64)
    for i, m in enumerate(enc.features):
        if isinstance(m, nn.Conv2d):
            out.append((f"encoder conv {m.in_channels}->{m.out_channels} k{m.kernel_size[0]}", m, shape))
            shape = tuple(m(torch.zeros(1, *shape[1:])).shape[1:])
            shape = (64, *shape)
    out.append(("encoder linear 1024->256", enc.features[-2], (64, 1024)))
    out.append(("decoder linear 256->1024", dec.fc[2], (64, 256)))
    shape = (64, 64, 4, 4)
    for m in dec.deconv:
        if isinstance(m, nn.ConvTranspose2d):
            out.append((f"decoder deconv {m.in_channels}->{m.out_channels} k{m.kernel_size[0]}", m, shape))
            shape = (64, *m(torch.zeros(1, *shape[1:])).shape[1:])
    return out


def timer(layer: nn.Module, shape: tuple[int, ...], bf16: bool, iters: int):
    x = torch.rand(shape)
    if x.dim() == 4:
        layer = layer.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)

    def run() -> float:
        t = time.perf_counter()
        for _ in range(iters):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = layer(x)
            y.float().sum().backward()
        return (time.perf_counter() - t) / iters * 1e3

    run()  # warm-up (oneDNN primitive creation)
    return run


def matmul_gflops(n: int, bf16: bool) -> float:
    """GFLOP/s of an ``n`` x ``n`` by ``n`` x ``n`` product in one dtype (~1 GFLOP timed)."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    k = max(1, int(1e9 / (2 * n**3)))
    torch.mm(a, b)  # warm-up
    t = time.perf_counter()
    for _ in range(k):
        torch.mm(a, b)
    return 2 * n**3 * k / (time.perf_counter() - t) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"bench_bf16_layers: CPU {cpu_model()}, bf16 native {bf16_native('cpu')}, torch {torch.__version__}, "
          f"{a.threads} thread(s), batch 64, channels_last, {a.repeats} rounds x {a.iters} iterations")
    for n in (256, 1024, 2048):
        g = {k: [] for k in ("fp32", "bf16")}
        for _ in range(a.repeats):  # interleaved
            for k in g:
                g[k].append(matmul_gflops(n, k == "bf16"))
        f32, b16 = max(g["fp32"]), max(g["bf16"])
        print(f"matmul {n}x{n}: fp32 {f32:.1f} GFLOP/s, bf16 {b16:.1f} GFLOP/s, bf16/fp32 {b16 / f32:.2f}")
    print(f"{'layer (forward + backward)':34s} {'fp32 ms':>8s} {'bf16 ms':>8s} {'fp32/bf16':>9s}")
    total = {"fp32": 0.0, "bf16": 0.0}
    for name, layer, shape in layers():
        runs = {"fp32": timer(layer, shape, False, a.iters), "bf16": timer(layer, shape, True, a.iters)}
        ms = {k: [] for k in runs}
        for _ in range(a.repeats):
            for k, run in runs.items():
                ms[k].append(run())
        med = {k: statistics.median(v) for k, v in ms.items()}
        for k in total:
            total[k] += med[k]
        print(f"{name:34s} {med['fp32']:8.2f} {med['bf16']:8.2f} {med['fp32'] / med['bf16']:9.2f}")
    print(f"{'sum of layers':34s} {total['fp32']:8.2f} {total['bf16']:8.2f} {total['fp32'] / total['bf16']:9.2f}")
    print(f"whole training step, bf16 speed / fp32 speed (speed.measure_cpu_bf16, what precision=auto uses; "
          f"bf16 is chosen at >= 1.1): {measure_cpu_bf16(a.threads, rounds=a.repeats):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
