"""Objectives (one file each) and their registry."""

from .base import Objective, bernoulli_rec, kl_per_dim
from .registry import build, get, hparams_text, names, register

__all__ = ["Objective", "bernoulli_rec", "build", "get", "hparams_text", "kl_per_dim", "names", "register"]
