"""`untwine demo`: a small real study on procedural dSprites (offline, about 10 minutes on 2 CPU
cores): VAE, beta-VAE and FactorVAE are trained, evaluated and compared with an untrained encoder,
and an HTML report is written."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# The demo study. studies/demo.toml in the repository is a copy (a test keeps them equal); it lives
# here so that an installed package runs the demo without the repository.
DEMO_TOML = """\
# The demo study (`untwine demo`, `make demo`): about 10 minutes on a 2-core CPU, offline.
# Procedural dSprites (built once, ~60 s, cached), three objectives, one seed. The MLP
# architecture: on CPUs it trains ~5x faster than conv64 (GEMMs instead of small convolutions).
[study]
name = "demo"
description = "VAE vs beta-VAE vs FactorVAE on procedural dSprites, CPU-sized."
datasets = ["dsprites"]
seeds = [0]

[train]
source = "procedural"
arch = "mlp"
steps = 800
batch_size = 64
lr = 1e-3
latents = 10
eval_every = 100
eval_images = 512
checkpoint_every = 400
log_every = 50

[eval]
metrics = ["mig", "beta_vae", "sap", "modularity"]
sizes = { num_train = 5000, num_test = 2000, beta_vae = { batch_size = 32, num_train = 300, num_eval = 150 } }

[[models]]
name = "vae"

[[models]]
name = "beta-vae"
grid = { beta = [4] }

[[models]]
name = "factor-vae"
grid = { gamma = [20] }

[report]
title = "untwine demo: VAE, beta-VAE and FactorVAE on dSprites"
"""


def demo_study_text() -> str:
    """The TOML text of the demo study."""
    return DEMO_TOML


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train, evaluate and report a small study on procedural dSprites (~10 min on 2 CPU cores)",
        description="Runs studies/demo.toml (VAE, beta-VAE, FactorVAE on procedural dSprites), "
        "evaluates the models and an untrained encoder, and writes OUT/report.html. Offline. "
        "Interrupt and re-run to resume.",
    )
    p.add_argument("--out", default="untwine-demo", help="output folder (default ./untwine-demo)")
    p.add_argument("--steps", type=int, default=None, help="training steps per model (default 800)")
    p.add_argument("--jobs", type=int, default=None, help="models trained in parallel (default: by CPU count)")
    p.add_argument("--quiet", action="store_true", help="no live progress view")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from ..report import write_report
    from ..studies import parse_study, sweep

    overrides = {"train": {"steps": args.steps}} if args.steps else None
    study = parse_study(DEMO_TOML, path=Path("studies/demo.toml"), overrides=overrides)
    t0 = time.time()
    print(f"untwine demo: {len(study.runs())} runs on procedural dSprites -> {args.out} "
          "(the dSprites cache is built once, ~1 min)")
    res = sweep(study, args.out, jobs=args.jobs, progress=not args.quiet)
    t_sweep = time.time() - t0
    report = write_report(res.out)
    print(f"\nwall time: {time.time() - t0:.0f} s (sweep {t_sweep:.0f} s, report {time.time() - t0 - t_sweep:.0f} s)")
    for line in summary_lines(res.out, [name for name in study.run_names()]):
        print(line)
    print(f"\nreport: {report.resolve()}")
    return 1 if res.count("failed") else 0


def summary_lines(root: Path, runs: list[str]) -> list[str]:
    """One line per run: validation rec at step 0 -> final, and MIG vs the untrained encoder."""
    def read(p: Path) -> dict:
        try:
            return json.loads(p.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    base = read(root / "baseline" / "dsprites" / "metrics.json").get("mig")
    lines = []
    for name in runs:
        s, m = read(root / name / "summary.json"), read(root / name / "metrics.json")
        rec0 = (s.get("initial_val") or {}).get("rec")
        rec1 = (s.get("val") or {}).get("rec")
        mig = m.get("mig")
        if rec0 is None or rec1 is None:
            lines.append(f"  {name}: not finished (see {root / name})")
            continue
        line = f"  {name}: val rec {rec0:.1f} -> {rec1:.1f} nats"
        if mig is not None:
            line += f", MIG {mig:.3f}" + (f" (untrained encoder {base:.3f})" if base is not None else "")
        lines.append(line)
    return lines
