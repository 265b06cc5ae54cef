"""The untrained-encoder baseline: the metrics of a freshly initialised encoder, the floor a trained
model should beat (a sweep computes it once per dataset, ``<sweep>/baseline/<dataset>/metrics.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def baseline_path(root: str | Path, dataset: str) -> Path:
    """Where a sweep folder ``root`` keeps the baseline's metrics on ``dataset``."""
    return Path(root) / "baseline" / dataset / "metrics.json"


def random_baseline(study: Any, dataset: str, root: Path) -> dict[str, Any]:
    """Metrics of an *untrained* encoder (seed = the study's first seed, the study's arch and
    latents) on ``dataset``, with the study's metrics, sizes and evaluation seed; written to
    ``root/baseline/<dataset>/metrics.json`` (cached: read back when it exists).
    ``study``: a :class:`untwine.studies.Study`."""
    from untwine.train.files import peek_json

    path = baseline_path(root, dataset)
    cached = peek_json(path)
    if cached is not None:
        return cached
    import numpy as np
    import torch

    import untwine.data
    from untwine.metrics import evaluate
    from untwine.models import VAE
    from untwine.train.log import jsonable as _jsonable, write_json
    from untwine.train import RunConfig

    kw = next(kw for name, kw in study.expand() if kw["dataset"] == dataset)
    cfg = RunConfig(**{**kw, "out": str(path.parent)})
    data = untwine.data.load(cfg.dataset, cfg.source, cfg.data_root)
    torch.manual_seed(cfg.seed)
    model = VAE(cfg.arch, data.num_channels, cfg.latents).eval()

    @torch.no_grad()
    def encode(x: Any) -> np.ndarray:
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        return np.concatenate([model.encode(b)[0].numpy() for b in x.split(256)])

    result = evaluate(encode, data, metrics=study.metrics, seed=study.eval_seed, progress=False,
                      sizes=study.sizes, dci_backend=study.dci_backend)
    result = _jsonable(dict(result))
    write_json(path, {**result, "encoder": f"untrained {cfg.arch}, seed {cfg.seed}"})
    return result


__all__ = ["baseline_path", "random_baseline"]
