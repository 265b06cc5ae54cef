"""Pairs of observations that share all factors but ``k`` (weak supervision, Locatello et al. 2020).

:class:`Pairing` turns a batch of factor vectors into partners; :class:`PairSampler` is the
training stream of pairs, a drop-in for :class:`~untwine.data.BatchSampler`: each batch is
``2B x C x H x W``, rows ``0..B-1`` the first images and ``B..2B-1`` their partners (pair ``i`` is
rows ``i`` and ``B + i``), and :attr:`PairSampler.labels` (``B`` int64) says, per pair, one factor
that changed (the label that disentanglement_lib's ``*_labels`` models use).

Two ways to draw a partner, both seeded by the sampler's own ``torch.Generator``:

* ``paper`` (default): exactly ``k`` factors change (``k = 0``: "Rnd", ``k`` uniform over
  ``1..K-1`` per pair, ``K`` the number of factors with more than one value) and each changed
  factor takes a value *different* from the old one (uniform over the others), so the two
  images share exactly ``K - k`` factors. The label is one changed factor, uniform among them.
* ``dlib``: ``simple_dynamics`` of disentanglement_lib's ``weak/train_weak_lib.py`` as coded:
  ``k_obs = k`` (``k = 0``: uniform over ``1..K-1``), then *either 1 or k_obs* factors (one
  coin flip) are redrawn uniformly over *all* their values, so a "changed" factor may keep its
  value; the label is the last redrawn factor. This differs from the paper (dlib issues 31 and
  36): in half the pairs one factor changes whatever ``k`` is, and pairs may be identical.
  (dlib draws the new values from numpy's global RNG; here every draw is from the sampler's
  generator, so a run is reproducible.)

A pair whose ``k`` would change every factor shares none and is rejected (``ValueError``).
The first image of a pair is drawn from the sampler's rows (the training split); its partner is
the image with the new factors, wherever it lies in the dataset (dlib has no split at all).
On a dataset that is not a full factor grid (a custom one), a partner whose factors no image
has is redrawn, up to :data:`MAX_REDRAWS` times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import check_choice
from .protocol import GroundTruthData
from .sampler import BatchSampler

MODES = ("paper", "dlib")
MAX_REDRAWS = 100


def changeable(sizes: tuple[int, ...] | list[int]) -> list[int]:
    """Indices of the factors with more than one value (the only ones a pair can change)."""
    return [i for i, s in enumerate(sizes) if int(s) > 1]


def check_k(k: int, sizes: tuple[int, ...] | list[int], name: str = "dataset") -> None:
    """Raise ``ValueError`` unless ``k`` (0 = Rnd) leaves the pair at least one shared factor."""
    n = len(changeable(sizes))
    if k < 0 or int(k) != k:
        raise ValueError(f"k must be an integer >= 0 (0: k uniform over 1..K-1 per pair), got {k}")
    if n < 2:
        raise ValueError(f"{name}: pairs need at least 2 factors with more than one value; it has {n}")
    if k >= n:
        raise ValueError(
            f"k={k:g} changes every factor of {name} ({n} that vary): the two images of a pair "
            f"would share no factor; choose k in 1..{n - 1}, or 0 for k uniform over 1..{n - 1} per pair"
        )


@dataclass(frozen=True)
class Pairing:
    """How partners are drawn on a dataset with factor ``sizes``: ``k`` factors changed per pair
    (0: "Rnd", uniform over ``1..K'-1`` per pair, ``K'`` the factors that vary) in ``mode``
    ``"paper"`` or ``"dlib"`` (module docstring). Checked once, here: an unknown mode, or a ``k``
    that leaves a pair no shared factor, raises ``ValueError`` naming ``name``."""

    sizes: tuple[int, ...]
    k: int = 1
    mode: str = "paper"
    name: str = "dataset"
    _on: dict = field(init=False, repr=False, compare=False)  # device -> (varying factors, sizes)

    def __post_init__(self) -> None:
        check_choice(self.mode, MODES, "pair mode")
        check_k(self.k, self.sizes, self.name)
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))
        object.__setattr__(self, "k", int(self.k))
        object.__setattr__(self, "_on", {})

    def _tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The indices of the factors that vary and all factors' sizes, int64 on ``device`` (made
        once per device)."""
        if device not in self._on:
            self._on[device] = (torch.tensor(changeable(self.sizes), dtype=torch.int64, device=device),
                                torch.tensor(self.sizes, dtype=torch.int64, device=device))
        return self._on[device]

    def draw(self, f: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Partners of factor vectors ``f: B x K`` (int64 indices): ``(f2: B x K, labels: B)``, on
        ``f``'s device. Draws only from ``generator``."""
        b, dev = f.shape[0], f.device
        var, size_t = self._tensors(dev)
        n = len(var)
        if self.k == 0:
            k_obs = torch.randint(1, n, (b,), generator=generator, device=dev)
        else:
            k_obs = torch.full((b,), self.k, dtype=torch.int64, device=dev)
        if self.mode == "dlib":  # random_state.choice([1, k_observed])
            one = torch.rand(b, generator=generator, device=dev) < 0.5
            k_obs = torch.where(one, torch.ones_like(k_obs), k_obs)
        # a uniform random order of the varying factors per pair; the first k_obs of it change
        order = var[torch.argsort(torch.rand(b, n, generator=generator, device=dev), dim=1)]
        chosen = torch.arange(n, device=dev)[None, :] < k_obs[:, None]  # B x n
        sz = size_t[order]  # B x n, sizes of the ordered factors
        old = f.gather(1, order)
        u = torch.rand(b, n, generator=generator, device=dev)
        if self.mode == "paper":  # uniform over the size - 1 other values
            new = (old + 1 + (u * (sz - 1)).long().clamp(max=sz - 2)) % sz
        else:  # uniform over all values (may equal the old one)
            new = (u * sz).long().clamp(max=sz - 1)
        f2 = f.clone()
        f2.scatter_(1, order, torch.where(chosen, new, old))
        # label: paper, one changed factor uniformly (the first of the random order); dlib, the last
        # one redrawn (index_list[-1]), which is also uniform among them
        pos = torch.zeros_like(k_obs) if self.mode == "paper" else k_obs - 1
        labels = order.gather(1, pos[:, None])[:, 0]
        return f2, labels


def pair_factors(
    f: torch.Tensor, sizes: tuple[int, ...] | list[int], k: int, mode: str, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Partners of factor vectors ``f: B x K``: ``Pairing(sizes, k, mode).draw(f, generator)``."""
    return Pairing(tuple(sizes), k, mode).draw(f, generator)


def partner_rows(
    data: GroundTruthData, f: torch.Tensor, pairing: Pairing, generator: torch.Generator,
    radix: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dataset rows of partners for factor vectors ``f: B x K`` (int64) and their labels (``B``
    each, on ``f``'s device): ``pairing.draw``, then the image with those factors. On a dataset
    that is not a full grid, a partner no image has is redrawn (up to :data:`MAX_REDRAWS` times).
    ``radix``: ``data.radix`` as a tensor on ``f``'s device (built when not given)."""
    f2, labels = pairing.draw(f, generator)
    if data.full_grid:
        if radix is None:
            radix = torch.as_tensor(data.radix, dtype=torch.int64, device=f.device)
        return f2 @ radix, labels
    for _ in range(MAX_REDRAWS):  # not a full grid: redraw partners no image has
        missing = torch.from_numpy(~data.has_factors(f2.cpu().numpy())).to(f2.device)
        if not missing.any():
            return torch.from_numpy(data.index_of(f2.cpu().numpy())).to(f2.device), labels
        g2, l2 = pairing.draw(f[missing], generator)
        f2[missing], labels[missing] = g2, l2
    raise ValueError(
        f"{data.name}: after {MAX_REDRAWS} draws some images still have no partner that "
        f"shares all factors but k={pairing.k}; the dataset covers too little of its factor grid "
        "for pairs (add images, or use fewer factors)"
    )


class PairSampler(BatchSampler):
    """Endless batches of ``B`` pairs from ``data`` (see the module docstring): ``next()`` gives
    ``2B x C x H x W`` float32 in ``[0, 1]`` (first images, then partners) and sets
    :attr:`labels` (``B`` int64, on the CPU). ``k`` (0 = Rnd) and ``mode`` as :class:`Pairing`.
    Same arguments, seeding, devices and ``state_dict`` as :class:`BatchSampler` (one generator
    draws the rows and the partners, so a resumed run sees the same pairs)."""

    def __init__(
        self,
        data: GroundTruthData,
        batch_size: int,
        indices: np.ndarray | torch.Tensor | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        *,
        k: int = 1,
        mode: str = "paper",
    ) -> None:
        self.pairing = Pairing(tuple(data.factor_sizes), k, mode, data.name)
        if data.factors is None:
            raise ValueError(f"{data.name}: pairs need the dataset's factor labels; it has none")
        super().__init__(data, batch_size, indices, seed, device)
        self.factors = torch.as_tensor(np.asarray(data.factors), dtype=torch.int64).to(self.index_device)
        self.radix = torch.as_tensor(data.radix, dtype=torch.int64, device=self.index_device)
        self.labels = torch.zeros(self.batch_size, dtype=torch.int64)

    @property
    def k(self) -> int:
        """Factors changed per pair (0: Rnd), as :attr:`pairing` says."""
        return self.pairing.k

    @property
    def mode(self) -> str:
        """``"paper"`` or ``"dlib"``, as :attr:`pairing` says."""
        return self.pairing.mode

    def partners(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of partners for factor vectors ``f: B x K`` and their labels (:func:`partner_rows`)."""
        return partner_rows(self.data, f, self.pairing, self.generator, self.radix)

    def next_indices(self) -> torch.Tensor:
        """Rows of the next ``B`` pairs: ``2B`` int64, first images then partners; sets :attr:`labels`."""
        rows = super().next_indices()
        rows2, labels = self.partners(self.factors[rows])
        self.labels = labels.cpu()
        return torch.cat([rows, rows2])


__all__ = ["MODES", "PairSampler", "Pairing", "changeable", "check_k", "pair_factors", "partner_rows"]
