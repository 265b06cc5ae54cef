"""Architectures: plain ``nn.Module`` encoders (x -> mu, logvar) and decoders (z -> logits)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import check_choice
from .conv64 import Conv64Decoder, Conv64Encoder
from .mlp import MLPDecoder, MLPEncoder

# (mu, logvar) -> (mu, logvar): what the sample z is drawn from (pair objectives aggregate here)
Posterior = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

ARCHITECTURES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "conv64": (Conv64Encoder, Conv64Decoder),
    "mlp": (MLPEncoder, MLPDecoder),
}


class VAE(nn.Module):
    """Encoder + decoder + reparameterisation.

    ``forward(x)`` with ``x: B x C x 64 x 64`` in ``[0, 1]`` returns ``(mu, logvar, z, logits)``:
    ``mu, logvar, z: B x latents``, ``z = mu + exp(logvar / 2) * eps``; ``logits: B x C x 64 x 64``.
    ``forward(x, posterior)`` first maps the encoder's ``(mu, logvar)`` through ``posterior`` (a pair
    objective's aggregation) and returns and samples from what it gives.
    """

    def __init__(self, arch: str = "conv64", channels: int = 1, latents: int = 10) -> None:
        super().__init__()
        check_choice(arch, ARCHITECTURES, "architecture")
        if latents < 1:
            raise ValueError(f"latents must be >= 1, got {latents}")
        enc, dec = ARCHITECTURES[arch]
        self.arch, self.channels, self.latents = arch, channels, latents
        self.encoder = enc(channels, latents)
        self.decoder = dec(channels, latents)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits; ``torch.sigmoid`` gives pixel means."""
        return self.decoder(z)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor, posterior: Posterior | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x)
        if posterior is not None:
            mu, logvar = posterior(mu, logvar)
        z = self.reparameterize(mu, logvar)
        return mu, logvar, z, self.decoder(z)


__all__ = ["ARCHITECTURES", "VAE", "Posterior", "Conv64Encoder", "Conv64Decoder", "MLPEncoder", "MLPDecoder"]
