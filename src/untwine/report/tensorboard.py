"""What TensorBoard shows of a training run at each evaluation besides ``metrics.jsonl``'s rows.

:func:`views` is the built-in :data:`untwine.hooks.tensorboard_views` entry (put there by
``untwine/__init__.py``; the event files themselves are written by
:mod:`untwine.train.tensorboard`, which may not import the metrics or the report):

* ``metrics/mig`` and ``metrics/modularity`` of the mean codes of the run's validation images
  (``eval_images`` of them: a small-sample estimate beside ``untwine evaluate``'s 10,000 points);
* ``traversals``: the report's latent traversal figure (:func:`untwine.report.figures.traversals`,
  rows sorted by validation KL) as an image.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

from ..metrics.mig import mig
from ..metrics.modularity import modularity_from_mi
from .figures import to_png, traversals


def views(run: Any, data: Any, val_x: torch.Tensor, val_factors: np.ndarray, step: int) -> dict[str, Any]:
    """``{"metrics/mig": float, "metrics/modularity": float, "traversals": H x W x 3 uint8}`` of
    ``run``'s model at ``step`` (see the module doc)."""
    return {**metrics(run.model, val_x, val_factors), "traversals": traversal_image(run, data, step)}


@torch.no_grad()
def metrics(model: torch.nn.Module, val_x: torch.Tensor, val_factors: np.ndarray) -> dict[str, float]:
    """MIG and modularity of the mean codes of ``val_x`` (cheap array metrics)."""
    codes = torch.cat([model.encode(val_x[i : i + 256])[0].float()  # type: ignore[operator]
                       for i in range(0, len(val_x), 256)]).cpu().numpy()
    m = mig(codes, np.asarray(val_factors))
    return {"metrics/mig": m["mig"], "metrics/modularity": modularity_from_mi(m["mutual_info"])[0]}


def traversal_image(run: Any, data: Any, step: int) -> np.ndarray:
    """The report's traversal figure of ``run`` as ``H x W x 3`` uint8."""
    from PIL import Image

    png = to_png(traversals(run, data, f"step {step}"))
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
