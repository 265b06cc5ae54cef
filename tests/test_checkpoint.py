"""Checkpoints: bit-identical resume (after Ctrl-C and after extending steps), atomic saves."""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
import torch
from safetensors.torch import load_file

from untwine import objectives
from untwine.train import RunConfig, checkpoint, load_run, train

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
    if "factor-vae" not in objectives.names():
        pytest.skip("factor-vae not registered yet")
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
    with pytest.raises(ValueError, match=r"holds a run with lr=0.0001, not 0.001; resume it with the same"):
        train(cfg(d, steps=4, lr=1e-3), progress=False, resume=True)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    run = train(cfg(tmp_path / "new", steps=2), progress=False, resume=True)
    assert run.summary["status"] == "finished" and run.summary["steps"] == 2


def test_save_is_atomic_and_find_prefers_complete_new_folder(tmp_path):
    d = tmp_path / "run"
    train(cfg(d, steps=3, checkpoint_every=100), progress=False)
    ck = d / "checkpoint"
    assert sorted(os.listdir(ck)) == ["model.safetensors", "state.pt"]
    assert checkpoint.model_metadata(ck) == {"arch": "conv64", "channels": "1", "latents": "3", "step": "3"}
    # A kill between "rename tmp -> new" and "replace checkpoint": both exist, new is newer.
    shutil.copytree(ck, d / "checkpoint.new")
    (d / "checkpoint.tmp").mkdir()
    (d / "checkpoint.tmp" / "model.safetensors").write_bytes(b"half-written")
    assert checkpoint.find(d) == d / "checkpoint.new"
    shutil.rmtree(ck)
    assert checkpoint.find(d) == d / "checkpoint.new"
    assert load_run(d).encode(squares().images[:2]).shape == (2, 3)
    # A new save cleans up the leftovers.
    run = train(cfg(d, steps=5, checkpoint_every=100), progress=False, resume=True)
    assert run.summary["steps"] == 5
    assert sorted(p.name for p in d.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint"]
