"""Fuzzed readers: random truncations and byte flips of every dataset format and every run-folder
file untwine reads. Each case either reads (a harmless flip) or raises a ``ValueError`` (or ``FileNotFoundError``)
naming the damaged file; no other exception (no raw ``BadZipFile``, ``JSONDecodeError``, ``SafetensorError``...)."""

from __future__ import annotations

import gzip
import json
import random
import shutil
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from untwine.data import dsprites, mnist, mpi3d, shapes3d
from untwine.data.custom import from_folder
from untwine.studies.results import read_results, write_results
from untwine.train import RunConfig, checkpoint, files, load_run, train
from untwine.train.log import MetricsLog

from conftest import TINY

SEED = 16
CASES_PER_FILE = 20  # half truncations, half 1-3 byte flips


def mutations(data: bytes, rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        if i % 2 == 0:
            cut = rng.randrange(len(data))
            out.append((f"truncated to {cut} bytes", data[:cut]))
        else:
            b = bytearray(data)
            where = [rng.randrange(len(b)) for _ in range(rng.randint(1, 3))]
            for w in where:
                b[w] ^= 1 << rng.randrange(8)
            out.append((f"bits flipped at {where}", bytes(b)))
    return out


def fuzz(target: Path, read: Callable[[], object], rng: random.Random, names: tuple[str, ...] = ()) -> dict[str, int]:
    """Damage ``target`` CASES_PER_FILE times (restoring it in between); every read must succeed
    or raise a ValueError/FileNotFoundError naming the file (or one of ``names``)."""
    original = target.read_bytes()
    counts = {"cases": 0, "errors": 0}
    try:
        for what, data in mutations(original, rng, CASES_PER_FILE):
            target.write_bytes(data)
            counts["cases"] += 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    read()
            except (ValueError, FileNotFoundError) as e:  # what the CLI prints as "error: ..."
                counts["errors"] += 1
                msg = str(e)
                assert any(n in msg for n in (str(target), *names)), f"{target.name} {what}: {msg}"
            except Exception as e:  # pragma: no cover - the failure this test exists for
                pytest.fail(f"{target.name} {what}: raw {type(e).__name__}: {e}")
            finally:
                target.write_bytes(original)
    finally:
        target.write_bytes(original)
    return counts


TOTALS: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    cases = sum(c["cases"] for c in TOTALS.values())
    errors = sum(c["errors"] for c in TOTALS.values())
    print(f"\nfuzz: {cases} cases over {len(TOTALS)} files, {errors} clear errors, {cases - errors} read fine")


# ---------------------------------------------------------------------------------- datasets
def test_fuzz_dataset_files(tmp_path, monkeypatch):
    monkeypatch.setenv("UNTWINE_CACHE", str(tmp_path / "cache"))
    rng = random.Random(SEED)
    gen = np.random.default_rng(SEED)
    # dSprites official-format npz (4 images)
    ds = tmp_path / "dsprites.npz"
    np.savez_compressed(ds, imgs=(gen.random((4, 64, 64)) > 0.5).astype(np.uint8),
                        latents_classes=np.zeros((4, 6), np.int64), latents_values=np.zeros((4, 6)),
                        metadata=np.array("dsprites"))
    dsprites.read_official(ds, n=4, md5=None)
    TOTALS["dsprites.npz"] = fuzz(ds, lambda: dsprites.read_official(ds, n=4, md5=None), rng)
    # MPI3D official-format npz (4 images)
    root = tmp_path / "mpi3d_root"
    root.mkdir()
    mp = root / mpi3d.FILES["toy"][0]
    np.savez(mp, images=gen.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8))
    mpi3d.load_official("toy", root, factor_sizes=(1, 1, 1, 1, 1, 2, 2), force=True)
    TOTALS["mpi3d.npz"] = fuzz(mp, lambda: mpi3d.load_official("toy", root, factor_sizes=(1, 1, 1, 1, 1, 2, 2), force=True), rng)
    # 3DShapes h5 (4 images)
    import h5py

    root = tmp_path / "shapes_root"
    root.mkdir()
    h5p = root / shapes3d.FILES[0]
    with h5py.File(h5p, "w") as h5:
        h5["images"] = gen.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
        h5["labels"] = np.array([[0, 0, 0, 0.75, 0, -30], [0, 0, 0, 0.75, 0, -25.714285714285715],
                                 [0, 0, 0, 0.75, 0, -21.42857142857143], [0, 0, 0, 0.75, 0, -17.142857142857142]])
    sizes = (1, 1, 1, 1, 1, 4)
    read_h5 = lambda: shapes3d.load_official(root, factor_sizes=sizes, force=True)  # noqa: E731
    try:
        read_h5()
    except ValueError:
        pass  # the labels may not map onto this tiny grid: still a clear error, fuzzed all the same
    TOTALS["3dshapes.h5"] = fuzz(h5p, read_h5, rng)
    # MNIST IDX, plain and gzipped
    idx = tmp_path / "images-idx3-ubyte"
    idx.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0, 8]) + gen.integers(0, 256, 256, np.uint8).tobytes())
    assert mnist.read_idx(idx, 3).shape == (4, 8, 8)
    TOTALS["idx"] = fuzz(idx, lambda: mnist.read_idx(idx, 3), rng)
    gz = tmp_path / "images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(idx.read_bytes()))
    TOTALS["idx.gz"] = fuzz(gz, lambda: mnist.read_idx(gz, 3), rng)
    # an image folder: 3 PNGs and labels.csv
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(gen.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "labels.csv").write_text("file,a\n0.png,0\n1.png,1\n2.png,2\n")
    from_folder(folder, size=16)
    TOTALS["image png"] = fuzz(folder / "1.png", lambda: from_folder(folder, size=16), rng)
    TOTALS["labels.csv"] = fuzz(folder / "labels.csv", lambda: from_folder(folder, size=16), rng,
                                names=("labels.csv",))


# ---------------------------------------------------------------------------------- run folders
def test_fuzz_run_folder_files(tmp_path):
    rng = random.Random(SEED + 1)
    d = tmp_path / "run"
    train(RunConfig(dataset=TINY, steps=4, batch_size=4, latents=3, eval_every=2, checkpoint_every=2,
                    eval_images=8, log_every=2, device="cpu", out=str(d)), progress=False)
    (d / "metrics.json").write_text(json.dumps({"mig": 0.1, "timings_s": {"mig": 1.0}}, indent=2))
    (d / "failed.json").write_text(json.dumps({"run": "r", "stage": "train", "error": "x", "traceback": ""}))
    s = tmp_path / "sweep"
    s.mkdir()
    (s / "study.json").write_text(json.dumps({"name": "toy", "runs": ["a", "b"]}, indent=2))
    (s / "sweep_log.jsonl").write_text('{"time": "t", "counts": {"finished": 2}}\n{"time": "u", "counts": {}}\n')
    rows = [{"run": f"r{i}", "dataset": "d", "model": "m", "beta": 1.0, "seed": i, "status": "finished",
             "error": "", "val_loss": 1.5 + i, "mig": 0.25} for i in range(3)]
    write_results(rows, s / "results.csv")
    assert read_results(s / "results.csv") == rows

    readers: dict[Path, Callable[[], object]] = {
        d / "config.json": lambda: RunConfig.from_json(d / "config.json"),
        d / "summary.json": lambda: files.read_summary(d / "summary.json"),
        d / "metrics.jsonl": lambda: MetricsLog(d / "metrics.jsonl").read(),
        d / "metrics.json": lambda: files.read_metrics_json(d / "metrics.json"),
        d / "failed.json": lambda: files.read_failed_json(d / "failed.json"),
        s / "study.json": lambda: files.read_study_json(s / "study.json"),
        s / "sweep_log.jsonl": lambda: files.read_jsonl(s / "sweep_log.jsonl"),
        s / "results.csv": lambda: read_results(s / "results.csv"),
    }
    for path, read in readers.items():
        TOTALS[path.name] = fuzz(path, read, rng)

    def resume_reads() -> None:
        ck = checkpoint.find(d)
        checkpoint.load_state(ck)
        load_run(d)

    # the latest checkpoint's files (the previous one is intact: a fallback, or a clear error)
    for name in (checkpoint.MODEL_FILE, checkpoint.STATE_FILE, checkpoint.MANIFEST):
        TOTALS[f"checkpoint/{name}"] = fuzz(d / "checkpoint" / name, resume_reads, rng)
    # ... and with no previous checkpoint: every damage is an error naming the file
    shutil.rmtree(d / "checkpoint.prev")
    for name in (checkpoint.MODEL_FILE, checkpoint.STATE_FILE, checkpoint.MANIFEST):
        counts = fuzz(d / "checkpoint" / name, resume_reads, rng, names=(str(d / "checkpoint"),))
        TOTALS[f"checkpoint/{name} (no previous)"] = counts
        assert counts["errors"] == counts["cases"], name
