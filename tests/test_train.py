"""The trainer on tiny synthetic data: run folder contents, NaN policy, config checks, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from untwine import objectives
from untwine.cli import main
from untwine.train import RunConfig, load_run, train

from conftest import TINY, squares  # noqa: F401


def tiny(tmp_path, **kw) -> RunConfig:
    base = dict(dataset=TINY, model="beta-vae", steps=6, batch_size=8, latents=3, eval_every=3,
                eval_images=16, log_every=2, device="cpu", out=str(tmp_path / "run"))
    return RunConfig(**{**base, **kw})


def test_run_folder_metrics_and_summary(tmp_path):
    run = train(tiny(tmp_path), progress=False)
    rows = [json.loads(ln) for ln in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in rows] == [
        (0, "val"), (3, "train"), (3, "val"), (6, "train"), (6, "val")
    ]
    for r in rows:
        assert {"loss", "rec", "kl", "kl_dims", "elbo", "tc"} <= set(r)
        assert len(r["kl_dims"]) == 3 and math.isclose(sum(r["kl_dims"]), r["kl"], rel_tol=1e-4)
        assert math.isclose(r["elbo"], -(r["rec"] + r["kl"]), rel_tol=1e-6)
        assert r["rec"] > 0 and r["kl"] >= 0
    s = json.loads((run.dir / "summary.json").read_text())
    assert s["status"] == "finished" and s["steps"] == 6 and s["device"] == "cpu"
    assert s["initial_val"] == {k: v for k, v in rows[0].items() if k not in ("step", "split")}
    assert s["val"]["rec"] == rows[-1]["rec"] and s["train"]["loss"] == rows[-2]["loss"]
    assert s["wall_time_s"] > 0 and s["images_per_s"] > 0
    assert s["config"]["hparams"] == {"beta": 4.0} and s["config"]["eval_every"] == 3
    assert {"untwine_version", "torch_version"} <= set(s)
    assert RunConfig.from_json(run.dir / "config.json") == run.config
    assert not run.model.training


def test_train_with_explicit_data_records_its_name(tmp_path):
    run = train(tiny(tmp_path, dataset="dsprites", steps=2), progress=False, data=squares())
    assert run.config.dataset == TINY and run.config.source == "arrays"


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    cls = objectives.get("beta-vae")
    orig = cls.terms

    def terms(self, x, mu, logvar, z, logits, step):
        t = orig(self, x, mu, logvar, z, logits, step)
        return {**t, "loss": t["loss"] * float("nan")} if step >= 7 else t

    monkeypatch.setattr(cls, "terms", terms)
    cfg = tiny(tmp_path, steps=20, checkpoint_every=5, eval_every=10, log_every=2)
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 8; the last good checkpoint \(step 5\)"):
        train(cfg, progress=False)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["status"] == "failed" and "step 8" in s["error"] and s["steps"] == 9  # detected at the next check
    from untwine.train import checkpoint

    assert checkpoint.load_state(checkpoint.find(tmp_path / "run"))["step"] == 5
    assert all(torch.isfinite(p).all() for p in load_run(tmp_path / "run").model.parameters())


@pytest.mark.parametrize("kw, match", [
    ({"steps": 0}, r"steps must be an integer >= 1, got 0"),
    ({"batch_size": 0}, r"batch_size must be an integer >= 1, got 0"),
    ({"lr": -1.0}, r"lr must be a finite number > 0, got -1.0"),
    ({"model": "nope"}, r"unknown model 'nope'; choose one of .*beta-vae"),
    ({"arch": "resnet"}, r"unknown arch 'resnet'; choose one of conv64, mlp"),
    ({"hparams": {"beta": -1.0}}, r"beta-vae: beta must be .*got -1.0"),
    ({"hparams": {"gamma": 1.0}}, r"beta-vae: unknown hyperparameter\(s\) gamma; it takes beta"),
    ({"dataset": "nope"}, r"unknown dataset 'nope'"),
    ({"source": "official"}, r"tiny-squares: unknown source 'official'; choose one of arrays"),
    ({"device": "tpu"}, r"unknown device 'tpu'; choose one of auto, cpu, cuda"),
    ({"val_fraction": 0.0}, r"val_fraction must be in \(0, 1\)"),
    ({"adam_beta2": 1.0}, r"adam_beta2 must be in \[0, 1\), got 1.0"),
    ({"compile": "fast"}, r"unknown compile 'fast'; choose one of off, on, default, reduce-overhead"),
    ({"precision": "fp16"}, r"unknown precision 'fp16'; choose one of auto, fp32, bf16"),
])
def test_config_validation_errors(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(tmp_path, **kw).validate()
    assert not (tmp_path / "run").exists()  # nothing was done


def test_min_batch_size_is_enforced(tmp_path):
    big = [n for n in objectives.names() if objectives.get(n).min_batch_size > 1]
    assert big, "beta-tcvae, factor-vae and the DIP-VAEs need batch_size >= 2"
    need = objectives.get(big[0]).min_batch_size
    with pytest.raises(ValueError, match=f"{big[0]} needs batch_size >= {need}, got 1"):
        tiny(tmp_path, model=big[0], batch_size=1).validate()


def test_resolved_fills_defaults():
    cfg = RunConfig(model="beta_vae", steps=100_000).resolved(check_dataset=False)
    assert cfg.model == "beta-vae" and cfg.hparams == {"beta": 4.0}
    assert cfg.eval_every == 1000 and cfg.checkpoint_every == 5000
    assert cfg.out == "runs/beta-vae-dsprites-seed0"
    assert RunConfig(steps=40).resolved(check_dataset=False).eval_every == 2


def test_toml_round_trip(tmp_path):
    cfg = RunConfig(dataset=TINY, model="beta-vae", hparams={"beta": 2.5}, steps=1234, lr=3e-4,
                    out="x/y", eval_every=7, source="arrays")
    p = tmp_path / "run.toml"
    p.write_text(cfg.to_toml())
    assert RunConfig.from_toml(p) == cfg
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_toml_errors(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('model = "vae"\nbeta = 4.0\n')
    with pytest.raises(ValueError, match=r"unknown config key\(s\) beta; .*\[hparams\]"):
        RunConfig.from_toml(p)
    p.write_text('steps = "many"\n')
    with pytest.raises(ValueError, match="steps must be an integer, got 'many'"):
        RunConfig.from_toml(p)
    with pytest.raises(FileNotFoundError, match="missing.toml not found"):
        RunConfig.from_toml(tmp_path / "missing.toml")


def test_existing_run_folder_needs_resume(tmp_path):
    train(tiny(tmp_path, steps=2), progress=False)
    with pytest.raises(ValueError, match="already holds a run; pass resume=True"):
        train(tiny(tmp_path, steps=2), progress=False)


def test_load_run_encode_decode_sample(tmp_path):
    train(tiny(tmp_path, steps=2), progress=False)
    run = load_run(tmp_path / "run")
    imgs = squares().images[:10]  # uint8 10 x 1 x 64 x 64
    codes = run.encode(imgs)
    assert codes.shape == (10, 3) and codes.dtype == np.float32
    np.testing.assert_allclose(run.encode(imgs.float() / 255), codes, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run.encode(imgs.permute(0, 2, 3, 1).numpy()), codes, rtol=1e-5, atol=1e-6)
    x = run.decode(codes)
    assert x.shape == (10, 1, 64, 64) and x.min() >= 0 and x.max() <= 1
    s = run.sample(4, seed=1)
    assert s.shape == (4, 1, 64, 64) and np.array_equal(s, run.sample(4, seed=1))
    assert run.summary["status"] == "finished" and len(run.metrics("val")) == 2
    with pytest.raises(ValueError, match=r"images must be N x 1 x 64 x 64"):
        run.encode(np.zeros((2, 3, 64, 64), np.float32))
    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        load_run(tmp_path / "nowhere")


def _cli(tmp_path, *extra):
    return ["train", "--dataset", TINY, "--steps", "5", "--batch-size", "8", "--latents", "3",
            "--eval-images", "16", "--device", "cpu", "--no-progress", *extra]


@pytest.mark.parametrize("model", objectives.names())
def test_cli_trains_every_model(tmp_path, model, capsys):
    out = tmp_path / model
    assert main(_cli(tmp_path, "--model", model, "--out", str(out))) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "finished" and s["steps"] == 5 and s["config"]["model"] == model
    assert math.isfinite(s["val"]["loss"]) and "tc" in s["val"]
    assert "finished: 5 steps" in capsys.readouterr().out


def test_cli_hparam_flags_and_toml_precedence(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text('model = "beta-vae"\nlr = 0.002\nsteps = 3\n[hparams]\nbeta = 2.0\n')
    out = tmp_path / "r"
    assert main(_cli(tmp_path, "--config", str(toml), "--beta", "8", "--out", str(out))) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["hparams"] == {"beta": 8.0} and cfg["lr"] == 0.002 and cfg["steps"] == 5
    other = sorted({p for n in objectives.names() for p in objectives.get(n).params} - {"beta"})
    if other:
        flag = "--" + other[0].replace("_", "-")
        assert main(_cli(tmp_path, "--model", "beta-vae", flag, "1", "--out", str(tmp_path / "x"))) == 2
        assert f"beta-vae: unknown hyperparameter(s) {other[0]}; it takes beta" in capsys.readouterr().err
    assert main(_cli(tmp_path, "--model", "beta-vae", "--beta", "-1", "--out", str(tmp_path / "y"))) == 2
    assert "beta must be" in capsys.readouterr().err and not (tmp_path / "y").exists()


# ---------------------------------------------------------------------- speed options
def _train_losses(run) -> list[float]:
    rows = [json.loads(ln) for ln in (run.dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


def test_bf16_autocast_trains_with_float32_outputs_and_close_losses(tmp_path):
    from untwine.train.speed import AutocastForward

    kw = dict(steps=4, log_every=1, eval_every=1, latents=4)
    fp32 = train(tiny(tmp_path / "a", precision="fp32", **kw), progress=False)
    bf16 = train(tiny(tmp_path / "b", precision="bf16", **kw), progress=False)
    a, b = _train_losses(fp32), _train_losses(bf16)
    assert len(a) == len(b) == 4
    # same init, batches and eps: bfloat16's 8-bit mantissa moves the loss by well under 1%
    assert all(math.isclose(u, v, rel_tol=1e-2) for u, v in zip(a, b)), (a, b)
    assert a != b  # autocast really ran in bfloat16
    out = AutocastForward(bf16.model, "cpu")(torch.rand(2, 1, 64, 64))
    assert [t.dtype for t in out] == [torch.float32] * 4


@pytest.mark.parametrize("model, fused", [("beta-vae", True), ("annealed-vae", False), ("factor-vae", False)])
def test_compiled_step_equals_eager(tmp_path, monkeypatch, model, fused):
    """compile="on": forward + terms + logs compiled as one function where the objective allows
    (``_fused_step``), else the model alone; either way the run equals the eager one."""
    import torch._inductor.config as inductor_config
    from untwine.train import loop

    made = []
    orig = loop._fused_step
    monkeypatch.setattr(loop, "_fused_step", lambda *a: made.append(orig(*a)) or made[-1])
    kw = dict(model=model, steps=3, log_every=1, eval_every=1, latents=4)
    if model == "annealed-vae":
        kw["hparams"] = {"gamma": 10.0, "anneal_steps": 2.0}  # the capacity changes every step
    eager = train(tiny(tmp_path / "a", **kw), progress=False)
    # eager RNG inside compiled code, so eps is the same stream and the runs can be compared
    with inductor_config.patch(fallback_random=True):
        compiled = train(tiny(tmp_path / "b", compile="on", **kw), progress=False)
    assert made[0] is None and (made[1] is not None) == fused
    a, b = _train_losses(eager), _train_losses(compiled)
    assert len(a) == len(b) == 3
    assert all(math.isclose(u, v, rel_tol=1e-4) for u, v in zip(a, b)), (a, b)
    assert compiled.summary["config"]["compile"] == "on"


def test_compile_mode_per_device():
    from untwine.train.speed import compile_mode

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert compile_mode("off", cpu) is None
    assert compile_mode("on", cpu) == "default" and compile_mode("on", cuda) == "reduce-overhead"
    assert compile_mode("max-autotune", cpu) == "max-autotune"


def test_resume_may_change_compile_but_not_precision(tmp_path):
    cfg = tiny(tmp_path, steps=2, precision="fp32")
    train(cfg, progress=False)
    with pytest.raises(ValueError, match=r"holds a run with precision='fp32', not 'bf16'"):
        train(tiny(tmp_path, steps=3, precision="bf16"), progress=False, resume=True)
    run = train(tiny(tmp_path, steps=3, compile="default", precision="fp32"), progress=False, resume=True)
    assert run.summary["steps"] == 3 and run.summary["status"] == "finished"


def test_resume_with_automatic_precision_and_threads_keeps_what_the_run_used(tmp_path):
    train(tiny(tmp_path, steps=2, precision="bf16", threads=2), progress=False)
    run = train(tiny(tmp_path, steps=3), progress=False, resume=True)  # precision="auto", threads=0
    assert run.summary["status"] == "finished"
    assert (run.config.precision, run.config.threads) == ("bf16", 2)  # not this process's 1 thread


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_compiled_bf16_run_trains(tmp_path):
    run = train(tiny(tmp_path, steps=40, eval_every=20, log_every=10, device="cuda", compile="on",
                     precision="bf16", batch_size=64), progress=False)
    losses = _train_losses(run)
    assert run.summary["status"] == "finished" and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]


# ---------------------------------------------------------------------- where a run resumes; threads
def test_resume_point_is_where_train_continues(tmp_path):
    from untwine.train import checkpoint
    from untwine.train.resume import ResumePoint, resume_point

    assert resume_point(tmp_path / "run", 4) == ResumePoint(None, 0, False)
    train(tiny(tmp_path, steps=2, checkpoint_every=2), progress=False)
    ckpt = checkpoint.find(tmp_path / "run")
    assert resume_point(tmp_path / "run", 2) == ResumePoint(ckpt, 2, True)  # nothing left to train
    assert resume_point(tmp_path / "run", 4) == ResumePoint(ckpt, 2, False)  # extended from step 2
    with pytest.raises(ValueError, match=r"the checkpoint is at step 2, beyond steps=1"):
        resume_point(tmp_path / "run", 1)
    with pytest.raises(ValueError, match=r"the checkpoint is at step 2, beyond steps=1"):
        train(tiny(tmp_path, steps=1), progress=False, resume=True)


def test_threads_apply_while_training_and_are_restored(tmp_path, monkeypatch):
    cls = objectives.get("beta-vae")
    orig, seen = cls.terms, []

    def terms(self, *a):
        seen.append(torch.get_num_threads())
        return orig(self, *a)

    monkeypatch.setattr(cls, "terms", terms)
    train(tiny(tmp_path, steps=2, threads=2), progress=False)
    assert set(seen) == {2} and torch.get_num_threads() == 1  # conftest runs tests on one thread


# ---------------------------------------------------------------------- scores while training
def _rows(run_dir, split: str) -> list[dict]:
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split]


def test_score_rows_are_untwine_evaluates_and_leave_training_unchanged(tmp_path):
    from untwine.metrics import evaluate

    cfg = tiny(tmp_path, score="MIG, gaussian-tc", checkpoint_every=3)
    run = train(cfg, progress=False)
    assert run.config.score == "mig,gaussian_tc"  # as config.json records it, resolved once
    scores = _rows(run.dir, "score")
    assert [r["step"] for r in scores] == [0, 3, 6]  # the untrained encoder, then every evaluation
    assert {"mig", "gaussian_tc", "mig_per_factor"} <= set(scores[-1]) and len(scores[-1]["mig_per_factor"]) == 3
    assert run.summary["score"] == {k: v for k, v in scores[-1].items() if k not in ("step", "split")}
    # what `untwine evaluate --metrics mig,gaussian_tc` gives for the checkpoint at step 6
    ref = evaluate(load_run(run.dir), squares(), metrics="mig,gaussian_tc", seed=0, progress=False)
    assert (scores[-1]["mig"], scores[-1]["gaussian_tc"]) == (ref["mig"], ref["gaussian_tc"])
    # the same run without scores trains identically
    plain = train(tiny(tmp_path, out=str(tmp_path / "plain"), checkpoint_every=3), progress=False)
    assert _rows(plain.dir, "train") == _rows(run.dir, "train") and _rows(plain.dir, "val") == _rows(run.dir, "val")
    assert all(torch.equal(a, b) for a, b in zip(plain.model.state_dict().values(), run.model.state_dict().values()))
    assert "score" not in plain.summary and not _rows(plain.dir, "score")


def test_scores_of_a_resumed_run_continue_its_curve(tmp_path):
    whole = train(tiny(tmp_path, out=str(tmp_path / "whole"), score="mig", checkpoint_every=3), progress=False)
    train(tiny(tmp_path, steps=3, checkpoint_every=3, score="mig"), progress=False)
    run = train(tiny(tmp_path, steps=6, checkpoint_every=3, score="mig"), progress=False, resume=True)
    assert _rows(run.dir, "score") == _rows(whole.dir, "score")  # steps 0, 3, 6 once each, the same values
    # scores switched on when resuming (score may change): from the resumed run's evaluations on
    train(tiny(tmp_path, out=str(tmp_path / "late"), steps=3, checkpoint_every=3), progress=False)
    late = train(tiny(tmp_path, out=str(tmp_path / "late"), checkpoint_every=3, score="mig"), progress=False,
                 resume=True)
    assert _rows(late.dir, "score") == _rows(whole.dir, "score")[-1:]


def test_an_unknown_score_metric_fails_before_training(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^score: unknown metric 'mgi'; choose one of mig, sap, "):
        RunConfig(score="mig,mgi").validate(check_dataset=False)
    assert main(["train", "--dataset", TINY, "--score", "mgi", "--out", str(tmp_path / "r")]) == 2
    assert "score: unknown metric 'mgi'" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert main(["train", "--dataset", TINY, "--score", "mig", "--steps", "2", "--batch-size", "8", "--latents", "3",
                 "--eval-images", "16", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "r")]) == 0
    mig = json.loads((tmp_path / "r" / "summary.json").read_text())["score"]["mig"]
    assert f"nats/image, mig {mig:.4f}; run folder" in capsys.readouterr().out


def test_a_score_that_fails_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    from untwine import hooks

    def broken(run, data, names):
        raise ValueError("boom")

    monkeypatch.setattr(hooks, "run_scores", broken)
    with pytest.warns(UserWarning, match=r"score at step \d failed: ValueError: boom"):
        run = train(tiny(tmp_path, score="mig"), progress=False)
    assert run.summary["status"] == "finished" and run.summary["score"] == {"error": "ValueError: boom"}
    assert [(r["step"], r["error"]) for r in _rows(run.dir, "score")] == [(s, "ValueError: boom") for s in (0, 3, 6)]


def test_an_interrupt_during_an_evaluation_keeps_the_last_checkpoint_and_resumes_it(tmp_path, monkeypatch):
    """A second Ctrl-C while step 3 is scored: no checkpoint at step 3 (its rows are not all
    written); the resumed run redoes steps 3 and its evaluation, and ends as the uninterrupted one."""
    from untwine import hooks

    whole = train(tiny(tmp_path, out=str(tmp_path / "whole"), score="mig", checkpoint_every=2), progress=False)
    real, calls = hooks.run_scores, []

    def interrupted_at_3(run, data, names):
        calls.append(names)
        if len(calls) == 2:  # step 0's scores, then step 3's
            raise KeyboardInterrupt
        return real(run, data, names)

    monkeypatch.setattr(hooks, "run_scores", interrupted_at_3)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path, score="mig", checkpoint_every=2), progress=False)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["error"].startswith("interrupted before step 3's evaluation was written; last checkpoint: step 2")
    monkeypatch.setattr(hooks, "run_scores", real)
    run = train(tiny(tmp_path, score="mig", checkpoint_every=2), progress=False, resume=True)
    for split in ("train", "val", "score"):
        assert _rows(run.dir, split) == _rows(whole.dir, split), split
