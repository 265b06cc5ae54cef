"""Checkpoints: a folder ``DIR/checkpoint/`` written atomically.

Layout::

    checkpoint/model.safetensors      the VAE's weights (metadata: arch, channels, latents, step)
    checkpoint/objective.safetensors  the objective's own networks (FactorVAE's discriminator), if any
    checkpoint/state.pt               torch.save dict: step, optimizer state(s), RNG states
                                      (torch CPU/CUDA, numpy, python, the sampler's generator),
                                      running training means, elapsed seconds

A save writes everything to ``checkpoint.tmp/``, renames it to ``checkpoint.new/`` (atomic),
then replaces ``checkpoint/``. A kill at any moment leaves at least one complete folder;
:func:`find` prefers ``checkpoint.new/`` when it exists (it is complete and newer).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open

MODEL_FILE = "model.safetensors"
OBJECTIVE_FILE = "objective.safetensors"
STATE_FILE = "state.pt"


def find(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a run, or ``None``."""
    d = Path(run_dir)
    for name in ("checkpoint.new", "checkpoint"):
        p = d / name
        if (p / STATE_FILE).is_file() and (p / MODEL_FILE).is_file():
            return p
    return None


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    run_dir: str | os.PathLike,
    *,
    model: torch.nn.Module,
    objective: torch.nn.Module,
    state: dict[str, Any],
    metadata: dict[str, str],
) -> Path:
    """Write a checkpoint atomically; ``state`` is the dict stored in ``state.pt`` (must hold
    ``step``). ``metadata`` (strings) goes into ``model.safetensors``. Returns the folder."""
    d = Path(run_dir)
    tmp, new, final = d / "checkpoint.tmp", d / "checkpoint.new", d / "checkpoint"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(_tensors(model), tmp / MODEL_FILE, metadata={**metadata, "step": str(state["step"])})
    obj = _tensors(objective)
    if obj:
        save_file(obj, tmp / OBJECTIVE_FILE)
    torch.save(state, tmp / STATE_FILE)
    if new.exists():
        shutil.rmtree(new)
    os.replace(tmp, new)
    if final.exists():
        shutil.rmtree(final)
    os.replace(new, final)
    return final


def load_state(ckpt: Path) -> dict[str, Any]:
    """The ``state.pt`` dict of a checkpoint folder (trusted: written by untwine)."""
    return torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=False)


def load_weights(
    ckpt: Path, model: torch.nn.Module, objective: torch.nn.Module | None = None
) -> None:
    """Load weights into ``model`` (and ``objective``) in place, keeping their device/memory format."""
    model.load_state_dict(load_file(ckpt / MODEL_FILE))
    if objective is not None and (ckpt / OBJECTIVE_FILE).is_file():
        objective.load_state_dict(load_file(ckpt / OBJECTIVE_FILE))


def model_metadata(ckpt: Path) -> dict[str, str]:
    with safe_open(ckpt / MODEL_FILE, framework="pt") as f:
        return dict(f.metadata() or {})
