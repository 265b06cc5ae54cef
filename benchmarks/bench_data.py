"""dSprites data path: procedural generation time, training-batch throughput and memory on CPU.

    python benchmarks/bench_data.py [--batches 500] [--sizes 3 6 40 32 32] [--rounds 5]

1. Renders the full procedural dSprites (737,280 frames) into a fresh cache in a temporary
   folder (never your real cache), loads it (memory-maps the packed cache: procedural dSprites
   keeps it packed and unpacks per batch) and, for comparison, unpacks all of it into a resident
   ``uint8`` tensor (what loading did before, about 3 GB): seconds and images/s.
2. Draws training batches (64 and 256) with ``BatchSampler`` (float32 in [0, 1]) from the packed
   dataset (``images_at`` unpacks the rows of each batch) and from the resident tensor, rounds
   interleaved, best of ``--rounds``: images/s and the ratio packed / resident. At batch 64 also
   two baselines on the resident tensor: a per-image Python loop (index, convert, stack) and a
   ``torch.utils.data.DataLoader`` over a map-style dataset (shuffle, 0 workers). With torch's
   default intra-op threads and with 1 thread (on a busy machine, multi-threaded small ops spin
   and lose badly).
3. Memory: a fresh process per way of loading (packed, resident) loads dSprites and draws 100
   batches of 64 on 1 thread, then reports from ``/proc/self/status`` its private memory
   (``RssAnon``; its growth over the process before loading is the dataset's share), the file
   pages it maps (``RssFile``: the packed cache's pages are page cache, shared by every process)
   and its peak resident size (``VmHWM``).
   Timings depend on the machine's load; memory does not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from untwine.data import BatchSampler, GroundTruthData, dsprites


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


def resident(data: GroundTruthData, chunk: int = 32_768) -> GroundTruthData:
    """The same dSprites with every image unpacked into one resident ``N x 1 x 64 x 64`` tensor:
    how ``load_procedural`` unpacked the cache before it kept it packed."""
    packed = data.bits  # type: ignore[attr-defined]
    out = np.empty((len(packed), 1, 64, 64), dtype=np.uint8)
    for s in range(0, len(packed), chunk):
        part = np.unpackbits(np.asarray(packed[s : s + chunk]), axis=-1)
        np.multiply(part, np.uint8(255), out=out[s : s + chunk, 0])
    return GroundTruthData("dsprites", data.factor_names, data.factor_sizes, torch.from_numpy(out),
                           data.factors, source=data.source, full_grid=True)


def _status() -> dict[str, int]:
    """``RssAnon``, ``RssFile``, ``VmRSS``, ``VmHWM`` of this process, in MB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) // 1024
    return out


def _memory_child(mode: str, sizes: list[int], batches: int) -> None:
    """Run in a fresh process: load dSprites ``mode`` ("packed" or "resident"), draw ``batches``
    batches of 64, print one JSON line of /proc/self/status figures (before and after)."""
    torch.set_num_threads(1)
    before = _status()
    data = dsprites.load_procedural(sizes, progress=False)
    if mode == "resident":
        data = resident(data)
    sampler = BatchSampler(data, 64, seed=0)
    for _ in range(batches):
        sampler.next()
    print(json.dumps({"mode": mode, "before": before, "after": _status()}))


def _memory_rows(sizes: list[int], batches: int = 100) -> list[tuple[str, str, str, str]]:
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for mode in ("resident", "packed"):
        out = subprocess.run([sys.executable, __file__, "--memory-child", mode, "--sizes", *map(str, sizes),
                              "--batches", str(batches)], env=env, capture_output=True, text=True, check=True)
        m = json.loads(out.stdout.strip().splitlines()[-1])
        b, a = m["before"], m["after"]
        rows.append((f"memory, {mode}: private (RssAnon) after load + {batches} batches of 64", "",
                     f"{a['RssAnon']:,} MB", f"+{a['RssAnon'] - b['RssAnon']:,} MB"))
        rows.append((f"  shared file pages (RssFile) / peak resident (VmHWM), {mode}", "",
                     f"{a['RssFile']:,} MB", f"peak {a['VmHWM']:,} MB"))
    return rows


def _throughput_rows(data: GroundTruthData, res: GroundTruthData, batches: int,
                     rounds: int) -> list[tuple[str, str, str, str]]:
    """Training-batch throughput, packed (``data``) against resident (``res``), and the baselines."""
    rows = []
    images = res.images
    assert images is not None
    for threads in sorted({torch.get_num_threads(), 1}, reverse=True):
        torch.set_num_threads(threads)
        tag = f"{threads} torch thread{'s' if threads > 1 else ''}"
        for batch in (64, 256):
            packed_s, resident_s = BatchSampler(data, batch, seed=0), BatchSampler(res, batch, seed=0)
            nb = max(batches * 64 // batch, 20)
            best = {"packed": 0.0, "resident": 0.0}
            for _ in range(rounds):
                best["resident"] = max(best["resident"], _rate(resident_s.next, nb, batch))
                best["packed"] = max(best["packed"], _rate(packed_s.next, nb, batch))
            rows.append((f"BatchSampler, packed (unpack per batch), batch {batch}, CPU, {tag}", "",
                         f"{best['packed']:,.0f} img/s", f"{best['packed'] / best['resident']:.2f}x"))
            rows.append((f"  BatchSampler, resident uint8 tensor, batch {batch}, {tag}", "",
                         f"{best['resident']:,.0f} img/s", "1.00x"))
        batch = 64
        first = _rate(BatchSampler(data, batch, seed=0).next, batches, batch)
        gen_idx = torch.Generator().manual_seed(0)

        def loop() -> torch.Tensor:
            idx = torch.randint(len(images), (batch,), generator=gen_idx)
            return torch.stack([images[int(i)].to(torch.float32) / 255.0 for i in idx])

        loader = iter(DataLoader(_PerImage(images), batch_size=batch, shuffle=True, num_workers=0))
        slow_loop = _rate(loop, max(batches // 5, 20), batch)
        slow_dl = _rate(lambda: next(loader), max(batches // 5, 20), batch)
        fast = max(first, _rate(BatchSampler(data, batch, seed=0).next, batches, batch))  # again after
        rows.append((f"  per-image Python loop + stack (resident), {tag}", "", f"{slow_loop:,.0f} img/s",
                     f"packed sampler {fast / slow_loop:.1f}x"))
        rows.append((f"  DataLoader (map-style, 0 workers, resident), {tag}", "", f"{slow_dl:,.0f} img/s",
                     f"packed sampler {fast / slow_dl:.1f}x"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, default=500, help="batches per sampler measurement")
    ap.add_argument("--sizes", type=int, nargs=5, default=list(dsprites.FACTOR_SIZES))
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of packed vs resident (best kept)")
    ap.add_argument("--memory-child", choices=("packed", "resident"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        _memory_child(args.memory_child, args.sizes, args.batches)
        return
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
        load = time.perf_counter() - t
        t = time.perf_counter()
        res = resident(data)
        unpack = time.perf_counter() - t
        rows.append(("procedural generation (render + write cache)", f"{gen:.1f} s", f"{n / gen:,.0f} img/s", ""))
        rows.append(("load (memory-map the packed cache)", f"{load:.2f} s", "", ""))
        rows.append(("unpack all (bits -> resident uint8 0/255 tensor)", f"{unpack:.1f} s", f"{n / unpack:,.0f} img/s", ""))
        rows.extend(_throughput_rows(data, res, args.batches, args.rounds))
        del res  # free the resident tensor before the memory children run
        rows.extend(_memory_rows(args.sizes))

    print(f"dSprites data path, {n:,} images, torch {torch.__version__}, {os.cpu_count()} CPUs")
    w = max(len(r[0]) for r in rows)
    print(f"{'step':<{w}}  {'time':>8}  {'throughput / size':>18}  {'ratio / growth':>22}")
    for name, secs, rate, ratio in rows:
        print(f"{name:<{w}}  {secs:>8}  {rate:>18}  {ratio:>22}")


if __name__ == "__main__":
    main()
