"""How a training step runs the model: eager, compiled (``torch.compile``, CUDA graphs) and/or
under bfloat16 autocast. ``step_forward(model, precision, compile_setting, device)`` returns the
callable the loop uses.

What it computes is :meth:`untwine.models.VAE.forward`'s ``(mu, logvar, z, logits)``; with
``precision="bf16"`` the encoder and decoder run under autocast and their outputs are cast back
to float32, and the reparameterisation ``z = mu + exp(logvar / 2) * eps`` stays in float32, so the
objective always sees float32 tensors. Checkpoints hold the float32 model; encoding for the metrics
runs in the run's precision (:meth:`untwine.train.Run.encode`). Which precision ``"auto"`` means on
this machine is decided here too (:func:`resolve_precision`, measured on CPUs).
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator, Mapping, TypeVar

import torch
from torch import nn

from ..models import VAE, Posterior
from ..errors import UserError

Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
T = TypeVar("T")


class AutocastForward(nn.Module):
    """``VAE.forward`` with the encoder and decoder under ``torch.autocast(dtype)``; float32 out."""

    def __init__(self, model: VAE, device_type: str, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.model, self.device_type, self.dtype = model, device_type, dtype

    def forward(self, x: torch.Tensor, posterior: Posterior | None = None) -> Outputs:
        with torch.autocast(self.device_type, dtype=self.dtype):
            mu, logvar = self.model.encoder(x)
        mu, logvar = mu.float(), logvar.float()
        if posterior is not None:  # in float32, as VAE.forward's
            mu, logvar = posterior(mu, logvar)
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


def flushing_denormals() -> bool:
    """Whether this thread's CPU math flushes denormal floats to zero now (FTZ/DAZ)."""
    return float(torch.tensor(1e-40, dtype=torch.float32).mul(1.0)) == 0.0


@contextlib.contextmanager
def flush_denormal() -> Iterator[None]:
    """Run the block with denormal (subnormal, below ~1.2e-38) float32 values flushed to zero on
    the CPU (``torch.set_flush_denormal``), restoring the previous mode after. Training runs in it:
    as a VAE trains, values in its collapsed latents, their gradients and Adam's moments fall into
    the denormal range, where each x86 floating-point operation costs ~100x a normal one. Measured
    on the 2-core test machine (benchmarks/RESULTS.md, session 5): 150 steps of a plain VAE resumed at
    step 10,000 took 32 s without flushing and 13 s with it. Flushing changes only values below
    1.2e-38, but it does change the bits of a run, so it is always on: every run computes the same."""
    before = flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


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


# How much faster the bf16 step must measure before "auto" picks it on a CPU (noise margin).
BF16_GAIN_NEEDED = 1.1


def cpu_bf16_pays(threads: int) -> bool:
    """Whether bfloat16 autocast makes the conv64 training step faster on this CPU with
    ``threads`` torch threads. ``$UNTWINE_CPU_BF16`` (``1``/``0``) answers without measuring;
    otherwise a CPU without native bf16 (:func:`bf16_native`) never pays, and one with it is
    measured once (:func:`measure_cpu_bf16`, a few seconds) and the answer cached in
    ``cache_dir()/cpu_precision.json``, keyed by CPU model, torch version and thread count.

    Why measure: the same instructions pay very differently by CPU. A bare conv64 step under
    autocast was measured 1.57x faster than fp32 on an AMD EPYC with AVX512-BF16, and 0.85x on an
    Intel Xeon (family 6 model 207) with AVX512-BF16 but no AMX (benchmarks/RESULTS.md)."""
    env = os.environ.get("UNTWINE_CPU_BF16", "")
    if env:
        if env not in ("0", "1"):
            raise UserError(f"UNTWINE_CPU_BF16 must be 1 (use bf16 on this CPU) or 0 (use fp32), "
                             f"got {env!r}; unset it to let untwine measure")
        return env == "1"
    if not bf16_native("cpu"):
        return False
    from ..data.cache import cache_dir
    from .log import write_json

    path = cache_dir() / "cpu_precision.json"
    key = f"{cpu_model()} | torch {torch.__version__} | threads {threads}"
    table = _read_cache(path)
    if key not in table:
        print(f"untwine: measuring once whether bfloat16 pays on this CPU with {threads} thread(s) "
              f"(a few seconds; cached in {path})", file=sys.stderr, flush=True)
        table[key] = {"bf16_speedup": round(measure_cpu_bf16(threads), 3), "needed": BF16_GAIN_NEEDED}
        try:
            write_json(path, table)
        except OSError as e:  # a read-only or full cache costs a measurement next time, no more
            warnings.warn(f"could not cache the bf16 measurement in {path} ({e})", stacklevel=2)
    return float(table[key]["bf16_speedup"]) >= BF16_GAIN_NEEDED


def _read_cache(path: Path) -> dict:
    """The measurements cached in ``path``; ``{}`` when missing or damaged (measure again and rewrite it)."""
    from .files import peek_json

    table = peek_json(path) or {}
    ok = all(isinstance(v, dict) and "bf16_speedup" in v for v in table.values())
    return table if ok else {}


def cpu_model() -> str:
    """This CPU's model name, with family/model/stepping where /proc/cpuinfo gives them (virtual
    machines often report a generic name such as "Intel(R) Xeon(R) Processor")."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            k = k.strip()
            if k in ("model name", "cpu family", "model", "stepping") and k not in fields:
                fields[k] = v.strip()
            if not line.strip() and fields:
                break
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    ids = "/".join(fields[k] for k in ("cpu family", "model", "stepping") if k in fields)
    return f"{name} ({ids})" if ids else name


def measure_cpu_bf16(threads: int, rounds: int = 3, steps: int = 4) -> float:
    """The conv64 training step's speed under bf16 autocast over fp32 on this CPU (``> 1``: bf16
    is faster): batch 64 of 64x64 binary images, forward + Bernoulli/KL loss + backward + fused
    Adam, ``channels_last``, as :class:`~untwine.train.loop.SingleStep` runs it. Interleaved
    ``rounds`` of ``steps`` steps each after one warm-up step; the median of the per-round ratios.
    The global RNG is left as it was."""
    import torch.nn.functional as F

    with torch.random.fork_rng(devices=[]), torch_threads(threads), flush_denormal():
        torch.manual_seed(0)
        x = (torch.rand(64, 1, 64, 64) < 0.1).float().contiguous(memory_format=torch.channels_last)
        steps_by_precision = {}
        for precision in ("fp32", "bf16"):
            model = VAE("conv64", 1, 10).to(memory_format=torch.channels_last)
            forward = AutocastForward(model, "cpu") if precision == "bf16" else model
            opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

            def step(forward: nn.Module = forward, opt: torch.optim.Optimizer = opt) -> None:
                mu, logvar, _, logits = forward(x)
                rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
                kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
                opt.zero_grad(set_to_none=True)
                (rec + kl).backward()
                opt.step()

            step()
            steps_by_precision[precision] = step
        ratios = []
        for _ in range(rounds):
            took = {}
            for precision, step in steps_by_precision.items():
                t = time.perf_counter()
                for _ in range(steps):
                    step()
                took[precision] = time.perf_counter() - t
            ratios.append(took["fp32"] / took["bf16"])
    return statistics.median(ratios)


def bf16_learns_the_same(model: str, hparams: Mapping[str, float]) -> bool:
    """Whether ``precision = "auto"`` may pick bf16 for objective ``model`` with ``hparams`` (those
    left out take the objective's defaults): the objective's own
    :meth:`~untwine.objectives.Objective.bf16_learns_the_same` (False for the plain VAE and for
    beta-VAE with beta <= 1, measured in ``docs/results/precision_check``)."""
    from .. import objectives

    cls = objectives.get(model)
    return cls.bf16_learns_the_same(cls.check_hparams(hparams))


def resolve_device(name: str) -> torch.device:
    """``RunConfig.device`` as a device: ``"auto"`` is CUDA if available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(setting: str, device: str, threads: int = 0, model: str | None = None,
                      hparams: Mapping[str, float] | None = None) -> str:
    """``RunConfig.precision`` -> ``"fp32"`` or ``"bf16"``: ``"auto"`` is ``"bf16"`` on a CUDA
    device with native bf16 (``device="auto"``: CUDA if available, else CPU) and on a CPU where
    :func:`cpu_bf16_pays` with ``threads`` (``0``: torch's current count), unless ``model`` with
    ``hparams`` is an objective for which not :func:`bf16_learns_the_same`; else ``"fp32"``.
    An explicit ``"bf16"`` is kept, with a warning on a CPU without native bf16 (emulated there)."""
    if setting == "bf16" and resolve_device(str(device)).type == "cpu" and not bf16_native("cpu"):
        warnings.warn(
            f"precision bf16 on a CPU without native bfloat16 ({cpu_model()}: no AVX512-BF16 or AMX): "
            "oneDNN emulates it, several times slower than fp32 (9x measured on such a CPU, "
            "benchmarks/RESULTS.md); use precision auto (fp32 here) or fp32", stacklevel=2)
    if setting != "auto":
        return setting
    if model is not None and not bf16_learns_the_same(model, hparams or {}):
        return "fp32"
    device = resolve_device(str(device))
    kind = device.type
    if kind == "cuda":
        return "bf16" if bf16_native(device) else "fp32"
    if kind == "cpu":
        return "bf16" if cpu_bf16_pays(threads or torch.get_num_threads()) else "fp32"
    return "fp32"


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


def model_forward(model: VAE, precision: str, device: torch.device) -> nn.Module:
    """The uncompiled model call in ``precision`` (resolved: ``"fp32"`` or ``"bf16"``): ``model``
    itself for fp32."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be resolved to 'fp32' or 'bf16' (RunConfig.precision), got {precision!r}")
    return AutocastForward(model, device.type) if precision == "bf16" else model


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


def step_forward(
    model: VAE, precision: str, compile_setting: str, device: torch.device
) -> Callable[[torch.Tensor], Outputs]:
    """The model call of one training step, ``x: B x C x H x W -> (mu, logvar, z, logits)``, in
    ``precision`` (resolved) and compiled as ``compile_setting`` says (``RunConfig.compile``). fp32 without
    compilation is ``model`` itself."""
    fn = model_forward(model, precision, device)
    mode = compile_mode(compile_setting, device)
    return fn if mode is None else compiled_step(fn, mode, device)


__all__ = ["AutocastForward", "bf16_native", "cpu_bf16_pays", "cpu_model", "flush_denormal", "flushing_denormals", "measure_cpu_bf16", "resolve_precision", "torch_threads", "compile_mode", "compiled_step", "model_forward", "step_forward", "uses_cuda_graphs"]
