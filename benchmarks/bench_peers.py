"""untwine beside its peers: training speed of one conv64 beta-VAE, and one code scored by each
library's metric code.

Optional, like ``crosscheck_disentanglement_lib.py``: every peer lives in its own virtual
environment and is never a dependency of untwine. This script runs under the project's venv and
starts the peers' workers (``_peers.py``, which imports only the standard library at the top) with
their venvs' Pythons.

Install the peers once (Python 3.11; 2026-12 versions):

* **disent 0.8.0** (0.9 needs Python >= 3.12; 0.8.0 trains through Lightning)::

      python3 -m venv /tmp/disent-venv
      /tmp/disent-venv/bin/pip install torch==2.13.0          # the CPU build (untwine's), first
      echo torch==2.13.0 > /tmp/torch-pin.txt
      /tmp/disent-venv/bin/pip install -c /tmp/torch-pin.txt disent==0.8.0

  The pin matters: unpinned, pip takes torchvision 0.29.1, which pulls torch 2.14.1 with CUDA.
  With it pip takes torchvision 0.28.0, whose PyPI wheel is a CUDA build: its C extension cannot
  load against the CPU torch (``libc10_cuda.so`` missing) and ``import torchvision`` then fails
  ("operator torchvision::nms does not exist"). disent imports torchvision at import time (for
  its DFC-VAE and transforms), so the workers define the schemas of the two operators whose
  registration fails (:func:`torchvision_shim`); nothing here calls a torchvision operator.

* **disentangling-vae** (YannDubs; not on PyPI), its code at commit
  ``f0452191bab6d94eba0b4e6a065f74dcfd54ac52`` (2023-02-02, the newest)::

      git clone https://github.com/YannDubs/disentangling-vae /tmp/disentangling-vae
      git -C /tmp/disentangling-vae checkout f0452191bab6d94eba0b4e6a065f74dcfd54ac52
      python3 -m venv /tmp/disvae-venv
      /tmp/disvae-venv/bin/pip install -c /tmp/torch-pin.txt torch==2.13.0 torchvision==0.28.0 \\
          "numpy<2" imageio scikit-image tqdm scipy

  ``numpy<2``: its models call ``np.product`` (removed in numpy 2.0). Its plotting requirements
  (matplotlib, pandas, seaborn) are not needed to train. The same torchvision shim applies.

* **disentanglement_lib 1.5** (metrics only): see ``_reference.py`` (``/tmp/dlib-venv``).

Usage::

    .venv/bin/python benchmarks/bench_peers.py [--steps 150] [--warmup 10] [--repeats 3]
        [--threads 1] [--sides untwine-auto,untwine-fp32,plain,disent,...] [--no-speed]
        [--no-metrics] [--fv-train 10000 --fv-eval 5000] [--work /tmp/untwine-peers]

Data (``--work``, written once): ``images.npy`` (``--images`` procedural dSprites frames from
``untwine.data.load("dsprites", "procedural")``, uniform over the factor grid, seed 0, ``N x 64
x 64`` uint8 0/255) and ``factors.npy``; every side trains on these arrays, in memory.

**Speed.** One conv64 beta-VAE (beta 4, 10 latents, Bernoulli likelihood summed over pixels,
KL summed over latents, both averaged over the batch), batch 64, Adam lr 1e-3, ``--threads``
torch threads (``OMP_NUM_THREADS`` too) in every side. Each measurement is a fresh subprocess;
the sides are interleaved A, B, C, ... over ``--repeats`` rounds; ratios are taken within a
round and their median printed. Sides:

* ``untwine-auto`` / ``untwine-fp32``: ``untwine.train`` (precision ``"auto"`` / ``"fp32"``) on
  ``untwine.data.from_arrays``; a ``--warmup``-step run, then a ``--steps``-step run whose
  ``summary.json`` ``images_per_s`` is the figure (it includes one evaluation of 64 images at the
  start and at the end and the final checkpoint: counted against untwine).
* ``plain``: a plain PyTorch loop, the same conv64 (:class:`PlainVAE`: untwine's layers), NCHW,
  ``torch.optim.Adam`` defaults, batches indexed from a float tensor, ``loss.item()`` per step.
* ``disent``: disent 0.8.0's ``BetaVae`` with its ``EncoderConv64``/``DecoderConv64`` (its
  README's recipe: ``DisentDataset`` + ``ToImgTensorF32``, a ``DataLoader`` with batch 64, shuffle,
  ``num_workers=0``; ``lightning.Trainer(max_steps=...)`` on CPU, no logger, checkpointing,
  progress bar or model summary); ``recon_loss="bce"``, ``loss_reduction="mean_sum"``, beta 4.
  Its ``EncoderConv64`` is not untwine's conv64: its third and fourth convolutions have 4x4
  kernels (padding 2) where disentanglement_lib and untwine have 2x2, so its encoder costs 1.7x
  the multiply-adds (9.9 M vs 5.8 M per image; the whole network ~41.7 M vs ~37.6 M, +11%).
* ``disent-net``: the same disent loop with untwine's conv64 layers in disent's
  ``DisentEncoder``/``DisentDecoder`` wrappers: framework against framework, same network.
* ``disent-bf16``: ``disent`` with ``lightning.Trainer(precision="bf16-mixed")``, the switch a
  disent user has for bfloat16 (autocast over the whole step, the latent layers included).
* ``disvae``: disentangling-vae's ``BetaHLoss`` (beta 4, Bernoulli, no annealing), its
  ``Burgess`` model (the only one it has: four 32-channel k4 convolutions, two 256 linear
  layers, ~32 M multiply-adds per image), its ``DSprites`` dataset class reading the same images
  (written once as its ``dsprite_train.npz``) through its ``DataLoader`` (``get_dataloaders``),
  and its ``Trainer._train_iteration`` (forward, loss, ``zero_grad``, backward, ``step``,
  ``loss.item()``) step by step.
* ``disvae-net``: the same with untwine's conv64 layers (sigmoid output, as its loss wants).

Peers are timed from inside their loops: ``--steps`` steps after ``--warmup`` steps, images/s =
steps x 64 / seconds (for ``disent`` a Lightning callback stamps the start of step ``--warmup``
and the end of the last step; its data loading, logging and hooks are inside the interval, as
untwine's are). Two clocks: wall time, and the process's CPU time (``time.process_time``; for
untwine around the whole timed ``train`` call, setup included). With one thread per side, CPU time
leaves out the time the process waited for a core, so on a machine shared with other jobs it is
the steadier of the two; both are printed, with their ratios.

**Metrics.** One trained untwine model (the shipped ``beta-tcvae-dsprites``, or ``--run DIR``)
encodes ``--num-train`` + ``--num-test`` procedural dSprites images (factors drawn with seed 0;
float32 encoder); codes and factors go to ``codes.npz`` and the encoder's weights to
``encoder.pt``. The *same arrays* are scored by untwine (``untwine.metrics``), disentanglement_lib
1.5 (if ``/tmp/dlib-venv`` exists) and disent (its ``_compute_mig``, ``_compute_sap``,
``_compute_dci`` in its venv): MIG, SAP, DCI. The FactorVAE score samples, so each library runs
its own protocol through its own ground-truth-data API with the same encoder wrapped (disent: a
``GroundTruthData`` subclass over the procedural dSprites cache, a ``DisentDataset``, and
:class:`PlainVAE`'s encoder with the model's weights; dlib: an adapter over untwine's dataset);
``--fv-train``/``--fv-eval`` set its sizes for every library (reference: 10,000 / 5,000). disent
also scores MIG through its own sampling API (``metric_mig``: 10,000 fresh points).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _peers import BATCH, BETA, DEFAULT_WORK, DISVAE_SRC, FACTOR_SIZES, plain_vae  # noqa: E402

DISENT_PYTHON = os.environ.get("DISENT_PYTHON", "/tmp/disent-venv/bin/python")
DISVAE_PYTHON = os.environ.get("DISVAE_PYTHON", "/tmp/disvae-venv/bin/python")
DISVAE_COMMIT = "f0452191bab6d94eba0b4e6a065f74dcfd54ac52"

SIDES = ("untwine-auto", "untwine-fp32", "plain", "disent", "disent-net", "disent-bf16", "disvae", "disvae-net")
DEFAULT_SIDES = SIDES
PEER_OF = {"disent": "disent", "disent-net": "disent", "disent-bf16": "disent", "disvae": "disvae", "disvae-net": "disvae"}


# ---------------------------------------------------------------------- driver
def prepare(a: argparse.Namespace) -> None:
    """images.npy / factors.npy in ``a.work`` (once)."""
    import numpy as np

    a.work.mkdir(parents=True, exist_ok=True)
    if (a.work / "images.npy").exists() and len(np.load(a.work / "factors.npy", mmap_mode="r")) == a.images:
        return
    from untwine.data import load

    data = load("dsprites", "procedural")
    f, x = data.sample(a.images, np.random.default_rng(0))  # float32 in [0, 1], N x 1 x 64 x 64
    x = (x.reshape(len(x), 64, 64) * 255).round().to(dtype=__import__("torch").uint8).numpy()
    np.save(a.work / "images.npy", x)
    np.save(a.work / "factors.npy", np.asarray(f, dtype=np.int64))
    print(f"wrote {a.images} procedural dSprites images to {a.work}/images.npy (values {np.unique(x)})")


def python_for(side: str) -> str:
    peer = PEER_OF.get(side)
    return {"disent": DISENT_PYTHON, "disvae": DISVAE_PYTHON}.get(peer, sys.executable)


def available(side: str) -> str | None:
    """Why ``side`` cannot run here (``None``: it can)."""
    peer = PEER_OF.get(side)
    if peer and not Path(python_for(side)).exists():
        return f"no {python_for(side)} (see this script's docstring to install {peer})"
    if peer == "disvae" and not (Path(DISVAE_SRC) / "disvae").is_dir():
        return f"no disentangling-vae code at {DISVAE_SRC}"
    return None


def measure(side: str, a: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    cmd = [python_for(side), str(HERE / "_peers.py"), side, "--steps", str(a.steps),
           "--warmup", str(a.warmup), "--threads", str(a.threads), "--work", str(a.work),
           "--disvae-src", DISVAE_SRC]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"side {side} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def speed_part(a: argparse.Namespace) -> None:
    sides = [s for s in a.sides.split(",") if s]
    for s in sides:
        if s not in SIDES:
            raise SystemExit(f"unknown side {s!r}; choose from {', '.join(SIDES)}")
    skipped = {s: why for s in sides if (why := available(s))}
    for s, why in skipped.items():
        print(f"{s}: not run: {why}")
    sides = [s for s in sides if s not in skipped]
    wall: dict[str, list[float]] = {s: [] for s in sides}
    cpu: dict[str, list[float]] = {s: [] for s in sides}
    prec: dict[str, str] = {}
    info: dict[str, str] = {}
    for r in range(a.repeats):
        for s in sides:
            out = measure(s, a)
            wall[s].append(out["images_per_s"])
            cpu[s].append(out["cpu_images_per_s"])
            prec[s] = out["precision"]
            info[s] = f"torch {out['torch']}, {out['threads']} thread(s), " + ", ".join(
                f"{k} {v}" for k, v in out.get("versions", {}).items())
        load = os.getloadavg()[0]
        print(f"  round {r + 1} (load {load:.2f}), wall / cpu images/s: "
              + ", ".join(f"{s} {wall[s][-1]:.0f} / {cpu[s][-1]:.0f}" for s in sides), flush=True)
    for s in sides:
        print(f"  {s}: {info[s]}")
    print(f"\n{'side':14s} {'precision':10s} {'images/s wall':>14s} {'images/s CPU':>13s}   wall rounds")
    for s in sides:
        print(f"{s:14s} {prec[s]:10s} {statistics.median(wall[s]):14.1f} {statistics.median(cpu[s]):13.1f}   "
              + " / ".join(f"{x:.0f}" for x in wall[s]))

    def ratio(res: dict[str, list[float]], num: str, den: str) -> float:
        return statistics.median(x / y for x, y in zip(res[num], res[den]))

    print("\nratios, median of per-round ratios: wall-clock images/s | CPU-time images/s")
    pairs = [(n, d) for n in ("untwine-auto", "untwine-fp32") if n in wall for d in sides if not d.startswith("untwine")]
    pairs += [p for p in (("untwine-auto", "untwine-fp32"), ("disent-bf16", "disent")) if p[0] in wall and p[1] in wall]
    for num, den in pairs:
        rw, rc = ratio(wall, num, den), ratio(cpu, num, den)
        line = f"  {num + ' / ' + den:30s} {rw:6.3f} | {rc:6.3f}"
        if (num, den) in (("untwine-auto", "disent"), ("untwine-fp32", "disent")):
            goal = 2.0 if num == "untwine-auto" else 1.4
            line += f"   (goal >= {goal}: wall {'met' if rw >= goal else 'NOT met'}, CPU {'met' if rc >= goal else 'NOT met'})"
        print(line)


class _DlibData:
    """untwine's ground-truth data behind disentanglement_lib's API (RandomState in, N x 64 x 64 x 1 out)."""

    def __init__(self, data) -> None:
        self.data = data
        self.num_factors = data.num_factors
        self.factors_num_values = list(data.factor_sizes)

    def sample_factors(self, num, random_state):
        return self.data.sample_factors(num, random_state)

    def sample_observations_from_factors(self, factors, random_state):
        x = self.data.observations_from_factors(factors, random_state)
        return x

    def sample_observations(self, num, random_state):
        return self.sample_observations_from_factors(self.sample_factors(num, random_state), random_state)


def metrics_part(a: argparse.Namespace) -> None:
    import numpy as np
    import torch

    import untwine.metrics as um
    from untwine.data import load
    from untwine.pretrained import path as pretrained_path
    from untwine.train import load_run

    torch.set_num_threads(a.threads)
    run_dir = Path(a.run) if a.run else pretrained_path("beta-tcvae-dsprites")
    run = load_run(run_dir)
    run.precision = "fp32"
    data = load("dsprites", "procedural")
    rng = np.random.default_rng(0)
    ftr, xtr = data.sample(a.num_train, rng)
    fte, xte = data.sample(a.num_test, rng)
    ztr, zte = run.encode(xtr), run.encode(xte)
    np.savez(a.work / "codes.npz", codes_train=ztr, factors_train=ftr, codes_test=zte, factors_test=fte)
    torch.save({k: v for k, v in run.model.state_dict().items() if k.startswith("encoder.")}, a.work / "encoder.pt")
    # the wrapped encoder the disent worker uses must give the same codes
    check = plain_vae()
    check.load_state_dict(torch.load(a.work / "encoder.pt"), strict=False)
    with torch.inference_mode():
        zc = check.encoder(xtr[:256].reshape(-1, 1, 64, 64).float())[0].numpy()
    print(f"model: {run_dir} ({run.config.model}, {run.config.steps} steps); codes: {a.num_train} train + "
          f"{a.num_test} test images; wrapped encoder vs run.encode max |diff| {np.abs(zc - ztr[:256]).max():.2e}")

    rows: dict[str, dict[str, float]] = {}
    n, m = a.dci_train, a.dci_test
    t = time.perf_counter()
    u: dict[str, float] = {"mig": um.mig(ztr, ftr)["mig"], "sap": um.sap(ztr, ftr, zte, fte)["sap"]}
    d = um.dci(ztr[:n], ftr[:n], zte[:m], fte[:m])
    u.update({"dci_d": d["disentanglement"], "dci_c": d["completeness"], "dci_i_test": d["informativeness_test"]})
    u["seconds_arrays"] = time.perf_counter() - t
    t = time.perf_counter()
    fv = um.factor_vae_score(data, run.encode, np.random.default_rng(0), num_train=a.fv_train, num_eval=a.fv_eval)
    u.update({"factor_vae_train": fv["train_accuracy"], "factor_vae_eval": fv["eval_accuracy"],
              "factor_vae_active": fv["num_active_dims"], "seconds_factor_vae": time.perf_counter() - t})
    rows["untwine"] = u
    print(f"untwine: {json.dumps({k: round(float(v), 4) for k, v in u.items()})}", flush=True)

    sys.path.insert(0, str(HERE))
    from _reference import load_reference

    ref = load_reference(a.dlib_site)
    if ref is None:
        print("disentanglement_lib 1.5: not found (see benchmarks/_reference.py); its column is skipped")
    else:
        t = time.perf_counter()
        r: dict[str, float] = {"mig": ref.mig._compute_mig(ztr.T, ftr.T)["discrete_mig"],
                               "sap": ref.sap._compute_sap(ztr.T, ftr.T, zte.T, fte.T, False)["SAP_score"]}
        d = ref.dci._compute_dci(ztr[:n].T, ftr[:n].T, zte[:m].T, fte[:m].T)
        r.update({"dci_d": d["disentanglement"], "dci_c": d["completeness"], "dci_i_test": d["informativeness_test"]})
        r["seconds_arrays"] = time.perf_counter() - t
        t = time.perf_counter()
        fv = ref.factor_vae.compute_factor_vae(_DlibData(data), run.encode, np.random.RandomState(0), None, 64,
                                               a.fv_train, a.fv_eval, 10000)
        r.update({"factor_vae_train": fv["train_accuracy"], "factor_vae_eval": fv["eval_accuracy"],
                  "factor_vae_active": fv["num_active_dims"], "seconds_factor_vae": time.perf_counter() - t})
        rows["dlib 1.5"] = r
        print(f"dlib 1.5: {json.dumps({k: round(float(v), 4) for k, v in r.items()})}", flush=True)

    if not Path(DISENT_PYTHON).exists():
        print(f"disent: no {DISENT_PYTHON}; its column is skipped")
    else:
        from untwine.data.dsprites import procedural_cache_path

        bits = procedural_cache_path(FACTOR_SIZES)  # built by load() above
        env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
        cmd = [DISENT_PYTHON, str(HERE / "_peers.py"), "disent-metrics", "--work", str(a.work),
               "--threads", str(a.threads), "--bits", str(bits), "--fv-train", str(a.fv_train),
               "--fv-eval", str(a.fv_eval), "--dci-train", str(n), "--dci-test", str(m)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"disent metrics failed:\n{p.stderr[-3000:]}")
        rows["disent 0.8.0"] = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"disent: {p.stdout.strip().splitlines()[-1]}", flush=True)

    keys = [("mig", "MIG (same arrays)"), ("sap", "SAP (same arrays)"), ("dci_d", "DCI disentanglement (same arrays)"),
            ("dci_c", "DCI completeness (same arrays)"), ("dci_i_test", "DCI informativeness, test (same arrays)"),
            ("factor_vae_train", "FactorVAE score, train (own sampling)"),
            ("factor_vae_eval", "FactorVAE score, eval (own sampling)"),
            ("factor_vae_active", "FactorVAE active dims reported"), ("mig_own_sampling", "MIG (own sampling)"),
            ("seconds_arrays", "seconds: MIG + SAP + DCI"), ("seconds_factor_vae", "seconds: FactorVAE score")]
    libs = list(rows)
    print(f"\n{'score':42s} " + " ".join(f"{lib:>13s}" for lib in libs))
    for k, label in keys:
        vals = [rows[lib].get(k) for lib in libs]
        if all(v is None for v in vals):
            continue
        print(f"{label:42s} " + " ".join(f"{'-':>13s}" if v is None else f"{float(v):13.4f}" for v in vals))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=150, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=10, help="steps before the timed ones")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in every side")
    ap.add_argument("--sides", default=",".join(DEFAULT_SIDES), help=f"comma list of: {', '.join(SIDES)}")
    ap.add_argument("--images", type=int, default=20000, help="training images written to --work")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="folder for the shared arrays")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-metrics", action="store_true")
    ap.add_argument("--run", default=None, help="untwine run folder to score (default: shipped beta-tcvae-dsprites)")
    ap.add_argument("--num-train", type=int, default=10000)
    ap.add_argument("--num-test", type=int, default=5000)
    ap.add_argument("--dci-train", type=int, default=10000)
    ap.add_argument("--dci-test", type=int, default=5000)
    ap.add_argument("--fv-train", type=int, default=10000, help="FactorVAE score training votes (reference 10000)")
    ap.add_argument("--fv-eval", type=int, default=5000, help="FactorVAE score evaluation votes (reference 5000)")
    ap.add_argument("--dlib-site", default=None)
    a = ap.parse_args()

    import torch

    from untwine.train.speed import bf16_native, cpu_bf16_pays, cpu_model, measure_cpu_bf16

    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    flags = sorted({f for f in ("amx_bf16", "avx512_bf16") if f in Path("/proc/cpuinfo").read_text().split()}) \
        if Path("/proc/cpuinfo").exists() else []
    load = os.getloadavg()
    print(f"bench_peers: {cpu} ({cpu_model()}), flags {' '.join(flags) or 'none'}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, Python {platform.python_version()}, threads {a.threads} per side, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    prepare(a)
    if not a.no_speed:
        pays = cpu_bf16_pays(a.threads)  # resolves (and caches) what precision="auto" picks, before timing
        print(f"CPU bf16 native: {bf16_native('cpu')}; precision=auto picks {'bf16' if pays else 'fp32'} for beta-VAE "
              f"beta {BETA:g} at {a.threads} thread(s); bare conv64 step bf16/fp32 now: {measure_cpu_bf16(a.threads):.3f}")
        print(f"speed: {a.steps} steps after {a.warmup} warm-up steps per measurement, {a.repeats} rounds, "
              f"{a.images} images, batch {BATCH}")
        speed_part(a)
    if not a.no_metrics:
        metrics_part(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
