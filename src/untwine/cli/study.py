"""`untwine sweep STUDY.toml --out DIR` and `untwine report DIR`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UserError


def add(sub: argparse._SubParsersAction) -> None:
    from ..train.packed import SHARED  # what the runs of a pack share (the --pack help names it all)

    p = sub.add_parser(
        "sweep",
        help="run every run of a study file (train + evaluate), then write results.csv",
        description="Run a study: every dataset x model x grid point x seed. Re-running the same "
        "command skips finished runs and resumes interrupted ones; a failed run is recorded in "
        "<run>/failed.json and the others go on.",
    )
    p.add_argument("study", help="study file (.toml), e.g. studies/tiny.toml")
    p.add_argument("--out", required=True, help="sweep folder (one sub-folder per run)")
    p.add_argument("--backend", default="local", help="where runs execute: local (default) or ray")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="--backend ray: join this Ray cluster (auto, HOST:6379, ray://HOST:10001); "
                   "default: start a local Ray instance")
    p.add_argument("--num-cpus", type=float, default=None, metavar="N",
                   help="--backend ray: CPUs per run (per pack with --pack), also its torch threads (default 1)")
    p.add_argument("--num-gpus", type=float, default=None, metavar="F",
                   help="--backend ray: GPUs per run (per pack with --pack); a fraction shares a GPU, e.g. 0.25 "
                   "(default 0)")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs in parallel (default: as many as the CPU cores hold at each run's threads, one per core for the default 1 thread per run; 1 with a GPU)")
    p.add_argument("--pack", type=int, default=1, metavar="K",
                   help="train up to K runs together as one batched model (default 1: one at a "
                   f"time); only runs with the same {', '.join(SHARED)} (precision as it resolves) and "
                   "whether the objective trains on pairs are packed together (seeds, models and "
                   "hyperparameters may differ), others go in separate packs. Same results "
                   "up to float rounding; meant for GPUs (on a CPU a pack trains at ~0.77x the "
                   "throughput of one run at a time)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a study value, e.g. --set train.steps=50 (TOML syntax; repeatable)")
    p.add_argument("--collect", action="store_true",
                   help="train nothing: write DIR/results.csv and timings.csv from the run folders as they are "
                   "now (a run still training is an 'incomplete' row; --backend, --jobs and --pack are not used); safe "
                   "while another sweep of the same study (and --set values) trains in DIR")
    p.add_argument("--report", action="store_true", help="write DIR/report.html afterwards")
    p.add_argument("--quiet", action="store_true", help="no live progress view")
    p.set_defaults(func=run_sweep)

    r = sub.add_parser("report", help="write DIR/report.html (tables + figures) for a sweep folder")
    r.add_argument("dir", help="sweep folder written by `untwine sweep`")
    r.add_argument("--output", default=None, help="HTML file to write (default DIR/report.html)")
    r.add_argument("--references", default=None, metavar="STUDY.toml",
                   help="take the published [[reference]]/[[claim]] numbers from this study file instead of "
                   "the sweep's own copy (e.g. after adding them to the study file)")
    r.add_argument("--markdown", default=None, metavar="FILE",
                   help="also write the published numbers beside ours (tables, trends, notes) as Markdown")
    r.add_argument("--no-figures", action="store_true", help="tables only (fast)")
    r.set_defaults(func=run_report)


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["train.steps=50", "eval.sizes={mig=100}"]`` -> ``{"train": {"steps": 50}, ...}``."""
    from ..studies.study import tomllib

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise UserError(f"--set {item!r}: use SECTION.KEY=VALUE, e.g. --set train.steps=50")
        try:
            parsed = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value.strip()  # a bare word: a string
        out.setdefault(section, {})[name] = parsed
    return out


def collect_only(study: Any, args: argparse.Namespace) -> int:
    """``untwine sweep --collect``: results.csv + timings.csv from the run folders, no training."""
    from collections import Counter

    from ..studies.sweep import check_swept_with, collect_sweep

    check_swept_with(study, args.out)
    rows = collect_sweep(study, args.out)
    counts = Counter(str(r["status"]) for r in rows)
    print(f"{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
          + f" -> {args.out}/results.csv")
    if args.report:
        from ..report import write_report

        print(f"report: {write_report(args.out)}")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from ..studies import load_study, sweep

    study = load_study(args.study, overrides=parse_overrides(args.overrides))
    opts = {"address": args.address, "num_cpus": args.num_cpus, "num_gpus": args.num_gpus}
    options = {k: v for k, v in opts.items() if v is not None}
    if options and args.backend != "ray":
        raise UserError(f"--{next(iter(options)).replace('_', '-')} needs --backend ray")
    if args.collect:
        return collect_only(study, args)
    res = sweep(study, args.out, backend=args.backend, jobs=args.jobs, progress=not args.quiet,
                backend_options=options, pack=args.pack)
    n_failed = res.count("failed")
    print(
        f"{len(res.outcomes)} runs: {res.count('finished')} finished now, {res.count('skipped')} "
        f"already done, {n_failed} failed -> {res.out / 'results.csv'}"
    )
    for o in res.outcomes:
        if o.status == "failed":
            print(f"  FAILED {o.name}: {o.error}", file=sys.stderr)
    if args.report:
        from ..report import write_report

        print(f"report: {write_report(res.out)}")
    return 1 if n_failed else 0


def run_report(args: argparse.Namespace) -> int:
    from ..report import write_report

    path = write_report(args.dir, output=args.output, figures=False if args.no_figures else None,
                        references=args.references, markdown=args.markdown)
    print(f"report: {path}")
    if args.markdown:
        print(f"published numbers beside ours: {args.markdown}")
    return 0
