"""A small fully connected encoder/decoder (1200-1200, as in disentanglement_lib's ``fc``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import latent_layer


class MLPEncoder(nn.Module):
    """``x: B x C x H x W`` -> ``(mu, logvar)``, each ``B x latents`` (heads float32 under bf16)."""

    FULL_PRECISION = ("mu", "logvar")  # submodules kept float32 under bf16

    def __init__(self, channels: int = 1, latents: int = 10, size: int = 64, hidden: int = 1200) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * size * size, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
        )
        self.mu = nn.Linear(hidden, latents)
        self.logvar = nn.Linear(hidden, latents)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return latent_layer(self.mu, h), latent_layer(self.logvar, h)


class MLPDecoder(nn.Module):
    """``z: B x latents`` -> logits ``B x C x H x W`` (tanh hidden layers, as in the reference; the
    first reads ``z`` in float32 under bf16)."""

    FULL_PRECISION = ("net.0",)  # submodules kept float32 under bf16

    def __init__(self, channels: int = 1, latents: int = 10, size: int = 64, hidden: int = 1200) -> None:
        super().__init__()
        self.shape = (channels, size, size)
        self.net = nn.Sequential(
            nn.Linear(latents, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, math.prod(self.shape)),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = latent_layer(self.net[:2], z, out_like=self.net[2].weight)
        return self.net[2:](h).view(-1, *self.shape)
