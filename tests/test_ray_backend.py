"""The Ray backend: same results.csv as the local backend, worker death -> retry from checkpoint.

Uses the real trainer and metrics on ``mnist`` from the ``uci-digits`` source (bundled with
scikit-learn, so Ray worker processes load it themselves: no monkeypatched registry needed).
One local Ray instance (2 CPUs, no dashboard) is shared by the module.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from untwine.cli import main as cli_main  # noqa: E402
from untwine.studies import backends, parse_study, sweep  # noqa: E402
from untwine.studies.backends import ray as ray_backend  # noqa: E402
from untwine.studies.sweep import RunOutcome, RunSpec, execute_run, is_finished, specs_for  # noqa: E402

STUDY = """
[study]
name = "raytiny"
datasets = ["mnist"]
seeds = [0]
[train]
source = "uci-digits"
steps = 6
batch_size = 16
arch = "conv64"
latents = 3
eval_every = 3
eval_images = 32
checkpoint_every = 2
log_every = 2
device = "cpu"
[eval]
metrics = ["mig"]
sizes = { mig = { num_train = 100 } }
[[models]]
name = "beta-vae"
grid = { beta = [1, 4] }
[report]
baseline = false
"""


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray instance for the module; run_all reuses it (and leaves it running)."""
    # Functions defined here run in Ray workers, which cannot import this test file by name.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


# ------------------------------------------------------------------------ executed in workers
def _pid_execute(spec: RunSpec) -> RunOutcome:
    import torch

    spec.dir.mkdir(parents=True, exist_ok=True)
    (spec.dir / "pid").write_text(f"{os.getpid()} {torch.get_num_threads()}")
    if spec.name == "r1":
        return RunOutcome(spec.name, "failed", "boom")
    return RunOutcome(spec.name, "finished")


def _logged_execute(spec: RunSpec) -> RunOutcome:
    """execute_run, first appending "<pid> <checkpoint step it starts from>" to attempts.txt."""
    from untwine.train import checkpoint

    if not is_finished(spec.dir):
        ck = checkpoint.find(spec.dir)
        step = int(checkpoint.load_state(ck)["step"]) if ck is not None else 0
        spec.dir.mkdir(parents=True, exist_ok=True)
        with open(spec.dir / "attempts.txt", "a") as f:
            f.write(f"{os.getpid()} {step}\n")
    return execute_run(spec)


# ------------------------------------------------------------------------ tests
def test_registry_and_bad_resources():
    assert backends.get("ray") is ray_backend.run_all
    spec = [RunSpec("r", {"out": "/nonexistent"})]
    with pytest.raises(ValueError, match="num_cpus per run must be > 0, got 0"):
        ray_backend.run_all(spec, num_cpus=0)
    with pytest.raises(ValueError, match="num_gpus per run must be >= 0, got -1"):
        ray_backend.run_all(spec, num_gpus=-1)
    assert ray_backend.run_all([], 1) == []
    uri = [RunSpec("r", {"out": "/home/me/s3:/bucket/sweep/r"})]  # Path("s3://bucket/...").resolve()
    with pytest.raises(ValueError, match="'/home/me/s3:/bucket/sweep/r' looks like a cloud URI; "
                       "untwine writes run folders with ordinary file I/O: mount the bucket"):
        ray_backend.run_all(uri)


def test_no_cluster_at_address(tmp_path, monkeypatch):
    if ray.is_initialized():  # only under test reordering: the module's instance would be reused
        pytest.skip("needs a process without Ray initialised")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ValueError, match=r"cannot reach a Ray cluster at 'auto' \(.*\); start one with "
                       r"`ray start --head`, or leave --address out to run on a local Ray instance"):
        ray_backend.run_all([RunSpec("r", {"out": str(tmp_path / "r")})], address="auto")
    assert not ray.is_initialized()


def test_order_callbacks_threads(tmp_path, ray_cluster):
    specs = [RunSpec(f"r{i}", {"out": str(tmp_path / f"r{i}")}) for i in range(4)]
    started, done, notes = [], [], []
    outs = ray_backend.run_all(specs, None, on_start=lambda s: started.append(s.name),
                               on_done=lambda o: done.append(o.name), execute=_pid_execute,
                               log=notes.append)
    assert [o.name for o in outs] == ["r0", "r1", "r2", "r3"]
    assert [o.status for o in outs] == ["finished", "failed", "finished", "finished"]
    assert outs[1].error == "boom"
    assert started == ["r0", "r1", "r2", "r3"] and sorted(done) == started
    assert "2 run(s) at a time (1 CPU each)" in notes[0]  # jobs=None: 2 CPUs / 1 CPU per run
    pids = [(tmp_path / f"r{i}" / "pid").read_text().split() for i in range(4)]
    assert all(threads == "1" for _, threads in pids)  # torch threads = num_cpus
    assert str(os.getpid()) not in {pid for pid, _ in pids}
    # threads follow num_cpus; one 2-CPU task at a time
    outs = ray_backend.run_all(specs[:1], None, execute=_pid_execute, num_cpus=2, log=notes.append)
    assert (tmp_path / "r0" / "pid").read_text().split()[1] == "2"
    assert "1 run(s) at a time (2 CPU each)" in notes[-1]


def test_results_csv_identical_to_local(tmp_path, ray_cluster):
    study_file = tmp_path / "raytiny.toml"
    study_file.write_text(STUDY)
    sweep(parse_study(STUDY), tmp_path / "local", jobs=1, progress=False)
    assert cli_main(["sweep", str(study_file), "--out", str(tmp_path / "ray"),
                     "--backend", "ray", "--quiet"]) == 0
    local = (tmp_path / "local" / "results.csv").read_bytes()
    assert local.count(b",finished,") == 2
    assert (tmp_path / "ray" / "results.csv").read_bytes() == local


def test_killed_worker_resumes_from_checkpoint(tmp_path, ray_cluster):
    """SIGKILL the worker running a run after its first checkpoint: Ray resubmits the task, the
    run continues from the checkpoint, and ends bit-identical to an uninterrupted copy."""
    study = parse_study(STUDY.replace("steps = 6", "steps = 30").replace("checkpoint_every = 2", "checkpoint_every = 5")
                        .replace("beta = [1, 4]", "beta = [4]"))
    (spec,) = specs_for(study, tmp_path / "killed")
    control = dataclasses.replace(spec, name="control", config={**spec.config, "out": str(tmp_path / "control")})
    from untwine.train import checkpoint

    killed: list[int] = []

    def killer() -> None:
        attempts = spec.dir / "attempts.txt"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if attempts.is_file() and checkpoint.find(spec.dir) is not None:
                pid = int(attempts.read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    outs = ray_backend.run_all([spec, control], None, execute=_logged_execute, log=lambda m: None)
    t.join(timeout=5)
    assert killed, "the run finished before its worker could be killed"
    assert [o.status for o in outs] == ["finished", "finished"], outs
    lines = [ln.split() for ln in (spec.dir / "attempts.txt").read_text().splitlines()]
    assert len(lines) == 2 and int(lines[0][0]) == killed[0] and lines[1][0] != lines[0][0]
    assert lines[0][1] == "0" and int(lines[1][1]) >= 5  # the retry started from a checkpoint
    import json

    def result(d: Path) -> tuple:
        s = json.loads((d / "summary.json").read_text())
        m = json.loads((d / "metrics.json").read_text())
        m.pop("timings_s", None)
        return s["steps"], s["val"], m

    assert result(spec.dir) == result(control.dir)
    # a second sweep (e.g. after the driver died) redoes nothing
    again = ray_backend.run_all([spec, control], None, execute=_logged_execute, log=lambda m: None)
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert len((spec.dir / "attempts.txt").read_text().splitlines()) == 2
