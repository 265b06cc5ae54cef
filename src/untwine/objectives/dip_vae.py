"""DIP-VAE I and II (Kumar et al. 2018): rec + KL + a penalty pulling Cov[z] towards I."""

from __future__ import annotations

import torch

from .base import Objective, bernoulli_rec, kl_per_dim
from .registry import register


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """``lambda_od * sum_{i!=j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2`` for a ``D x D`` matrix."""
    diag = torch.diagonal(cov)
    off = cov - torch.diag_embed(diag)
    return lambda_od * off.pow(2).sum() + lambda_d * (diag - 1.0).pow(2).sum()


def covariance(mu: torch.Tensor) -> torch.Tensor:
    """Batch covariance ``E[mu mu^T] - E[mu] E[mu]^T`` (divides by B): ``B x D`` -> ``D x D``."""
    centred = mu - mu.mean(0, keepdim=True)
    return centred.T @ centred / mu.shape[0]


class _DIPVAE(Objective):
    """``loss = rec + kl + dip`` with ``dip = dip_penalty(C)``; logs ``dip`` (the weighted penalty)."""

    min_batch_size = 2  # a covariance needs two codes
    random_terms = False

    def cov(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def terms(self, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        rec = bernoulli_rec(logits, x)
        kl = kl_per_dim(mu, logvar).sum()
        dip = dip_penalty(self.cov(mu, logvar), self.hparams["lambda_od"], self.hparams["lambda_d"])
        return {"loss": rec + kl + dip, "rec": rec, "kl": kl, "dip": dip}


@register
class DIPVAEI(_DIPVAE):
    """DIP-VAE-I: ``C = Cov[mu]`` over the batch. Defaults ``lambda_od = 10``,
    ``lambda_d = 10 * lambda_od = 100`` (disentanglement_lib: ``lambda_od`` in
    {1, 2, 5, 10, 20, 50}, ``lambda_d = 10 lambda_od`` for type i)."""

    name = "dip-vae-i"
    params = {"lambda_od": 10.0, "lambda_d": 100.0}

    def cov(self, mu, logvar):
        return covariance(mu)


@register
class DIPVAEII(_DIPVAE):
    """DIP-VAE-II: ``C = E[diag(exp(logvar))] + Cov[mu]``, the covariance of z under q(z).
    Defaults ``lambda_od = lambda_d = 10`` (disentanglement_lib: ``lambda_d = lambda_od``)."""

    name = "dip-vae-ii"
    params = {"lambda_od": 10.0, "lambda_d": 10.0}

    def cov(self, mu, logvar):
        return covariance(mu) + torch.diag_embed(logvar.exp().mean(0))
