"""The ``untwine`` command: thin argument parsing; every command calls library functions.

One module per command group (``data``, ``train``, ``evaluate``, ``study``); each exposes
``add(subparsers)`` which registers its parsers with ``set_defaults(func=handler)``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Sequence

from .._version import __version__
from ..errors import UserError

__all__ = ["UserError", "build_parser", "main"]

# The line under the traceback of an error that is not a UserError: a bug, not bad input.
BUG = ("this is a bug in untwine, not a mistake in your input; please report it with the command and "
       "the traceback above")


def build_parser() -> argparse.ArgumentParser:
    from . import data, demo, evaluate, explore, pretrained, study, train

    parser = argparse.ArgumentParser(
        prog="untwine", description="Learn and measure disentangled representations."
    )
    parser.add_argument("--version", action="version", version=f"untwine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in (data, train, evaluate, study, demo, pretrained, explore):
        mod.add(sub)
    return parser


# glibc malloc settings for training: keep the large activation buffers of each step in the heap
# instead of mmap/munmap-ing (and zero-filling) them on every step; measured in
# benchmarks/bench_train.py. They only take effect if set before the process starts.
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),  # glibc's largest allowed value (64-bit)
    "MALLOC_TRIM_THRESHOLD_": str(1024 * 1024 * 1024),
}


def _reexec_with_malloc_env(argv: Sequence[str]) -> None:
    """Re-execute ``python -m untwine.cli ARGV`` with :data:`MALLOC_ENV` set, once.

    Only on Linux (glibc), only when neither variable is set yet and ``UNTWINE_NO_REEXEC`` is not
    set. Does not return when it re-executes.
    """
    if not sys.platform.startswith("linux") or os.environ.get("UNTWINE_NO_REEXEC"):
        return
    if any(k in os.environ for k in MALLOC_ENV) or not sys.executable:
        return
    env = {**os.environ, **MALLOC_ENV}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", "untwine.cli", *argv], env)
    except OSError:  # pragma: no cover - e.g. no permission: run on without the settings
        return


def _flush_denormals_in_every_thread() -> None:
    """Flush denormal floats to zero before torch starts its worker threads, which copy the mode
    of the thread that creates them: training flushes them in its own thread
    (:func:`untwine.train.speed.flush_denormal`), and this makes multi-threaded runs do so in
    every thread. Only for the console script (a process of its own)."""
    import torch

    torch.set_flush_denormal(True)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script. ``argv=None`` (the ``untwine`` command) first re-executes itself once
    with :data:`MALLOC_ENV` (see :func:`_reexec_with_malloc_env`); ``main([...])`` never does."""
    if argv is None:
        _reexec_with_malloc_env(sys.argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    if argv is None and args.command in ("train", "sweep", "demo"):
        _flush_denormals_in_every_thread()
    try:
        return int(args.func(args) or 0)
    except UserError as e:  # bad input (untwine.errors): one line, no traceback
        print(f"untwine {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"untwine {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # anything else is a bug: its traceback, and a line that says so
        traceback.print_exc()
        print(f"untwine {args.command}: {BUG}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
