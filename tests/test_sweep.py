"""Sweeps: results.csv, skip/resume after a kill, failure records, and a real tiny sweep + report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from untwine.cli import main as cli_main
from untwine.data import registry
from untwine.data.custom import from_arrays
from untwine.studies import load_study, parse_study, sweep
import importlib

sweep_mod = importlib.import_module("untwine.studies.execute")  # where runs are executed
from untwine.studies.results import collect, read_results, to_csv

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- a toy dataset
def toy_data():
    """64 images: an 8x8 white square at (x, y), x, y in 0..7 (full grid, 2 factors)."""
    xs, ys = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    f = np.stack([xs.ravel(), ys.ravel()], 1)
    img = np.zeros((64, 64, 64), np.uint8)
    for i, (x, y) in enumerate(f):
        img[i, 8 * y: 8 * y + 8, 8 * x: 8 * x + 8] = 255
    return from_arrays(img, f, ["pos_x", "pos_y"], name="toy")


@pytest.fixture
def toy(monkeypatch):
    """Register dataset ``toy`` for this test only (the registry entry is removed afterwards)."""
    registry.names()  # load the real datasets first
    data = toy_data()
    spec = registry.DatasetSpec(
        name="toy", factor_names=data.factor_names, factor_sizes=data.factor_sizes,
        sources=("arrays",), load=lambda source, root: data, present=lambda s, r: True,
    )
    monkeypatch.setitem(registry._REGISTRY, "toy", spec)
    monkeypatch.setattr(registry, "_LOADED", {})
    return data


TOY = """
[study]
name = "toy"
datasets = ["toy"]
seeds = [0, 1]
[train]
steps = 4
batch_size = 8
arch = "conv64"
latents = 3
eval_every = 2
eval_images = 8
val_fraction = 0.25
device = "cpu"
[eval]
metrics = ["mig"]
sizes = { mig = { num_train = 64 } }
[[models]]
name = "beta-vae"
grid = { beta = [1, 4] }
[[models]]
name = "vae"
[report]
baseline = false
"""


# ----------------------------------------------------------------------------- fakes
class FakeRun:
    def __init__(self, summary):
        self.summary = summary


@pytest.fixture
def fake(monkeypatch):
    """Replace training and evaluation by fast fakes that write the same files; count calls."""
    calls = {"train": [], "evaluate": []}

    def fake_train(cfg):
        calls["train"].append(cfg.out)
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        beta = cfg.hparams.get("beta", 1.0)
        if beta == 666:
            summary = {"status": "failed", "error": "loss is NaN at step 3"}
            (out / "summary.json").write_text(json.dumps(summary))
            raise FloatingPointError("loss is NaN at step 3")
        val = {"loss": 50.0 + beta + cfg.seed, "rec": 40.0 + cfg.seed / 3, "kl": 10.0 / beta, "kl_dims": [1.0, 2.0]}
        summary = {"status": "finished", "val": val, "initial_val": {"rec": 400.0}, "steps": cfg.steps,
                   "wall_time_s": 1.234, "images_per_s": 99.0}
        (out / "summary.json").write_text(json.dumps(summary))
        return FakeRun(summary)

    def fake_evaluate(run, data, spec):
        calls["evaluate"].append(spec.name)
        return {"mig": np.float64(0.1 + 0.01 * spec.config["seed"]), "timings_s": {"mig": 0.5}}

    monkeypatch.setattr(sweep_mod, "_train", fake_train)
    monkeypatch.setattr(sweep_mod, "_evaluate", fake_evaluate)
    return calls


def test_results_csv_content_and_determinism(tmp_path, toy, fake):
    study = parse_study(TOY)
    res = sweep(study, tmp_path / "a", jobs=1, progress=False)
    assert res.count("finished") == 6 and res.count("failed") == 0
    text = (tmp_path / "a" / "results.csv").read_text()
    lines = text.splitlines()
    assert lines[0] == "run,dataset,model,beta,seed,status,error,val_loss,val_rec,val_kl,val_rec_step0,mig"
    assert lines[1] == "toy/beta-vae/beta=1/seed=0,toy,beta-vae,1,0,finished,,51,40,10,400,0.1"
    assert lines[2] == "toy/beta-vae/beta=1/seed=1,toy,beta-vae,1,1,finished,,52,40.3333,10,400,0.11"
    assert lines[5] == "toy/vae/seed=0,toy,vae,,0,finished,,51,40,10,400,0.1"
    # no paths or timings in results.csv; they are in timings.csv
    assert str(tmp_path) not in text and "1.234" not in text
    assert "1.234" in (tmp_path / "a" / "timings.csv").read_text()
    # same study in another folder -> byte-identical results
    sweep(study, tmp_path / "b", jobs=1, progress=False)
    assert (tmp_path / "b" / "results.csv").read_bytes() == text.encode()
    rows = read_results(tmp_path / "a" / "results.csv")
    assert rows[1]["val_rec"] == pytest.approx(40.3333) and rows[4]["beta"] is None


def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path, toy, fake, monkeypatch):
    study = parse_study(TOY)
    real = sweep_mod._train
    n = {"calls": 0}

    def dying_train(cfg):
        n["calls"] += 1
        if n["calls"] == 3:  # two runs finished; the sweep is killed during the third
            raise KeyboardInterrupt
        return real(cfg)

    monkeypatch.setattr(sweep_mod, "_train", dying_train)
    with pytest.raises(KeyboardInterrupt):
        sweep(study, tmp_path, jobs=1, progress=False)
    first = tmp_path / "toy/beta-vae/beta=1/seed=0"
    assert (first / "metrics.json").is_file()
    mtime = (first / "summary.json").stat().st_mtime_ns
    # results written so far: the two finished runs, the rest missing
    partial = read_results(tmp_path / "results.csv")
    assert [r["status"] for r in partial] == ["finished", "finished", "missing", "missing", "missing", "missing"]

    monkeypatch.setattr(sweep_mod, "_train", real)
    fake["train"].clear()
    res = sweep(study, tmp_path, jobs=1, progress=False)
    assert res.count("skipped") == 2 and res.count("finished") == 4
    assert str(first) not in fake["train"] and len(fake["train"]) == 4
    assert (first / "summary.json").stat().st_mtime_ns == mtime
    rows = read_results(tmp_path / "results.csv")
    assert len(rows) == 6 and all(r["status"] == "finished" for r in rows)


def test_failed_run_is_recorded_and_others_go_on(tmp_path, toy, fake):
    study = parse_study(TOY.replace("beta = [1, 4]", "beta = [1, 666]"))
    res = sweep(study, tmp_path, jobs=1, progress=False)
    assert res.count("failed") == 2 and res.count("finished") == 4
    failed = json.loads((tmp_path / "toy/beta-vae/beta=666/seed=0/failed.json").read_text())
    assert failed["stage"] == "train" and failed["error"] == "FloatingPointError: loss is NaN at step 3"
    rows = read_results(tmp_path / "results.csv")
    bad = [r for r in rows if r["status"] == "failed"]
    assert [r["run"] for r in bad] == ["toy/beta-vae/beta=666/seed=0", "toy/beta-vae/beta=666/seed=1"]
    assert bad[0]["error"] == "train: FloatingPointError: loss is NaN at step 3"
    assert bad[0]["mig"] is None and rows[0]["mig"] == pytest.approx(0.1)


def test_evaluation_failure_is_recorded(tmp_path, toy, fake, monkeypatch):
    def broken(run, data, spec):
        raise RuntimeError("metric exploded")

    monkeypatch.setattr(sweep_mod, "_evaluate", broken)
    study = parse_study(TOY.replace("seeds = [0, 1]", "seeds = [0]"))
    res = sweep(study, tmp_path, jobs=1, progress=False)
    assert res.count("failed") == 3
    assert read_results(tmp_path / "results.csv")[0]["error"] == "evaluate: RuntimeError: metric exploded"


def test_unknown_backend(tmp_path, toy):
    with pytest.raises(ValueError, match="unknown sweep backend 'slurm'; choose one of local, ray"):
        sweep(parse_study(TOY), tmp_path, backend="slurm", progress=False)


def test_jobs_below_one_fail_before_anything_is_written(tmp_path, toy):
    from untwine.studies.backends import local
    from untwine.studies.sweep import RunSpec

    with pytest.raises(ValueError, match=r"^--jobs must be >= 1, got 0$"):
        sweep(parse_study(TOY), tmp_path / "s", jobs=0, progress=False)
    assert not (tmp_path / "s").exists()
    with pytest.raises(ValueError, match=r"^--jobs must be >= 1, got -1$"):  # the backend, called directly
        local.run_all([RunSpec("r0", {"out": str(tmp_path / "r0")})], jobs=-1, execute=_pid_execute)
    assert not (tmp_path / "r0").exists()


def _pid_execute(spec):
    import os

    from untwine.studies.sweep import RunOutcome

    spec.dir.mkdir(parents=True, exist_ok=True)
    (spec.dir / "pid").write_text(str(os.getpid()))
    if spec.name == "r1":
        return RunOutcome(spec.name, "failed", "boom")
    return RunOutcome(spec.name, "finished")


def test_local_backend_process_pool(tmp_path):
    import os

    from untwine.studies.backends import local
    from untwine.studies.sweep import RunSpec

    specs = [RunSpec(f"r{i}", {"out": str(tmp_path / f"r{i}")}) for i in range(4)]
    started, done = [], []
    outs = local.run_all(specs, jobs=2, on_start=lambda s: started.append(s.name),
                         on_done=lambda o: done.append(o.name), execute=_pid_execute)
    assert [o.name for o in outs] == ["r0", "r1", "r2", "r3"]
    assert [o.status for o in outs] == ["finished", "failed", "finished", "finished"]
    assert started == ["r0", "r1", "r2", "r3"] and sorted(done) == started
    pids = {(tmp_path / f"r{i}" / "pid").read_text() for i in range(4)}
    assert str(os.getpid()) not in pids and 1 <= len(pids) <= 2


def test_csv_float_format():
    rows = [{"run": "r", "dataset": "d", "model": "m", "beta": 0.001, "seed": 0, "status": "finished",
             "error": "", "val_rec": 1 / 3, "mig": float("nan"), "sap": 1e-9}]
    assert to_csv(rows).splitlines()[1] == "r,d,m,0.001,0,finished,,0.333333,nan,1e-09"


# ----------------------------------------------------------------------------- real end to end
def test_real_sweep_cli(tmp_path, toy, capsys):
    """Real trainer + metrics on the toy dataset through `untwine sweep` (the report: test_report.py)."""
    study_file = tmp_path / "toy.toml"
    study_file.write_text(TOY.replace("baseline = false", "baseline = true"))
    out = tmp_path / "sweep"
    cmd = ["sweep", str(study_file), "--out", str(out), "--jobs", "1", "--set", "study.seeds=[0]", "--quiet"]
    assert cli_main(cmd) == 0
    rows = read_results(out / "results.csv")
    assert len(rows) == 3 and all(r["status"] == "finished" for r in rows), rows
    assert all(0.0 <= r["mig"] <= 1.0 for r in rows)
    assert (out / "baseline" / "toy" / "metrics.json").is_file()
    # re-running does nothing new
    mt = (out / rows[0]["run"] / "metrics.json").stat().st_mtime_ns
    assert cli_main(cmd) == 0
    assert (out / rows[0]["run"] / "metrics.json").stat().st_mtime_ns == mt
    # --collect: the same rows again, nothing trained or evaluated
    (out / "results.csv").unlink()
    assert cli_main(cmd + ["--collect"]) == 0
    assert read_results(out / "results.csv") == rows
    assert (out / rows[0]["run"] / "metrics.json").stat().st_mtime_ns == mt
    # ... and only with the study the folder was swept with (here: without its --set)
    assert cli_main(["sweep", str(study_file), "--out", str(out), "--collect"]) == 2
    assert f"{out} was swept with another study than this one (its study.json differs)" in capsys.readouterr().err


def test_a_run_in_training_is_an_incomplete_row_and_one_not_started_a_missing_row(tmp_path, toy):
    """What --collect shows beside a training sweep: a run folder with a log or a checkpoint but no
    summary yet (its first training call is under way) is ``incomplete``; no folder is ``missing``."""
    study = parse_study(TOY.replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    (tmp_path / "toy/vae/seed=0").mkdir(parents=True)
    (tmp_path / "toy/vae/seed=0/metrics.jsonl").write_text('{"step": 2, "split": "train", "loss": 1.0}\n')
    (tmp_path / "toy/vae/seed=1/checkpoint").mkdir(parents=True)
    rows = [r for r in collect(study, tmp_path) if r["model"] == "vae"]
    assert [(r["run"], r["status"]) for r in rows] == [
        ("toy/vae/seed=0", "incomplete"), ("toy/vae/seed=1", "incomplete"), ("toy/vae/seed=2", "missing")]


def test_collect_needs_a_sweep_folder(tmp_path, capsys, toy):
    study_file = tmp_path / "toy.toml"
    study_file.write_text(TOY)
    assert cli_main(["sweep", str(study_file), "--out", str(tmp_path / "none"), "--collect"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'none'} is not a sweep folder (no study.toml): run `untwine sweep STUDY.toml --out" in err


@pytest.mark.slow
def test_tiny_study_sweeps_and_reports_through_the_cli(tmp_path):
    """studies/tiny.toml on procedural dSprites through `untwine sweep` and `untwine report`,
    shrunk further (builds the dSprites cache once)."""
    from untwine.cli import main as cli_main

    out = tmp_path / "tiny"
    args = ["sweep", str(ROOT / "studies" / "tiny.toml"), "--out", str(out), "--jobs", "1", "--quiet",
            "--set", "train.steps=20", "--set", "train.eval_every=10", "--set", "train.checkpoint_every=10"]
    assert cli_main(args) == 0
    study = load_study(ROOT / "studies" / "tiny.toml")
    rows = read_results(out / "results.csv")
    assert len(rows) == len(study.runs()) and {r["status"] for r in rows} == {"finished"}
    assert cli_main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 5 and "beta-VAE per beta" in html

def test_raising_a_studys_steps_continues_its_finished_runs(tmp_path, toy):
    """A finished sweep run with fewer steps than the study is resumed from its checkpoint (not
    skipped, not retrained) and evaluated again; at the same steps it is skipped."""
    text = TOY.replace("seeds = [0, 1]", "seeds = [0]").replace("grid = { beta = [1, 4] }", "grid = { beta = [1] }")
    text = text.replace('[[models]]\nname = "vae"\n', "")
    short = parse_study(text)
    assert sweep(short, tmp_path, jobs=1, progress=False).count("finished") == 1
    run = tmp_path / "toy/beta-vae/beta=1/seed=0"
    steps_logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps_logged) == 4

    long = parse_study(text.replace("steps = 4", "steps = 8"))
    assert [r["status"] for r in collect(long, tmp_path, compute_udr=False)] == ["incomplete"]  # as the sweep sees it
    res = sweep(long, tmp_path, jobs=1, progress=False)
    assert res.count("finished") == 1 and res.count("skipped") == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["status"] == "finished"
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged[: len(steps_logged)] == steps_logged and max(logged) == 8  # continued, not restarted
    assert read_results(tmp_path / "results.csv")[0]["status"] == "finished"
    assert sweep(long, tmp_path, jobs=1, progress=False).count("skipped") == 1
