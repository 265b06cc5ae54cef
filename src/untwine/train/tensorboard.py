"""TensorBoard event files of a run, ``RUN/tb/``, written when ``RunConfig.tensorboard`` is on.

:class:`TensorBoardLog` is fed by the one writer of ``metrics.jsonl``
(:meth:`untwine.train.job.Job.write_logs`), so the curves have the steps and values of that file:

* ``train/<term>`` and ``val/<term>``: every scalar of a row (``loss``, ``rec``, ``kl``, ``elbo``,
  ``tc``...), stored as float32 as TensorBoard stores scalars;
* ``train_kl_per_latent/z<i>`` and ``val_kl_per_latent/z<i>``: the row's ``kl_dims``;
* at each evaluation (the steps with a ``val`` row): ``metrics/mig`` and ``metrics/modularity``
  of the mean codes of the run's validation images (``eval_images`` of them: a small-sample
  estimate beside ``untwine evaluate``'s 10,000 points), and ``traversals``, the report's latent
  traversal figure (:func:`untwine.report.figures.traversals`) as an image.

Nothing here draws from torch's or numpy's global random streams, so a run's weights and
``metrics.jsonl`` are the same with and without it. The writer is flushed after each evaluation,
so the curves are live and every event up to a checkpoint's step is on disk when the checkpoint is.

Resuming from a checkpoint at step ``S`` first drops the events after ``S`` from the event files
(:func:`keep_through`, as ``metrics.jsonl`` drops its later rows); the resumed run then writes
steps ``> S`` to a new file, so the stream has no duplicated step for any reader. A run that starts
from step 0 removes the event files a previous attempt left.
"""

from __future__ import annotations

import io
import os
import struct
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

TB_DIR = "tb"
INSTALL = "pip install 'untwine[tensorboard]'"
_EVENTS = "events.out.tfevents."  # TensorBoard reads the files whose names contain "tfevents"
_PARTIAL = ".keep-through.partial"


class MissingExtraError(ImportError, ValueError):
    """An optional package is not installed. Also a ``ValueError``, so config checks and the CLI
    report it as they report any bad setting."""


def require() -> None:
    """Raise :class:`MissingExtraError` naming the extra to install unless ``tensorboard`` imports."""
    try:
        import tensorboard  # noqa: F401
    except ImportError as e:
        raise MissingExtraError(
            f"tensorboard = true (--tensorboard) needs the tensorboard package: {INSTALL}",
            name="tensorboard",
        ) from e


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
        (an evaluation), also the metrics and the traversal image of ``model``; then flush."""
        for split, values in rows.items():
            for key, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.writer.add_scalar(f"{split}/{key}", v, step)
                elif key == "kl_dims" and isinstance(v, list):
                    for i, x in enumerate(v):
                        self.writer.add_scalar(f"{split}_kl_per_latent/z{i}", x, step)
        if "val" in rows:
            for name, value in self.metrics(model).items():
                self.writer.add_scalar(f"metrics/{name}", value, step)
            self.writer.add_image("traversals", self.traversal(step, model, rows["val"]), step, dataformats="HWC")
        self.writer.flush()

    @torch.no_grad()
    def metrics(self, model: torch.nn.Module) -> dict[str, float]:
        """MIG and modularity of the mean codes of the validation images (cheap array metrics)."""
        from ..metrics.mig import mig
        from ..metrics.modularity import modularity_from_mi

        codes = torch.cat([model.encode(self.val_x[i : i + 256])[0].float()  # type: ignore[operator]
                           for i in range(0, len(self.val_x), 256)]).cpu().numpy()
        m = mig(codes, self.val_factors)
        return {"mig": m["mig"], "modularity": modularity_from_mi(m["mutual_info"])[0]}

    def traversal(self, step: int, model: torch.nn.Module, val: Mapping[str, Any]) -> np.ndarray:
        """The report's traversal figure of ``model`` (rows sorted by validation KL) as ``H x W x 3`` uint8."""
        from PIL import Image

        from ..report.figures import to_png, traversals
        from .run import Run

        run = Run(self.dir.parent, None, model, {"val": dict(val)}, precision="fp32")  # type: ignore[arg-type]
        png = to_png(traversals(run, self.data, f"step {step}"))
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def close(self) -> None:
        self.writer.close()


def keep_through(tb_dir: str | os.PathLike, step: int | None) -> None:
    """Drop the events after ``step`` from the event files in ``tb_dir`` (``None``: remove the
    event files). A file is rewritten (atomically) only when it loses events; a record cut short
    by a kill is dropped."""
    d = Path(tb_dir)
    if not d.is_dir():
        return
    (d / _PARTIAL).unlink(missing_ok=True)  # what a kill during a rewrite left
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
        tmp = d / _PARTIAL
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)


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
