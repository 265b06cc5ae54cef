"""``untwine evaluate RUN_DIR [RUN_DIR ...]``: score trained runs with the metric suite ->
``RUN_DIR/metrics.json``; ``--metrics udr`` compares the runs (UDR) -> ``udr.json``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import UserError
from ..errors import check_choice


def _parse_sizes(text: str | None) -> dict[str, Any]:
    """``"num_train=1000,dci.num_test=500"`` -> ``{"num_train": 1000, "dci": {"num_test": 500}}``."""
    out: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        key, sep, val = item.partition("=")
        if not sep or not val.strip().isdigit():
            raise UserError(f"--sizes expects KEY=INT[,KEY=INT...], got {item!r}")
        metric, dot, param = key.strip().rpartition(".")
        if dot:  # metric names are normalised by resolve_sizes
            out.setdefault(metric, {})[param] = int(val)
        else:
            out[param] = int(val)
    return out


def run(args: argparse.Namespace) -> int:
    dirs = [Path(d).expanduser() for d in args.run_dir]
    for d in dirs:
        if not d.is_dir():
            raise UserError(f"run folder {d} does not exist; pass the folder `untwine train` wrote")
    from ..metrics import registry

    if args.dci_backend is None:
        args.dci_backend = registry.DEFAULT_BACKEND
    check_choice(args.dci_backend, registry.BACKENDS, "--dci-backend")
    names = None if args.metrics is None else [registry.normalise(m) for m in args.metrics.split(",") if m.strip()]
    udr = names is not None and "udr" in names
    suite = None if names is None else [m for m in names if m != "udr"]
    if suite:
        suite = registry.parse_names(suite)  # unknown names fail here, before any run is loaded
    only_udr = udr and not suite
    if udr and len(dirs) < 2:
        raise UserError("udr compares runs with each other: pass >= 2 run folders (e.g. the seeds of one setting), "
                        "as in `untwine evaluate RUN RUN ... --metrics udr`")
    if args.output and len(dirs) > 1 and not only_udr:
        raise UserError("--output names one file: with several runs each run's scores go to RUN_DIR/metrics.json "
                        "(leave --output out), or pass --metrics udr alone to name the UDR file")
    for d in [] if only_udr else dirs:
        _evaluate_run(args, d, suite)
    if udr:
        _udr(args, dirs)
    return 0


def _udr(args: argparse.Namespace, dirs: list[Path]) -> None:
    """UDR of the runs -> one JSON (default: udr.json in their common folder) and a table."""
    import os

    from ..metrics.udr import SCORE_KEYS
    from ..report.tables import COLUMN_LABELS
    from ..studies.udr import FILE as udr_file, write_udr
    from ..train.files import peek_json

    common = Path(os.path.commonpath([d.resolve() for d in dirs]))
    out = Path(args.output) if args.output else common / udr_file
    res = write_udr(dirs, out, seed=args.seed)
    migs = [(peek_json(d / "metrics.json") or {}).get("mig") for d in dirs]
    width = max(len(str(d)) for d in dirs)
    print(f"{'run':{width}s}  {'UDR lasso':>9s}  {'UDR Spearman':>12s}  {'active':>6s}  {'MIG':>6s}")
    for i, d in enumerate(dirs):
        mig = f"{migs[i]:6.4f}" if isinstance(migs[i], (int, float)) else f"{'':6s}"
        print(f"{str(d):{width}s}  {res['udr_lasso'][i]:9.4f}  {res['udr_spearman'][i]:12.4f}  "
              f"{res['num_active'][i]:6d}  {mig}")
    picks = []
    for key in SCORE_KEYS:
        top = [d for d, s in zip(dirs, res[key]) if s == max(res[key])]
        picks.append(f"{top[0] if len(top) == 1 else 'none (a tie)'} ({COLUMN_LABELS[key].removeprefix('UDR ')})")
    print(f"UDR's pick: {', '.join(picks)}")
    print(f"wrote {out}")


def _evaluate_run(args: argparse.Namespace, run_dir: Path, metrics: Any) -> None:
    from ..metrics import evaluate
    from ..train.log import write_json

    try:
        from ..train import load_run  # type: ignore[attr-defined]
    except ImportError as e:
        raise UserError(f"cannot load runs: untwine.train.load_run is unavailable ({e})") from e
    r = load_run(run_dir)
    cfg = r.config
    from ..data import load

    data = load(cfg.dataset, getattr(cfg, "source", None), getattr(cfg, "data_root", None))
    result = evaluate(
        r,
        data,
        metrics=metrics,
        seed=args.seed,
        progress=not args.no_progress,
        sizes=_parse_sizes(args.sizes),
        n_jobs=args.jobs,
        dci_backend=args.dci_backend,
        code_table={"auto": "auto", "on": True, "off": False}[args.code_table],
    )
    out = Path(args.output) if args.output else run_dir / "metrics.json"
    write_json(out, result)
    shown = {k: v for k, v in result.items() if isinstance(v, (int, float)) and k != "seed"}
    for k, v in shown.items():
        print(f"{k:28s} {v:.4f}" if isinstance(v, float) else f"{k:28s} {v}")
    for k, why in result.get("skipped", {}).items():
        print(f"{k:28s} skipped: {why}")
    print(f"wrote {out}")


def _help_from_registry(p: argparse.ArgumentParser, metrics: argparse.Action, backend: argparse.Action) -> None:
    """Write the description, ``--metrics`` and ``--dci-backend`` help from the metric registry
    when the help is shown (importing the metrics takes seconds that every other command would pay
    if the parser were built with them)."""
    format_help = p.format_help

    def fill() -> str:
        from ..metrics import registry

        def listed(opt_in: bool) -> str:
            return ", ".join(f"{n} ({registry.get(n).cost})" for n in registry.names(opt_in=opt_in))

        p.description = (
            "Score a trained run with the disentanglement metrics (disentanglement_lib 1.5 protocol and "
            "sample sizes) and write RUN_DIR/metrics.json. The default suite, ~30 s at standard sizes on "
            f"2 CPU cores plus encoding: {listed(False)}. Opt-in, each fitting many classifiers (name them "
            f"in --metrics): {listed(True)}."
        )
        metrics.help = (
            f"comma list; default: {','.join(registry.names(opt_in=False))}; opt-in (slow: classifier fits, "
            f"minutes each): {','.join(registry.names(opt_in=True))}; across >= 2 runs: udr; - or _ alike, "
            "and a result key names its metric (beta_vae_score: beta_vae)"
        )
        backend.metavar = "{" + ",".join(registry.BACKENDS) + "}"
        return format_help()

    p.format_help = fill  # type: ignore[method-assign]


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a run with the disentanglement metrics",
        description="Score a trained run with the disentanglement metrics and write RUN_DIR/metrics.json.",
    )
    p.add_argument("run_dir", nargs="+", help="run folder(s) written by `untwine train`; several: each is "
                   "evaluated, and with --metrics udr compared (UDR, Duan et al. 2020: e.g. the seeds of one "
                   "setting; both variants -> udr.json in their common folder, a table of UDR, active latents and MIG)")
    metrics = p.add_argument("--metrics", default=None, help="comma list (default: the default suite)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--sizes", default=None, help="sample-size overrides, e.g. num_train=2000,num_test=1000,dci.num_train=1000 "
                   "(downstream tasks: training sizes 10, 100, ... up to num_train; fairness.num_test_points_per_class)")
    backend = p.add_argument(
        "--dci-backend", default=None,
        help="exact (default): untwine's re-implementation of the reference GradientBoostingClassifier "
        "(same numbers up to tie-breaking, ~15x faster); sklearn: the reference estimator itself "
        "(minutes); fast: histogram boosting, approximate. Also the boosted trees of downstream, "
        "reduced_downstream and fairness")
    p.add_argument("--code-table", choices=("auto", "on", "off"), default="auto",
                   help="encode every image once and look codes up (same scores; auto: when the metrics "
                   "would draw more observations than the dataset has, e.g. dSprites at standard sizes)")
    p.add_argument("--jobs", type=int, default=None, help="threads for the classifier fits (default all CPUs)")
    p.add_argument("--output", default=None, help="where to write the JSON (default RUN_DIR/metrics.json; "
                   "with --metrics udr alone: the UDR JSON, default udr.json in the runs' common folder)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _help_from_registry(p, metrics, backend)
    p.set_defaults(func=run)
