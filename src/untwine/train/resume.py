"""Where a run resumes: the one rule, used by the trainer (``train``, packs) and the sweep.

A run folder's training continues from its newest complete checkpoint (:func:`checkpoint.find`)
at the step that checkpoint holds; without one it starts at step 0. A run whose checkpoint is at
``steps`` and whose ``summary.json`` says ``finished`` has nothing left to train.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from . import checkpoint, files


@dataclass(frozen=True)
class ResumePoint:
    """Where training of one run folder continues.

    Attributes:
        checkpoint: the checkpoint folder to load (``None``: start from scratch).
        step: the step training continues from (0 without a checkpoint).
        finished: trained to ``steps`` and finished: only evaluation (if any) is left.
    """

    checkpoint: Path | None
    step: int
    finished: bool


def saved_step(ckpt: Path) -> int:
    """The step a checkpoint folder holds (from the weights' metadata, else from ``state.pt``)."""
    try:
        return int(checkpoint.model_metadata(ckpt)["step"])
    except (KeyError, ValueError):
        return int(checkpoint.load_state(ckpt)["step"])


def status(run_dir: str | os.PathLike) -> str | None:
    """``summary.json``'s status (``finished``, ``failed``, ``interrupted``), ``None`` without one."""
    return (files.peek_json(Path(run_dir) / "summary.json") or {}).get("status")


def resume_point(run_dir: str | os.PathLike, steps: int) -> ResumePoint:
    """Where training of ``run_dir`` to ``steps`` steps continues.

    Raises:
        ValueError: the checkpoint is beyond ``steps`` (a run cannot be shortened).
    """
    ckpt = checkpoint.find(run_dir)
    if ckpt is None:
        return ResumePoint(None, 0, False)
    step = saved_step(ckpt)
    if step > steps:
        raise UserError(f"{Path(run_dir)}: the checkpoint is at step {step}, beyond steps={steps}")
    return ResumePoint(ckpt, step, step == steps and status(run_dir) == "finished")


__all__ = ["ResumePoint", "resume_point", "saved_step", "status"]
