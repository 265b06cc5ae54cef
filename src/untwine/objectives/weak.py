"""Weakly-supervised VAEs from pairs (Locatello et al. 2020, "Weakly-Supervised Disentanglement
Without Compromises"): GVAE, ML-VAE and their adaptive versions Ada-GVAE, Ada-ML-VAE.

Each training example is a pair of images that share all factors but ``k``
(:class:`untwine.data.pairs.PairSampler`; a batch is ``2B`` images, pair ``i`` = rows ``i`` and
``B + i``). Both images are encoded; in the dimensions judged *shared*, each image's posterior is
replaced by the pair's aggregate; ``z`` is sampled from these posteriors and decoded. Loss, as
disentanglement_lib's ``weak/weak_vae.py``: the mean of the two reconstructions plus ``beta`` times
the mean of the two KLs of the aggregated posteriors to N(0, I), i.e. beta-VAE's loss over the
``2B`` images with the aggregated posteriors (nats per image).

* aggregation: GVAE averages means and variances; ML-VAE takes disentanglement_lib's product of
  experts (``var = 2 v1 v2 / (v1 + v2)``, ``mean = (m1 / v1 + m2 / v2) var / 2``);
* which dimensions are shared: ``gvae`` / ``ml-vae`` are told (dlib's ``*_labels``): latent
  ``label`` (the index of a changed factor) keeps its own posterior, every other is shared;
  ``ada-gvae`` / ``ada-ml-vae`` (dlib's ``*_argmax``) find them: per dimension the divergence
  between the pair's two posteriors, ``exp(lv1 - lv2) + (m2 - m1)^2 / exp(lv2) - 1 + lv2 - lv1``
  (dlib's ``compute_kl``, twice the KL), and a dimension keeps its own posterior when its
  divergence is at least the midpoint between the pair's minimum and maximum (dlib's two bins of
  equal width); when all are equal, every dimension is shared.

Hyperparameters: ``beta`` (> 0), ``k`` (factors changed per pair, 0 = uniform over 1..K-1 per
pair, the paper's "Rnd"; checked against the dataset when the run starts), ``dlib_pairs`` (1:
pairs drawn as dlib's ``simple_dynamics`` codes them, see :mod:`untwine.data.pairs`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .beta_vae import BetaVAE
from .registry import register


def pair_divergence(mu1: torch.Tensor, lv1: torch.Tensor, mu2: torch.Tensor, lv2: torch.Tensor) -> torch.Tensor:
    """dlib's ``compute_kl`` per dimension, ``B x D`` each -> ``B x D`` (2 KL(q1 || q2), nats)."""
    return torch.exp(lv1 - lv2) + (mu2 - mu1).pow(2) / torch.exp(lv2) - 1.0 + lv2 - lv1


def group_mean(mu1, lv1, mu2, lv2) -> tuple[torch.Tensor, torch.Tensor]:
    """GVAE's aggregate: the average of the two means and of the two variances."""
    return 0.5 * mu1 + 0.5 * mu2, torch.log(0.5 * torch.exp(lv1) + 0.5 * torch.exp(lv2))


def product_of_experts(mu1, lv1, mu2, lv2) -> tuple[torch.Tensor, torch.Tensor]:
    """ML-VAE's aggregate as dlib codes it: ``var = 2 v1 v2 / (v1 + v2)``, ``mean = (m1/v1 + m2/v2) var / 2``."""
    v1, v2 = torch.exp(lv1), torch.exp(lv2)
    var = 2.0 * v1 * v2 / (v1 + v2)
    return (mu1 / v1 + mu2 / v2) * var * 0.5, torch.log(var)


def adaptive_mask(divergence: torch.Tensor) -> torch.Tensor:
    """``B x D`` -> ``B x D`` bool, True where a dimension is *not* shared: its divergence falls in
    the upper of two equal-width bins between the row's minimum and maximum (dlib's
    ``histogram_fixed_width_bins(x, [min, max], 2) == 1``). A row whose values are all equal gets
    no True (dlib's 0/0 bin is not 1)."""
    lo = divergence.amin(1, keepdim=True)
    hi = divergence.amax(1, keepdim=True)
    return (hi > lo) & (2.0 * (divergence - lo) >= hi - lo)


def label_mask(labels: torch.Tensor, latents: int) -> torch.Tensor:
    """``B`` factor indices -> ``B x D`` bool, True at latent ``label`` (dlib's ``aggregate_labels``:
    a one-hot row, or all True when ``label >= D`` makes the one-hot row zero)."""
    hot = F.one_hot(labels.clamp(max=latents), latents + 1)[:, :latents].bool()
    return torch.where(hot.any(1, keepdim=True), hot, torch.ones_like(hot))


class _Weak(BetaVAE):
    """A pair objective: beta-VAE's terms on the ``2B`` images, posteriors aggregated by
    :meth:`aggregate` before ``z`` is sampled (the model's ``posterior`` hook)."""

    pairs = True
    params = {"beta": 1.0, "k": 1.0, "dlib_pairs": 0.0}
    switches = ("dlib_pairs",)
    adaptive = False

    def validate(self) -> None:
        super().validate()
        k, d = self.hparams["k"], self.hparams["dlib_pairs"]
        if float(k) != int(k):
            raise ValueError(f"{self.name}: k must be an integer (0: uniform over 1..K-1 per pair), got {k}")
        if d not in (0, 1):
            raise ValueError(f"{self.name}: dlib_pairs must be 0 (the paper's pairs) or 1 (dlib's), got {d}")

    @classmethod
    def bf16_learns_the_same(cls, hparams) -> bool:
        """True at every beta: beta-VAE's beta-1 measurement (:meth:`BetaVAE.bf16_learns_the_same`)
        was made on single images, not on pairs; ``auto`` keeps the device's choice."""
        return True

    @staticmethod
    def combine(mu1, lv1, mu2, lv2) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def aggregate(self, mu: torch.Tensor, logvar: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mu, logvar: 2B x D`` (first images, then partners), ``labels: B`` -> the posteriors
        ``z`` is sampled from (``2B x D`` each): the pair's aggregate in the shared dimensions."""
        b = mu.shape[0] // 2
        mu1, mu2, lv1, lv2 = mu[:b], mu[b:], logvar[:b], logvar[b:]
        new_mu, new_lv = self.combine(mu1, lv1, mu2, lv2)
        if self.adaptive:
            own = adaptive_mask(pair_divergence(mu1, lv1, mu2, lv2))
        else:
            own = label_mask(labels.to(mu.device), mu.shape[1])
        return (torch.cat([torch.where(own, mu1, new_mu), torch.where(own, mu2, new_mu)]),
                torch.cat([torch.where(own, lv1, new_lv), torch.where(own, lv2, new_lv)]))


@register
class GroupVAE(_Weak):
    """GVAE told which factor changed (dlib ``group_vae_labels``): means and variances averaged."""

    name = "gvae"
    combine = staticmethod(group_mean)


@register
class MLVAE(_Weak):
    """ML-VAE told which factor changed (dlib ``mlvae_labels``): product of experts."""

    name = "ml-vae"
    combine = staticmethod(product_of_experts)


@register
class AdaGVAE(_Weak):
    """Ada-GVAE (dlib ``group_vae_argmax``): GVAE with the shared dimensions found per pair."""

    name = "ada-gvae"
    adaptive = True
    combine = staticmethod(group_mean)


@register
class AdaMLVAE(_Weak):
    """Ada-ML-VAE (dlib ``mlvae_argmax``): ML-VAE with the shared dimensions found per pair."""

    name = "ada-ml-vae"
    adaptive = True
    combine = staticmethod(product_of_experts)
