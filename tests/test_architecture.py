"""Imports follow the architecture (docs/architecture.md): data flows one way, so a package imports
only the packages on its floor or below, never one above. Every module is parsed with ``ast``:
imports inside functions count, and so does ``importlib.import_module("untwine....")``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "untwine"

# The floors, from the ground up (the same list as docs/architecture.md). "untwine" is the package's
# entry, untwine/__init__.py: it stands above everything and puts the hooks of untwine/hooks.py in.
FLOORS: list[set[str]] = [
    {"errors", "naming", "hooks", "_version"},  # shared by all; they import nothing of untwine
    {"data", "models", "objectives"},
    {"train"},
    {"metrics", "pretrained"},
    {"studies"},
    {"report"},
    {"explore"},
    {"cli"},
    {"untwine"},
]
FLOOR = {part: i for i, parts in enumerate(FLOORS) for part in parts}

# What issue 32 asked for in so many words; implied by FLOORS, and checked alone so that a change of
# FLOORS cannot drop them.
NEVER = {
    "data": {"metrics", "report", "studies", "train"},
    "train": {"metrics", "report", "studies"},
    "models": {"train"},
    "objectives": {"train"},
}


def modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def dotted(path: Path) -> list[str]:
    """``src/untwine/train/job.py`` -> ``["untwine", "train", "job"]`` (a package: its folder)."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def is_module(name: str) -> bool:
    p = SRC.joinpath(*name.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def imported(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every untwine module ``path`` imports, wherever the statement is
    (``from untwine import data`` imports the module ``untwine.data``)."""
    here = dotted(path)
    package = here if path.name == "__init__.py" else here[:-1]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for a in node.names:
                sub = f"{module}.{a.name}"
                out.append((node.lineno, sub if is_module(sub) else module))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return [(line, m) for line, m in out if m == "untwine" or m.startswith("untwine.")]


def part(module: str) -> str:
    """The part of the house a module belongs to: ``untwine.train.job`` -> ``train``."""
    names = module.split(".")
    return names[1] if len(names) > 1 else "untwine"


def arrows() -> list[tuple[str, int, str, str, str]]:
    """``(file, line, module, from part, to part)`` of every import between two parts."""
    out = []
    for path in modules():
        src = part(".".join(dotted(path)))
        for line, module in imported(path):
            dst = part(module)
            if dst != src:
                out.append((str(path.relative_to(SRC.parent)), line, module, src, dst))
    return out


def test_the_scanner_sees_imports_inside_functions_and_from_package_imports():
    found = {(m, s, d) for _, _, m, s, d in arrows()}
    # `from .. import objectives` inside RunConfig.resolved, `from untwine import pretrained` inside
    # a function of studies/study.py
    assert ("untwine.objectives", "train", "objectives") in found
    assert ("untwine.pretrained", "studies", "pretrained") in found


def test_every_part_of_the_house_has_a_floor():
    parts = {part(".".join(dotted(p))) for p in modules()}
    assert parts - set(FLOOR) == set(), "a new part of untwine: give it a floor here and in docs/architecture.md"


def test_no_import_runs_against_the_architecture():
    bad = [f"{f}:{line}: {src} imports {m} (floor {FLOOR[dst]} over floor {FLOOR[src]})"
           for f, line, m, src, dst in arrows() if FLOOR[dst] > FLOOR[src] or FLOOR[src] == 0]
    assert bad == [], "imports that run up the floors of docs/architecture.md:\n" + "\n".join(bad)


@pytest.mark.parametrize("src", sorted(NEVER))
def test_never(src):
    bad = [f"{f}:{line}: imports {m}" for f, line, m, s, d in arrows() if s == src and d in NEVER[src]]
    assert bad == [], f"{src} may not import {', '.join(sorted(NEVER[src]))}:\n" + "\n".join(bad)


def test_the_floors_of_docs_architecture_md_are_these():
    text = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d) \| (.+) \|$", text, re.M)
    doc = {int(n): {"untwine" if "__init__" in c else c.strip("/").removesuffix(".py")
                    for c in re.findall(r"`([^`]+)`", cells)} for n, cells in rows}
    assert doc == dict(enumerate(FLOORS))
