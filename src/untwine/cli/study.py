"""`untwine study` commands (being written)."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> None:
    pass
