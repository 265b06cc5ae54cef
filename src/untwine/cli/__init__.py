"""The ``untwine`` command: thin argument parsing; every command calls library functions.

One module per command group (``data``, ``train``, ``evaluate``, ``study``); each exposes
``add(subparsers)`` which registers its parsers with ``set_defaults(func=handler)``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .. import __version__


class UserError(Exception):
    """An error the user can fix; printed without a traceback (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    from . import data, demo, evaluate, study, train

    parser = argparse.ArgumentParser(
        prog="untwine", description="Learn and measure disentangled representations."
    )
    parser.add_argument("--version", action="version", version=f"untwine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in (data, train, evaluate, study, demo):
        mod.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"untwine {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"untwine {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
