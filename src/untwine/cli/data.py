"""`untwine data list | info | prepare | download`: what datasets exist, what is on disk, build caches."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import UserError


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, inspect, prepare and download datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 1)[1])

    lp = dsub.add_parser("list", help="every dataset, its factor sizes and which sources are present")
    lp.add_argument("--root", help="folder with official files (default $UNTWINE_DATA or the cache dir)")
    lp.set_defaults(func=cmd_list)

    ip = dsub.add_parser("info", help="factors, sources and files of one dataset")
    ip.add_argument("name")
    ip.add_argument("--source", help="also load this source and describe it")
    ip.add_argument("--root")
    ip.set_defaults(func=cmd_info)

    pp = dsub.add_parser("prepare", help="build a dataset's cache and print what was used")
    pp.add_argument("name")
    pp.add_argument("--source", help="default: the first source present")
    pp.add_argument("--root")
    pp.set_defaults(func=cmd_prepare)

    dp = dsub.add_parser("download", help="fetch the official files (MD5-checked)")
    dp.add_argument("name")
    dp.add_argument("--source", help="which variant (mpi3d: toy, realistic, real)")
    dp.add_argument("--root", help="where to put the files (default $UNTWINE_DATA or the cache dir)")
    dp.set_defaults(func=cmd_download)


def _console() -> Console:
    # wide when piped (logs, tests) so names and sizes are not cut
    return Console() if sys.stdout.isatty() else Console(width=200)


def _root(args: argparse.Namespace) -> Path | None:
    return Path(args.root).expanduser() if getattr(args, "root", None) else None


def _spec(name: str):  # type: ignore[no-untyped-def]
    from ..data import registry

    return registry.get(name)  # an unknown name is a UserError


def _sizes(spec, source: str) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    return tuple(spec.extra.get("factor_sizes_by_source", {}).get(source, spec.factor_sizes))


def _present(spec, source: str, root: Path | None) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(spec.present(source, root))
    except Exception:  # a half-written dataset module must not break `data list`
        return False


def cmd_list(args: argparse.Namespace) -> int:
    from ..data import data_root, registry

    root = _root(args)
    table = Table(title=f"datasets (files looked for in {data_root(root)})")
    for col in ("name", "factors", "sizes", "sources (* = present)", "about"):
        table.add_column(col)
    for name in registry.names():
        spec = registry.get(name)
        sources = " ".join(f"{s}*" if _present(spec, s, root) else s for s in spec.sources)
        sizes = "x".join(map(str, spec.factor_sizes))
        for s, other in spec.extra.get("factor_sizes_by_source", {}).items():
            sizes += f" ({s}: {'x'.join(map(str, other))})"
        table.add_row(name, ", ".join(spec.factor_names), sizes, sources, spec.description)
    _console().print(table)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..data import data_root

    spec, root = _spec(args.name), _root(args)
    console = _console()
    console.print(f"[bold]{spec.name}[/bold]: {spec.description}")
    table = Table(title="factors")
    table.add_column("#")
    table.add_column("name")
    table.add_column("size")
    for k, (n, s) in enumerate(zip(spec.factor_names, spec.factor_sizes)):
        table.add_row(str(k), n, str(s))
    console.print(table)
    src = Table(title=f"sources (files looked for in {data_root(root)})")
    src.add_column("source")
    src.add_column("present")
    src.add_column("factor sizes")
    for s in spec.sources:
        src.add_row(s, "yes" if _present(spec, s, root) else "no", "x".join(map(str, _sizes(spec, s))))
    console.print(src)
    if args.source:
        spec.check_source(args.source)
        data = spec.load(args.source, root)
        console.print(repr(data), markup=False, highlight=False)
        for what, path in getattr(data, "files", {}).items():
            console.print(f"{what}: {path}", markup=False, highlight=False)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    spec, root = _spec(args.name), _root(args)
    spec.check_source(args.source)
    build = spec.prepare or spec.load
    try:
        data = build(args.source, root)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise UserError(str(e)) from e
    console = _console()
    console.print(f"prepared {data!r}", markup=False, highlight=False)
    for what, path in getattr(data, "files", {}).items():
        console.print(f"{what}: {path}", markup=False, highlight=False)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    spec, root = _spec(args.name), _root(args)
    by_source = spec.extra.get("download_source")
    try:
        if args.source is not None and by_source is not None:
            path = by_source(args.source, root)
        elif args.source is not None and args.source not in ("official", None):
            raise UserError(f"{spec.name}: source {args.source!r} cannot be downloaded; try without --source")
        elif spec.download is None:
            raise UserError(f"{spec.name}: nothing to download (its sources are built in: {', '.join(spec.sources)})")
        else:
            path = spec.download(root)
    except OSError as e:
        raise UserError(str(e)) from e
    _console().print(f"downloaded {spec.name} to {path}", markup=False, highlight=False)
    return 0
