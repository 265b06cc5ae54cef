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
        device: where batches are produced. On CUDA, resident images are copied to the device once
            and the row indices are drawn there too (a CUDA generator), so a batch costs the host
            no synchronisation: no index upload per step. The batch stream therefore depends on
            the device type (CPU and CUDA generators differ); each is reproducible.

    ``state_dict()``/``load_state_dict()`` capture the generator so a resumed run sees the same
    batches; a state saved on the other device type (a run moved between CPU and GPU) reseeds the
    generator deterministically from it. Yields ``B x C x H x W`` float32 tensors.
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
        self._all = indices is None
        self._images = data.images_on(self.device)  # one device copy per dataset, shared
        on_device = self._images is not None and self.device.type != "cpu"
        self.index_device = self.device if on_device else torch.device("cpu")
        self.indices = idx.to(self.index_device)
        self.generator = torch.Generator(device=self.index_device)
        self.generator.manual_seed(int(seed))

    def next_indices(self) -> torch.Tensor:
        """Row indices of the next batch (``B`` int64, on :attr:`index_device`: the batch device
        when the images are resident there, else the CPU)."""
        pos = torch.randint(
            len(self.indices), (self.batch_size,), generator=self.generator, device=self.index_device
        )
        return pos if self._all else self.indices[pos]

    def next(self) -> torch.Tensor:
        return self.batch_at(self.next_indices())

    def batch_at(self, rows: torch.Tensor) -> torch.Tensor:
        """The images at ``rows`` (any shape of int64 row indices, e.g. ``K*B`` for a pack) as
        ``float32`` in ``[0, 1]`` on the sampler's device: one gather, one conversion."""
        if self._images is not None:
            batch = self._images.index_select(0, rows.to(self._images.device))
        else:
            batch = self.data.images_at(rows.cpu())
        return batch.to(self.device, non_blocking=True).to(torch.float32).mul_(1.0 / 255.0)

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            yield self.next()

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "device_type": self.index_device.type}

    def load_state_dict(self, state: dict) -> None:
        saved = state["generator"]
        if state.get("device_type", "cpu") == self.index_device.type:
            self.generator.set_state(saved)
        else:  # another generator kind: continue with a stream derived from the saved state
            self.generator.manual_seed(_derived_seed(saved))


def _derived_seed(state: torch.Tensor) -> int:
    """A 63-bit seed determined by a generator state (any kind): for moving runs between devices."""
    import hashlib

    digest = hashlib.sha256(state.cpu().numpy().tobytes()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
