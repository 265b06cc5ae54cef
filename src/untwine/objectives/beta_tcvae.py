"""beta-TCVAE (Chen et al. 2018): rec + MI + beta * TC + gamma * dimension-wise KL."""

from __future__ import annotations

import functools

import torch

from .base import Objective, bernoulli_rec, bernoulli_rec_packed, hparam_vector, kl_per_dim
from .registry import register
from .tc import kl_decomposition


def readable_with_gradient_of(readable: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """A tensor whose *value* is ``readable`` and whose *gradient* is ``train``'s, exactly:
    ``readable.detach() + (train - train.detach())`` (``x - x`` is exactly 0 for finite x, and a
    non-finite ``train`` still makes the result non-finite, so the NaN policy sees it)."""
    return readable.detach() + (train - train.detach())


@register
class BetaTCVAE(Objective):
    """``loss = rec + mi + beta * tc + gamma * dwkl`` (nats per image; Chen et al.'s alpha = 1).

    ``beta`` > 0 (default 6, the middle of disentanglement_lib's sweep 1..10). ``gamma`` >= 0
    weights the dimension-wise KL, Chen et al.'s gamma (default 1, as the paper and
    disentanglement_lib; at 1 the loss and its gradients are those without the weight, bit for
    bit: multiplying by 1.0 is exact). ``stratified``: 0 (default) trains with minibatch weighted
    sampling, as the paper and disentanglement_lib do; 1 trains with the stratified estimator.
    Whatever the choice, the *logged* ``mi``, ``tc`` and ``dwkl`` are the stratified estimates (MWS
    values are offset by about ``(D-1) log N`` nats, see :mod:`.tc`), so ``tc`` means the same for
    every model, and the logged ``loss`` is ``rec + mi + beta * tc + gamma * dwkl`` of those logged
    terms (for beta = gamma = 1: ``rec`` + the one-sample KL estimate). With MWS its gradient is
    MWS's (:func:`readable_with_gradient_of`): the value of the MWS loss itself carries
    ``log(N B)`` constants and is not logged.
    Also logs ``rec`` and the analytic ``kl``. Needs ``dataset_size`` (N) and batches of >= 2 codes.
    """

    name = "beta-tcvae"
    random_terms = False
    batched_terms = True  # terms_packed below: one set of kernels for K runs
    params = {"beta": 6.0, "stratified": 0.0, "gamma": 1.0}
    positive = ("beta",)
    switches = ("stratified",)
    min_batch_size = 2

    def validate(self) -> None:
        super().validate()
        if self.hparams["stratified"] not in (0.0, 1.0):
            raise ValueError(
                f"beta-tcvae: stratified must be 0 (minibatch weighted sampling) or 1 (stratified), "
                f"got {self.hparams['stratified']}"
            )
        if self.dataset_size < 1:
            raise ValueError(f"beta-tcvae: dataset_size must be >= 1, got {self.dataset_size}")

    def terms(self, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        rec = bernoulli_rec(logits, x)
        kl = kl_per_dim(mu, logvar).sum()
        stratified = self.hparams["stratified"] == 1.0
        mi, tc, dwkl = kl_decomposition(z, mu, logvar, self.dataset_size, stratified=stratified)
        beta, gamma = self.hparams["beta"], self.hparams["gamma"]
        loss = rec + mi + beta * tc + gamma * dwkl
        if not stratified:  # train on MWS's loss, log the stratified one (see the class doc)
            with torch.no_grad():
                mi, tc, dwkl = kl_decomposition(z, mu, logvar, self.dataset_size, stratified=True)
                readable = rec + mi + beta * tc + gamma * dwkl
            loss = readable_with_gradient_of(readable, loss)
        return {"loss": loss, "rec": rec, "kl": kl, "mi": mi, "tc": tc, "dwkl": dwkl}

    @classmethod
    def terms_packed(cls, objectives, x, mu, logvar, z, logits, step) -> dict[str, torch.Tensor]:
        """Batched when the runs share the estimator and the training-set size, else run by run."""
        if len({(o.hparams["stratified"], o.dataset_size) for o in objectives}) > 1:
            return super().terms_packed(objectives, x, mu, logvar, z, logits, step)
        n, stratified = objectives[0].dataset_size, objectives[0].hparams["stratified"] == 1.0
        rec = bernoulli_rec_packed(logits, x)
        kl = kl_per_dim(mu, logvar).sum(-1)
        decompose = functools.partial(kl_decomposition, dataset_size=n)
        mi, tc, dwkl = torch.vmap(functools.partial(decompose, stratified=stratified))(z, mu, logvar)
        beta, gamma = hparam_vector(objectives, "beta", kl), hparam_vector(objectives, "gamma", kl)
        loss = rec + mi + beta * tc + gamma * dwkl
        if not stratified:  # as terms(): train on MWS's loss, log the stratified one
            with torch.no_grad():
                mi, tc, dwkl = torch.vmap(functools.partial(decompose, stratified=True))(z, mu, logvar)
                readable = rec + mi + beta * tc + gamma * dwkl
            loss = readable_with_gradient_of(readable, loss)
        return {"loss": loss, "rec": rec, "kl": kl, "mi": mi, "tc": tc, "dwkl": dwkl}
