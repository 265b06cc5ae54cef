"""Objective registry: CLI name (kebab-case) -> class. A new objective is one file + ``@register``."""

from __future__ import annotations

from typing import Any

from .base import Objective

_REGISTRY: dict[str, type[Objective]] = {}


def register(cls: type[Objective]) -> type[Objective]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"objective {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


_MODULES = ("vae", "beta_vae", "annealed_vae", "factor_vae", "beta_tcvae", "dip_vae")


def _ensure_loaded() -> None:
    import importlib

    for mod in _MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as e:  # pragma: no cover - only while an objective is missing
            if e.name != f"{__package__}.{mod}":
                raise


def get(name: str) -> type[Objective]:
    _ensure_loaded()
    key = name.lower().replace("_", "-")
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(names())}")
    return _REGISTRY[key]


def names() -> list[str]:
    """Registered names, in the order of ``_MODULES`` (stable, whatever was imported first)."""
    _ensure_loaded()
    order = {m: i for i, m in enumerate(_MODULES)}
    return sorted(_REGISTRY, key=lambda n: (order.get(_REGISTRY[n].__module__.rsplit(".", 1)[-1], 99), n))


def hparams_text(hparams: dict[str, Any]) -> str:
    """A run's hyperparameters as people write them, e.g. ``"beta 16, gamma 10, d_lr 0.001"``;
    a switch that is off (``stratified 0``) is left out."""
    return ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in hparams.items()
                     if not (k == "stratified" and not v))


def build(name: str, *, dataset_size: int, latents: int, **hparams: Any) -> Objective:
    """Instantiate objective ``name`` with ``hparams`` (unknown or invalid ones raise ValueError)."""
    return get(name)(dataset_size=dataset_size, latents=latents, **hparams)
