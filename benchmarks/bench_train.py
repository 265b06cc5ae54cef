"""Trainer throughput: untwine's loop vs a plain PyTorch loop, FactorVAE vs beta-VAE, packed vs one-at-a-time.

Usage::

    .venv/bin/python benchmarks/bench_train.py [--steps 12] [--repeats 3] [--batch 64] [--threads 0]
        [--pack 4 --pack-batch 32 --pack-steps 6] [--no-pack] [--no-trainer] [--jobs N] [--quick]

Every measurement runs in a fresh subprocess (so the glibc malloc settings, which only act at
process start, can differ), and the variants are interleaved A, B, A, B... over ``--repeats``
rounds; ratios are taken within a round and the median is printed. The machine is shared, so
only the ratios mean something.

Variants (all: conv64, 10 latents, batch ``--batch``, the same in-memory synthetic dSprites-like
dataset of 64x64 binary images, ``torch`` threads = ``--threads`` or torch's default):

* ``plain``: the loop a typical user writes: the conv64 encoder/decoder as a plain ``nn.Module``,
  random batches indexed from a float tensor in memory, ``torch.optim.Adam`` with defaults,
  BCE-with-logits (sum) + KL, ``loss.item()`` every step. Default malloc settings.
* ``untwine-bvae`` / ``untwine-fvae``: ``untwine.train.train`` on the same images
  (``untwine.data.from_arrays``), beta-VAE / FactorVAE, with the malloc settings that the
  ``untwine`` command sets (``untwine.cli.MALLOC_ENV``). The figure is the trainer's own
  ``summary.json`` ``images_per_s``: it *includes* the step-0 and final evaluations (one batch
  each, forward only) and the final checkpoint, which counts against untwine. (Evaluation and
  checkpoint intervals are set to the run length: the automatic ones of a 12-step run would
  evaluate and checkpoint every step.)
* ``untwine-bvae-nomalloc``: the same without the malloc settings (the Python API default).
* ``jobs``: what ``untwine sweep --jobs N`` does on CPU (N worker processes with
  ``cpu_count // N`` torch threads each): N untwine beta-VAE runs at once, 1 thread each,
  aggregate images/s, against one run with ``N`` threads (``--jobs N``, default the CPU count).
* ``packed`` / ``packed-vmap`` / ``one-at-a-time``: K beta-VAE runs (different betas and seeds)
  with ``train_packed`` (CPU default backend ``loop``; ``vmap``) vs K ``train`` calls; aggregate
  images/s = K x steps x batch / wall time (setup included on both sides).

``disent`` (another disentanglement library) is compared when importable; it is not installed
here, so that comparison is skipped and said so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_IMAGES = 4096


def synthetic_images(n: int = N_IMAGES, seed: int = 0):
    """``n`` dSprites-like 64x64 binary images (a filled square or disc, random size and place),
    ``uint8`` 0/255, with their factor indices ``(shape, scale, x, y)``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(0, 2, n), rng.integers(0, 4, n), rng.integers(0, 16, n), rng.integers(0, 16, n)], 1)
    yy, xx = np.mgrid[:64, :64]
    imgs = np.zeros((n, 64, 64), np.uint8)
    for i, (shape, scale, x, y) in enumerate(f):
        r = 4 + 2 * scale
        cx, cy = 8 + 3 * x, 8 + 3 * y
        if shape == 0:
            m = (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
        else:
            m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        imgs[i][m] = 255
    return imgs, f


# ---------------------------------------------------------------------- workers (one per subprocess)
def worker_plain(a: argparse.Namespace) -> float:
    import torch
    from torch import nn
    import torch.nn.functional as F

    class Encoder(nn.Module):
        def __init__(self, latents=10):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
                nn.Conv2d(32, 64, 2, 2), nn.ReLU(), nn.Conv2d(64, 64, 2, 2), nn.ReLU(),
                nn.Flatten(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 2 * latents))

        def forward(self, x):
            return self.net(x).chunk(2, 1)

    class Decoder(nn.Module):
        def __init__(self, latents=10):
            super().__init__()
            self.fc = nn.Sequential(nn.Linear(latents, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU())
            self.net = nn.Sequential(
                nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))

        def forward(self, z):
            return self.net(self.fc(z).view(-1, 64, 4, 4))

    imgs, _ = synthetic_images()
    data = torch.from_numpy(imgs).float().div(255).unsqueeze(1).to(a.device)
    torch.manual_seed(0)
    enc, dec = Encoder().to(a.device), Decoder().to(a.device)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-4)
    beta = 4.0

    def step() -> float:
        x = data[torch.randint(len(data), (a.batch,), device=a.device)]
        mu, logvar = enc(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(dec(z), x, reduction="sum") / len(x)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        loss = rec + beta * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    return a.steps * a.batch / (time.perf_counter() - t)


def _dataset():
    from untwine.data import from_arrays

    imgs, f = synthetic_images()
    return from_arrays(imgs, f, ["shape", "scale", "x", "y"], name="bench-shapes")


def worker_untwine(a: argparse.Namespace, model: str) -> float:
    from untwine.train import RunConfig, train

    data = _dataset()
    with tempfile.TemporaryDirectory() as d:
        def cfg(out: str, steps: int) -> RunConfig:
            return RunConfig(model=model, steps=steps, batch_size=a.batch, eval_images=a.batch,
                             eval_every=steps, checkpoint_every=steps, log_every=100, device=a.device,
                             out=str(Path(d) / out))

        train(cfg("warm", 2), progress=False, data=data)  # warm-up: allocator, oneDNN kernels
        return float(train(cfg("run", a.steps), progress=False, data=data).summary["images_per_s"])


def worker_packed(a: argparse.Namespace, how: str) -> float:
    from untwine.train import RunConfig, train
    from untwine.train import train_packed

    data = _dataset()
    with tempfile.TemporaryDirectory() as d:
        def cfgs(tag: str, steps: int) -> list[RunConfig]:
            return [RunConfig(model="beta-vae", hparams={"beta": 1.0 + k}, seed=k, steps=steps,
                              batch_size=a.pack_batch, eval_images=a.pack_batch, eval_every=steps,
                              checkpoint_every=steps, log_every=100, device=a.device,
                              out=str(Path(d) / f"{tag}{k}")) for k in range(a.pack)]

        if how == "one-at-a-time":
            for c in cfgs("warm", 1):
                train(c, progress=False, data=data)
            t = time.perf_counter()
            for c in cfgs("run", a.pack_steps):
                train(c, progress=False, data=data)
        else:
            backend = "vmap" if how == "packed-vmap" else "auto"
            train_packed(cfgs("warm", 1), progress=False, data=data, backend=backend)
            t = time.perf_counter()
            train_packed(cfgs("run", a.pack_steps), progress=False, data=data, backend=backend)
        return a.pack * a.pack_steps * a.pack_batch / (time.perf_counter() - t)


def step_ratio(a: argparse.Namespace, rounds: int = 12) -> tuple[float, float]:
    """Median seconds of one training step, beta-VAE and FactorVAE, interleaved in this process.

    The step is the loop's (``untwine.train.loop``): conv64 forward in channels_last, the
    objective's ``terms``, backward, fused Adam, and FactorVAE's ``extra_step`` (its
    discriminator's update); no data loading, logging or evaluation, so this is the ratio of the
    objectives' own cost. The first two rounds are warm-up."""
    import statistics

    import torch
    from untwine.models import VAE
    from untwine.objectives import build

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = VAE("conv64", 1, 10).to(a.device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    imgs, _ = synthetic_images()
    x = torch.from_numpy(imgs[: a.batch]).float().div(255).unsqueeze(1).to(a.device)
    x = x.contiguous(memory_format=torch.channels_last)
    objectives = {"beta-vae": build("beta-vae", dataset_size=len(imgs), latents=10, beta=4.0).to(a.device),
                  "factor-vae": build("factor-vae", dataset_size=len(imgs), latents=10).to(a.device)}
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    times: dict[str, list[float]] = {k: [] for k in objectives}
    for _ in range(rounds):
        for name, obj in objectives.items():
            t = time.perf_counter()
            mu, logvar, z, logits = model(x)
            terms = obj.terms(x, mu, logvar, z, logits, 0)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            if obj.has_extra_step:
                obj.extra_step(z.detach(), 0)
            sync()
            times[name].append(time.perf_counter() - t)
    return statistics.median(times["beta-vae"][2:]), statistics.median(times["factor-vae"][2:])


def run_worker(a: argparse.Namespace) -> None:
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    name = a.worker
    if name == "plain":
        ips = worker_plain(a)
    elif name.startswith("untwine-"):
        ips = worker_untwine(a, "factor-vae" if name.startswith("untwine-fvae") else "beta-vae")
    else:
        ips = worker_packed(a, name)
    print(json.dumps({"worker": name, "images_per_s": ips, "threads": torch.get_num_threads()}))


# ---------------------------------------------------------------------- driver
def measure(name: str, a: argparse.Namespace, malloc: bool) -> float:
    from untwine.cli import MALLOC_ENV

    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    if malloc:
        env.update(MALLOC_ENV)
    cmd = [sys.executable, __file__, "--worker", name, "--steps", str(a.steps), "--batch", str(a.batch),
           "--threads", str(a.threads), "--pack", str(a.pack), "--pack-batch", str(a.pack_batch),
           "--pack-steps", str(a.pack_steps), "--device", a.device]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"])


def measure_concurrent(name: str, a: argparse.Namespace, n: int) -> float:
    """Aggregate images/s of ``n`` 1-thread workers started together (each times its own run)."""
    from untwine.cli import MALLOC_ENV

    env = {**os.environ, **MALLOC_ENV}
    cmd = [sys.executable, __file__, "--worker", name, "--steps", str(a.steps), "--batch", str(a.batch),
           "--threads", "1", "--device", a.device]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    total = 0.0
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"worker {name} failed:\n{err[-2000:]}")
        total += float(json.loads(out.strip().splitlines()[-1])["images_per_s"])
    return total


def interleaved(variants: list[tuple[str, str, bool]], a: argparse.Namespace) -> dict[str, list[float]]:
    res: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    for r in range(a.repeats):
        for label, worker, malloc in variants:
            res[label].append(measure(worker, a, malloc))
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in res.items()), flush=True)
    return res


def median_ratio(res: dict[str, list[float]], num: str, den: str) -> float:
    return statistics.median(x / y for x, y in zip(res[num], res[den]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--pack", type=int, default=4, help="K, models per pack")
    ap.add_argument("--pack-batch", type=int, default=32)
    ap.add_argument("--pack-steps", type=int, default=6)
    ap.add_argument("--no-pack", action="store_true", help="skip the packed benchmark")
    ap.add_argument("--no-trainer", action="store_true", help="skip the trainer-vs-plain and FactorVAE parts")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="N for the concurrent-runs comparison (0: skip it)")
    ap.add_argument("--no-vmap", action="store_true", help="skip the vmap backend in the packed benchmark")
    ap.add_argument("--quick", action="store_true", help="small settings for make bench")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: every variant runs there")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        run_worker(a)
        return 0
    if a.quick:
        a.steps, a.repeats, a.pack, a.pack_batch, a.pack_steps = 6, 2, 3, 16, 4

    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu"
    print(f"bench_train: device {dev}, torch {torch.__version__}, {os.cpu_count()} CPUs, threads "
          f"{a.threads or torch.get_num_threads()}, batch {a.batch}, {a.steps} steps x {a.repeats} "
          f"rounds, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if importlib.util.find_spec("disent") is None:
        print("disent: not installed, no comparison with it")

    if not a.no_trainer:
        trainer_part(a)
    if a.jobs > 1 and a.device == "cpu":
        jobs_part(a)
    if not a.no_pack:
        pack_part(a)
    return 0


def trainer_part(a: argparse.Namespace) -> None:
    res = interleaved([
        ("plain", "plain", False),
        ("untwine-bvae", "untwine-bvae", True),
        ("untwine-fvae", "untwine-fvae", True),
        ("untwine-bvae-nomalloc", "untwine-bvae", False),
    ], a)
    for k, v in res.items():
        print(f"{k:24s} median {statistics.median(v):8.1f} images/s")
    r = median_ratio(res, "untwine-bvae", "plain")
    print(f"ratio untwine beta-VAE / plain loop (images/s): {r:.3f} (target >= 1.35: {'met' if r >= 1.35 else 'NOT met'})")
    best = max(res["untwine-bvae"])
    print(f"300,000 steps of beta-VAE batch {a.batch} at the best untwine rate ({best:.0f} images/s): "
          f"{300000 * a.batch / best / 60:.1f} minutes")
    r = median_ratio(res, "untwine-bvae-nomalloc", "plain")
    print(f"ratio untwine beta-VAE without malloc settings / plain loop: {r:.3f}")
    r = median_ratio(res, "untwine-bvae", "untwine-bvae-nomalloc")
    print(f"ratio malloc settings on / off (untwine beta-VAE): {r:.3f}")
    r = median_ratio(res, "untwine-bvae", "untwine-fvae")
    print(f"ratio FactorVAE step time / beta-VAE step time (whole runs): {r:.3f} (target <= 1.6: {'met' if r <= 1.6 else 'NOT met'})")
    tb, tf = step_ratio(a)
    print(f"step times in one process, interleaved: beta-VAE {1000 * tb:.1f} ms, FactorVAE {1000 * tf:.1f} ms")
    print(f"ratio FactorVAE step time / beta-VAE step time (steps only): {tf / tb:.3f} (target <= 1.6: {'met' if tf / tb <= 1.6 else 'NOT met'})")



def jobs_part(a: argparse.Namespace) -> None:
    n = a.jobs
    print(f"jobs: {n} beta-VAE runs at once with 1 thread each vs one run with {n} threads")
    jres: dict[str, list[float]] = {"one run": [], "concurrent": []}
    for r in range(a.repeats):
        one = argparse.Namespace(**{**vars(a), "threads": n})
        jres["one run"].append(measure("untwine-bvae", one, True))
        jres["concurrent"].append(measure_concurrent("untwine-bvae", a, n))
        print(f"  round {r + 1}: one run ({n} threads) {jres['one run'][-1]:.1f}, "
              f"{n} runs x 1 thread {jres['concurrent'][-1]:.1f} images/s (aggregate)", flush=True)
    print(f"ratio {n} concurrent 1-thread runs / one {n}-thread run (aggregate images/s, what "
          f"untwine sweep --jobs {n} gains on CPU): {median_ratio(jres, 'concurrent', 'one run'):.3f}")


def pack_part(a: argparse.Namespace) -> None:
    print(f"packed: K={a.pack} beta-VAE runs, batch {a.pack_batch}, {a.pack_steps} steps each")
    variants = [("one-at-a-time", "one-at-a-time", True), ("packed", "packed", True)]
    if not a.no_vmap:
        variants.append(("packed-vmap", "packed-vmap", True))
    pres = interleaved(variants, a)
    for k, v in pres.items():
        print(f"{k:24s} median {statistics.median(v):8.1f} images/s (aggregate)")
    print(f"ratio packed (default backend: loop on CPU, vmap on CUDA) / one-at-a-time, K={a.pack}: "
          f"{median_ratio(pres, 'packed', 'one-at-a-time'):.3f}")
    if not a.no_vmap:
        print(f"ratio packed (vmap backend) / one-at-a-time, K={a.pack}: "
              f"{median_ratio(pres, 'packed-vmap', 'one-at-a-time'):.3f}")


if __name__ == "__main__":
    sys.exit(main())
