"""A finished (or checkpointed) run: its config, summary, model and encode/decode helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import MissingFileError
from ..models import VAE
from . import checkpoint, files
from .config import RunConfig
from .log import MetricsLog


@dataclass
class Run:
    """A run folder loaded into memory.

    Attributes:
        dir: the run folder.
        config: the resolved :class:`RunConfig` (``config.json``).
        model: the :class:`~untwine.models.VAE` in eval mode.
        summary: ``summary.json`` as a dict (empty while the run has not ended).
    """

    dir: Path
    config: RunConfig
    model: VAE
    summary: dict[str, Any]
    batch_size: int = 1024
    precision: str | None = None  # "fp32" or "bf16" for encode/decode; None: the run's config.precision

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def metrics(self, split: str | None = None) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl`` (optionally one ``split``: ``"train"`` or ``"val"``)."""
        rows = MetricsLog(self.dir / "metrics.jsonl").read()
        return [r for r in rows if split is None or r["split"] == split]

    def _images(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        c = self.model.channels
        if t.dim() == 3 and c == 1:
            t = t[:, None]
        if t.dim() == 4 and t.shape[1] != c and t.shape[-1] == c:
            t = t.permute(0, 3, 1, 2)  # N x H x W x C -> N x C x H x W
        if t.dim() != 4 or t.shape[1] != c:
            raise ValueError(f"images must be N x {c} x 64 x 64 (or N x 64 x 64 x {c}), got {tuple(t.shape)}")
        return t

    @torch.inference_mode()
    def encode(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Mean codes ``N x D`` (``float32`` numpy) of images ``N x C x 64 x 64`` (float in ``[0, 1]``
        or ``uint8`` 0..255; numpy or torch; ``N x 64 x 64 x C`` also accepted). Batched internally
        (``batch_size`` images per forward, channels-last: ~1.7x NCHW on CPU)."""
        t = self._images(x)
        out = []
        for i in range(0, len(t), self.batch_size):
            b = t[i : i + self.batch_size].to(self.device)
            b = b.float() / 255.0 if b.dtype == torch.uint8 else b.float()
            b = b.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                out.append(self.model.encode(b)[0].float().cpu())
        if not out:
            return np.zeros((0, self.model.latents), np.float32)
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    @torch.inference_mode()
    def encode_gaussian(self, x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and log-variances, each ``N x D`` ``float32`` numpy, of images as in
        :meth:`encode` (same batching and precision; the means equal :meth:`encode`'s)."""
        t = self._images(x)
        mus, logvars = [], []
        for i in range(0, len(t), self.batch_size):
            b = t[i : i + self.batch_size].to(self.device)
            b = b.float() / 255.0 if b.dtype == torch.uint8 else b.float()
            with self._autocast():
                mu, logvar = self.model.encode(b.contiguous(memory_format=torch.channels_last))
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
        if not mus:
            empty = np.zeros((0, self.model.latents), np.float32)
            return empty, empty.copy()
        return torch.cat(mus).numpy(), torch.cat(logvars).numpy()

    @torch.no_grad()
    def decode(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """Images ``N x C x 64 x 64`` in ``[0, 1]`` (sigmoid of the decoder's logits) of codes ``N x D``."""
        t = torch.as_tensor(np.asarray(z) if not isinstance(z, torch.Tensor) else z).float()
        if t.dim() != 2 or t.shape[1] != self.model.latents:
            raise ValueError(f"codes must be N x {self.model.latents}, got {tuple(t.shape)}")
        out = [
            torch.sigmoid(self.model.decode(t[i : i + self.batch_size].to(self.device))).float().cpu()
            for i in range(0, len(t), self.batch_size)
        ]
        return torch.cat(out).numpy() if out else np.zeros((0, *self._shape()), np.float32)

    def _autocast(self) -> Any:
        """bfloat16 autocast when this run encodes in bf16 (as it trained), else a no-op."""
        precision = self.precision or self.config.precision
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` images ``n x C x 64 x 64`` in ``[0, 1]`` decoded from prior draws ``z ~ N(0, I)``."""
        g = torch.Generator().manual_seed(int(seed))
        return self.decode(torch.randn(int(n), self.model.latents, generator=g))

    def _shape(self) -> tuple[int, int, int]:
        return (self.model.channels, 64, 64)


def load_run(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> Run:
    """Load a run folder written by :func:`untwine.train.train` (its newest intact checkpoint).

    Raises ``FileNotFoundError`` (not a run folder, no checkpoint) or
    :class:`~untwine.train.files.RunFolderError` (a damaged file, named in the message)."""
    d = Path(run_dir)
    if not (d / "config.json").is_file():
        raise MissingFileError(f"{d} is not a run folder (no config.json); train one with `untwine train --out {d}`")
    ckpt = checkpoint.find(d)
    if ckpt is None:
        raise MissingFileError(f"{d} has no checkpoint yet (the run has not saved one)")
    config = RunConfig.from_json(d / "config.json")
    meta = checkpoint.model_metadata(ckpt)
    model = VAE(meta.get("arch", config.arch), int(meta.get("channels", 1)), int(meta.get("latents", config.latents)))
    checkpoint.load_weights(ckpt, model)
    model.to(device).to(memory_format=torch.channels_last).eval()  # faster convolutions, same values
    summary = files.read_summary(d / "summary.json") or {}
    return Run(d, config, model, summary)
