"""Encode every image of a dataset once, then score with table look-ups instead of re-encoding.

At the reference sample sizes the suite draws about 2.9 million observations (the beta-VAE score
alone encodes ``2 x 64 x 15,000``), four times the 737,280 images of dSprites. With an encoder that
is a conv net, encoding is nearly all of the cost, so :func:`untwine.metrics.evaluate` encodes the
``len(data)`` images once into a ``len(data) x D`` table and hands the metrics a :class:`CodeTable`:
a stand-in for ``(data, encode)`` whose "observations" are row indices and whose encoder looks the
codes up. The metrics draw exactly the same factors, images and random numbers as with direct
encoding (``indices_from_factors`` consumes ``rng`` as ``observations_from_factors`` does), so the
scores are the same up to the encoder's batch-size rounding.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch

from .utils import CHUNK_SIZE, check_sizes, encode_chunks


def supports_table(data: Any) -> bool:
    """True if ``data`` can be enumerated (``len``, ``images_at``, ``indices_from_factors``) and a
    row is one image: not for datasets that draw each observation afresh (``random_observations``,
    e.g. color-dsprites, where the metrics, as disentanglement_lib's, see a new draw per sample)."""
    return (all(hasattr(data, a) for a in ("indices_from_factors", "images_at", "__len__"))
            and not getattr(data, "random_observations", False))


class CodeTable:
    """Codes of all ``len(data)`` images (``N x D`` float64), with the metrics' data API on top.

    Use ``table`` as the ``data`` and ``table.encode`` as the ``encode`` argument of any metric:
    ``table.observations_from_factors(f, rng)`` returns row indices (``n`` int64) and
    ``table.encode(rows)`` their codes (``n x D``).
    """

    def __init__(
        self,
        data: Any,
        encode: Callable[[Any], Any],
        chunk_size: int = CHUNK_SIZE,
        progress: bool = False,
    ) -> None:
        if not supports_table(data):
            raise ValueError(
                f"{type(data).__name__} cannot be enumerated: a code table needs len(data), "
                "images_at(rows) and indices_from_factors(factors, rng) (untwine.data.GroundTruthData has them)"
            )
        check_sizes(chunk_size=chunk_size)
        from tqdm.auto import tqdm

        from ..data.protocol import to_float

        self.data = data
        self.factor_sizes = data.factor_sizes
        self.num_factors = data.num_factors
        n = len(data)
        if n == 0:
            raise ValueError(f"{type(data).__name__} has no images to encode")

        def chunks() -> Iterator[torch.Tensor]:
            with tqdm(total=n, desc="encode all images", unit="img", disable=not progress, leave=False) as bar:
                for start in range(0, n, chunk_size):
                    rows = torch.arange(start, min(n, start + chunk_size))
                    yield to_float(data.images_at(rows))
                    bar.update(len(rows))

        self.codes = encode_chunks(encode, chunks(), n)

    def __len__(self) -> int:
        return len(self.codes)

    def sample_factors(self, n: int, rng: Any) -> np.ndarray:
        return self.data.sample_factors(n, rng)

    def observations_from_factors(self, factors: np.ndarray, rng: Any) -> np.ndarray:
        """Row indices (``n`` int64) standing in for the observations of ``factors``."""
        return np.asarray(self.data.indices_from_factors(factors, rng), dtype=np.int64)

    def encode(self, rows: np.ndarray) -> np.ndarray:
        """Codes (``n x D``) of the rows returned by :meth:`observations_from_factors`."""
        return self.codes[np.asarray(rows, dtype=np.int64)]
