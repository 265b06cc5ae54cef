"""Training batches straight from the resident ``uint8`` images: no DataLoader, no per-image Python."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .protocol import GroundTruthData


class BatchSampler:
    """Endless uniform random batches (with replacement) of ``float32`` images in ``[0, 1]``.

    Args:
        data: the dataset; its ``images_at`` is called once per batch with a tensor of row indices.
        batch_size: images per batch.
        indices: rows to draw from (e.g. the training split); default all rows.
        seed: seeds the sampler's own ``torch.Generator`` (independent of the global RNG).
        device: where batches are produced. On CUDA, resident images are copied to the device once.

    ``state_dict()``/``load_state_dict()`` capture the generator so a resumed run sees the same
    batches. Yields ``B x C x H x W`` float32 tensors.
    """

    def __init__(
        self,
        data: GroundTruthData,
        batch_size: int,
        indices: np.ndarray | torch.Tensor | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data = data
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        idx = torch.as_tensor(np.arange(len(data)) if indices is None else indices, dtype=torch.int64)
        if idx.numel() == 0:
            raise ValueError(f"{data.name}: no rows to sample from")
        self.indices = idx
        self._all = indices is None
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed))
        self._images = data.images
        if self._images is not None and self.device.type != "cpu":
            self._images = self._images.to(self.device)

    def next_indices(self) -> torch.Tensor:
        """Row indices of the next batch (``B`` int64, CPU)."""
        pos = torch.randint(len(self.indices), (self.batch_size,), generator=self.generator)
        return pos if self._all else self.indices[pos]

    def next(self) -> torch.Tensor:
        rows = self.next_indices()
        if self._images is not None:
            batch = self._images.index_select(0, rows.to(self._images.device))
        else:
            batch = self.data.images_at(rows)
        return batch.to(self.device, non_blocking=True).to(torch.float32).mul_(1.0 / 255.0)

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            yield self.next()

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
