"""The explorer's model side, without any web code: pick inputs by factors, encode, decode to PNG.

:class:`Explorer` encodes a sample of the dataset once (``samples`` images, seed ``seed``) to get
the latent x factor mutual-information matrix exactly as MIG computes it
(:func:`untwine.metrics.mig`: 20 equal-width bins per latent, MI in nats), orders the latents
as the report's traversal figures do (:func:`untwine.report.figures.latent_order`: validation KL,
largest first) and labels each latent with the factor it holds the largest share of
(``MI / H(factor)``).
"""

from __future__ import annotations

import io
import math
import numbers
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..data.protocol import GroundTruthData
from ..errors import UserError
from ..metrics import mig, registry
from ..metrics.udr import KL_THRESHOLD
from ..report.figures import TRAVERSAL_SPAN, TRAVERSAL_VALUES, category_names, latent_order
from ..train.run import Run

MIG_SAMPLES = registry.get("mig").sizes["num_train"]  # images encoded for the MI matrix: MIG's own
INACTIVE_KL = KL_THRESHOLD  # nats: a latent whose KL is below this carries (almost) nothing (as UDR's filter)
Z_MAX = 100.0  # |z_i| allowed: 100 prior standard deviations, far past any slider


def _show(v: Any, n: int = 40) -> str:
    """``repr(v)``, cut to ``n`` characters (request values are echoed in error messages)."""
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def _is_number(v: Any, integral: bool = False) -> bool:
    kind = numbers.Integral if integral else numbers.Real
    return isinstance(v, kind) and not isinstance(v, (bool, np.bool_))


def png(image: np.ndarray | torch.Tensor) -> bytes:
    """PNG bytes of one image ``C x H x W`` (``uint8`` 0..255, or float in ``[0, 1]``; C = 1 or 3)."""
    a = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    a = a[0] if a.shape[0] == 1 else a[:3].transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def strip(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """``n x C x H x W`` -> one ``C x H x (n W + (n-1) pad)`` image, white gaps between."""
    n, c, h, w = images.shape
    out = np.ones((c, h, n * w + (n - 1) * pad), np.float32)
    for i in range(n):
        out[:, :, i * (w + pad) : i * (w + pad) + w] = images[i]
    return out


@dataclass(frozen=True)
class Latent:
    """One latent dimension as the page shows it (``nmi``: MI / H of its ``factor``, in [0, 1])."""

    index: int
    kl: float | None
    factor: str
    nmi: float
    limit: float  # the slider spans [-limit, limit]
    active: bool


class Explorer:
    """A run and its dataset, ready to answer the page's requests.

    Args:
        run: a loaded run (:func:`~untwine.train.load_run`, :func:`untwine.pretrained`).
        data: its dataset (``untwine.data.load(cfg.dataset, cfg.source, cfg.data_root)``).
        samples: images encoded for the MI matrix (10,000: MIG's standard protocol).
        seed: seed of that sample.
        span, n_values: traversal strips set one latent to ``n_values`` values in ``[-span, span]``.
    """

    def __init__(self, run: Run, data: GroundTruthData, *, samples: int = MIG_SAMPLES, seed: int = 0,
                 span: float = TRAVERSAL_SPAN, n_values: int = TRAVERSAL_VALUES) -> None:
        if data.observation_shape != (run.model.channels, 64, 64):
            raise UserError(
                f"dataset {data.name} has observations {data.observation_shape} but the model takes "
                f"{(run.model.channels, 64, 64)}; explore a run with the dataset it was trained on"
            )
        if samples < 2:
            raise UserError(f"samples must be >= 2, got {samples}")
        self.run, self.data = run, data
        self.span, self.n_values = float(span), int(n_values)
        rng = np.random.default_rng(seed)
        factors = data.sample_factors(int(samples), rng)
        x = data.images_at(torch.from_numpy(data.indices_from_factors(factors, rng)))
        codes = run.encode(x)
        result = mig(codes, factors)
        self.samples = int(samples)
        self.mig = float(result["mig"])
        self.mutual_info = np.asarray(result["mutual_info"], np.float64)  # D x K nats
        self.entropy = np.asarray(result["entropy"], np.float64)  # K nats
        with np.errstate(divide="ignore", invalid="ignore"):
            self.nmi = np.where(self.entropy > 0, self.mutual_info / np.where(self.entropy > 0, self.entropy, 1), 0.0)
        self.order = [int(d) for d in latent_order(run, codes)]
        kl = (run.summary.get("val") or {}).get("kl_dims")
        kl = [float(v) for v in kl] if kl and len(kl) == run.model.latents else None
        bound = np.abs(codes).max(0)
        self.latents = [
            Latent(
                index=d, kl=kl[d] if kl else None,
                factor=data.factor_names[int(np.argmax(self.nmi[d]))],
                nmi=float(self.nmi[d].max()),
                limit=float(max(3.0, np.ceil(bound[d] * 2) / 2)),
                active=kl is None or kl[d] >= INACTIVE_KL,
            )
            for d in self.order
        ]

    # ------------------------------------------------------------------ page data
    def info(self) -> dict[str, Any]:
        """Everything the page needs once: run (``caveat``: a shipped model's
        :data:`untwine.pretrained.CAVEATS` entry, else null), factors, latents (sorted), the MI heat map."""
        from .. import pretrained

        cfg = self.run.config
        return {
            "run": {"dir": str(self.run.dir), "dataset": self.data.name, "model": cfg.model, "arch": cfg.arch,
                    "steps": self.run.summary.get("steps"), "mig_sample": self.mig, "samples": self.samples,
                    "caveat": pretrained.caveat(self.run.dir)},
            "factors": [{"name": n, "size": s, "values": category_names(self.data, k)}  # names of categories, or null
                        for k, (n, s) in enumerate(zip(self.data.factor_names, self.data.factor_sizes))],
            "latents": [vars(lat) for lat in self.latents],
            "nmi": [[float(v) for v in self.nmi[d]] for d in self.order],
            "mi_nats": [[float(v) for v in self.mutual_info[d]] for d in self.order],
            "entropy": [float(v) for v in self.entropy],
            "traversal_values": [float(v) for v in self.traversal_values()],
        }

    def traversal_values(self) -> np.ndarray:
        return np.linspace(-self.span, self.span, self.n_values)

    def pick(self, factors: Sequence[int] | None = None, seed: int | None = None) -> dict[str, Any]:
        """An input with the given factor indices (``None``: drawn at random; where several images
        share the factors one is drawn), its mean code and PNGs of it and its reconstruction.

        Returns ``{"index", "factors", "code" (D floats), "input" (PNG bytes), "reconstruction"}``.
        ``ValueError`` naming the problem for a wrong number of factors, a value that is not an
        integer or out of its factor's range, or a bad seed; ``KeyError`` when no image has that
        combination.
        """
        if seed is not None and not (_is_number(seed, integral=True) and 0 <= seed < 2**64):
            raise ValueError(f"seed must be an integer in [0, 2**64), got {_show(seed)}")
        rng = np.random.default_rng(seed)
        if factors is None:
            f = self.data.sample_factors(1, rng)
        else:
            f = np.asarray([self.check_factors(factors)], dtype=np.int64)
        index = int(self.data.indices_from_factors(f, rng)[0])
        x = self.data.images_at(torch.tensor([index]))
        code = self.run.encode(x)[0]
        return {
            "index": index,
            "factors": [int(v) for v in self.data.factors[index]] if self.data.factors is not None else f[0].tolist(),
            "code": [float(v) for v in code],
            "input": png(x[0]),
            "reconstruction": png(self.run.decode(code[None])[0]),
        }

    def check_factors(self, factors: Sequence[int]) -> list[int]:
        """``factors`` as K ints, each in its factor's range; ``ValueError`` naming the first problem."""
        names, sizes = self.data.factor_names, self.data.factor_sizes
        if isinstance(factors, (str, bytes)) or not isinstance(factors, (Sequence, np.ndarray)):
            raise ValueError(f"factors must be a list of {len(sizes)} integers, got {type(factors).__name__}")
        if len(factors) != len(sizes):
            raise ValueError(f"factors must be {len(sizes)} integers ({', '.join(names)}), got {len(factors)}")
        for name, size, v in zip(names, sizes, factors):
            if not _is_number(v, integral=True):
                raise ValueError(f"factor {name} must be an integer, got {_show(v)}")
            if not 0 <= v < size:
                raise ValueError(f"factor {name} = {_show(v)} is out of range: {name} takes 0..{size - 1}")
        return [int(v) for v in factors]

    def code(self, z: Sequence[float]) -> np.ndarray:
        """``z`` as a code (D ``float32``): D finite numbers in ``[-Z_MAX, Z_MAX]`` (a list, tuple
        or 1-d array); ``ValueError`` naming the first problem."""
        d = self.run.model.latents
        if isinstance(z, (str, bytes)) or not isinstance(z, (Sequence, np.ndarray)):
            raise ValueError(f"z must be a list of {d} numbers, got {type(z).__name__}")
        if isinstance(z, np.ndarray) and z.ndim != 1:
            raise ValueError(f"z must be {d} numbers, got an array of shape {z.shape}")
        if len(z) != d:
            raise ValueError(f"z must be {d} numbers (one per latent), got {len(z)}")
        c = np.empty(d, np.float32)
        for i, v in enumerate(z):
            if not _is_number(v):
                raise ValueError(f"z[{i}] must be a number, got {_show(v)}")
            try:
                f = float(v)
            except OverflowError:  # an int beyond float
                f = math.inf
            if math.isnan(f):
                raise ValueError(f"z[{i}] must be a number, got nan")
            if not -Z_MAX <= f <= Z_MAX:
                raise ValueError(f"z[{i}] = {_show(v)} is out of range: latent values lie in [-{Z_MAX:g}, {Z_MAX:g}]")
            c[i] = f
        return c

    def decode(self, z: Sequence[float]) -> tuple[bytes, float]:
        """PNG of the image decoded from code ``z`` (D floats) and the milliseconds it took
        (decode + PNG encoding)."""
        c = self.code(z)
        t0 = time.perf_counter()
        out = png(self.run.decode(c[None])[0])
        return out, (time.perf_counter() - t0) * 1e3

    def traversals(self, z: Sequence[float]) -> list[tuple[int, bytes]]:
        """One PNG strip per latent (in :attr:`order`): ``z`` with that latent set to each of
        :meth:`traversal_values`, decoded in one batch."""
        return self.traversal_strips(self.run.decode(self.traversal_codes(self.code(z))))

    def traversal_codes(self, c: np.ndarray) -> np.ndarray:
        """The codes of :meth:`traversals` for a checked code ``c``: ``(latents x values) x D``,
        latent by latent in :attr:`order`."""
        values = self.traversal_values()
        grid = np.repeat(c[None, None], len(self.order), 0).repeat(len(values), 1)
        for i, d in enumerate(self.order):
            grid[i, :, d] = values
        return grid.reshape(-1, c.shape[0])

    def traversal_strips(self, images: np.ndarray) -> list[tuple[int, bytes]]:
        """The decoded :meth:`traversal_codes` as ``(latent, PNG strip)``, in :attr:`order`."""
        imgs = images.reshape(len(self.order), self.n_values, *images.shape[1:])
        return [(d, png(strip(imgs[i]))) for i, d in enumerate(self.order)]
