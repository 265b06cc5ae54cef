"""FactorVAE (Kim & Mnih 2018): rec + beta * KL + gamma * TC, TC from a discriminator (density
ratio). ``beta = 1`` (the default) is the paper's loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .base import Objective, bernoulli_rec, kl_per_dim
from .registry import register

REAL, PERMUTED = 0, 1  # discriminator classes: codes from q(z) / from prod_d q(z_d)


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle each column of ``z: B x D`` across the batch independently: a sample of
    ``prod_d q(z_d)`` made from a sample of ``q(z)`` (Kim & Mnih 2018, Algorithm 1)."""
    idx = torch.argsort(torch.rand(z.shape, generator=generator, device=z.device), dim=0)
    return z.gather(0, idx)


class Discriminator(nn.Module):
    """``z: B x D`` -> logits ``B x 2`` (class 0 = real, 1 = permuted): six linear layers of
    ``hidden`` units with LeakyReLU(0.2), then a linear layer to 2 (the paper, disentanglement_lib)."""

    def __init__(self, latents: int, hidden: int = 1000, layers: int = 6) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        width = latents
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        mods.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@register
class FactorVAE(Objective):
    """``loss = rec + beta * kl + gamma * tc`` (nats per image); ``beta = 1`` is Kim & Mnih's loss.

    ``tc = mean_i [D(z_i)_real - D(z_i)_permuted]``, the logit difference of the discriminator,
    which estimates ``log q(z) / prod_d q(z_d)`` when D is optimal (the density-ratio trick). The
    VAE loss reaches D through ``z`` only: D's weights enter :meth:`terms` detached, so the
    loss's backward leaves their ``.grad`` untouched and only :meth:`extra_step` trains D.

    ``beta`` (> 0) weights the whole KL as in beta-VAE. At 1, CPU-scale runs learn a factorised
    code rotated away from the factors; beta 16 aligned it in 3 of 5 draws (docs/results/zoo). Our
    reading, not proven: at 1 the aggregate posterior is pushed to N(0, I), where a rotation leaves
    the TC unchanged, and ``beta > 1`` adds beta-VAE's pressure on the posterior variances, which
    picks the axes (docs/results/factor_vae_fix).

    Defaults: ``gamma = 10`` (the low end of disentanglement_lib's sweep {10, 20, 30, 40, 50,
    100}, which follows the paper's dSprites sweep); D's Adam ``betas = (0.5, 0.9)`` as in the
    paper, and its ``d_lr`` follows the VAE's: a run that does not set it trains D at the run's
    ``lr`` (``lr_defaults``; the paper and disentanglement_lib train both at 1e-4, the value
    ``params`` keeps for an objective built without a run). A D ten times slower than the VAE is
    fooled instead of followed: docs/results/factor_vae_fix. Logs ``tc``, ``d_real`` (mean probability D gives
    "real" to the batch's codes) and ``d_perm`` (the same on a permutation of them).
    """

    name = "factor-vae"
    random_terms = False  # permutations are drawn in extra_step (and in evaluation only)
    params = {"gamma": 10.0, "beta": 1.0, "d_lr": 1e-4}
    lr_defaults = {"d_lr": 1.0}
    positive = ("beta", "d_lr")
    has_extra_step = True
    min_batch_size = 2  # permuting one code changes nothing

    def __init__(self, *, dataset_size: int, latents: int, **hparams) -> None:
        super().__init__(dataset_size=dataset_size, latents=latents, **hparams)
        self.discriminator = Discriminator(self.latents)
        self.extra_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=self.hparams["d_lr"], betas=(0.5, 0.9), fused=True
        )

    def _frozen_d(self, z: torch.Tensor) -> torch.Tensor:
        """D's logits with its weights detached: gradients reach ``z`` but not D."""
        weights = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        return functional_call(self.discriminator, weights, (z,))

    def terms(self, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        rec = bernoulli_rec(logits, x)
        kl = kl_per_dim(mu, logvar).sum()
        d_z = self._frozen_d(z)
        tc = (d_z[:, REAL] - d_z[:, PERMUTED]).mean()
        loss = rec + self.hparams["beta"] * kl + self.hparams["gamma"] * tc
        out = {"loss": loss, "rec": rec, "kl": kl, "tc": tc, "d_real": d_z.detach().softmax(1)[:, REAL].mean()}
        if not torch.is_grad_enabled():
            # Evaluation. In training, extra_step logs d_perm from the permuted codes it feeds D
            # anyway (same D, before its update), which saves one D forward per step.
            with torch.no_grad():
                out["d_perm"] = self._frozen_d(permute_dims(z)).softmax(1)[:, REAL].mean()
        return out

    def extra_step(self, z: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One Adam step of D on ``z: B x D`` (detached here): real = ``z``, fake =
        ``permute_dims(z)`` with a fresh permutation (disentanglement_lib trains D on the same
        batch this way; the paper permutes a second batch). Loss: the mean of the two
        cross-entropies. Returns ``d_loss`` (nats), ``d_accuracy`` (on these 2B codes), and
        ``d_real``/``d_perm``: D's mean probability of "real" for the codes and their permutation,
        before this update (the training logs of those two quantities)."""
        z = z.detach()
        with torch.enable_grad():
            logits = self.discriminator(torch.cat([z, permute_dims(z)]))  # one forward for both
            real, fake = logits[: len(z)], logits[len(z) :]
            d_loss = 0.5 * (
                F.cross_entropy(real, torch.full((len(z),), REAL, device=z.device))
                + F.cross_entropy(fake, torch.full((len(z),), PERMUTED, device=z.device))
            )
            assert self.extra_optimizer is not None
            self.extra_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.extra_optimizer.step()
        with torch.no_grad():
            acc = 0.5 * ((real.argmax(1) == REAL).float().mean() + (fake.argmax(1) == PERMUTED).float().mean())
            d_real, d_perm = real.softmax(1)[:, REAL].mean(), fake.softmax(1)[:, REAL].mean()
        return {"d_loss": d_loss.detach(), "d_accuracy": acc, "d_real": d_real, "d_perm": d_perm}
