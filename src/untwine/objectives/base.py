"""The objective contract and the terms every objective shares.

Units: nats per image. ``rec`` is the Bernoulli negative log-likelihood of the decoder's logits
summed over pixels (and channels), ``kl`` is KL(q(z|x) || N(0, I)) summed over latents; both are
averaged over the batch. Because both are per-image sums, ``beta`` keeps the meaning it has in
the papers (a sum-vs-mean mix-up silently rescales beta by the number of pixels).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError


def bernoulli_rec(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reconstruction error, nats per image: ``-sum_pixels log p(x | logits)``, batch mean. Scalar."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent, batch mean: ``B x D`` -> ``D`` (nats); with
    a leading runs axis (a pack) ``K x B x D`` -> ``K x D``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean(-2)


def bernoulli_rec_packed(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """:func:`bernoulli_rec` of K runs at once: ``K x B x C x H x W`` -> ``K`` (nats per image)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(2).sum(-1).mean(-1)


def hparam_vector(objectives: Sequence["Objective"], name: str, like: torch.Tensor) -> torch.Tensor:
    """``[o.hparams[name] for o in objectives]`` as a float32 ``K`` tensor on ``like``'s device,
    made once per pack and device (no host-to-device copy per step)."""
    key = (name, like.device, tuple(id(o) for o in objectives))
    cache = objectives[0].__dict__.setdefault("_hparam_vectors", {})
    if key not in cache:
        cache[key] = torch.tensor([float(o.hparams[name]) for o in objectives], device=like.device)
    return cache[key]


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
    (a pack then swaps the run's own RNG in around it); the built-ins set it False.
    ``batched_terms`` says whether the class overrides :meth:`terms_packed` with batched
    arithmetic; a pack of runs of one such class (with ``random_terms`` false) computes all K
    runs' terms in one call, otherwise it calls each run's ``terms``.
    ``pairs`` says whether the objective trains on pairs of images that share all factors but
    ``k`` (weak supervision, :mod:`untwine.objectives.weak`): its batches are ``2B`` images (pair
    ``i`` = rows ``i`` and ``B + i``, :class:`untwine.data.pairs.PairSampler`) and the model samples
    ``z`` from :meth:`aggregate`'s posteriors; its ``hparams`` then hold ``k`` and ``dlib_pairs``.
    ``uses_step`` says whether ``terms`` depends on ``step`` (a compiled training step then leaves
    ``terms`` out of the compiled graph, which would otherwise be specialised to one step).
    """

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, float]] = {}
    # Hyperparameters whose default follows the run's learning rate: name -> ratio. A run that
    # does not set one gets ``ratio * RunConfig.lr`` (:meth:`untwine.train.RunConfig.resolved`,
    # recorded in config.json); ``params`` keeps the value for an objective built without a run.
    lr_defaults: ClassVar[dict[str, float]] = {}
    has_extra_step: ClassVar[bool] = False
    random_terms: ClassVar[bool] = True
    batched_terms: ClassVar[bool] = False
    uses_step: ClassVar[bool] = False
    pairs: ClassVar[bool] = False
    min_batch_size: ClassVar[int] = 1
    # Hyperparameters that must be > 0 (every one must be finite and >= 0), checked by validate().
    positive: ClassVar[tuple[str, ...]] = ()
    # On/off switches (0 or 1; validate() says what each value means): left out of a run's
    # description while off (hparams_text).
    switches: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, dataset_size: int, latents: int, **hparams: Any) -> None:
        super().__init__()
        self.hparams: dict[str, float] = self.check_hparams(hparams, dataset_size=dataset_size, latents=latents)
        self.dataset_size = int(dataset_size)
        self.latents = int(latents)
        self.extra_optimizer: torch.optim.Optimizer | None = None

    @classmethod
    def check_hparams(cls, hparams: Mapping[str, Any], *, lr: float | None = None, dataset_size: int = 1,
                      latents: int = 1) -> dict[str, float]:
        """The one check of hyperparameters (``__init__``, ``RunConfig``, the CLI and study files
        call it): ``hparams`` over the defaults in ``params`` (those in ``lr_defaults`` from ``lr``
        when given), as floats, after :meth:`validate`. Raises ``UserError`` naming an unknown
        hyperparameter or a bad value. Builds nothing (no networks, no random draws)."""
        unknown = sorted(set(hparams) - set(cls.params))
        if unknown:
            raise UserError(f"{cls.name}: unknown hyperparameter(s) {', '.join(unknown)}; "
                            f"it takes {', '.join(cls.params) or 'none'}")
        follow_lr = {} if lr is None else {k: ratio * lr for k, ratio in cls.lr_defaults.items()}
        merged = {**cls.params, **follow_lr, **hparams}
        probe = cls.__new__(cls)  # validate() reads only these attributes
        probe.__dict__.update(hparams=merged, dataset_size=int(dataset_size), latents=int(latents))
        try:
            probe.validate()
        except ValueError as e:  # by validate's contract, a bad value the user gave
            raise e if isinstance(e, UserError) else UserError(str(e)) from None
        return {k: float(v) for k, v in merged.items()}

    def validate(self) -> None:
        """Raise ``ValueError`` naming a bad hyperparameter (shown to the user as a
        :class:`~untwine.errors.UserError`). Default: all must be finite and >= 0, those in
        ``positive`` > 0; an objective with more rules extends it. Called by
        :meth:`check_hparams` on an unbuilt instance: read only ``hparams``, ``dataset_size`` and
        ``latents``."""
        for k, v in self.hparams.items():
            if not (float(v) >= 0.0 and float(v) != float("inf")):
                raise ValueError(f"{self.name}: {k} must be a finite number >= 0, got {v}")
        for k in self.positive:
            if not self.hparams[k] > 0:
                raise ValueError(f"{self.name}: {k} must be > 0, got {self.hparams[k]}")

    @classmethod
    def bf16_learns_the_same(cls, hparams: Mapping[str, float]) -> bool:
        """Whether ``precision = "auto"`` may train this objective in bf16, given its checked
        ``hparams`` (:meth:`check_hparams`). True unless bf16 was measured to learn less than fp32
        (``docs/results/precision_check``); an objective with such a measurement overrides it."""
        return True

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

    @classmethod
    def terms_packed(
        cls,
        objectives: Sequence["Objective"],
        x: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        z: torch.Tensor,
        logits: torch.Tensor,
        step: int,
    ) -> dict[str, torch.Tensor]:
        """The terms of K runs of this objective at once (a pack): every input has a
        leading ``K`` axis (``x: K x B x C x H x W``, ``mu: K x B x D``...), ``objectives[k]`` is run
        ``k``'s objective (this class, its own hyperparameters), and each returned term is stacked
        over the runs (``loss: K``). Must equal :meth:`terms` run by run up to float rounding.

        Default: :meth:`terms` run by run (the reference; a pack then calls ``terms`` itself).
        Objectives override it with batched arithmetic (one set of kernels for all K runs, which
        is what makes a pack fast on a GPU) and set ``batched_terms = True``; a pack uses it when
        ``random_terms`` is false (it does not swap RNGs around it)."""
        per_run = [
            o.terms(*args, step)
            for o, args in zip(objectives, zip(*(t.unbind(0) for t in (x, mu, logvar, z, logits))))
        ]
        keys = list(per_run[0])
        if any(list(t) != keys for t in per_run):
            raise ValueError(f"{cls.name}: the runs' terms have different keys; they cannot be stacked")
        return {k: torch.stack([t[k] for t in per_run]) for k in keys}

    def aggregate(self, mu: torch.Tensor, logvar: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair objectives only: the posteriors ``z`` is sampled from, given the encoder's ``mu,
        logvar: 2B x D`` of ``B`` pairs and their ``labels: B`` (a changed factor per pair)."""
        raise NotImplementedError(f"{self.name} does not train on pairs")

    def extra_step(self, z: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """Train the objective's own networks one step on detached codes ``z: B x D``; return logs."""
        return {}
