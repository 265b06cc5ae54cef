"""How a training step runs the model: eager, compiled (``torch.compile``, CUDA graphs) and/or
under bfloat16 autocast. ``step_forward(model, cfg, device)`` returns the callable the loop uses.

What it computes is :meth:`untwine.models.VAE.forward`'s ``(mu, logvar, z, logits)``; with
``precision="bf16"`` the encoder and decoder run under autocast and their outputs are cast back
to float32, and the reparameterisation ``z = mu + exp(logvar / 2) * eps`` stays in float32, so the
objective always sees float32 tensors. Evaluation, encoding and checkpoints use the model as is.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, TypeVar

import torch
from torch import nn

from ..models import VAE
from .config import RunConfig

Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
T = TypeVar("T")


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


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (``RunConfig.threads``; ``0`` leaves the
    count alone), restoring the previous count after."""
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads > 0:
            torch.set_num_threads(before)


def bf16_native(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively, so that autocast pays: a CUDA device with
    bf16 support (Ampere and newer), or a CPU with AVX512-BF16 or AMX-BF16 instructions (as
    PyTorch detects them; on CPUs without them oneDNN emulates bf16 and is slower than fp32)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if dev.type == "cpu":
        caps = getattr(torch.cpu, "get_capabilities", lambda: {})()
        return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
    return False


# Whether bf16 autocast pays in *this trainer's* step on a CPU with native bf16. Measured on the
# 2-core AVX512-BF16 test machine (benchmarks/bench_precision.py, 2026-11-29): untwine train in
# bf16 ran at 0.79x (2 threads) and 0.78x (1 thread) the images/s of fp32, although a bare conv64
# step was reported 1.57x faster under autocast: until the trainer's bf16 path is shown to pay,
# "auto" keeps CPUs in fp32.
CPU_BF16_PAYS = False


def resolve_precision(setting: str, device: str) -> str:
    """``RunConfig.precision`` -> ``"fp32"`` or ``"bf16"``: ``"auto"`` is ``"bf16"`` where
    :func:`bf16_native` holds for ``device`` (``"auto"``: CUDA if available, else CPU) and bf16 is
    measured to pay there (CUDA; a CPU only with :data:`CPU_BF16_PAYS`), else ``"fp32"``."""
    if setting != "auto":
        return setting
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    pays = torch.device(device).type == "cuda" or CPU_BF16_PAYS
    return "bf16" if pays and bf16_native(device) else "fp32"


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


def model_forward(model: VAE, cfg: RunConfig, device: torch.device) -> nn.Module:
    """The uncompiled model call with ``cfg.precision`` applied: ``model`` itself for fp32."""
    return AutocastForward(model, device.type) if cfg.precision == "bf16" else model


def compiled_step(fn: Callable[..., T], mode: str, device: torch.device) -> Callable[..., T]:
    """``torch.compile(fn, mode=mode)``; with CUDA graphs each call is marked as a new step (the
    graphs reuse their output memory, and the loop uses a step's outputs within that step only)."""
    compiled = torch.compile(fn, mode=mode)
    if not uses_cuda_graphs(mode, device):
        return compiled

    def graphed(*args: torch.Tensor) -> T:
        torch.compiler.cudagraph_mark_step_begin()
        return compiled(*args)

    return graphed


def step_forward(model: VAE, cfg: RunConfig, device: torch.device) -> Callable[[torch.Tensor], Outputs]:
    """The model call of one training step, ``x: B x C x H x W -> (mu, logvar, z, logits)``, with
    ``cfg.compile`` and ``cfg.precision`` applied. fp32 without compilation is ``model`` itself."""
    fn = model_forward(model, cfg, device)
    mode = compile_mode(cfg.compile, device)
    return fn if mode is None else compiled_step(fn, mode, device)


__all__ = ["AutocastForward", "bf16_native", "resolve_precision", "torch_threads", "compile_mode", "compiled_step", "model_forward", "step_forward", "uses_cuda_graphs"]
