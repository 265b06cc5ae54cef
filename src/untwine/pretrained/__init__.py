"""Pretrained models shipped in the package: ``untwine.pretrained(NAME) -> Run``.

Each model is a run folder under ``untwine/pretrained/models/NAME/`` that
:func:`~untwine.train.load_run` (and so ``untwine evaluate``, the report's figures and
``untwine explore``) reads as it is::

    config.json                   the run's RunConfig (as trained)
    summary.json                  the run's summary (steps, wall time, final losses)
    metrics.json                  ``untwine evaluate`` of the run (MIG...)
    metrics.jsonl                 the training log
    COMMAND.txt                   the exact command that trained it
    checkpoint/model.safetensors  the VAE's weights (metadata: arch, channels, latents, step)
    checkpoint/state.pt           ``{"step": N}`` only: no optimizer state, no RNG state

:func:`export` turns a finished run folder into such a folder (under :data:`MAX_BYTES`).
What a model's name does not say is in :data:`CAVEATS` (shown by ``untwine pretrained list``,
``untwine explore`` and the report); a name no longer shipped is in :data:`RENAMED`.
The package itself is callable: ``untwine.pretrained(NAME)`` is :func:`load`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MissingFileError, UnknownNameError, UserError, choice_message

MODELS_DIR = Path(__file__).parent / "models"
MAX_BYTES = 5 * 1024 * 1024  # one shipped model folder, all files
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

# What a shipped model's name and hyperparameters alone do not say. The one copy of each caveat:
# `untwine pretrained list` (ModelInfo.line), `untwine explore` (the page's run line) and the
# report (the trained-vs-shipped table, the shipped model's traversal figure) all read it here.
CAVEATS: dict[str, str] = {
    "factor-vae-beta16-dsprites": "FactorVAE with KL weight 16, not Kim & Mnih's loss",
}
# Names shipped before and no longer: old name -> (new name, why the old name is not shipped), for
# the error that a user who types the old name gets (path(), so every command that takes a name).
RENAMED: dict[str, tuple[str, str]] = {
    "factor-vae-dsprites": ("factor-vae-beta16-dsprites",
                            "Kim & Mnih's FactorVAE (KL weight 1) is not shipped: it has not reached "
                            "the seeds' MIG 0.22 here (docs/results/)"),
}


@dataclass(frozen=True)
class ModelInfo:
    """One line of ``untwine pretrained list``: what a shipped model is, read from its files."""

    name: str
    dataset: str
    model: str
    steps: int | None
    mig: float | None
    hparams: dict[str, Any] = field(default_factory=dict)
    caveat: str | None = None

    def line(self) -> str:
        """``NAME  DATASET  MODEL (HPARAMS)  N steps  MIG m``; HPARAMS as trained (config.json);
        then ``  -- CAVEAT`` for a model with a :data:`CAVEATS` entry."""
        from ..objectives import hparams_text

        steps = f"{self.steps} steps" if self.steps is not None else "? steps"
        mig = f"MIG {self.mig:.3f}" if self.mig is not None else "MIG ?"
        hp = hparams_text(self.hparams)
        model = f"{self.model} ({hp})" if hp else self.model
        note = f"  -- {self.caveat}" if self.caveat else ""
        return f"{self.name}  {self.dataset}  {model}  {steps}  {mig}{note}"


def names() -> list[str]:
    """Names of the shipped models, sorted (empty while none is shipped)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "config.json").is_file())


def path(name: str) -> Path:
    """The run folder of shipped model ``name``; ``KeyError`` listing the known names otherwise
    (for a :data:`RENAMED` name: saying what it became and why)."""
    known = names()
    if name not in known:
        if name in RENAMED:
            new, why = RENAMED[name]
            what = f" ({CAVEATS[new]})" if new in CAVEATS else ""
            raise UnknownNameError(f"pretrained model {name!r} was renamed {new!r}{what}; {why}. "
                                   "See `untwine pretrained list`")
        if not known:
            raise UnknownNameError(f"unknown pretrained model {name!r}; no pretrained models are shipped in "
                                   "this version")
        raise UnknownNameError(choice_message(name, known, "pretrained model") + " (see `untwine pretrained list`)")
    return MODELS_DIR / name


def caveat(model: str | os.PathLike) -> str | None:
    """The :data:`CAVEATS` entry of a shipped model, given its name or its folder (``None`` for
    other names and folders, e.g. a run folder of the user's)."""
    if isinstance(model, str) and model in names():
        return CAVEATS.get(model)
    p = Path(model)
    if p.is_dir() and p.resolve().parent == MODELS_DIR.resolve() and p.name in names():
        return CAVEATS.get(p.name)
    return None


def load(name: str, device: str = "cpu") -> Any:
    """The :class:`~untwine.train.Run` of shipped model ``name`` (as ``load_run(path(name))``)."""
    from ..train import load_run

    return load_run(path(name), device=device)


def _read(p: Path) -> dict[str, Any]:
    from ..train.files import peek_json

    return peek_json(p) or {}


def info(name: str) -> ModelInfo:
    """Dataset, objective, training steps, MIG (from ``metrics.json``) and hyperparameters (as
    trained, from ``config.json``) of shipped model ``name``."""
    d = path(name)
    cfg, summary, metrics = _read(d / "config.json"), _read(d / "summary.json"), _read(d / "metrics.json")
    mig = metrics.get("mig")
    return ModelInfo(
        name, str(cfg.get("dataset", "?")), str(cfg.get("model", "?")),
        int(summary["steps"]) if "steps" in summary else None,
        float(mig) if isinstance(mig, (int, float)) else None,
        dict(cfg.get("hparams") or {}),
        CAVEATS.get(name),
    )


def export(
    run_dir: str | os.PathLike,
    name: str,
    command: str,
    *,
    metrics: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Copy finished run ``run_dir`` into ``models_dir/name`` (default :data:`MODELS_DIR`) as a
    shipped model: weights without optimizer state, ``metrics.json`` (``metrics``, default
    ``run_dir/metrics.json``: run ``untwine evaluate`` first) and ``COMMAND.txt`` = ``command``.

    Raises ``ValueError``/``FileNotFoundError`` naming the problem (bad name, unfinished run, no
    metrics, folder over :data:`MAX_BYTES`, existing model without ``overwrite``). Returns the folder.
    """
    import torch

    from ..train import checkpoint, files, load_run
    from ..train.log import write_json

    src = Path(run_dir).expanduser()
    if not _NAME.match(name):
        raise UserError(f"model name {name!r} must be lower-case letters, digits, '.', '_' or '-' (e.g. beta-tcvae-dsprites)")
    if not command.strip():
        raise UserError("command must be the exact command that trained the run (it goes into COMMAND.txt)")
    if not (src / "config.json").is_file():
        raise MissingFileError(f"{src} is not a run folder (no config.json)")
    status = (files.read_summary(src / "summary.json") or {}).get("status")
    if status != "finished":
        raise UserError(f"{src} has not finished (summary.json status: {status}); finish it with `untwine train --resume --out {src}`")
    ckpt = checkpoint.find(src)
    if ckpt is None:
        raise MissingFileError(f"{src} has no checkpoint")
    m = Path(metrics).expanduser() if metrics is not None else src / "metrics.json"
    if not m.is_file():
        raise MissingFileError(f"{m} not found; run `untwine evaluate {src} --output {m}` first (or pass metrics=FILE)")
    metrics_doc = files.read_metrics_json(m)
    root = Path(models_dir).expanduser() if models_dir is not None else MODELS_DIR
    dest, tmp = root / name, root / f".{name}.tmp"
    if dest.exists() and not overwrite:
        raise UserError(f"{dest} exists; pass overwrite=True (--force) to replace it")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "checkpoint").mkdir(parents=True)
    try:
        for f in ("config.json", "summary.json", "metrics.jsonl"):
            if (src / f).is_file():
                shutil.copyfile(src / f, tmp / f)
        write_json(tmp / "metrics.json", metrics_doc)
        (tmp / "COMMAND.txt").write_text(command.strip() + "\n")
        shutil.copyfile(ckpt / checkpoint.MODEL_FILE, tmp / "checkpoint" / checkpoint.MODEL_FILE)
        step = int(checkpoint.model_metadata(ckpt)["step"])
        torch.save({"step": step}, tmp / "checkpoint" / checkpoint.STATE_FILE)
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        if size > MAX_BYTES:
            raise UserError(f"{name}: the model folder is {size / 2**20:.1f} MiB, over the {MAX_BYTES / 2**20:.0f} MiB limit for shipped models")
        load_run(tmp)  # the folder must load as a run
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


__all__ = ["CAVEATS", "MAX_BYTES", "MODELS_DIR", "RENAMED", "ModelInfo", "caveat", "export", "info", "load", "names",
           "path"]


class _CallableModule(types.ModuleType):
    def __call__(self, name: str, device: str = "cpu") -> Any:  # noqa: D102 - see load()
        return load(name, device=device)


sys.modules[__name__].__class__ = _CallableModule
