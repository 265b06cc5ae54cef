"""Logging helpers: device-side running means, ``metrics.jsonl``, ``summary.json``, progress bar."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import torch
from tqdm import tqdm

from . import files


class RunningMeans:
    """Sums of scalar (or vector) tensors kept on the device: adding never syncs with the host.

    ``means()`` (one sync) returns plain floats / lists of floats and is called at eval intervals.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for k, v in values.items():
            v = v.detach()
            if k in self.sums:
                self.sums[k] += v
            else:
                self.sums[k] = v.to(torch.float32).clone()
        self.count += 1

    def means(self) -> dict[str, Any]:
        if not self.count:
            return {}
        return to_python({k: v / self.count for k, v in self.sums.items()})

    def reset(self) -> None:
        self.sums, self.count = {}, 0

    def state_dict(self) -> dict[str, Any]:
        return {"sums": {k: v.cpu() for k, v in self.sums.items()}, "count": self.count}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.sums = {k: v.to(device) for k, v in state["sums"].items()}
        self.count = int(state["count"])


class StackedMeans:
    """Running means of K runs that step together: sums ``K x ...`` on the device.

    :meth:`add` books one step of all K runs with one in-place add per key (no host sync, no work
    per run); :meth:`row` is run ``k``'s view, with the :class:`RunningMeans` interface its
    :class:`~untwine.train.loop.Job` uses (``means``, ``reset``, ``state_dict``) and the same
    values and checkpoint format as a ``RunningMeans`` fed that run's rows alone.
    """

    def __init__(self, sums: dict[str, torch.Tensor], counts: Sequence[int]) -> None:
        self.sums = sums
        self.added = 0  # steps added; run k's count is added - self.base[k]
        self.base = [-int(c) for c in counts]

    @classmethod
    def of_runs(cls, runs: Sequence[RunningMeans], like: dict[str, torch.Tensor]) -> StackedMeans | None:
        """The stack of ``runs`` (e.g. resumed from checkpoints) for values shaped as ``like``
        (``K x ...`` per key), or None where a run holds sums of other keys or shapes."""
        sums: dict[str, torch.Tensor] = {}
        for key, v in like.items():
            zero = torch.zeros(v.shape[1:], dtype=torch.float32, device=v.device)
            rows = []
            for r in runs:
                s = r.sums.get(key) if r.count else zero
                if s is None or s.shape != zero.shape:
                    return None
                rows.append(s.to(zero))
            sums[key] = torch.stack(rows)
        if any(r.count and r.sums.keys() != like.keys() for r in runs):
            return None
        return cls(sums, [r.count for r in runs])

    def add(self, values: dict[str, torch.Tensor]) -> None:
        """Add one step of every run: ``values[key]`` is ``K x ...`` (the keys of the sums)."""
        for k, v in values.items():
            self.sums[k] += v
        self.added += 1

    def row(self, k: int) -> MeansRow:
        return MeansRow(self, k)


class MeansRow:
    """Run ``k``'s running means inside a :class:`StackedMeans` (see there)."""

    def __init__(self, stack: StackedMeans, k: int) -> None:
        self.stack, self.k = stack, k

    @property
    def count(self) -> int:
        return self.stack.added - self.stack.base[self.k]

    @property
    def sums(self) -> dict[str, torch.Tensor]:
        """Views of this run's sums (empty while the count is 0, as :class:`RunningMeans`)."""
        return {key: v[self.k] for key, v in self.stack.sums.items()} if self.count else {}

    def means(self) -> dict[str, Any]:
        n = self.count
        return to_python({key: v / n for key, v in self.sums.items()}) if n else {}

    def reset(self) -> None:
        for v in self.stack.sums.values():
            v[self.k].zero_()
        self.stack.base[self.k] = self.stack.added

    def state_dict(self) -> dict[str, Any]:
        return {"sums": {key: v.to("cpu", copy=True) for key, v in self.sums.items()}, "count": self.count}

    def detached(self) -> RunningMeans:
        """A :class:`RunningMeans` holding a copy of this run's sums and count."""
        out = RunningMeans()
        out.sums = {key: v.clone() for key, v in self.sums.items()}
        out.count = self.count
        return out


def to_python(values: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Tensors -> floats (scalars) or lists of floats (vectors), in one host transfer."""
    if not values:
        return {}
    keys = list(values)
    flat = torch.cat([values[k].detach().float().reshape(-1) for k in keys]).cpu().tolist()
    out: dict[str, Any] = {}
    i = 0
    for k in keys:
        n = values[k].numel()
        out[k] = flat[i] if values[k].dim() == 0 else flat[i : i + n]
        i += n
    return out


def _clean(v: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, ``{"step": ..., "split": ..., ...}``.

    Reading drops a damaged last line (a crash mid-write) with a warning; other damage raises
    :class:`~untwine.train.files.RunFolderError` naming the file and line."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def _lines(self) -> list[tuple[str, dict[str, Any]]]:
        out = files.read_jsonl_lines(self.path)
        for i, (_, row) in enumerate(out):
            if not isinstance(row.get("step"), int) or not isinstance(row.get("split"), str):
                raise files.damaged(self.path, f"row {i + 1} has no integer \"step\" and string \"split\"",
                                    "delete that line (or the whole file, losing the log but not the run)")
        return out

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (a resumed run re-logs them identically)."""
        if not self.path.exists():
            return
        keep = [ln for ln, row in self._lines() if row["step"] <= step]
        write_atomic(self.path, "".join(ln + "\n" for ln in keep))

    def write(self, step: int, split: str, values: dict[str, Any]) -> None:
        files.append_line(self.path, json.dumps({"step": step, "split": split, **_clean(values)}))

    def read(self) -> list[dict[str, Any]]:
        return [row for _, row in self._lines()]


def write_atomic(path: Path, text: str) -> None:
    """Write ``path`` atomically; a full disk raises ``DiskFullError`` (the old file is intact)."""
    files.write_text(path, text)


def jsonable(obj: Any) -> Any:
    """numpy scalars/arrays -> Python numbers/lists (recursively, dict keys as strings)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """The one JSON writer of run and sweep folders (config, summary, metrics.json, failed.json,
    study.json...): atomic (a full disk is a clear error, the old file intact), the folder made,
    numpy values as Python numbers, NaN/inf as null (standard JSON; results.csv shows an undefined
    metric as ``nan``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(_clean(jsonable(obj)), indent=2) + "\n")


class Progress:
    """Progress over ``total`` steps from ``initial`` (a resumed run's first step): steps, ETA,
    images/s and the latest loss terms. On a terminal (or in Jupyter), a tqdm bar. Elsewhere (``lines``,
    the default when ``stream`` is not a terminal: a log file, ``nohup``, a job scheduler) one plain line every
    ``every_s`` seconds and one at the end, so a long run's log shows where it is without
    carriage-return noise. Speed and ETA count this session's steps only (``initial`` on)."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str, *, lines: bool | None = None,
                 every_s: float = 60.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = sys.stderr if stream is None else stream
        if lines is None:  # Jupyter's streams are not terminals, yet show tqdm's bar
            lines = not (hasattr(self.stream, "isatty") and self.stream.isatty()) and "ipykernel" not in sys.modules
        self.lines = enabled and lines
        self.total, self.initial, self.desc, self.every_s, self.clock = total, initial, desc, every_s, clock
        self.t0 = self.last = clock()
        self.step, self.said = initial, initial
        self.post: dict[str, str] = {}
        self.bar = tqdm(
            total=total, initial=initial, disable=not enabled or self.lines, desc=desc, unit="step",
            dynamic_ncols=True, smoothing=0.1, file=self.stream,
        )

    def update(self, step: int, images_per_s: float, terms: dict[str, float]) -> None:
        post = {k: f"{v:.4g}" for k, v in terms.items() if isinstance(v, float)}
        post["img/s"] = f"{images_per_s:.0f}"
        self.step, self.post = step, post
        if self.lines:
            now = self.clock()
            if now - self.last >= self.every_s or step >= self.total:
                self._say(now)
            return
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(step - self.bar.n)

    def line(self, now: float) -> str:
        """``DESC: step 5,100/10,000 (51.0%), 10.00 steps/s, ETA 08:10, loss=1, img/s=640``."""
        done, dt = self.step - self.initial, now - self.t0
        rate = done / dt if done > 0 and dt > 0 else None
        pace = "-- steps/s, ETA --" if rate is None else \
            f"{rate:.2f} steps/s, ETA {tqdm.format_interval((self.total - self.step) / rate)}"
        terms = "".join(f", {k}={v}" for k, v in self.post.items())
        share = 100 * self.step / max(self.total, 1)
        return f"{self.desc}: step {self.step:,}/{self.total:,} ({share:.1f}%), {pace}{terms}"

    def _say(self, now: float) -> None:
        print(self.line(now), file=self.stream, flush=True)
        self.last, self.said = now, self.step

    def close(self) -> None:
        if self.lines and self.step != self.said:
            self._say(self.clock())
        self.bar.close()
