"""DIP-VAE I and II (Kumar et al. 2018): rec + KL + a penalty pulling Cov[z] towards I."""

from __future__ import annotations

import torch

from .base import Objective, bernoulli_rec, bernoulli_rec_packed, hparam_vector, kl_per_dim
from .registry import register


def dip_penalty(cov: torch.Tensor, lambda_od: float | torch.Tensor, lambda_d: float | torch.Tensor) -> torch.Tensor:
    """``lambda_od * sum_{i!=j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2`` for a ``D x D`` matrix
    (or ``K x D x D`` with ``K``-vectors of lambdas -> ``K``)."""
    diag = torch.diagonal(cov, dim1=-2, dim2=-1)
    off = cov - torch.diag_embed(diag)
    return lambda_od * off.pow(2).sum((-2, -1)) + lambda_d * (diag - 1.0).pow(2).sum(-1)


def covariance(mu: torch.Tensor) -> torch.Tensor:
    """Batch covariance ``E[mu mu^T] - E[mu] E[mu]^T`` (divides by B): ``... x B x D`` -> ``... x D x D``."""
    centred = mu - mu.mean(-2, keepdim=True)
    return centred.transpose(-2, -1) @ centred / mu.shape[-2]


class _DIPVAE(Objective):
    """``loss = rec + kl + dip`` with ``dip = dip_penalty(C)``; logs ``dip`` (the weighted penalty)."""

    min_batch_size = 2  # a covariance needs two codes
    random_terms = False
    batched_terms = True  # terms_packed below: one set of kernels for K runs

    def cov(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """``... x B x D`` codes' posteriors -> ``... x D x D``."""
        raise NotImplementedError

    def terms(self, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        rec = bernoulli_rec(logits, x)
        kl = kl_per_dim(mu, logvar).sum()
        dip = dip_penalty(self.cov(mu, logvar), self.hparams["lambda_od"], self.hparams["lambda_d"])
        return {"loss": rec + kl + dip, "rec": rec, "kl": kl, "dip": dip}

    @classmethod
    def terms_packed(cls, objectives, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        rec = bernoulli_rec_packed(logits, x)
        kl = kl_per_dim(mu, logvar).sum(-1)
        lam_od, lam_d = hparam_vector(objectives, "lambda_od", kl), hparam_vector(objectives, "lambda_d", kl)
        dip = dip_penalty(objectives[0].cov(mu, logvar), lam_od, lam_d)
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
        return covariance(mu) + torch.diag_embed(logvar.exp().mean(-2))
