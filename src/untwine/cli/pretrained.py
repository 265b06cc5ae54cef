"""``untwine pretrained list|path|export``: the models shipped in the package."""

from __future__ import annotations

import argparse


def _list(args: argparse.Namespace) -> int:
    from .. import pretrained

    names = pretrained.names()
    if not names:
        print("no pretrained models are shipped in this version of untwine")
    for n in names:
        print(pretrained.info(n).line())
    return 0


def _path(args: argparse.Namespace) -> int:
    from .. import pretrained

    print(pretrained.path(args.name))
    return 0


def _export(args: argparse.Namespace) -> int:
    from .. import pretrained

    dest = pretrained.export(args.run_dir, args.name, args.command, metrics=args.metrics,
                             models_dir=args.to, overwrite=args.force)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"wrote {dest} ({size / 2**20:.2f} MiB)")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    from ..pretrained import MAX_BYTES

    p = sub.add_parser("pretrained", help="list the shipped pretrained models, print one's run folder, ship a run",
                       description="Models shipped in the package; each is a run folder that `untwine evaluate` "
                       "and `untwine explore` accept.")
    ps = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ps.add_parser("list", help="one line per model: name, dataset, model, steps, MIG, caveat").set_defaults(func=_list)
    q = ps.add_parser("path", help="print a model's run folder, e.g. untwine evaluate \"$(untwine pretrained path NAME)\"")
    q.add_argument("name")
    q.set_defaults(func=_path)
    e = ps.add_parser("export", help=f"turn a finished run folder into a shipped model (weights only, under {MAX_BYTES / 2**20:g} MB)",
                      description="Copy a finished, evaluated run into the package's models folder: weights "
                      "without optimizer state, config/summary/metrics and the command that trained it.")
    e.add_argument("run_dir", help="finished run folder (run `untwine evaluate RUN_DIR` first)")
    e.add_argument("name", help="model name, e.g. beta-tcvae-dsprites")
    e.add_argument("--command", required=True, help="the exact command that trained the run (COMMAND.txt)")
    e.add_argument("--metrics", default=None, help="metrics JSON from `untwine evaluate` (default RUN_DIR/metrics.json)")
    e.add_argument("--to", default=None, help="models folder (default: the package's untwine/pretrained/models)")
    e.add_argument("--force", action="store_true", help="replace an existing model of that name")
    e.set_defaults(func=_export)
