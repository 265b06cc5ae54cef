"""The registries list every built-in objective, dataset and architecture; a file that defines one
and is not registered fails here, and so does a registered module that cannot be imported."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from untwine import objectives
from untwine.objectives import Objective
from untwine.data import registry as data_registry
from untwine.models import ARCHITECTURES

PKG = Path(__file__).resolve().parents[1] / "src" / "untwine"

BUILT_IN_OBJECTIVES = ["vae", "beta-vae", "annealed-vae", "factor-vae", "beta-tcvae", "dip-vae-i", "dip-vae-ii",
                       "gvae", "ml-vae", "ada-gvae", "ada-ml-vae"]
BUILT_IN_DATASETS = ["dsprites", "mpi3d", "mnist", "shapes3d"]
BUILT_IN_ARCHITECTURES = ["conv64", "mlp"]


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def objective_classes(path: Path) -> dict[str, str]:
    """``class name -> its name`` of the :class:`Objective` subclasses that ``path`` defines with a
    ``name`` of their own (helpers such as a shared base class set none)."""
    module = importlib.import_module(f"untwine.objectives.{path.stem}")
    return {c.__name__: c.__dict__["name"] for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, Objective) and c.__module__ == module.__name__
            and c.__dict__.get("name")}


def test_every_built_in_objective_is_registered():
    assert set(BUILT_IN_OBJECTIVES) <= set(objectives.names())


@pytest.mark.parametrize("path", sorted((PKG / "objectives").glob("*.py")), ids=lambda p: p.name)
def test_each_objective_file_registers_its_objectives(path):
    for cls, name in objective_classes(path).items():
        assert name in objectives.names(), f"{path.name}: {cls} (name {name!r}) is not registered: decorate it with @register"
        assert objectives.get(name).__module__ == f"untwine.objectives.{path.stem}"


def test_objective_files_are_found_and_the_listing_order_names_each():
    files = {p.stem for p in (PKG / "objectives").glob("*.py") if objective_classes(p)}
    assert {"vae", "beta_vae", "factor_vae", "dip_vae"} <= files  # the parser finds them
    from untwine.objectives.registry import _MODULES

    assert set(_MODULES) == files, "objectives/registry.py _MODULES (the order names() lists them in) " \
        "must name every file that defines an objective"
    assert objectives.names()[:4] == ["vae", "beta-vae", "annealed-vae", "factor-vae"]


def test_names_alone_loads_every_objective_file():
    """In a fresh interpreter, ``names()`` imports every module of the package (no hand-kept list)."""
    code = ("import sys; from untwine import objectives; objectives.names(); "
            "print(' '.join(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('untwine.objectives.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert {p.stem for p in (PKG / "objectives").glob("*.py")} - {"__init__"} <= set(out.stdout.split())


def test_a_broken_objective_module_fails_loudly():
    """A module that cannot be imported is an error at the first lookup, not a missing name."""
    code = """
import sys, untwine.objectives.registry as r
sys.modules["untwine.objectives.factor_vae"] = None  # import -> ImportError, as a broken file gives
try:
    r.names()
except ImportError as e:
    print("raised", type(e).__name__)
else:
    print("silent", r.names())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "raised ModuleNotFoundError", out.stdout + out.stderr


def dataset_modules() -> list[str]:
    """The data modules that call ``register(...)`` at their top level."""
    out = []
    for p in sorted((PKG / "data").glob("*.py")):
        for n in tree(p).body:
            if (isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                    and getattr(n.value.func, "id", None) == "register"):
                out.append(p.stem)
                break
    return out


def test_every_built_in_dataset_is_registered():
    assert set(BUILT_IN_DATASETS) <= set(data_registry.names())


def test_each_dataset_file_is_loaded_by_the_registry():
    """In a fresh interpreter, importing the registry (so the package) imports every module that
    registers a dataset."""
    mods = dataset_modules()
    assert {"dsprites", "mpi3d", "mnist", "shapes3d"} <= set(mods)
    code = ("import sys; from untwine.data import registry; n = registry.names(); "
            "print(' '.join(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('untwine.data.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    missing = set(mods) - set(out.stdout.split())
    assert not missing, f"untwine/data/__init__.py does not import {sorted(missing)}"
    assert len(data_registry.names()) >= len(mods)


def test_every_architecture_is_registered():
    assert set(BUILT_IN_ARCHITECTURES) <= set(ARCHITECTURES)
    registered = {c.__name__ for pair in ARCHITECTURES.values() for c in pair}
    for p in sorted((PKG / "models").glob("*.py")):
        for n in tree(p).body:
            if isinstance(n, ast.ClassDef) and n.name.endswith(("Encoder", "Decoder")):
                assert n.name in registered, f"models/{p.name}: {n.name} is in no entry of models.ARCHITECTURES"
