"""End-to-end fault check of `untwine sweep --backend ray` (a few minutes on 2 CPU cores).

1. Runs a tiny study (MNIST ``uci-digits`` source, bundled with scikit-learn) with the local
   backend as the reference (one torch thread per run, like a Ray task with ``num_cpus=1``).
2. Starts ``untwine sweep --backend ray`` as a subprocess (a local Ray instance inside it),
   SIGKILLs the Ray worker running the first run once that run has a checkpoint (Ray names the
   worker process ``ray::untwine:<run>``), then SIGKILLs the driver itself once another run has
   finished.
3. Re-runs the same command: finished runs are skipped, the others resume from their checkpoints.
4. Checks every run finished, the killed run resumed from a checkpoint, and ``results.csv`` is
   byte-identical to the local reference.

    .venv/bin/python scripts/ray_fault_check.py [--workdir DIR] [--steps 40]

Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = """
[study]
name = "ray-fault"
datasets = ["mnist"]
seeds = [0, 1]
[train]
source = "uci-digits"
steps = {steps}
batch_size = 16
arch = "conv64"
latents = 3
eval_every = 10
eval_images = 32
checkpoint_every = 5
log_every = 5
device = "cpu"
[eval]
metrics = ["mig"]
sizes = {{ mig = {{ num_train = 100 }} }}
[[models]]
name = "beta-vae"
grid = {{ beta = [1, 4] }}
[report]
baseline = false
"""


def untwine(*args: str) -> list[str]:
    return [sys.executable, "-m", "untwine.cli", *args]


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process (Linux /proc)."""
    out = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            out[int(p.name)] = (ppid, cmd)
    return out


def descendants(root: int) -> list[int]:
    procs = processes()
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        kids = [pid for pid, (ppid, _) in procs.items() if ppid == parent]
        found += kids
        frontier += kids
    return found


def worker_of(run: str, under: int) -> int | None:
    """pid of the Ray worker (a descendant of ``under``) executing ``run``."""
    procs = processes()
    for pid in descendants(under):
        if procs.get(pid, (0, ""))[1].startswith(f"ray::untwine:{run}"):
            return pid
    return None


def finished(run_dir: Path) -> bool:
    try:
        s = json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return s.get("status") == "finished" and (run_dir / "metrics.json").is_file()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=None, help="folder for the sweeps (default: a temp dir)")
    ap.add_argument("--steps", type=int, default=40, help="training steps per run")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="untwine-ray-fault-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    study = work / "study.toml"
    study.write_text(STUDY.format(steps=args.steps))
    runs = [f"mnist/beta-vae/beta={b}/seed={s}" for b in (1, 4) for s in (0, 1)]
    t0 = time.time()

    print(f"[{time.time() - t0:5.0f} s] local reference sweep (1 torch thread per run)", flush=True)
    jobs = str(max(2, os.cpu_count() or 1))  # local pool threads = cpu_count // jobs = 1
    subprocess.run(untwine("sweep", str(study), "--out", str(work / "local"), "--jobs", jobs, "--quiet"),
                   check=True)

    out = work / "ray"
    cmd = untwine("sweep", str(study), "--out", str(out), "--backend", "ray", "--quiet")
    print(f"[{time.time() - t0:5.0f} s] ray sweep: {' '.join(cmd[2:])}", flush=True)
    driver = subprocess.Popen(cmd, start_new_session=True)
    target = out / runs[0]
    killed_worker = killed_driver = None
    try:
        while driver.poll() is None:
            if killed_worker is None and (target / "checkpoint").is_dir() and not finished(target):
                pid = worker_of(runs[0], driver.pid)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed_worker = pid
                    print(f"[{time.time() - t0:5.0f} s] killed worker {pid} running {runs[0]} "
                          "(after its first checkpoint)", flush=True)
            n_done = sum(finished(out / r) for r in runs)
            if killed_worker is not None and killed_driver is None and 1 <= n_done < len(runs):
                family = descendants(driver.pid)
                os.kill(driver.pid, signal.SIGKILL)
                killed_driver = driver.pid
                driver.wait()
                time.sleep(2)
                left = [p for p in family if p in processes()]
                for p in left:  # Ray processes this driver started and that outlived it
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                print(f"[{time.time() - t0:5.0f} s] killed the driver {killed_driver} with {n_done}/"
                      f"{len(runs)} runs finished ({len(left)} orphaned Ray processes cleaned up)",
                      flush=True)
                break
            time.sleep(0.1)
    finally:
        if driver.poll() is None and killed_driver is None:
            driver.wait()

    print(f"[{time.time() - t0:5.0f} s] re-running the same command", flush=True)
    subprocess.run(cmd, check=False)
    log = [json.loads(x) for x in (out / "sweep_log.jsonl").read_text().splitlines()]
    ref = (work / "local" / "results.csv").read_bytes()
    got = (out / "results.csv").read_bytes()
    checks = {
        "a worker was killed mid-run": killed_worker is not None,
        "the driver was killed mid-sweep": killed_driver is not None,
        "every run finished": all(finished(out / r) for r in runs),
        "the re-run skipped the runs finished before": bool(log) and log[-1]["counts"]["skipped"] >= 1,
        "results.csv identical to the local backend": got == ref,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    if got != ref:
        print("local:\n" + ref.decode() + "ray:\n" + got.decode())
    print(f"[{time.time() - t0:5.0f} s] work dir: {work}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
