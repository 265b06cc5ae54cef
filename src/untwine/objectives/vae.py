"""The plain VAE: rec + KL (Kingma & Welling 2014)."""

from __future__ import annotations

import torch

from .base import Objective, bernoulli_rec, bernoulli_rec_packed, kl_per_dim
from .registry import register


@register
class VAE(Objective):
    """``loss = rec + kl`` (nats per image)."""

    name = "vae"
    random_terms = False
    batched_terms = True  # terms_packed below: one set of kernels for K runs

    @classmethod
    def bf16_learns_the_same(cls, hparams) -> bool:
        """False: measured as beta-VAE at beta 1 (:meth:`BetaVAE.bf16_learns_the_same`)."""
        return False

    def terms(self, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        rec = bernoulli_rec(logits, x)
        kl = kl_per_dim(mu, logvar).sum()
        return {"loss": rec + kl, "rec": rec, "kl": kl}

    @classmethod
    def terms_packed(cls, objectives, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        rec = bernoulli_rec_packed(logits, x)
        kl = kl_per_dim(mu, logvar).sum(-1)
        return {"loss": rec + kl, "rec": rec, "kl": kl}
