"""Shared test set-up: one torch thread, a tiny registered dataset (``tiny-squares``), and the
results-table scripts (``rt``)."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from untwine import data

# precision="auto" would measure bf16 against fp32 on CPUs with bf16 instructions (and cache the
# answer in ~/.cache): tests, and the commands they start, run fp32 whatever the machine.
os.environ.setdefault("UNTWINE_CPU_BF16", "0")

TINY = "tiny-squares"


def squares() -> data.GroundTruthData:
    """128 images: a white square at 8 x 8 positions in 2 sizes."""
    fac = np.stack(np.meshgrid(np.arange(8), np.arange(8), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    imgs = np.zeros((len(fac), 64, 64), np.uint8)
    for i, (a, b, s) in enumerate(fac):
        w = 8 + 8 * s
        imgs[i, 4 + a * 6 : 4 + a * 6 + w, 4 + b * 6 : 4 + b * 6 + w] = 255
    return data.from_arrays(imgs, fac, ["x", "y", "size"], name=TINY)


if TINY not in data.names():
    data.register(data.DatasetSpec(
        TINY, ("x", "y", "size"), (8, 8, 2), ("arrays",),
        load=lambda source, root: squares(), present=lambda source, root: True,
    ))


@pytest.fixture(scope="module")
def rt():
    """scripts/results/core.py (reading, the registry, the check), with every folder's tables
    registered; ``results`` is imported afresh for each test module and removed after it."""
    scripts = str(Path(__file__).resolve().parents[1] / "scripts")
    sys.path.insert(0, scripts)
    try:
        yield importlib.import_module("results").core
    finally:
        sys.path.remove(scripts)
        for name in [m for m in sys.modules if m == "results" or m.startswith("results.")]:
            del sys.modules[name]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest, and most predictably on a shared 2-core machine, on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def patch_terms(monkeypatch, name: str, terms) -> None:
    """Replace objective ``name``'s ``terms`` for a test; ``train_packed`` then calls it run by
    run (``terms_packed`` falls back to the base class's, which calls ``terms``)."""
    from untwine import objectives
    from untwine.objectives.base import Objective

    cls = objectives.get(name)
    monkeypatch.setattr(cls, "terms", terms)
    monkeypatch.setattr(cls, "terms_packed", classmethod(Objective.terms_packed.__func__))
    monkeypatch.setattr(cls, "batched_terms", False)


def nan_loss_from(monkeypatch, beta: float, step: int) -> None:
    """Make the beta-VAE run with this ``beta`` return a NaN loss from training step ``step`` on
    (the other runs, and the steps before, are untouched)."""
    from untwine import objectives

    orig = objectives.get("beta-vae").terms

    def terms(self, x, mu, logvar, z, logits, s):
        t = orig(self, x, mu, logvar, z, logits, s)
        return {**t, "loss": t["loss"] * float("nan")} if self.hparams["beta"] == beta and s >= step else t

    patch_terms(monkeypatch, "beta-vae", terms)
