"""Checkpoints: ``DIR/checkpoint/`` (the latest) and ``DIR/checkpoint.prev/`` (the one before),
each verified by checksums before it is trusted.

Layout of a checkpoint folder::

    model.safetensors      the VAE's weights (metadata: arch, channels, latents, step)
    objective.safetensors  the objective's own networks (FactorVAE's discriminator), if any
    state.pt               torch.save dict: step, optimizer state(s), RNG states (torch CPU/CUDA,
                           numpy, python, the sampler's generator), running training means, elapsed s
    manifest.json          {"format": 1, "step": N, "files": {name: {"bytes": n, "sha256": hex}}},
                           written last

:func:`save` writes ``checkpoint.tmp/`` (every file fsynced), reads it back against its manifest,
renames it to ``checkpoint.new/`` and only then moves the intact ``checkpoint/`` to
``checkpoint.prev/`` and ``checkpoint.new/`` to ``checkpoint/``. Every step is a rename, so a kill
at any moment leaves the previous checkpoint intact; the next :func:`save` (or :func:`find`)
finishes or discards what a kill left. A full disk raises
:class:`~untwine.train.files.DiskFullError` and leaves the previous checkpoint as it was.

:func:`find` returns the newest checkpoint whose files match their manifest (``checkpoint.new``,
``checkpoint``, ``checkpoint.prev``); when it skips a damaged one it warns, and when none is intact
it raises :class:`~untwine.train.files.RunFolderError` saying so. Folders written before manifests
existed are accepted unverified; errors reading them name the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from . import files
from .files import RunFolderError

MODEL_FILE = "model.safetensors"
OBJECTIVE_FILE = "objective.safetensors"
STATE_FILE = "state.pt"
MANIFEST = "manifest.json"
LATEST, NEW, PREV, TMP, TRASH = "checkpoint", "checkpoint.new", "checkpoint.prev", "checkpoint.tmp", "checkpoint.trash"
ORDER = (NEW, LATEST, PREV)  # newest first


# ---------------------------------------------------------------------------------- finding
def newest_manifest(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a run's newest checkpoint that has a readable one (``ORDER``), read but not
    verified: cheap, for estimates (steps left) and fingerprints; ``None`` if there is none."""
    for name in ORDER:
        m = files.peek_json(Path(run_dir) / name / MANIFEST)
        if isinstance(m, dict):
            return m
    return None


def find(run_dir: str | os.PathLike) -> Path | None:
    """The newest intact checkpoint folder of a run, or ``None`` if it has none.

    A damaged newer checkpoint is skipped with a :class:`~untwine.train.files.RunFolderWarning`;
    raises :class:`~untwine.train.files.RunFolderError` when checkpoints exist but none is intact."""
    d = Path(run_dir)
    problems: list[str] = []
    for name in ORDER:
        p = d / name
        if not p.is_dir() or not any(p.iterdir()):
            continue
        problem = verify(p)
        if problem is None:
            if problems:
                files.warn(f"{'; '.join(problems)}. The previous checkpoint (step {_step_of(p)}) in {p} "
                           "is intact and is used instead")
            return p
        problems.append(problem)
    if problems:
        raise RunFolderError(
            f"{'; '.join(problems)}; no intact checkpoint is left. Fix: delete {d} to start this run "
            f"again from step 0 (or restore the damaged file from a backup)"
        )
    return None


def verify(ckpt: Path) -> str | None:
    """What is wrong with checkpoint folder ``ckpt`` (a sentence naming the file), or ``None``."""
    m = ckpt / MANIFEST
    if not m.exists():
        missing = [f for f in (MODEL_FILE, STATE_FILE) if not (ckpt / f).is_file()]
        return f"{ckpt} is incomplete (no {', '.join(missing)})" if missing else None  # pre-manifest
    try:
        manifest = files.read_json(m, "")
        entries = manifest["files"]
        assert isinstance(entries, dict) and MODEL_FILE in entries and STATE_FILE in entries
    except (RunFolderError, KeyError, TypeError, AssertionError):
        return f"{m} is damaged (not a checkpoint manifest)"
    for name, want in entries.items():
        p = ckpt / str(name)
        if not isinstance(want, dict) or set(want) != {"bytes", "sha256"}:
            return f"{m} is damaged (bad entry for {name})"
        if not p.is_file():
            return f"{p} is missing"
        size = p.stat().st_size
        if size != want["bytes"]:
            return f"{p} is damaged ({size} bytes, {want['bytes']} were written)"
        if _sha256(p) != want["sha256"]:
            return f"{p} is damaged (its SHA-256 differs from the one recorded when it was written)"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _step_of(ckpt: Path) -> Any:
    try:
        return files.read_json(ckpt / MANIFEST, "")["step"]
    except (RunFolderError, FileNotFoundError, KeyError):
        return "?"


# ---------------------------------------------------------------------------------- RNG state
def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------- saving
def save(
    run_dir: str | os.PathLike,
    *,
    model: torch.nn.Module,
    objective: torch.nn.Module,
    state: dict[str, Any],
    metadata: dict[str, str],
) -> Path:
    """Write a checkpoint (see the module doc); ``state`` is the dict stored in ``state.pt`` (must
    hold ``step``), ``metadata`` (strings) goes into ``model.safetensors``. Returns ``checkpoint/``.

    Raises:
        DiskFullError: the disk filled up; the previous checkpoint is intact.
    """
    d = Path(run_dir)
    settle(d)
    tmp = d / TMP
    blobs = {MODEL_FILE: save_bytes(_tensors(model), metadata={**metadata, "step": str(state["step"])})}
    obj = _tensors(objective)
    if obj:
        blobs[OBJECTIVE_FILE] = save_bytes(obj)
    buf = io.BytesIO()
    torch.save(state, buf)
    blobs[STATE_FILE] = buf.getvalue()
    manifest = {"format": 1, "step": int(state["step"]), "files": {
        name: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()} for name, b in blobs.items()}}
    blobs[MANIFEST] = (json.dumps(manifest, indent=1) + "\n").encode()
    try:
        tmp.mkdir(parents=True)
        for name, b in blobs.items():  # the manifest last: a folder without it is incomplete
            files._write_file(tmp / name, b)
        problem = verify(tmp)
        if problem is not None:
            raise OSError(f"checkpoint written to {tmp} did not read back intact: {problem}")
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if files.is_disk_full(e):
            prev = _intact_description(d)
            raise files.disk_full(tmp, f"the checkpoint was not saved; {prev}") from e
        raise
    os.replace(tmp, d / NEW)
    _fsync_dir(d)
    settle(d)
    return d / LATEST


def _intact_description(d: Path) -> str:
    for name in (LATEST, PREV):
        if (d / name).is_dir() and verify(d / name) is None:
            return (f"the previous checkpoint (step {_step_of(d / name)}) in {d / name} is intact "
                    f"and `untwine train --out {d} --resume` will use it")
    return "there is no earlier checkpoint"


def settle(run_dir: str | os.PathLike) -> None:
    """Finish or undo what a killed :func:`save` left: drop ``checkpoint.tmp``; move an intact
    ``checkpoint.new`` to ``checkpoint`` (the intact old ``checkpoint`` becomes ``checkpoint.prev``,
    a damaged one is dropped); drop a damaged ``checkpoint.new``. Idempotent; every move a rename."""
    d = Path(run_dir)
    for name in (TRASH, TMP):
        if (d / name).exists():
            shutil.rmtree(d / name)
    new, latest = d / NEW, d / LATEST
    if not new.is_dir():
        return
    if verify(new) is not None:
        _discard(new)
        return
    if latest.is_dir():
        if verify(latest) is None:
            if (d / PREV).exists():
                _discard(d / PREV)
            os.replace(latest, d / PREV)
        else:
            _discard(latest)
    os.replace(new, latest)
    _fsync_dir(d)


def _discard(p: Path) -> None:
    """Remove folder ``p`` by renaming it away first (a kill never leaves it half-deleted)."""
    trash = p.parent / TRASH
    if trash.exists():
        shutil.rmtree(trash)
    os.replace(p, trash)
    shutil.rmtree(trash)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- loading
def _fix(ckpt: Path) -> str:
    """How to recover from a damaged file in checkpoint ``ckpt``."""
    d = ckpt.parent
    older = ORDER[ORDER.index(ckpt.name) + 1:] if ckpt.name in ORDER else ()
    for name in older:
        if (d / name).is_dir() and verify(d / name) is None:
            return (f"the previous checkpoint (step {_step_of(d / name)}) in {d / name} is intact: delete "
                    f"{ckpt} and `untwine train --out {d} --resume` will use it")
    return f"delete {d} to start this run again from step 0 (or restore the file from a backup)"


def load_state(ckpt: Path) -> dict[str, Any]:
    """The ``state.pt`` dict of a checkpoint folder (written by untwine; checked by :func:`find`)."""
    p = ckpt / STATE_FILE
    try:
        state = torch.load(p, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise RunFolderError(f"{p} is missing. Fix: {_fix(ckpt)}") from None
    except Exception as e:  # unpickling damaged bytes raises nearly anything
        raise files.damaged(p, f"it cannot be read as a checkpoint state ({type(e).__name__}: {e})",
                            _fix(ckpt)) from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise files.damaged(p, "it holds no checkpoint state (a dict with a \"step\")", _fix(ckpt))
    return state


def _load_tensors(p: Path, ckpt: Path) -> dict[str, torch.Tensor]:
    try:
        return load_bytes(p.read_bytes())
    except FileNotFoundError:
        raise RunFolderError(f"{p} is missing. Fix: {_fix(ckpt)}") from None
    except Exception as e:  # SafetensorError and friends
        raise files.damaged(p, f"not a readable safetensors file ({e})", _fix(ckpt)) from None


def load_weights(
    ckpt: Path, model: torch.nn.Module, objective: torch.nn.Module | None = None
) -> None:
    """Load weights into ``model`` (and ``objective``) in place, keeping their device/memory format."""
    pairs = [(ckpt / MODEL_FILE, model)]
    if objective is not None and (ckpt / OBJECTIVE_FILE).is_file():
        pairs.append((ckpt / OBJECTIVE_FILE, objective))
    for p, module in pairs:
        tensors = _load_tensors(p, ckpt)
        try:
            module.load_state_dict(tensors)
        except RuntimeError as e:
            raise files.damaged(p, f"its weights do not fit this run's model ({str(e).splitlines()[0]})",
                                _fix(ckpt)) from None


def model_metadata(ckpt: Path) -> dict[str, str]:
    p = ckpt / MODEL_FILE
    try:
        with safe_open(p, framework="pt") as f:
            return dict(f.metadata() or {})
    except FileNotFoundError:
        raise RunFolderError(f"{p} is missing. Fix: {_fix(ckpt)}") from None
    except Exception as e:
        raise files.damaged(p, f"not a readable safetensors file ({e})", _fix(ckpt)) from None
