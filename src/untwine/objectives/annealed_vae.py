"""Annealed VAE, "capacity" control (Burgess et al. 2018): rec + gamma * |KL - C(step)|."""

from __future__ import annotations

import torch

from .base import Objective, bernoulli_rec, bernoulli_rec_packed, hparam_vector, kl_per_dim
from .registry import register


@register
class AnnealedVAE(Objective):
    """``loss = rec + gamma * |kl - C|`` (nats per image), ``C = c_max * min(1, step / anneal_steps)``.

    The KL is pulled towards a target capacity ``C`` (nats) that rises linearly from 0 at step 0
    to ``c_max`` at ``anneal_steps`` and stays there. Defaults are the paper's dSprites setting
    (gamma 1000, C from 0 to 25 nats over 100 000 steps); disentanglement_lib sweeps
    ``c_max`` in {5, 10, 25, 50, 75, 100} with the same gamma and schedule.
    ``anneal_steps = 0`` means ``C = c_max`` from the start. Logs ``capacity`` (C, nats).
    """

    name = "annealed-vae"
    random_terms = False
    batched_terms = True  # terms_packed below: one set of kernels for K runs
    uses_step = True  # the capacity schedule
    params = {"gamma": 1000.0, "c_max": 25.0, "anneal_steps": 100000.0}
    positive = ("gamma",)

    def capacity(self, step: int) -> float:
        """Target KL ``C`` in nats at training step ``step`` (steps count from 0)."""
        c_max, n = float(self.hparams["c_max"]), float(self.hparams["anneal_steps"])
        if n == 0:
            return c_max
        return c_max * min(1.0, max(0.0, float(step)) / n)

    def terms(self, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        rec = bernoulli_rec(logits, x)
        kl = kl_per_dim(mu, logvar).sum()
        c = self.capacity(step)
        loss = rec + self.hparams["gamma"] * (kl - c).abs()
        capacity = torch.full((), c, device=kl.device)  # a fill, not a host->device copy (no sync)
        return {"loss": loss, "rec": rec, "kl": kl, "capacity": capacity}

    @classmethod
    def terms_packed(cls, objectives, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        rec = bernoulli_rec_packed(logits, x)
        kl = kl_per_dim(mu, logvar).sum(-1)
        c_max, n = hparam_vector(objectives, "c_max", kl), hparam_vector(objectives, "anneal_steps", kl)
        c = c_max * torch.where(n == 0, 1.0, (max(0.0, float(step)) / n).clamp(max=1.0))  # as capacity()
        loss = rec + hparam_vector(objectives, "gamma", kl) * (kl - c).abs()
        return {"loss": loss, "rec": rec, "kl": kl, "capacity": c}
