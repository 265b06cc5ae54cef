"""beta-VAE: rec + beta * KL (Higgins et al. 2017). Any beta > 0, below 1 too."""

from __future__ import annotations

import torch

from .base import Objective, bernoulli_rec, bernoulli_rec_packed, hparam_vector, kl_per_dim
from .registry import register


@register
class BetaVAE(Objective):
    """``loss = rec + beta * kl`` (nats per image); ``beta`` > 0."""

    name = "beta-vae"
    random_terms = False
    batched_terms = True  # terms_packed below: one set of kernels for K runs
    params = {"beta": 4.0}
    positive = ("beta",)

    def terms(self, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        rec = bernoulli_rec(logits, x)
        kl = kl_per_dim(mu, logvar).sum()
        return {"loss": rec + self.hparams["beta"] * kl, "rec": rec, "kl": kl}

    @classmethod
    def terms_packed(cls, objectives, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        rec = bernoulli_rec_packed(logits, x)
        kl = kl_per_dim(mu, logvar).sum(-1)
        return {"loss": rec + hparam_vector(objectives, "beta", kl) * kl, "rec": rec, "kl": kl}
