"""TensorBoard event files of a run, ``RUN/tb/``, written when ``RunConfig.tensorboard`` is on.

:class:`TensorBoardLog` is fed by the one writer of ``metrics.jsonl``
(:meth:`untwine.train.job.Job.write_logs`), so the curves have the steps and values of that file:

* ``train/<term>`` and ``val/<term>``: every scalar of a row (``loss``, ``rec``, ``kl``, ``elbo``,
  ``tc``...), stored as float32 as TensorBoard stores scalars;
* ``train_kl_per_latent/z<i>`` and ``val_kl_per_latent/z<i>``: the row's ``kl_dims``;
* at each evaluation (the steps with a ``val`` row): what the views of
  :data:`untwine.hooks.tensorboard_views` give, put there from above since this layer may not
  import the metrics or the report: the built-in one (:mod:`untwine.report.tensorboard`) gives
  ``metrics/mig``, ``metrics/modularity`` and ``traversals``, the report's latent traversal figure.

Nothing here draws from torch's or numpy's global random streams, so a run's weights and
``metrics.jsonl`` are the same with and without it. The writer is flushed after each evaluation,
so the curves are live and every event up to a checkpoint's step is on disk when the checkpoint is.

Resuming from a checkpoint at step ``S`` first drops the events after ``S`` from the event files
(:func:`keep_through`, as ``metrics.jsonl`` drops its later rows); the resumed run then writes
steps ``> S`` to a new file, so the stream has no duplicated step for any reader. A run that starts
from step 0 removes the event files a previous attempt left.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from .. import hooks
from ..errors import MissingExtraError
from . import files
from .config import TENSORBOARD_INSTALL as INSTALL, require_tensorboard as require
from .run import Run

__all__ = ["INSTALL", "TB_DIR", "MissingExtraError", "TensorBoardLog", "keep_through", "require"]

TB_DIR = "tb"
_EVENTS = "events.out.tfevents."  # TensorBoard reads the files whose names contain "tfevents"
_REWRITE = ".keep-through"  # a rewritten event file before it replaces the old one


class TensorBoardLog:
    """The event files of one run (see the module doc).

    Args:
        run_dir: the run folder; events go to ``run_dir/tb/``.
        step: the step the run starts at (0: a new run, else the checkpoint it resumes from).
        data: the run's dataset (for the traversal's base image).
        val_x: the validation images of each evaluation, ``N x C x 64 x 64`` float on the device.
        val_factors: their factor indices ``N x K``.
    """

    def __init__(self, run_dir: str | os.PathLike, step: int, data: Any, val_x: torch.Tensor,
                 val_factors: np.ndarray) -> None:
        require()
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(run_dir) / TB_DIR
        self.data, self.val_x, self.val_factors = data, val_x, np.asarray(val_factors)
        keep_through(self.dir, step if step > 0 else None)
        _after_existing_files(self.dir)
        self.writer: Any = SummaryWriter(str(self.dir), flush_secs=30)

    def write(self, step: int, rows: Mapping[str, Mapping[str, Any]], model: torch.nn.Module) -> None:
        """Write the ``metrics.jsonl`` rows of ``step`` (``split -> values``); with a ``val`` row
        (an evaluation), also what the views of :data:`untwine.hooks.tensorboard_views` give for
        ``model``; then flush."""
        for split, values in rows.items():
            for key, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.writer.add_scalar(f"{split}/{key}", v, step)
                elif key == "kl_dims" and isinstance(v, list):
                    for i, x in enumerate(v):
                        self.writer.add_scalar(f"{split}_kl_per_latent/z{i}", x, step)
        if "val" in rows:
            run = Run(self.dir.parent, None, model, {"val": dict(rows["val"])}, precision="fp32")  # type: ignore[arg-type]
            for view in hooks.tensorboard_views:
                for tag, value in view(run, self.data, self.val_x, self.val_factors, step).items():
                    if isinstance(value, np.ndarray):
                        self.writer.add_image(tag, value, step, dataformats="HWC")
                    else:
                        self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def keep_through(tb_dir: str | os.PathLike, step: int | None) -> None:
    """Drop the events after ``step`` from the event files in ``tb_dir`` (``None``: remove the
    event files). A file is rewritten (atomically) only when it loses events; a record cut short
    by a kill is dropped."""
    d = Path(tb_dir)
    if not d.is_dir():
        return
    for leftover in (d / _REWRITE, d / (_REWRITE + ".partial")):  # what a kill during a rewrite left
        leftover.unlink(missing_ok=True)
    from tensorboard.compat.proto.event_pb2 import Event

    for path in sorted(p for p in d.iterdir() if p.name.startswith(_EVENTS)):
        if step is None:
            path.unlink()
            continue
        records = list(_records(path.read_bytes()))
        kept = []
        for framed, payload in records:
            try:
                event = Event.FromString(payload)
            except Exception:  # damaged: keep nothing from here on
                break
            if event.step <= step or event.HasField("file_version"):
                kept.append(framed)
        if len(kept) == len(records) and sum(map(len, kept)) == path.stat().st_size:
            continue
        # atomic, under a name TensorBoard does not read ("tfevents" is what it looks for)
        os.replace(files.write_bytes(d / _REWRITE, b"".join(kept)), path)


def _records(buf: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The TFRecords of an event file: ``(framed record, payload)``; stops at a cut-short record.
    (Framing: u64 length, u32 crc, payload, u32 crc; the copies keep the original checksums.)"""
    i = 0
    while i + 12 <= len(buf):
        (n,) = struct.unpack_from("<Q", buf, i)
        end = i + 12 + n + 4
        if end > len(buf):
            return
        yield buf[i:end], buf[i + 12 : i + 12 + n]
        i = end


def _after_existing_files(tb_dir: Path) -> None:
    """Wait (at most a second) until a new event file's name sorts after the existing ones:
    readers take the files in name order, whose first field is the creation second."""
    stamps = [int(p.name.split(".")[3]) for p in tb_dir.glob(_EVENTS + "*") if p.name.split(".")[3].isdigit()]
    if stamps:
        while time.time() < max(stamps) + 1:
            time.sleep(0.02)
