"""How a training step runs the model: eager, compiled (``torch.compile``, CUDA graphs) and/or
under bfloat16 autocast. ``step_forward(model, cfg, device)`` returns the callable the loop uses.

What it computes is :meth:`untwine.models.VAE.forward`'s ``(mu, logvar, z, logits)``; with
``precision="bf16"`` the encoder and decoder run under autocast and their outputs are cast back
to float32, and the reparameterisation ``z = mu + exp(logvar / 2) * eps`` stays in float32, so the
objective always sees float32 tensors. Evaluation, encoding and checkpoints use the model as is.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..models import VAE
from .config import RunConfig

Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class AutocastForward(nn.Module):
    """``VAE.forward`` with the encoder and decoder under ``torch.autocast(dtype)``; float32 out."""

    def __init__(self, model: VAE, device_type: str, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.model, self.device_type, self.dtype = model, device_type, dtype

    def forward(self, x: torch.Tensor) -> Outputs:
        with torch.autocast(self.device_type, dtype=self.dtype):
            mu, logvar = self.model.encoder(x)
        mu, logvar = mu.float(), logvar.float()
        z = self.model.reparameterize(mu, logvar)
        with torch.autocast(self.device_type, dtype=self.dtype):
            logits = self.model.decoder(z)
        return mu, logvar, z, logits.float()


def compile_mode(setting: str, device: torch.device) -> str | None:
    """``RunConfig.compile`` -> a ``torch.compile`` mode (``None``: no compilation)."""
    if setting == "off":
        return None
    if setting == "on":
        return "reduce-overhead" if device.type == "cuda" else "default"
    return setting


def uses_cuda_graphs(mode: str, device: torch.device) -> bool:
    """Whether ``torch.compile(mode=mode)`` replays CUDA graphs on ``device``."""
    return device.type == "cuda" and mode in ("reduce-overhead", "max-autotune")


def step_forward(model: VAE, cfg: RunConfig, device: torch.device) -> Callable[[torch.Tensor], Outputs]:
    """The model call of one training step, ``x: B x C x H x W -> (mu, logvar, z, logits)``, with
    ``cfg.compile`` and ``cfg.precision`` applied. fp32 without compilation is ``model`` itself."""
    fn: nn.Module = AutocastForward(model, device.type) if cfg.precision == "bf16" else model
    mode = compile_mode(cfg.compile, device)
    if mode is None:
        return fn
    compiled = torch.compile(fn, mode=mode)
    if not uses_cuda_graphs(mode, device):
        return compiled

    def forward(x: torch.Tensor) -> Outputs:
        # CUDA graphs reuse their output memory: mark each step as a new one (the loop uses a
        # step's outputs only within that step).
        torch.compiler.cudagraph_mark_step_begin()
        return compiled(x)

    return forward


__all__ = ["AutocastForward", "compile_mode", "step_forward", "uses_cuda_graphs"]
