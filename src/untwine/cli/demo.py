"""`untwine demo`: a small real study on procedural dSprites (offline, 2 CPU cores, one run per
core; measured at 9 min 50 s in bf16 on a Xeon with AMX, and 16 min 42 s with fp32 forced on that
CPU, the path of CPUs where bf16 does not measure faster (``precision = "auto"``):
docs/results/demo_recipe/demo_time.csv): two seeds of
beta-TCVAE are trained, evaluated and compared with an untrained encoder and with the shipped
pretrained models; one seed is kept without labels (UDR, with the shipped beta-TCVAE as a
reference) and an HTML report is written; the last lines name the kept run and say whether the
demo's models disentangled (MIG >= 0.2)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

def shipped_study(name: str) -> Path:
    """Path of a study shipped with the package (``studies/NAME.toml`` in the repository)."""
    from importlib.resources import files

    return Path(str(files("untwine.studies") / "shipped" / f"{name}.toml"))


def demo_study_text() -> str:
    """The TOML text of the demo study."""
    return shipped_study("demo").read_text(encoding="utf-8")


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train, evaluate and report a small study on procedural dSprites (2 CPU cores: "
        "9 min 50 s in bf16 on an AMX Xeon, 16 min 42 s with fp32 forced)",
        description="Runs studies/demo.toml (two seeds of beta-TCVAE on procedural dSprites), "
        "evaluates the models and an untrained encoder, keeps one seed without labels (the higher UDR, "
        "with the shipped beta-TCVAE as a reference), and writes OUT/report.html with the shipped "
        "pretrained models beside them. Offline. "
        "Interrupt and re-run to resume.",
    )
    p.add_argument("--out", default="untwine-demo", help="output folder (default ./untwine-demo)")
    p.add_argument("--steps", type=int, default=None, help="training steps per model (default: the demo study's, studies/shipped/demo.toml)")
    p.add_argument("--jobs", type=int, default=None, help="models trained in parallel (default: by CPU count)")
    p.add_argument("--quiet", action="store_true", help="no live progress view")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from .. import pretrained
    from ..report import write_report
    from ..report.selection import kept_sentence
    from ..report.shipped import disentangled_sentence
    from ..studies import parse_study, sweep

    overrides = {"train": {"steps": args.steps}} if args.steps else None
    study = parse_study(demo_study_text(), path=shipped_study("demo"), overrides=overrides)
    t0 = time.time()
    print(f"untwine demo: {len(study.runs())} runs on procedural dSprites -> {args.out} "
          "(the dSprites cache is built once, ~1 min)")
    res = sweep(study, args.out, jobs=args.jobs, progress=not args.quiet)
    t_sweep = time.time() - t0
    report = write_report(res.out)
    print(f"\nwall time: {time.time() - t0:.0f} s (sweep {t_sweep:.0f} s, report {time.time() - t0 - t_sweep:.0f} s)")
    for line in summary_lines(res.out, [name for name in study.run_names()]):
        print(line)
    sentence = disentangled_sentence(res.rows)
    if sentence:
        print("\n" + sentence)
    keep = study.report.get("keep")
    if keep and (k := kept_sentence(res.rows, keep, study.udr_reference)):
        print(k)
    for name in study.report_option("pretrained"):
        if name in pretrained.names():
            print(f"shipped for comparison: {pretrained.info(name).line()}  (untwine explore {name})")
    print(f"\nreport: {report.resolve()}")
    return 1 if res.count("failed") else 0


def summary_lines(root: Path, runs: list[str]) -> list[str]:
    """One line per run: validation rec at step 0 -> final, and MIG vs the untrained encoder."""
    from ..metrics.baseline import baseline_path
    from ..train.files import peek_json

    def read(p: Path) -> dict:
        return peek_json(p) or {}

    base = read(baseline_path(root, "dsprites")).get("mig")
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
