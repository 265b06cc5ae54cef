"""Reading and writing the files of run and sweep folders: one reader per file, atomic writers.

Every reader turns damage (truncation, flipped bytes, text in a binary file, a missing key) into a
:class:`RunFolderError` whose message names the file, what is wrong and the fix; none lets a raw
``JSONDecodeError`` or ``UnicodeDecodeError`` through. A damaged *last* line of a ``.jsonl`` log (a
crash mid-write) is dropped with a :class:`RunFolderWarning` instead. :func:`peek_json` is the one
lenient look at a JSON file (``None`` when missing or damaged), for checks and displays.

Every writer writes ``<file>.partial`` (flushed and fsynced), then renames it over ``<file>``: a
crash or a full disk leaves the previous version intact. A full disk (``ENOSPC``, ``EDQUOT``)
raises :class:`DiskFullError` saying so.

Files (run folder ``R``, sweep folder ``S``):

=================  ===============================  ===============================================
file               reader                           if damaged
=================  ===============================  ===============================================
R/config.json      :func:`read_config`              restore it, or delete ``R`` to start again
R/summary.json     :func:`read_summary`             delete it; ``--resume`` writes it again
R/metrics.jsonl    :func:`read_jsonl`               a damaged last line is dropped (warning)
R/metrics.json     :func:`read_metrics_json`        delete it; the sweep evaluates the run again
R/failed.json      :func:`read_failed_json`         delete it; the sweep retries the run
R/eval_time.json   :func:`read_json` (a sweep's)    delete it; timings.csv then leaves it blank
R/checkpoint/*     :mod:`untwine.train.checkpoint`  the previous checkpoint is used (warning)
S/results.csv      ``studies.results.read_results`` restore it, or delete it and re-run the sweep
S/study.json       :func:`read_study_json`          delete it; ``untwine sweep`` writes it again
S/sweep_log.jsonl  :func:`read_jsonl`               a damaged last line is dropped (warning)
=================  ===============================  ===============================================
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..errors import DiskFullError, UserError, is_disk_full

T = TypeVar("T")
PathLike = str | os.PathLike


class RunFolderError(UserError):
    """A file of a run or sweep folder is damaged or unreadable; the message names the file,
    what is wrong and the fix."""


class RunFolderWarning(UserWarning):
    """Damage that untwine worked around (a dropped log line, a fallback checkpoint)."""


def warn(message: str) -> None:
    """Show ``message`` as a :class:`RunFolderWarning` (printed as ``untwine: RunFolderWarning: ...``)."""
    warnings.warn_explicit(message, RunFolderWarning, filename="untwine", lineno=0)


def damaged(path: PathLike, problem: str, fix: str) -> RunFolderError:
    return RunFolderError(f"{path} is damaged: {problem}. Fix: {fix}")


# ---------------------------------------------------------------------------------- writing
def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (the one place untwine's run files hit the disk;
    tests replace it to simulate a full disk)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def disk_full(path: PathLike, kept: str) -> DiskFullError:
    """The error for a full disk while writing ``path``; ``kept`` says what is intact."""
    return DiskFullError(
        f"no space left on the device while writing {path}; {kept}. "
        "Free some disk space, then run the same command again"
    )


def write_bytes(path: PathLike, data: bytes, *, kept: str | None = None) -> Path:
    """Write ``path`` atomically (``<path>.partial``, fsync, rename). A full disk raises
    :class:`DiskFullError` (``kept``: what it says is intact; default: the previous file)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".partial")
    try:
        _write_file(tmp, data)
        os.replace(tmp, p)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if is_disk_full(e):
            raise disk_full(p, kept or f"the previous {p.name} (if any) is intact") from e
        raise
    return p


def write_text(path: PathLike, text: str, *, kept: str | None = None) -> Path:
    return write_bytes(path, text.encode("utf-8"), kept=kept)


def _append_file(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (the one place untwine's logs hit the disk)."""
    with open(path, "ab") as f:
        f.write(data)


def _torn_tail(path: Path) -> int | None:
    """Where the cut-short last line of ``path`` starts (the byte after its last newline), or
    ``None`` when the file is missing, empty or ends with a newline."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with open(path, "rb") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return None
        end = size
        while end > 0:
            start = max(0, end - (1 << 16))
            f.seek(start)
            i = f.read(end - start).rfind(b"\n")
            if i >= 0:
                return start + i + 1
            end = start
    return 0


def append_line(path: PathLike, line: str) -> None:
    """Append one line to a ``.jsonl`` log. A crash mid-write leaves a cut-short last line, which
    :func:`read_jsonl` drops; the next append first removes it (with a warning), so it never
    becomes a damaged line in the middle of the log."""
    p = Path(path)
    try:
        tail = _torn_tail(p)
        if tail is not None:
            os.truncate(p, tail)
            warn(f"{p}: dropped its cut-short last line (a crash while it was written)")
        _append_file(p, (line + "\n").encode("utf-8"))
    except OSError as e:
        if is_disk_full(e):
            raise disk_full(p, "its earlier lines are intact") from e
        raise


# ---------------------------------------------------------------------------------- reading
def read_text(path: PathLike, fix: str) -> str:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise RunFolderError(f"{p} cannot be read ({e}). Fix: {fix}") from e
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise damaged(p, f"byte {e.start} is not UTF-8 text", fix) from None


def read_json(path: PathLike, fix: str, kind: type = dict) -> Any:
    """The JSON value in ``path`` (of type ``kind``); damage raises :class:`RunFolderError`
    ending in ``fix``; a missing file raises ``FileNotFoundError``."""
    p = Path(path)
    text = read_text(p, fix)
    if not text.strip():
        raise damaged(p, "the file is empty", fix)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise damaged(p, f"not valid JSON ({e.msg}: line {e.lineno} column {e.colno})", fix) from None
    except RecursionError:
        raise damaged(p, "not valid JSON (nested too deeply)", fix) from None
    if not isinstance(value, kind):
        raise damaged(p, f"holds a JSON {type(value).__name__}, expected a {kind.__name__}", fix)
    return value


def peek_json(path: PathLike, kind: type = dict) -> Any | None:
    """The JSON value in ``path`` if it is a ``kind``, else ``None``: missing, unreadable, damaged
    or of another type. For *looking* at a file (is the run finished? a number for a figure or a
    table) where a damaged file may count as absent: it then gets its clear error from the strict
    reader of that file (:func:`read_summary`, :func:`read_metrics_json`...) where it is needed."""
    try:
        return read_json(path, "", kind)
    except (FileNotFoundError, RunFolderError):
        return None


def _optional(reader: Callable[[Path], T], path: PathLike) -> T | None:
    try:
        return reader(Path(path))
    except FileNotFoundError:
        return None


def read_config(path: PathLike, build: Callable[[dict[str, Any]], T]) -> T:
    """``config.json`` -> ``build(dict)`` (``RunConfig.from_dict``); bad JSON or bad keys/values
    raise :class:`RunFolderError` naming the file."""
    p = Path(path)
    fix = (f"restore {p} (a copy of it is under \"config\" in {p.parent / 'summary.json'}, "
           f"if that exists), or delete {p.parent} to start this run again")
    d = read_json(p, fix)
    try:
        return build(d)
    except (ValueError, TypeError, KeyError) as e:
        raise RunFolderError(f"{p} is not a valid run config: {e}. Fix: {fix}") from None


def read_summary(path: PathLike) -> dict[str, Any] | None:
    """``summary.json`` (``None`` if missing). Its ``status`` must be a string."""
    p = Path(path)
    fix = f"delete {p}; `untwine train --out {p.parent} --resume` writes it again from the checkpoint"
    d = _optional(lambda q: read_json(q, fix), p)
    if d is not None and not isinstance(d.get("status"), str):
        raise damaged(p, "it has no \"status\" string", fix)
    return d


def read_metrics_json(path: PathLike) -> dict[str, Any] | None:
    """A run's ``metrics.json`` (evaluation results; ``None`` if missing)."""
    p = Path(path)
    return _optional(lambda q: read_json(q, f"delete {p}; `untwine sweep` evaluates the run again"), p)


def read_failed_json(path: PathLike) -> dict[str, Any] | None:
    """A run's ``failed.json`` (``None`` if missing)."""
    p = Path(path)
    return _optional(lambda q: read_json(q, f"delete {p}; `untwine sweep` retries the run"), p)


def read_study_json(path: PathLike) -> dict[str, Any]:
    """A sweep's ``study.json`` (the resolved study)."""
    p = Path(path)
    return read_json(p, f"delete {p}; `untwine sweep` writes it again from study.toml")


def read_jsonl(path: PathLike, fix: str | None = None) -> list[dict[str, Any]]:
    """The rows of a ``.jsonl`` log (``metrics.jsonl``, ``sweep_log.jsonl``); [] if missing.

    A damaged last line (a crash mid-write) is dropped with a :class:`RunFolderWarning`; a damaged
    line before it raises :class:`RunFolderError`."""
    return [row for _, row in read_jsonl_lines(path, fix)]


def read_jsonl_lines(path: PathLike, fix: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(line, row)`` pairs of a ``.jsonl`` log (see :func:`read_jsonl`)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise RunFolderError(f"{p} cannot be read ({e})") from e
    lines = raw.split(b"\n")
    complete = raw.endswith(b"\n")
    if complete:
        lines = lines[:-1]
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    out = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        row, problem = _json_row(ln)
        if problem is None and i == last and not complete:
            problem = "it is cut short (no newline)"
        if problem is None:
            out.append((ln.decode("utf-8"), row))
        elif i == last:
            warn(f"{p}: dropped its last line {i + 1} ({problem}; a crash while it was written)")
        else:
            raise damaged(p, f"line {i + 1} {problem}",
                          fix or f"delete line {i + 1} (or the whole file, losing the log but not the run)")
    return out


def _json_row(line: bytes) -> tuple[dict[str, Any], str | None]:
    try:
        row = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return {}, "is not valid JSON"
    if not isinstance(row, dict):
        return {}, "is not a JSON object"
    return row, None
