"""Objective registry: CLI name (kebab-case) -> class. A new objective is one file in this package
whose class is decorated with ``@register``."""

from __future__ import annotations

from typing import Any

from ..errors import UserError, choice_message
from .base import Objective

_REGISTRY: dict[str, type[Objective]] = {}


def register(cls: type[Objective]) -> type[Objective]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"objective {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


# The order in which names() lists the objectives (the CLI's help, tables): from the plain VAE to
# the newer ones. It is not what loads them: every module of this package is imported, so a new
# objective file registers by itself (listed after these, by module name, until it is named here;
# tests/test_registries.py asks for that).
_MODULES = ("vae", "beta_vae", "annealed_vae", "factor_vae", "beta_tcvae", "dip_vae", "weak")
_loaded = False


def _ensure_loaded() -> None:
    """Import every module of this package (their ``@register`` fill the registry). A module that
    fails to import raises its error here, at the first lookup: no objective goes missing quietly."""
    global _loaded
    if _loaded:
        return
    import importlib
    import pkgutil
    from pathlib import Path

    found = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]))
    for mod in dict.fromkeys([*_MODULES, *found]):
        importlib.import_module(f"{__package__}.{mod}")
    _loaded = True


def get(name: str) -> type[Objective]:
    _ensure_loaded()
    key = name.lower().replace("_", "-")
    if key not in _REGISTRY:
        raise UserError(choice_message(name, names(), "model"))
    return _REGISTRY[key]


def names() -> list[str]:
    """Registered names, in the order of ``_MODULES`` (stable, whatever was imported first)."""
    _ensure_loaded()
    order = {m: i for i, m in enumerate(_MODULES)}
    return sorted(_REGISTRY, key=lambda n: (order.get(_REGISTRY[n].__module__.rsplit(".", 1)[-1], len(order)),
                                            _REGISTRY[n].__module__, n))


def hparams_text(hparams: dict[str, Any]) -> str:
    """A run's hyperparameters as people write them, e.g. ``"beta 16, gamma 10, d_lr 0.001"``;
    a switch that is off (any objective's ``switches``, e.g. ``stratified 0``) is left out."""
    _ensure_loaded()
    switches = {k for cls in _REGISTRY.values() for k in cls.switches}
    return ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in hparams.items()
                     if not (k in switches and not v))


def build(name: str, *, dataset_size: int, latents: int, **hparams: Any) -> Objective:
    """Instantiate objective ``name`` with ``hparams`` (unknown or invalid ones raise ValueError)."""
    return get(name)(dataset_size=dataset_size, latents=latents, **hparams)
