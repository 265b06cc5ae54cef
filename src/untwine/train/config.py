"""``RunConfig``: the one place run defaults live.

The CLI flags, a TOML file and the Python API all build a :class:`RunConfig`; the run folder
stores the *resolved* config (``config.json``: hyperparameters filled in from the objective's
defaults, automatic intervals turned into numbers) so a run can be reproduced or resumed from its
folder alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import MissingExtraError, MissingFileError, UserError, choice_message

DEVICES = ("auto", "cpu", "cuda")
# Defaults that follow other fields (RunConfig.resolved): evaluate every steps // 20 steps (at most
# 1000), checkpoint every steps // 10 (at most 5000), into runs/<model>-<dataset>-seed<seed>.
EVAL_EVERY_DIV, EVAL_EVERY_MAX = 20, 1000
CHECKPOINT_EVERY_DIV, CHECKPOINT_EVERY_MAX = 10, 5000
DEFAULT_OUT = "runs/{model}-{dataset}-seed{seed}"
# "on": torch.compile's "reduce-overhead" mode (CUDA graphs) on CUDA, its "default" mode on CPU.
COMPILE_MODES = ("off", "on", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
PRECISIONS = ("auto", "fp32", "bf16")

# Fields that may differ between a run and its resumption (how the step runs, not what it computes).
RESUMABLE_CHANGES = frozenset(
    {"steps", "eval_every", "checkpoint_every", "log_every", "device", "out", "compile", "threads", "tensorboard",
     "score"}
)


@dataclass
class RunConfig:
    """Everything that defines a training run.

    Units: ``steps`` are optimizer steps (one batch each), ``lr`` is Adam's step size,
    ``eval_images`` are validation images per evaluation. ``None`` intervals are chosen from
    ``steps`` by :meth:`resolved` (``eval_every = clip(steps // 20, 1, 1000)``,
    ``checkpoint_every = clip(steps // 10, 1, 5000)``); ``out=None`` becomes
    ``runs/<model>-<dataset>-seed<seed>``.

    Speed options (the training step only; evaluation and checkpoints are unchanged):
    ``compile`` runs the step's forward, terms and logged quantities (the model alone for
    objectives that use the step or train networks of their own), and so their backward, through
    ``torch.compile``: ``"on"`` picks ``"reduce-overhead"`` (CUDA graphs) on CUDA and
    ``"default"`` on CPU, or name a ``torch.compile`` mode; the first steps pay the compilation. ``precision =
    "bf16"`` runs the encoder/decoder under bfloat16 autocast (the objective stays float32);
    ``"auto"`` (the default) is resolved by :func:`untwine.train.speed.resolve_precision`: ``"bf16"``
    on CUDA devices with native bfloat16 and on CPUs where a one-off measurement shows it pays
    (:func:`untwine.train.speed.cpu_bf16_pays`, docs/speed.md), ``"fp32"`` elsewhere; the resolved
    value is what ``config.json`` records.
    ``threads``: torch intra-op threads for this run (results depend on it in the last float bits,
    so it is recorded like the seed); ``0`` resolves to torch's default for this process
    (``torch.get_num_threads()``: the physical cores, or ``OMP_NUM_THREADS``).
    ``tensorboard``: also write TensorBoard event files to ``out/tb/``
    (:mod:`untwine.train.tensorboard`; needs ``pip install 'untwine[tensorboard]'``); the run
    itself (weights, ``metrics.jsonl``) is the same either way.
    ``score``: suite metrics (comma-separated names, e.g. ``"mig,gaussian_tc"``; ``""``: none) scored
    at each evaluation as ``untwine evaluate --metrics`` would score the checkpoint at that step
    (standard sizes, seed 0), written to ``metrics.jsonl`` as ``split = "score"`` rows and to
    ``summary.json``'s ``score``: a curve of MIG against steps without a script around the run. It
    costs the metrics' time at each evaluation (MIG: ~10,000 images encoded); training is unchanged.
    """

    dataset: str = "dsprites"
    source: str | None = None
    data_root: str | None = None
    model: str = "beta-vae"
    hparams: dict[str, float] = field(default_factory=dict)
    arch: str = "conv64"
    latents: int = 10
    steps: int = 300_000
    batch_size: int = 64
    lr: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    seed: int = 0
    out: str | None = None
    eval_every: int | None = None
    eval_images: int = 2048
    val_fraction: float = 0.1
    checkpoint_every: int | None = None
    log_every: int = 100
    device: str = "auto"
    compile: str = "off"
    precision: str = "auto"
    threads: int = 0
    tensorboard: bool = False
    score: str = ""

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hparams"] = dict(self.hparams)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        """Build from a plain dict (``config.json``, a TOML table); unknown keys raise ValueError."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise UserError(
                f"unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(known)} "
                "(put hyperparameters such as beta under [hparams])"
            )
        kw: dict[str, Any] = {}
        for k, v in d.items():
            if k == "hparams":
                if not isinstance(v, dict):
                    raise UserError(f"hparams must be a table of name = number, got {v!r}")
                kw[k] = {str(n): _number(f"hparams.{n}", x) for n, x in v.items()}
            else:
                kw[k] = _coerce(k, v, cls.__dataclass_fields__[k].default)
        return cls(**kw)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "RunConfig":
        """Read a run's ``config.json``; damage raises ``RunFolderError`` naming the file."""
        from .files import read_config

        return read_config(path, cls.from_dict)

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "RunConfig":
        """Read a TOML file of top-level keys (``model = "beta-vae"``) plus an ``[hparams]`` table."""
        p = Path(path)
        if not p.is_file():
            raise MissingFileError(f"config file {p} not found")
        try:
            with p.open("rb") as f:
                d = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"{p}: invalid TOML: {e}") from None
        return cls.from_dict(d)

    def to_toml(self) -> str:
        """TOML text that :meth:`from_toml` reads back to an equal config (``None`` keys omitted)."""
        lines = []
        for k, v in self.to_dict().items():
            if k != "hparams" and v is not None:
                lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
        lines.append("[hparams]")
        lines += [f"{k} = {_toml_value(float(v))}" for k, v in self.hparams.items()]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ checks
    def validate(self, *, check_dataset: bool = True) -> None:
        """Raise ``ValueError`` naming the first bad value and how to fix it (no work is done)."""
        self.resolved(check_dataset=check_dataset)

    def resolved(self, *, check_dataset: bool = True) -> "RunConfig":
        """A validated copy with hyperparameters filled from the objective's ``params`` (those in
        its ``lr_defaults`` from ``lr``: FactorVAE's ``d_lr = lr``) and the automatic (``None``)
        values chosen. Raises ``ValueError`` for any bad value.

        A config is resolved once: the result is kept on this object (not pickled: ``"auto"``
        depends on the machine) and a later call returns a copy of it while the fields are
        unchanged, so ``untwine train``'s check and the run itself, or a sweep's plan check and
        its packing, resolve a run once. A changed field, or a copy made with
        ``dataclasses.replace``, resolves anew."""
        import torch

        from .. import objectives
        from ..models import ARCHITECTURES
        from .speed import resolve_precision

        key = (repr(self.to_dict()), torch.get_num_threads())
        kept = self.__dict__.get("_resolution")
        if kept is not None and kept[0] == key and (kept[1] or not check_dataset):
            return dataclasses.replace(kept[2], hparams=dict(kept[2].hparams))

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise UserError(msg)

        for name in ("steps", "batch_size", "latents", "eval_images", "log_every"):
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 1, f"{name} must be an integer >= 1, got {v!r}")
        for name in ("eval_every", "checkpoint_every"):
            v = getattr(self, name)
            need(v is None or (isinstance(v, int) and v >= 1), f"{name} must be an integer >= 1, got {v!r}")
        need(isinstance(self.seed, int) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")
        need(
            isinstance(self.threads, int) and self.threads >= 0,
            f"threads must be an integer >= 0 (0: torch's default), got {self.threads!r}",
        )
        need(math.isfinite(self.lr) and self.lr > 0, f"lr must be a finite number > 0, got {self.lr!r}")
        for name in ("adam_beta1", "adam_beta2"):
            v = getattr(self, name)
            need(0.0 <= v < 1.0, f"{name} must be in [0, 1), got {v!r}")
        need(
            0.0 < self.val_fraction < 1.0,
            f"val_fraction must be in (0, 1) (validation images are needed), got {self.val_fraction!r}",
        )
        need(
            self.arch in ARCHITECTURES,
            choice_message(self.arch, ARCHITECTURES, "arch"),
        )
        dev = self.device
        need(
            dev in DEVICES or dev.startswith("cuda:"),
            choice_message(dev, DEVICES, "device"),
        )
        need(
            self.compile in COMPILE_MODES,
            choice_message(self.compile, COMPILE_MODES, "compile"),
        )
        need(
            self.precision in PRECISIONS,
            choice_message(self.precision, PRECISIONS, "precision"),
        )
        need(isinstance(self.tensorboard, bool), f"tensorboard must be true or false, got {self.tensorboard!r}")
        if self.tensorboard:
            require_tensorboard()  # MissingExtraError (a UserError) naming the extra to install
        need(isinstance(self.score, str), f"score must be a string of metric names (e.g. \"mig,gaussian_tc\"), "
             f"got {self.score!r}")
        score = _score_names(self.score)
        if dev.startswith("cuda"):
            need(
                torch.cuda.is_available(),
                f"device {dev!r} requested but CUDA is not available; use --device cpu or auto",
            )

        cls = objectives.get(self.model)  # ValueError naming the known models
        hparams = cls.check_hparams(self.hparams, lr=self.lr, latents=self.latents)  # defaults merged, validated
        need(
            self.batch_size >= cls.min_batch_size,
            f"{cls.name} needs batch_size >= {cls.min_batch_size}, got {self.batch_size}",
        )

        if check_dataset:
            from .. import data

            data.get(self.dataset).check_source(self.source)  # an unknown name: a UserError

        eval_every = self.eval_every or min(EVAL_EVERY_MAX, max(1, self.steps // EVAL_EVERY_DIV))
        checkpoint_every = self.checkpoint_every or min(CHECKPOINT_EVERY_MAX, max(1, self.steps // CHECKPOINT_EVERY_DIV))
        out = self.out or DEFAULT_OUT.format(model=cls.name, dataset=self.dataset, seed=self.seed)
        resolved = dataclasses.replace(
            self,
            precision=resolve_precision(
                self.precision, dev, self.threads or torch.get_num_threads(), cls.name, hparams
            ),
            threads=self.threads or torch.get_num_threads(),
            model=cls.name,
            hparams=hparams,
            eval_every=eval_every,
            checkpoint_every=checkpoint_every,
            out=str(out),
            score=score,
        )
        self.__dict__["_resolution"] = (key, check_dataset, resolved)
        return dataclasses.replace(resolved, hparams=dict(hparams))

    def __getstate__(self) -> dict[str, Any]:
        # a resolution belongs to this process (precision "auto" depends on the machine)
        return {k: v for k, v in self.__dict__.items() if k != "_resolution"}


def _score_names(text: str) -> str:
    """``score`` as registered metric names (:data:`untwine.hooks.score_names`, put there by the
    package from the metrics layer); ``""`` stays ``""``."""
    from .. import hooks

    if not text.strip():
        return ""
    if hooks.score_names is None:  # pragma: no cover - untwine/__init__.py always sets it
        raise UserError("score needs untwine's metrics; import untwine first")
    try:
        return hooks.score_names(text)
    except UserError as e:
        raise UserError(f"score: {e}") from None


TENSORBOARD_INSTALL = "pip install 'untwine[tensorboard]'"


def require_tensorboard() -> None:
    """Raise :class:`~untwine.errors.MissingExtraError` naming the extra to install unless
    ``tensorboard`` imports (``tensorboard = true`` needs it; :mod:`untwine.train.tensorboard`)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError as e:
        raise MissingExtraError(
            f"tensorboard = true (--tensorboard) needs the tensorboard package: {TENSORBOARD_INSTALL}",
            name="tensorboard",
        ) from e


def _number(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise UserError(f"{name} must be a number, got {v!r}")
    return float(v)


def _coerce(name: str, v: Any, default: Any) -> Any:
    """Check a value's type against the field default; ints given as whole floats become ints."""
    if v is None or default is None:
        if v is not None and name in ("eval_every", "checkpoint_every"):
            return _int(name, v)
        if v is not None and not isinstance(v, str):
            raise UserError(f"{name} must be a string, got {v!r}")
        return v
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise UserError(f"{name} must be true or false, got {v!r}")
        return v
    if isinstance(default, int):
        return _int(name, v)
    if isinstance(default, float):
        return _number(name, v)
    if isinstance(default, str):
        if not isinstance(v, str):
            raise UserError(f"{name} must be a string, got {v!r}")
        return v
    return v


def _int(name: str, v: Any) -> int:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise UserError(f"{name} must be an integer, got {v!r}")
    return v


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))
