"""Objectives (one file each) and their registry."""

from .base import Objective, bernoulli_rec, kl_per_dim
from .registry import build, get, names, register

__all__ = ["Objective", "bernoulli_rec", "build", "get", "kl_per_dim", "names", "register"]
