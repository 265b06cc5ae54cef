"""CPU speed settings: precision="auto", the recorded thread count, one run per core in sweeps."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from conftest import TINY, squares
from untwine.studies.study import parse_study
from untwine.studies.sweep import default_jobs
from untwine.train import RunConfig, load_run, train
from untwine.train import speed


def small(out, **kw) -> RunConfig:
    base = dict(dataset=TINY, model="beta-vae", steps=4, batch_size=8, latents=3, eval_every=4,
                eval_images=16, log_every=2, checkpoint_every=4, device="cpu", out=str(out))
    return RunConfig(**{**base, **kw})


@pytest.mark.parametrize("native, speedup, expected", [(True, 1.5, "bf16"), (False, 1.5, "fp32"),
                                                       (True, 0.85, "fp32"), (True, 1.05, "fp32")])
def test_auto_precision_is_measured_once_per_cpu(monkeypatch, tmp_path, capsys, native, speedup, expected):
    monkeypatch.delenv("UNTWINE_CPU_BF16")
    monkeypatch.setenv("UNTWINE_CACHE", str(tmp_path))
    monkeypatch.setattr(speed, "bf16_native", lambda device: native)
    calls = []
    monkeypatch.setattr(speed, "measure_cpu_bf16", lambda threads: calls.append(threads) or speedup)
    assert RunConfig(steps=10, device="cpu", threads=2).resolved().precision == expected
    assert RunConfig(steps=10, device="cpu", threads=2).resolved().precision == expected
    assert calls == ([2] if native else [])  # measured once, then read from the cache
    if native:
        cached = json.loads((tmp_path / "cpu_precision.json").read_text())
        (entry,) = cached.values()
        assert entry["bf16_speedup"] == speedup and "threads 2" in next(iter(cached))
        assert "measuring once whether bfloat16 pays" in capsys.readouterr().err
        RunConfig(steps=10, device="cpu", threads=1).resolved()  # another thread count: measured again
        assert calls == [2, 1]
    # an explicit choice is kept whatever the hardware
    assert RunConfig(steps=10, precision="fp32").resolved().precision == "fp32"
    assert RunConfig(steps=10, precision="bf16").resolved().precision == "bf16"


@pytest.mark.parametrize("native", [True, False])
def test_explicit_bf16_on_a_cpu_that_emulates_it_is_kept_with_a_warning(monkeypatch, native):
    monkeypatch.setattr(speed, "bf16_native", lambda device: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert RunConfig(steps=10, device="cpu", precision="bf16").resolved().precision == "bf16"
        assert RunConfig(steps=10, device="cpu", precision="fp32").resolved().precision == "fp32"
    messages = [str(w.message) for w in caught]
    assert messages == ([] if native else [
        f"precision bf16 on a CPU without native bfloat16 ({speed.cpu_model()}: no AVX512-BF16 or AMX): oneDNN "
        "emulates it, several times slower than fp32 (9x measured on such a CPU, benchmarks/RESULTS.md); "
        "use precision auto (fp32 here) or fp32"])


def test_the_environment_answers_without_measuring(monkeypatch, tmp_path):
    monkeypatch.setenv("UNTWINE_CACHE", str(tmp_path))
    monkeypatch.setattr(speed, "measure_cpu_bf16", lambda threads: pytest.fail("measured"))
    monkeypatch.setenv("UNTWINE_CPU_BF16", "1")
    assert RunConfig(steps=10, device="cpu").resolved().precision == "bf16"
    monkeypatch.setenv("UNTWINE_CPU_BF16", "yes")
    with pytest.raises(ValueError, match=r"UNTWINE_CPU_BF16 must be 1 \(use bf16 on this CPU\) or 0 \(use fp32\), got 'yes'"):
        RunConfig(steps=10, device="cpu").resolved()


def test_a_damaged_cache_is_measured_again(monkeypatch, tmp_path):
    monkeypatch.delenv("UNTWINE_CPU_BF16")
    monkeypatch.setenv("UNTWINE_CACHE", str(tmp_path))
    monkeypatch.setattr(speed, "bf16_native", lambda device: True)
    monkeypatch.setattr(speed, "measure_cpu_bf16", lambda threads: 2.0)
    (tmp_path / "cpu_precision.json").write_text('{"torn')
    assert speed.cpu_bf16_pays(1) is True
    assert list(json.loads((tmp_path / "cpu_precision.json").read_text()).values())[0]["bf16_speedup"] == 2.0


def test_the_measurement_times_both_precisions_and_keeps_the_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ratio = speed.measure_cpu_bf16(1, rounds=1, steps=1)
    assert math.isfinite(ratio) and ratio > 0  # ~0.1 where bf16 is emulated (AMD EPYC with AVX2 only), 1.5 with AVX512-BF16
    assert torch.equal(torch.rand(3), expected)


def test_bf16_native_reads_the_cpu_capabilities(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": True}, raising=False)
    assert speed.bf16_native("cpu") is True
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": False}, raising=False)
    assert speed.bf16_native("cpu") is False


def test_bad_precision_and_threads_are_named():
    with pytest.raises(ValueError, match="unknown precision 'fp16'; choose one of auto, fp32, bf16"):
        RunConfig(precision="fp16").validate(check_dataset=False)
    with pytest.raises(ValueError, match=r"threads must be an integer >= 0 \(0: torch's default\), got -1"):
        RunConfig(threads=-1).validate(check_dataset=False)


def test_the_run_records_what_it_used(tmp_path, monkeypatch):
    monkeypatch.setenv("UNTWINE_CPU_BF16", "1")
    run = train(small(tmp_path / "r", threads=0), progress=False, data=squares())
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["precision"] == "bf16" and run.config.precision == "bf16"
    assert saved["threads"] == torch.get_num_threads() == 1  # conftest runs tests on one thread


def test_threads_zero_resolves_to_torchs_count():
    torch.set_num_threads(2)
    assert RunConfig(steps=10).resolved().threads == 2
    assert RunConfig(steps=10, threads=3).resolved().threads == 3


def test_a_bf16_run_encodes_in_bf16_close_to_fp32(tmp_path):
    run = load_run(train(small(tmp_path / "r", precision="bf16", steps=8), progress=False, data=squares()).dir)
    assert run.precision is None and run.config.precision == "bf16"
    x = squares().images[:64]
    z_bf16 = run.encode(x)
    run.precision = "fp32"
    z_fp32 = run.encode(x)
    assert z_bf16.dtype == np.float32 and z_bf16.shape == z_fp32.shape == (64, 3)
    assert not np.array_equal(z_bf16, z_fp32)  # the bf16 path really ran
    np.testing.assert_allclose(z_bf16, z_fp32, atol=0.05 * np.abs(z_fp32).max() + 1e-3)


STUDY = """
[study]
name = "t"
datasets = ["{ds}"]
seeds = [0]
[train]
steps = 2
{extra}
[[models]]
name = "beta-vae"
"""


def test_study_runs_default_to_one_thread_and_the_study_can_say_otherwise():
    one = parse_study(STUDY.format(ds=TINY, extra=""))
    assert [c.threads for c in one.runs()] == [1]
    two = parse_study(STUDY.format(ds=TINY, extra="threads = 2"))
    assert [c.threads for c in two.runs()] == [2]


def test_default_jobs_fills_the_cores(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert default_jobs(20) == 8  # one 1-thread run per core
    assert default_jobs(3) == 3
    assert default_jobs(20, threads=2) == 4
    assert default_jobs(20, threads=16) == 1


def test_training_flushes_denormals_and_restores_the_mode(tmp_path, monkeypatch):
    from untwine.train import loop

    assert not speed.flushing_denormals()
    seen = []
    original = loop.SingleStep.__call__

    def spy(self, step):
        seen.append(speed.flushing_denormals())
        return original(self, step)

    monkeypatch.setattr(loop.SingleStep, "__call__", spy)
    train(small(tmp_path / "r"), progress=False, data=squares())
    assert seen == [True] * 4
    assert not speed.flushing_denormals()  # the caller's mode is back
    with speed.flush_denormal():
        assert float(torch.tensor(1e-39) * 1.0) == 0.0 and speed.flushing_denormals()
    assert float(torch.tensor(1e-39) * 1.0) > 0


@pytest.mark.parametrize("arch", ["conv64", "mlp"])
def test_the_latent_code_stays_float32_under_bf16(arch):
    from untwine.models import VAE

    torch.manual_seed(0)
    model = VAE(arch, 1, 10)
    z = torch.full((4, 10), 1.25)
    dz = z + 2.0**-12  # a step that bfloat16 (resolution 2**-7 at 1.25) rounds away
    assert torch.equal(z.bfloat16(), dz.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mu, logvar = model.encoder(torch.rand(4, 1, 64, 64))
        a, b = model.decoder(z), model.decoder(dz)
    assert mu.dtype == logvar.dtype == torch.float32
    assert not torch.equal(mu, mu.bfloat16().float())  # computed in float32, not rounded to bf16
    assert a.dtype == torch.bfloat16  # the rest of the decoder did compute in bf16
    assert not torch.equal(a, b)  # the decoder read z in float32


def test_auto_keeps_fp32_where_bf16_learned_otherwise(monkeypatch):
    from untwine.train.packed import pack_key

    monkeypatch.setenv("UNTWINE_CPU_BF16", "1")  # a CPU where bf16 pays

    def resolved(model, **hp):
        return RunConfig(steps=10, device="cpu", model=model, hparams=hp).resolved(check_dataset=False).precision

    assert resolved("vae") == "fp32"
    assert resolved("beta-vae", beta=1) == "fp32"
    assert resolved("beta-vae", beta=0.5) == "fp32"
    assert resolved("beta-vae", beta=16) == "bf16"
    assert resolved("beta-vae") == "bf16"  # the default beta, 4
    assert resolved("factor-vae", gamma=10) == "bf16"
    # asked for explicitly, bf16 is used
    assert RunConfig(steps=10, model="vae", precision="bf16").resolved(check_dataset=False).precision == "bf16"
    # runs that resolve differently are not packed together
    a = RunConfig(steps=10, device="cpu", model="beta-vae", hparams={"beta": 1})
    b = RunConfig(steps=10, device="cpu", model="beta-vae", hparams={"beta": 16})
    assert pack_key(a) != pack_key(b)
    assert pack_key(b) == pack_key(RunConfig(steps=10, device="cpu", model="beta-vae", hparams={"beta": 8}, seed=3))
