"""The objective contract and the terms every objective shares.

Units: nats per image. ``rec`` is the Bernoulli negative log-likelihood of the decoder's logits
summed over pixels (and channels), ``kl`` is KL(q(z|x) || N(0, I)) summed over latents; both are
averaged over the batch. Because both are per-image sums, ``beta`` keeps the meaning it has in
the papers (a sum-vs-mean mix-up silently rescales beta by the number of pixels).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


def bernoulli_rec(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reconstruction error, nats per image: ``-sum_pixels log p(x | logits)``, batch mean. Scalar."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent, batch mean: ``B x D`` -> ``D`` (nats)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean(0)


class Objective(nn.Module):
    """A VAE objective. Subclasses set ``name`` (the CLI name) and ``params`` (hyperparameter
    defaults, the only place they are defined) and implement :meth:`terms`.

    ``terms(x, mu, logvar, z, logits, step)`` gets the batch ``x: B x C x H x W``, the encoder's
    ``mu, logvar: B x D``, the sample ``z: B x D`` and decoder ``logits`` (same shape as ``x``), and
    returns a dict of scalar tensors: ``"loss"`` (to minimise) plus every other quantity to log under
    its own name (``rec``, ``kl``, ``tc``, ``d_real``...). Objectives with their own networks
    (FactorVAE's discriminator) set ``has_extra_step = True`` and implement :meth:`extra_step`,
    which trains them for one step with their own optimizer ``extra_optimizer``.
    ``random_terms`` says whether ``terms`` may draw from the global torch RNG in training
    (``train_packed`` then swaps the run's own RNG in around it); the built-ins set it False.
    """

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, float]] = {}
    has_extra_step: ClassVar[bool] = False
    random_terms: ClassVar[bool] = True
    min_batch_size: ClassVar[int] = 1

    def __init__(self, *, dataset_size: int, latents: int, **hparams: Any) -> None:
        super().__init__()
        unknown = set(hparams) - set(self.params)
        if unknown:
            raise ValueError(
                f"{self.name}: unknown hyperparameter(s) {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(self.params) or 'none'}"
            )
        self.hparams: dict[str, float] = {**self.params, **hparams}
        self.dataset_size = int(dataset_size)
        self.latents = int(latents)
        self.extra_optimizer: torch.optim.Optimizer | None = None
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming a bad hyperparameter. Default: all must be finite and >= 0."""
        for k, v in self.hparams.items():
            if not (float(v) >= 0.0 and float(v) != float("inf")):
                raise ValueError(f"{self.name}: {k} must be a finite number >= 0, got {v}")

    def terms(
        self,
        x: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        z: torch.Tensor,
        logits: torch.Tensor,
        step: int,
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def extra_step(self, z: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """Train the objective's own networks one step on detached codes ``z: B x D``; return logs."""
        return {}
