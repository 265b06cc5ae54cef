"""Checkpoints: bit-identical resume (after Ctrl-C, after extending steps, from the previous
checkpoint when the latest is damaged), atomic saves, clear errors for damaged run folders, a full disk."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np

import pytest
import torch
from safetensors.torch import load_file

from untwine import objectives
from untwine.cli import main as cli_main
from untwine.train import RunConfig, checkpoint, files, load_run, train
from untwine.train.log import MetricsLog

from conftest import TINY, squares




def cfg(out, **kw) -> RunConfig:
    base = dict(dataset=TINY, model="beta-vae", steps=100, batch_size=4, latents=3, eval_every=20,
                checkpoint_every=40, eval_images=8, log_every=10, device="cpu", out=str(out))
    return RunConfig(**{**base, **kw})


def weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(checkpoint.find(run_dir) / checkpoint.MODEL_FILE)


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def ctrl_c_at(monkeypatch, model: str, at_step: int):
    """Make the objective send SIGINT (a real Ctrl-C) to this process during step ``at_step``."""
    cls = objectives.get(model)
    orig = cls.terms

    def terms(self, x, mu, logvar, z, logits, step):
        if self.training and step == at_step:
            signal.raise_signal(signal.SIGINT)
        return orig(self, x, mu, logvar, z, logits, step)

    monkeypatch.setattr(cls, "terms", terms)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The reference: 100 steps in one go."""
    d = tmp_path_factory.mktemp("straight") / "run"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    train(cfg(d), progress=False)
    torch.set_num_threads(n)
    return d


def test_ctrl_c_then_resume_is_bit_identical(straight, tmp_path, monkeypatch, capsys):
    d = tmp_path / "run"
    ctrl_c_at(monkeypatch, "beta-vae", 49)  # the 50th step
    with pytest.raises(KeyboardInterrupt):
        train(cfg(d), progress=False)
    assert "interrupted at step 50; checkpoint saved. Resume with: untwine train --out" in capsys.readouterr().err
    assert checkpoint.load_state(checkpoint.find(d))["step"] == 50
    s = json.loads((d / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["steps"] == 50
    monkeypatch.undo()
    run = train(cfg(d), progress=False, resume=True)
    assert run.summary["status"] == "finished" and run.summary["steps"] == 100
    assert_same_weights(straight, d)
    # the logs match too (the running training means travel in the checkpoint)
    assert (d / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()
    assert run.summary["val"] == json.loads((straight / "summary.json").read_text())["val"]


def test_two_times_50_equals_100_steps(straight, tmp_path):
    d = tmp_path / "run"
    first = train(cfg(d, steps=50), progress=False)
    assert first.summary["status"] == "finished" and first.summary["steps"] == 50
    train(cfg(d, steps=100), progress=False, resume=True)
    assert_same_weights(straight, d)


def test_factor_vae_resume_restores_discriminator(tmp_path, monkeypatch):
    kw = dict(model="factor-vae", steps=8, eval_every=4, checkpoint_every=100, log_every=2)
    train(cfg(tmp_path / "a", **kw), progress=False)
    ctrl_c_at(monkeypatch, "factor-vae", 3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg(tmp_path / "b", **kw), progress=False)
    monkeypatch.undo()
    train(cfg(tmp_path / "b", **kw), progress=False, resume=True)
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    oa = load_file(checkpoint.find(tmp_path / "a") / checkpoint.OBJECTIVE_FILE)
    ob = load_file(checkpoint.find(tmp_path / "b") / checkpoint.OBJECTIVE_FILE)
    assert oa.keys() and all(torch.equal(oa[k], ob[k]) for k in oa)


def test_resuming_a_finished_run_returns_it(tmp_path):
    d = tmp_path / "run"
    train(cfg(d, steps=4, eval_every=2), progress=False)
    before = (d / "metrics.jsonl").read_text(), (d / "summary.json").read_text()
    run = train(cfg(d, steps=4, eval_every=2), progress=False, resume=True)
    assert ((d / "metrics.jsonl").read_text(), (d / "summary.json").read_text()) == before
    assert run.summary["steps"] == 4 and not run.model.training


def test_resume_with_a_different_config_is_refused(tmp_path):
    d = tmp_path / "run"
    train(cfg(d, steps=2), progress=False)
    with pytest.raises(ValueError, match=r"holds a run with lr=0.0001, not 0.001; resume it with the same settings "
                       r"\(only steps, eval_every, checkpoint_every, log_every, device, compile, threads, "
                       r"tensorboard and score may change\)"):
        train(cfg(d, steps=4, lr=1e-3), progress=False, resume=True)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    run = train(cfg(tmp_path / "new", steps=2), progress=False, resume=True)
    assert run.summary["status"] == "finished" and run.summary["steps"] == 2


def test_save_keeps_the_previous_checkpoint_and_find_prefers_complete_new_folder(tmp_path):
    d = tmp_path / "run"
    train(cfg(d, steps=3, checkpoint_every=2), progress=False)
    ck = d / "checkpoint"
    assert sorted(os.listdir(ck)) == ["manifest.json", "model.safetensors", "state.pt"]
    assert checkpoint.model_metadata(ck) == {"arch": "conv64", "channels": "1", "latents": "3", "step": "3"}
    assert checkpoint.load_state(d / "checkpoint.prev")["step"] == 2
    manifest = json.loads((ck / "manifest.json").read_text())
    assert manifest["step"] == 3 and sorted(manifest["files"]) == ["model.safetensors", "state.pt"]
    # A kill between "rename tmp -> new" and "move checkpoint -> prev": both exist, new is newer.
    shutil.copytree(ck, d / "checkpoint.new")
    (d / "checkpoint.tmp").mkdir()
    (d / "checkpoint.tmp" / "model.safetensors").write_bytes(b"half-written")
    assert checkpoint.find(d) == d / "checkpoint.new"
    shutil.rmtree(ck)  # a kill between "checkpoint -> prev" and "new -> checkpoint"
    assert checkpoint.find(d) == d / "checkpoint.new"
    assert load_run(d).encode(squares().images[:2]).shape == (2, 3)
    # A new save cleans up the leftovers and keeps one previous checkpoint.
    run = train(cfg(d, steps=5, checkpoint_every=100), progress=False, resume=True)
    assert run.summary["steps"] == 5
    assert sorted(p.name for p in d.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint", "checkpoint.prev"]
    assert checkpoint.load_state(d / "checkpoint.prev")["step"] == 3


def truncate(path, keep: float = 0.5) -> None:
    b = path.read_bytes()
    path.write_bytes(b[: int(len(b) * keep)])


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one_bit_identically(straight, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(straight, d)
    truncate(d / "checkpoint" / "model.safetensors")
    with pytest.warns(files.RunFolderWarning, match=r"checkpoint/model.safetensors is damaged \(\d+ bytes, \d+ "
                      r"were written\)\. The previous checkpoint \(step 80\) in .*checkpoint.prev is intact"):
        run = train(cfg(d), progress=False, resume=True)
    assert run.summary["status"] == "finished" and run.summary["steps"] == 100
    assert_same_weights(straight, d)
    assert (d / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()
    assert run.summary["val"] == json.loads((straight / "summary.json").read_text())["val"]


def cli(args, capsys) -> tuple[int, str]:
    code = cli_main(args)
    return code, capsys.readouterr().err


def test_the_three_damaged_run_folders_of_issue_16_give_clear_errors(straight, tmp_path, capsys):
    args = ["train", "--dataset", TINY, "--steps", "100", "--batch-size", "4", "--latents", "3",
            "--eval-every", "20", "--checkpoint-every", "40", "--eval-images", "8", "--log-every", "10",
            "--device", "cpu", "--no-progress", "--resume", "--out"]
    # 1. truncated model.safetensors and no previous checkpoint
    d = tmp_path / "a"
    shutil.copytree(straight, d)
    shutil.rmtree(d / "checkpoint.prev")
    truncate(d / "checkpoint" / "model.safetensors")
    code, err = cli(args + [str(d)], capsys)
    assert code == 2 and err == (
        f"untwine train: error: {d}/checkpoint/model.safetensors is damaged "
        f"({(d / 'checkpoint' / 'model.safetensors').stat().st_size} bytes, "
        f"{(straight / 'checkpoint' / 'model.safetensors').stat().st_size} were written); no intact checkpoint "
        f"is left. Fix: delete {d} to start this run again from step 0 (or restore the damaged file from a backup)\n")
    # 2. state.pt overwritten with text, in a folder written before manifests existed
    d = tmp_path / "b"
    shutil.copytree(straight, d)
    shutil.rmtree(d / "checkpoint.prev")
    (d / "checkpoint" / "manifest.json").unlink()
    (d / "checkpoint" / "state.pt").write_text("garbage\n")
    code, err = cli([a if a != "100" else "120" for a in args] + [str(d)], capsys)  # must read state.pt
    assert code == 2 and err.startswith(
        f"untwine train: error: {d}/checkpoint/state.pt is damaged: it cannot be read as a checkpoint state (")
    assert err.endswith(f"Fix: delete {d} to start this run again from step 0 (or restore the file from a backup)\n")
    # 3. truncated config.json
    d = tmp_path / "c"
    shutil.copytree(straight, d)
    (d / "config.json").write_text((straight / "config.json").read_text()[:2])  # "{\n"
    code, err = cli(args + [str(d)], capsys)
    assert code == 2 and err == (
        f"untwine train: error: {d}/config.json is damaged: not valid JSON (Expecting property name "
        f"enclosed in double quotes: line 2 column 1). "
        f"Fix: restore {d}/config.json (a copy of it is under \"config\" in {d}/summary.json, if that exists), "
        f"or delete {d} to start this run again\n")


def test_a_damaged_last_metrics_line_is_dropped_with_a_warning(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write(0, "val", {"loss": 1.0})
    log.write(10, "val", {"loss": 0.5})
    with log.path.open("a") as f:
        f.write('{"step": 20, "split": "va')  # killed mid-write
    with pytest.warns(files.RunFolderWarning, match=r"metrics.jsonl: dropped its last line 3 \(is not valid JSON; "
                      r"a crash while it was written\)"):
        assert [r["step"] for r in log.read()] == [0, 10]
    with pytest.warns(files.RunFolderWarning):
        log.truncate_after(10)
    assert [r["step"] for r in log.read()] == [0, 10]  # no warning any more: the line is gone
    log.path.write_text('{"step": 0, "split": "val"}\nxx\n{"step": 10, "split": "val"}\n')
    with pytest.raises(files.RunFolderError, match=r"metrics.jsonl is damaged: line 2 is not valid JSON\. Fix: "
                       r"delete line 2 \(or the whole file, losing the log but not the run\)"):
        log.read()


def test_peek_json_is_none_for_a_missing_damaged_or_mistyped_file(tmp_path):
    p = tmp_path / "summary.json"
    assert files.peek_json(p) is None  # missing
    for damage in (b"", b'{"status": "fin', b'{"a": "\xff"}', b"[1, 2]"):  # empty, cut short, not UTF-8, a list
        p.write_bytes(damage)
        assert files.peek_json(p) is None, damage
    assert files.peek_json(p, list) == [1, 2]
    p.write_text('{"status": "finished", "mig": NaN}')
    assert files.peek_json(p)["status"] == "finished"
    assert files.peek_json(tmp_path) is None  # a folder: unreadable


# ------------------------------------------------------------------ a full disk
def enospc_after(monkeypatch, n_ok: int) -> list[str]:
    """Make untwine's file writer fail with ENOSPC (after writing half) from its ``n_ok + 1``-th file on."""
    written: list[str] = []
    real = files._write_file

    def write(path, data):
        if len(written) >= n_ok:
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        written.append(str(path))
        real(path, data)

    monkeypatch.setattr(files, "_write_file", write)
    return written


@pytest.mark.parametrize("n_ok", [0, 1, 2])
def test_disk_full_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, n_ok):
    d = tmp_path / "run"
    train(cfg(d, steps=4, checkpoint_every=2, eval_every=2), progress=False)
    before = {p.name: p.read_bytes() for p in (d / "checkpoint").iterdir()}
    run = load_run(d)
    enospc_after(monkeypatch, n_ok)
    with pytest.raises(files.DiskFullError, match=(
            rf"no space left on the device while writing {d}/checkpoint.tmp; the checkpoint was not saved; the "
            rf"previous checkpoint \(step 4\) in {d}/checkpoint is intact and `untwine train --out {d} --resume` "
            r"will use it\. Free some disk space, then run the same command again")):
        checkpoint.save(d, model=run.model, objective=torch.nn.Module(), state={"step": 5}, metadata={})
    assert {p.name: p.read_bytes() for p in (d / "checkpoint").iterdir()} == before
    assert checkpoint.find(d) == d / "checkpoint" and not (d / "checkpoint.tmp").exists()


def test_disk_full_while_writing_results_csv_or_a_cache_keeps_the_previous_file(tmp_path, monkeypatch):
    from untwine.data.cache import building
    from untwine.studies.results import read_results, write_results

    rows = [{"run": "r", "dataset": "d", "model": "m", "seed": 0, "status": "finished", "error": ""}]
    csv_path = write_results(rows, tmp_path / "results.csv")
    before = csv_path.read_text()
    enospc_after(monkeypatch, 0)
    with pytest.raises(files.DiskFullError, match=rf"writing {csv_path}; the previous results.csv \(if any\) is intact"):
        write_results(rows * 2, csv_path)
    assert csv_path.read_text() == before and read_results(csv_path) == rows
    assert sorted(os.listdir(tmp_path)) == ["results.csv"]
    cache = tmp_path / "c.npy"
    np.save(cache, np.arange(3))
    with pytest.raises(files.DiskFullError, match=rf"writing the cache {cache}; the previous c.npy is intact"):
        with building(cache) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert np.load(cache).tolist() == [0, 1, 2] and not (tmp_path / "c.npy.partial").exists()


def _build_slowly(path: str, log: str) -> None:
    import time

    from untwine.data._files import ensure_npy

    def fill(arr):
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(0.5)
        arr[:] = np.arange(6).reshape(2, 3)

    assert ensure_npy(Path(path), (2, 3), "int64", fill).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_processes_that_need_a_cache_at_once_build_it_once(tmp_path):
    # the runs of a sweep on a fresh machine: before, the second rename failed with FileNotFoundError
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_build_slowly, args=(str(tmp_path / "c.npy"), str(tmp_path / "log"))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert (tmp_path / "log").read_text() == "built\n"
    assert np.load(tmp_path / "c.npy").tolist() == [[0, 1, 2], [3, 4, 5]]
