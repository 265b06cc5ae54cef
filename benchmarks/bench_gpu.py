"""GPU speed: 300,000 beta-VAE steps projected per speed setting, and packs of K models vs one at a time.

Usage (on a machine with CUDA; one call, ~5-8 minutes on an H100)::

    .venv/bin/python benchmarks/bench_gpu.py [--steps 2000] [--pack 8 32] [--pack-steps 300]
    .venv/bin/python benchmarks/bench_gpu.py --device cpu --smoke   # a seconds-long logic check

Everything runs in this one process on the same device, so every figure is comparable with the
others printed here. Data: 4,096 synthetic dSprites-like 64x64 binary images resident on the
device (the sampler draws indices there: no host transfer per step); conv64, 10 latents.

* **Single run, per setting** (``compile`` off/on x ``precision`` fp32/bf16): after a 2-step
  warm-up run (compilation), ``untwine.train.train`` runs of ``--steps / 4`` and ``--steps``
  steps; the *marginal* step time (difference of wall times / difference of steps) excludes
  compilation and start-up, evaluation and checkpoints, and projects the time of
  300,000 steps (the issue's target: < 3 minutes on one H100). The final validation losses show
  whether bf16 and compilation keep the losses equal within noise (a second fp32 seed gives the
  noise scale).
* **Packing**: for each ``--pack`` K, ``train_packed`` of K beta-VAE runs (different betas and
  seeds) for ``--pack-steps / 4`` and ``--pack-steps`` steps: marginal aggregate images/s against
  K times a single eager fp32 run's marginal rate at the pack's batch size (target: K >= 32 at
  >= 5x). Every figure is also written to ``$OUT/bench_gpu.json`` as soon as it is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import synthetic_images  # noqa: E402


def marginal(run_fn, short: int, long: int) -> tuple[float, float, dict]:
    """``(seconds per step, warm-up run seconds, long run's summary)`` from a 2-step warm-up run
    (compilation, cuDNN autotuning, allocator) and then timed runs of two lengths."""
    t = time.perf_counter()
    run_fn("warm", 2)
    t_warm = time.perf_counter() - t
    t = time.perf_counter()
    run_fn("short", short)
    t_short = time.perf_counter() - t
    t = time.perf_counter()
    summary = run_fn("long", long)
    t_long = time.perf_counter() - t
    return (t_long - t_short) / (long - short), t_warm, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=2000, help="steps of the long single run")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--pack", type=int, nargs="+", default=[8, 32], help="K values, models per pack")
    ap.add_argument("--pack-batch", type=int, default=64)
    ap.add_argument("--pack-steps", type=int, default=300, help="steps of the long packed run")
    ap.add_argument("--settings", default="off/fp32,off/bf16,on/fp32,on/bf16",
                    help="compile/precision pairs for the single-run part")
    ap.add_argument("--no-pack", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check the script itself runs")
    a = ap.parse_args()
    if a.smoke:
        a.steps, a.pack, a.pack_steps, a.batch, a.pack_batch = 8, [2], 4, 8, 8
        a.settings = "off/fp32,off/bf16"
        print("--smoke: tiny sizes, the figures mean nothing")

    import torch

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here: skipped (run it on a GPU machine; --device cpu --smoke "
              "checks the script)")
        return 0
    from untwine.data import from_arrays
    from untwine.train import RunConfig, train
    from untwine.train import train_packed

    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"cpu ({os.cpu_count()} CPUs)"
    print(f"bench_gpu: {dev}, torch {torch.__version__}, batch {a.batch}", flush=True)
    imgs, f = synthetic_images()
    data = from_arrays(imgs, f, ["shape", "scale", "x", "y"], name="bench-shapes")
    root = Path(tempfile.mkdtemp(prefix="bench_gpu_"))

    def config(tag: str, steps: int, batch: int, **kw) -> RunConfig:
        return RunConfig(model="beta-vae", steps=steps, batch_size=batch, eval_images=512,
                         eval_every=steps, checkpoint_every=steps, log_every=1000, device=a.device,
                         out=str(root / tag), **kw)

    results: dict[str, dict] = {}
    out = os.environ.get("OUT")

    def save() -> None:  # after every figure: a later failure or timeout keeps what was measured
        if out:
            Path(out, "bench_gpu.json").write_text(json.dumps({"device": dev, "args": vars(a), "results": results},
                                                              indent=1))

    # ------------------------------------------------------------------ single runs
    settings = [s.split("/") for s in a.settings.split(",")]
    seeds = {("off", "fp32"): (0, 1)}
    for comp, prec in settings:
        for seed in seeds.get((comp, prec), (0,)):
            label = f"compile={comp} precision={prec} seed={seed}"

            def one(tag: str, steps: int, comp=comp, prec=prec, seed=seed) -> dict:
                cfg = config(f"{comp}-{prec}-{seed}-{tag}", steps, a.batch, compile=comp, precision=prec, seed=seed)
                return train(cfg, progress=False, data=data).summary

            try:
                per_step, first, summary = marginal(one, max(2, a.steps // 4), a.steps)
            except Exception as e:  # one failing setting must not cost the others (device time is scarce)
                results[label] = {"error": f"{type(e).__name__}: {e}"}
                print(f"{label:40s} FAILED: {type(e).__name__}: {str(e)[:300]}", flush=True)
                save()
                continue
            results[label] = {"ms_per_step": 1000 * per_step, "warmup_run_s": first,
                              "val_loss": summary["val"]["loss"], "val_rec": summary["val"]["rec"],
                              "minutes_300k": 300_000 * per_step / 60}
            save()
            r = results[label]
            print(f"{label:40s} {r['ms_per_step']:7.3f} ms/step ({a.batch / per_step:9.0f} images/s); "
                  f"300k steps: {r['minutes_300k']:6.2f} min (target < 3); warm-up run {first:5.1f} s; "
                  f"val loss after {a.steps} steps {r['val_loss']:.2f}", flush=True)

    # ------------------------------------------------------------------ packing
    if not a.no_pack:
        def single(tag: str, steps: int) -> dict:
            return train(config(f"single-{tag}", steps, a.pack_batch), progress=False, data=data).summary

        s_single, _, _ = marginal(single, max(2, a.pack_steps // 4), a.pack_steps)
        one_ips = a.pack_batch / s_single
        for k_models in a.pack:
            def packed(tag: str, steps: int, k_models=k_models) -> dict:
                cfgs = [config(f"pack{k_models}-{tag}-{k}", steps, a.pack_batch, seed=k,
                               hparams={"beta": 1.0 + k % 8}) for k in range(k_models)]
                return train_packed(cfgs, progress=False, data=data)[0].summary

            try:
                s_pack, first, _ = marginal(packed, max(2, a.pack_steps // 4), a.pack_steps)
            except Exception as e:
                results[f"pack{k_models}"] = {"error": f"{type(e).__name__}: {e}"}
                print(f"pack K={k_models} FAILED: {type(e).__name__}: {str(e)[:300]}", flush=True)
                save()
                continue
            pack_ips = k_models * a.pack_batch / s_pack
            ratio = pack_ips / one_ips
            results[f"pack{k_models}"] = {"K": k_models, "batch": a.pack_batch, "one_at_a_time_images_per_s": one_ips,
                                          "packed_images_per_s": pack_ips, "ratio": ratio}
            print(f"pack K={k_models}, batch {a.pack_batch}: packed {pack_ips:9.0f} images/s aggregate, one at a "
                  f"time {one_ips:9.0f} images/s; ratio {ratio:.2f} (target >= 5 at K >= 32); packed "
                  f"{1000 * s_pack:.2f} ms/step, single {1000 * s_single:.3f}", flush=True)
            save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
