"""`untwine sweep --pack K`: packed runs give the unpacked sweep's results, skip, resume, fail alone."""

from __future__ import annotations

import importlib
import json
import os
import shutil

import pytest
import torch

from untwine.cli import main as cli_main
from untwine.studies import parse_study, sweep
from untwine.studies.results import read_results
from untwine.studies.sweep import RunOutcome, RunSpec, execute_pack, execute_run, plan_units, specs_for
from untwine.train import RunConfig, train

from conftest import TINY, nan_loss_from

sweep_mod = importlib.import_module("untwine.studies.execute")  # where runs are executed

# 2 betas x 2 seeds of beta-VAE on the 128-image tiny dataset; 6 steps each.
STUDY = f"""
[study]
name = "packtiny"
datasets = ["{TINY}"]
seeds = [0, 1]
[train]
steps = 6
batch_size = 8
arch = "conv64"
latents = 3
eval_every = 3
eval_images = 16
log_every = 2
checkpoint_every = 3
device = "cpu"
[eval]
metrics = ["mig"]
sizes = {{ mig = {{ num_train = 64 }} }}
[[models]]
name = "beta-vae"
grid = {{ beta = [1, 4] }}
[report]
baseline = false
"""

TEXT = {"run", "dataset", "model", "status", "error"}


def assert_same_results(a, b):
    """Two results.csv files: same columns, same text cells, numbers within float rounding."""
    ra, rb = read_results(a), read_results(b)
    assert a.read_text().splitlines()[0] == b.read_text().splitlines()[0]
    assert len(ra) == len(rb)
    for x, y in zip(ra, rb):
        assert x.keys() == y.keys()
        for k in x:
            if k in TEXT or x[k] is None or isinstance(x[k], int):
                assert x[k] == y[k], (x["run"], k)
            else:
                assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-4), (x["run"], k)


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    """The study swept one run at a time (the reference)."""
    root = tmp_path_factory.mktemp("unpacked")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = sweep(parse_study(STUDY), root, jobs=1, progress=False)
    finally:
        torch.set_num_threads(n)
    assert res.count("finished") == 4
    return root


# ----------------------------------------------------------------------------- real training
def test_packed_sweep_equals_unpacked_and_skips_when_rerun(tmp_path, unpacked, monkeypatch):
    study = parse_study(STUDY)
    res = sweep(study, tmp_path, jobs=1, progress=False, pack=2)
    assert [o.status for o in res.outcomes] == ["finished"] * 4
    for name in study.run_names():
        assert (tmp_path / name / "metrics.json").is_file() and (tmp_path / name / "eval_time.json").is_file()
        assert not (tmp_path / name / "failed.json").exists()
        assert json.loads((tmp_path / name / "summary.json").read_text())["status"] == "finished"
    assert_same_results(tmp_path / "results.csv", unpacked / "results.csv")
    log = [json.loads(ln) for ln in (tmp_path / "sweep_log.jsonl").read_text().splitlines()]
    assert log[-1]["pack"] == 2 and log[-1]["counts"]["finished"] == 4

    # (b) again: everything is skipped, nothing is trained or evaluated
    def boom(*a, **k):
        raise AssertionError("nothing may be trained or evaluated again")

    monkeypatch.setattr(sweep_mod, "_train_pack", boom)
    monkeypatch.setattr(sweep_mod, "_train", boom)
    monkeypatch.setattr(sweep_mod, "_evaluate", boom)
    mtimes = {n: (tmp_path / n / "metrics.json").stat().st_mtime_ns for n in study.run_names()}
    res = sweep(study, tmp_path, jobs=1, progress=False, pack=2)
    assert res.count("skipped") == 4
    assert mtimes == {n: (tmp_path / n / "metrics.json").stat().st_mtime_ns for n in study.run_names()}
    assert_same_results(tmp_path / "results.csv", unpacked / "results.csv")


def test_finished_run_is_kept_and_the_rest_is_packed(tmp_path, unpacked, monkeypatch):
    """(c) one run finished alone beforehand; the packed sweep trains the other three as one pack."""
    study = parse_study(STUDY)
    specs = specs_for(study, tmp_path)
    assert execute_run(specs[1]).status == "finished"
    mtime = (specs[1].dir / "summary.json").stat().st_mtime_ns
    packs = []
    real = sweep_mod._train_pack
    monkeypatch.setattr(sweep_mod, "_train_pack", lambda cfgs: packs.append([c.out for c in cfgs]) or real(cfgs))
    res = sweep(study, tmp_path, jobs=1, progress=False, pack=4)
    assert [o.status for o in res.outcomes] == ["finished", "skipped", "finished", "finished"]
    assert packs == [[specs[i].config["out"] for i in (0, 2, 3)]]
    assert (specs[1].dir / "summary.json").stat().st_mtime_ns == mtime
    assert_same_results(tmp_path / "results.csv", unpacked / "results.csv")


def test_runs_stopped_at_different_steps_finish_one_by_one(tmp_path, unpacked, monkeypatch):
    """A pack whose runs would resume from different steps falls back to execute_run per run."""
    study = parse_study(STUDY)
    specs = specs_for(study, tmp_path)[:2]
    cfg = RunConfig.from_dict(specs[0].config)
    train(RunConfig.from_dict({**specs[0].config, "steps": 3}), progress=False)  # stopped at step 3
    monkeypatch.setattr(sweep_mod, "_train_pack", lambda cfgs: pytest.fail("must not pack these"))
    outs = execute_pack(specs)
    assert [o.status for o in outs] == ["finished", "finished"]
    assert "stopped at different steps (0, 3); running them one by one" in outs[0].note
    assert json.loads((specs[0].dir / "summary.json").read_text())["steps"] == cfg.steps
    # both match their unpacked twins
    for s in specs:
        a = json.loads((s.dir / "metrics.json").read_text())["mig"]
        b = json.loads((unpacked / s.name / "metrics.json").read_text())["mig"]
        assert a == pytest.approx(b, abs=1e-4)


def test_a_diverging_run_fails_alone_with_the_unpacked_record(tmp_path, monkeypatch):
    """A packed run that goes NaN gets the failed.json (and results row) an unpacked run gets;
    its pack-mate finishes."""
    nan_loss_from(monkeypatch, beta=4.0, step=3)
    study = parse_study(STUDY.replace("seeds = [0, 1]", "seeds = [0]"))
    rows = {}
    for name, pack in (("a", 1), ("b", 2)):
        res = sweep(study, tmp_path / name, jobs=1, progress=False, pack=pack)
        assert [o.status for o in res.outcomes] == ["finished", "failed"]
        rows[name] = read_results(tmp_path / name / "results.csv")
        for r in rows[name]:
            r["error"] = r["error"].replace(str((tmp_path / name).resolve()), "ROOT")
    assert rows["b"][1]["error"].startswith("train: FloatingPointError: loss became nan at step 4")
    assert [r["error"] for r in rows["a"]] == [r["error"] for r in rows["b"]]
    assert rows["a"][0]["mig"] == pytest.approx(rows["b"][0]["mig"], abs=1e-4)
    failed = json.loads((tmp_path / "b" / study.run_names()[1] / "failed.json").read_text())
    assert failed["stage"] == "train"


# ----------------------------------------------------------------------------- fast (no training)
def test_plan_units_groups_by_pack_key_in_study_order(tmp_path):
    text = STUDY.replace("seeds = [0, 1]", "seeds = [0, 1, 2]") + (
        '[[models]]\nname = "vae"\ntrain = { batch_size = 16 }\n')
    study = parse_study(text)
    specs = specs_for(study, tmp_path)
    units = plan_units(specs, 2)
    names = [[s.name.split("/", 1)[1] for s in u] for u in units]
    assert names == [
        ["beta-vae/beta=1/seed=0", "beta-vae/beta=1/seed=1"],
        ["beta-vae/beta=1/seed=2", "beta-vae/beta=4/seed=0"],
        ["beta-vae/beta=4/seed=1", "beta-vae/beta=4/seed=2"],
        ["vae/seed=0", "vae/seed=1"],  # batch_size differs: packed separately
        ["vae/seed=2"],
    ]
    assert plan_units(specs, 1) == [[s] for s in specs]
    with pytest.raises(ValueError, match="--pack must be >= 1, got 0"):
        plan_units(specs, 0)


def test_pack_level_failure_is_recorded_per_run(tmp_path, monkeypatch):
    def broken(cfgs):
        raise RuntimeError("out of GPU memory")

    monkeypatch.setattr(sweep_mod, "_train_pack", broken)
    res = sweep(parse_study(STUDY), tmp_path, jobs=1, progress=False, pack=2)
    assert res.count("failed") == 4
    rows = read_results(tmp_path / "results.csv")
    assert {r["error"] for r in rows} == {"train: RuntimeError: out of GPU memory"}
    failed = json.loads((tmp_path / rows[0]["run"] / "failed.json").read_text())
    assert failed["stage"] == "train" and "out of GPU memory" in failed["traceback"]


def test_cli_pack_must_be_positive(tmp_path, capsys):
    study_file = tmp_path / "s.toml"
    study_file.write_text(STUDY)
    assert cli_main(["sweep", str(study_file), "--out", str(tmp_path / "o"), "--pack", "0", "--quiet"]) == 2
    assert "untwine sweep: error: --pack must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="--pack must be >= 1, got -1"):
        sweep(parse_study(STUDY), tmp_path / "o", pack=-1, progress=False)


# ----------------------------------------------------------------------------- local backend, pool
def _pid_execute(spec: RunSpec) -> RunOutcome:
    spec.dir.mkdir(parents=True, exist_ok=True)
    (spec.dir / "pid").write_text(str(os.getpid()))
    return RunOutcome(spec.name, "finished")


def _pid_pack(specs: list[RunSpec]) -> list[RunOutcome]:
    outs = [_pid_execute(s) for s in specs]
    return [o if o.name != "r4" else RunOutcome("r4", "failed", "boom") for o in outs]


def test_local_pool_runs_packs_as_units(tmp_path):
    from untwine.studies.backends import local

    specs = [RunSpec(f"r{i}", {"out": str(tmp_path / f"r{i}")}) for i in range(5)]
    units = [specs[0:2], specs[2], specs[3:5]]
    started, done = [], []
    outs = local.run_all(units, jobs=2, on_start=lambda s: started.append(s.name),
                         on_done=lambda o: done.append(o.name), execute=_pid_execute, execute_pack=_pid_pack)
    assert [o.name for o in outs] == ["r0", "r1", "r2", "r3", "r4"]
    assert [o.status for o in outs] == ["finished"] * 4 + ["failed"]
    assert started == ["r0", "r1", "r2", "r3", "r4"] and sorted(done) == started
    pid = {i: (tmp_path / f"r{i}" / "pid").read_text() for i in range(5)}
    assert pid[0] == pid[1] and pid[3] == pid[4] and str(os.getpid()) not in pid.values()
    shutil.rmtree(tmp_path / "r0")
    # in-process (jobs=1): same outcomes
    outs = local.run_all(units, jobs=1, execute=_pid_execute, execute_pack=_pid_pack)
    assert [o.status for o in outs] == ["finished"] * 4 + ["failed"]
    assert (tmp_path / "r0" / "pid").read_text() == str(os.getpid())
