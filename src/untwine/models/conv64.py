"""The standard 64x64 conv encoder/decoder (Higgins et al. 2017; disentanglement_lib's ``conv``)."""

from __future__ import annotations

import torch
from torch import nn

from .layers import latent_layer


class Conv64Encoder(nn.Module):
    """``x: B x C x 64 x 64`` -> ``(mu, logvar)``, each ``B x latents``.

    conv 32 k4 s2 -> conv 32 k4 s2 -> conv 64 k2 s2 -> conv 64 k2 s2 (ReLU each, padding 1 on the
    k4 layers as in disentanglement_lib's "same" padding) -> 64x4x4 -> linear 256 -> two heads
    (float32 under bf16: :func:`~untwine.models.layers.latent_layer`).
    """

    FULL_PRECISION = ("mu", "logvar")  # submodules kept float32 under bf16

    def __init__(self, channels: int = 1, latents: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(),   # 32x32
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),         # 16x16
            nn.Conv2d(32, 64, 2, 2), nn.ReLU(),            # 8x8
            nn.Conv2d(64, 64, 2, 2), nn.ReLU(),            # 4x4
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 256), nn.ReLU(),
        )
        self.mu = nn.Linear(256, latents)
        self.logvar = nn.Linear(256, latents)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return latent_layer(self.mu, h), latent_layer(self.logvar, h)


class Conv64Decoder(nn.Module):
    """``z: B x latents`` -> Bernoulli logits ``B x C x 64 x 64``.

    linear 256 -> linear 1024 -> 64x4x4 -> deconv 64, 32, 32 (k4 s2, ReLU) -> deconv C k4 s2; the
    first linear reads ``z`` in float32 under bf16 (:func:`~untwine.models.layers.latent_layer`).
    """

    FULL_PRECISION = ("fc.0",)  # submodules kept float32 under bf16

    def __init__(self, channels: int = 1, latents: int = 10) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(latents, 256), nn.ReLU(),
            nn.Linear(256, 64 * 4 * 4), nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),  # 8x8
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),  # 16x16
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),  # 32x32
            nn.ConvTranspose2d(32, channels, 4, 2, 1),       # 64x64
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = latent_layer(self.fc[:2], z, out_like=self.fc[2].weight)
        return self.deconv(self.fc[2:](h).view(-1, 64, 4, 4))
