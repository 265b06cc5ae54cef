"""Fault injection: SIGKILL `untwine train` and `untwine sweep` at random moments, resume, compare.

Every command runs as a real subprocess (``python scripts/fault_injection.py --child ARGS``: the
``untwine`` CLI, ``untwine.cli.main(ARGS)``, with one torch thread, a tiny dataset registered and
the instrumentation below). The driver:

1. runs each command once uninterrupted (the reference) and records its phases;
2. starts the command again in fresh folders and kills it with SIGKILL, by seeded plans of two kinds:
   * *anywhere*: the driver kills the process at a uniformly random moment of the reference's
     timeline (counted from its first phase, i.e. after the imports);
   * *targeted*: the process kills itself (``os.kill(getpid(), SIGKILL)``) at a chosen point
     of the n-th occurrence of a phase -- a training step, a validation evaluation, a checkpoint
     save, a metrics.jsonl line, the summary, opening (resuming) a run, the disentanglement
     evaluation or the results.csv write -- the point being its entry or any file operation
     inside it (after each piece of a file written, before and after each rename or removal);
     on-disk state changes only at these operations, so the plans reach every state a kill in
     that phase can leave, on any machine load, and the same seed gives the same kill points;
3. re-runs the same command (``untwine train ... --resume``; the same ``untwine sweep``) after each
   kill, up to ``--per-folder`` kills per folder, then once more uninterrupted;
4. checks that every folder's final weights (the tensors of ``model.safetensors``, bitwise),
   ``metrics.jsonl`` rows, ``summary.json`` numbers, ``metrics.json`` (minus timings) and
   ``results.csv`` (bytes) equal the reference's.

Instrumentation (child mode only, by monkeypatching; no library code is changed): the child
appends each phase's entry and exit, and each file operation, to an events file
(``UNTWINE_FAULT_EVENTS``), so the driver knows where a kill landed, and runs file operations in
slow motion: every run-folder file is written in three flushed pieces with a pause of
``UNTWINE_FAULT_DELAY`` seconds (default 0.005) after each, every ``metrics.jsonl`` line in two,
and each rename or folder removal waits that long before and after. A kill can thus leave a
truncated ``.partial`` file or a cut-short log line, as a kill during a large write would.
``UNTWINE_FAULT_KILL=phase:n:j`` makes the child kill itself at the j-th event of the n-th
occurrence of the phase (j = 0: its entry).

    .venv/bin/python scripts/fault_injection.py [--kills 60] [--seed 16] [--workdir DIR]

Prints the kills, resumes and kill points by phase, and the differences (0 when nothing was lost).
Exit status 0 when there are no differences and every re-run succeeded.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

DATASET = "fault-squares"
EVENTS_ENV, DELAY_ENV, KILL_ENV = "UNTWINE_FAULT_EVENTS", "UNTWINE_FAULT_DELAY", "UNTWINE_FAULT_KILL"

# Phases the child announces. Top-level ones (what the kill counts are grouped by) and the file
# operations inside them (reported as "phase/operation").
PHASES = ("open", "step", "log", "eval", "checkpoint", "summary", "metrics", "results")
GROUPS = {  # the four places, and the rest
    "step loop": ("step", "log", "loop"),
    "checkpoint writing": ("checkpoint",),
    "evaluation": ("eval", "metrics"),
    "results.csv writing": ("results",),
    "opening / resuming a run": ("open",),
    "other (start-up, summary, between runs)": ("startup", "summary", "between"),
}
TARGETS = {  # phase -> weight of a kill plan aimed at it ("anywhere": a random moment)
    "train": {"anywhere": 3, "step": 3, "log": 1, "eval": 2, "checkpoint": 4, "summary": 1, "open": 1},
    "sweep": {"anywhere": 3, "step": 2, "log": 1, "eval": 2, "checkpoint": 3, "summary": 1, "open": 1,
              "metrics": 2, "results": 3},
}

STUDY = """
[study]
name = "fault-injection"
datasets = ["{dataset}"]
seeds = [0]
[train]
source = "arrays"
steps = {steps}
batch_size = 16
arch = "conv64"
latents = 4
eval_every = 10
eval_images = 32
checkpoint_every = 5
log_every = 5
device = "cpu"
precision = "fp32"
threads = 1
[eval]
metrics = ["mig"]
sizes = {{ mig = {{ num_train = 100 }} }}
[[models]]
name = "beta-vae"
grid = {{ beta = [1, 4] }}
[report]
baseline = false
"""


# =================================================================================== child side
def squares():  # -> GroundTruthData
    """128 images: a white square at 8 x 8 positions in 2 sizes (as tests/conftest.py)."""
    import numpy as np

    from untwine import data

    fac = np.stack(np.meshgrid(np.arange(8), np.arange(8), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    imgs = np.zeros((len(fac), 64, 64), np.uint8)
    for i, (a, b, s) in enumerate(fac):
        w = 8 + 8 * s
        imgs[i, 4 + a * 6: 4 + a * 6 + w, 4 + b * 6: 4 + b * 6 + w] = 255
    return data.from_arrays(imgs, fac, ["x", "y", "size"], name=DATASET)


def register_dataset() -> None:
    from untwine import data

    if DATASET not in data.names():
        data.register(data.DatasetSpec(
            DATASET, ("x", "y", "size"), (8, 8, 2), ("arrays",),
            load=lambda source, root: squares(), present=lambda source, root: True,
        ))


class Events:
    """Appends ``<monotonic time> <event>`` lines to the events file (one write each); events are
    ``+phase``/``-phase`` (entry, exit) and ``~piece`` (a piece of a file written). With a kill
    plan ``(phase, n, j)`` it SIGKILLs its own process right after writing the j-th event counted
    from the n-th entry of ``phase``."""

    def __init__(self, path: str, plan: str = "") -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        phase, _, rest = plan.partition(":")
        n, _, j = rest.partition(":")
        self.target, self.nth, self.jth = ("+" + phase, int(n), int(j)) if plan else ("", 0, 0)
        self.seen, self.after = 0, -1

    def emit(self, what: str) -> None:
        os.write(self.fd, f"{time.monotonic():.6f} {what}\n".encode())
        if what == self.target:
            self.seen += 1
            if self.seen == self.nth:
                self.after = 0
        if self.after >= 0:
            if self.after == self.jth:
                os.kill(os.getpid(), signal.SIGKILL)
            self.after += 1

    def phase(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.emit("+" + name)
            try:
                return fn(*args, **kwargs)
            finally:
                self.emit("-" + name)
        return wrapper


def install_hooks(events: Events, delay: float, sweep: bool) -> list[str]:
    """Announce the phases and slow the file operations down (see the module doc); returns the
    hooks it could not install (names the library no longer has). ``sweep``: also the sweep's
    phases (``untwine train`` does not import the studies, nor scikit-learn)."""
    import shutil

    from untwine.train import checkpoint, files, job, log, loop

    missing: list[str] = []

    def wrap(owner: Any, attr: str, phase: str) -> None:
        fn = getattr(owner, attr, None)
        if fn is None:
            missing.append(f"{getattr(owner, '__name__', owner)}.{attr}")
        else:
            setattr(owner, attr, events.phase(phase, fn))

    wrap(job.Job, "__init__", "open")
    wrap(job.Job, "evaluate", "eval")
    wrap(job.Job, "finish", "summary")
    wrap(log.MetricsLog, "write", "log")
    wrap(checkpoint, "save", "checkpoint")
    wrap(checkpoint, "verify", "verify")
    if sweep:
        from untwine.studies import execute, results

        wrap(execute, "_evaluate", "metrics")
        wrap(results, "write_results", "results")
    wrap(loop.SingleStep, "__call__", "step")
    try:
        from untwine.train import packed

        wrap(packed.PackedStep, "__call__", "step")
    except (ImportError, AttributeError):
        pass

    def write_file(path: Path, data: bytes) -> None:  # files._write_file, in three pieces
        events.emit("+write")
        with open(path, "wb") as f:
            cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
            for a, b in zip(cuts, cuts[1:]):
                f.write(data[a:b])
                f.flush()
                events.emit("~piece")
                time.sleep(delay)
            os.fsync(f.fileno())
        events.emit("-write")

    def append_file(path: Path, data: bytes) -> None:  # files._append_file, in two pieces
        events.emit("+append")
        with open(path, "ab") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            events.emit("~piece")
            time.sleep(delay)
            f.write(data[len(data) // 2:])
        events.emit("-append")

    def slow(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            events.emit("+" + name)
            time.sleep(delay)
            out = fn(*args, **kwargs)
            time.sleep(delay)
            events.emit("-" + name)
            return out
        return wrapper

    if hasattr(files, "_write_file"):
        files._write_file = write_file
    else:
        missing.append("files._write_file")
    if hasattr(files, "_append_file"):
        files._append_file = append_file
    else:
        missing.append("files._append_file")
    os.replace = slow("rename", os.replace)  # type: ignore[assignment]
    shutil.rmtree = slow("rmtree", shutil.rmtree)  # type: ignore[assignment]
    return missing


def child(argv: list[str]) -> int:
    """``untwine ARGV`` with one torch thread, the tiny dataset and (with the events file) the hooks."""
    import torch

    torch.set_num_threads(1)
    register_dataset()
    path = os.environ.get(EVENTS_ENV)
    if path:
        missing = install_hooks(Events(path, os.environ.get(KILL_ENV, "")), float(os.environ.get(DELAY_ENV, "0.005")), "sweep" in argv[:1])
        if missing:
            print(f"fault_injection: not instrumented (missing): {', '.join(missing)}", file=sys.stderr)
    from untwine.cli import main

    return main(argv)


# =================================================================================== driver side
@dataclass
class Command:
    """One fault-injection subject: a train run or a sweep, in folder ``out``."""

    kind: str  # "train" or "sweep"
    out: Path
    study: Path | None = None
    steps: int = 20
    attempts: int = 0
    kills: int = 0
    done: bool = False

    def argv(self) -> list[str]:
        if self.kind == "sweep":
            return ["sweep", str(self.study), "--out", str(self.out), "--jobs", "1", "--quiet"]
        args = ["train", "--model", "beta-vae", "--beta", "4", "--dataset", DATASET, "--source", "arrays",
                "--arch", "conv64", "--latents", "4", "--batch-size", "16", "--steps", str(self.steps),
                "--eval-every", "10", "--checkpoint-every", "5", "--log-every", "5", "--eval-images", "32",
                "--device", "cpu", "--precision", "fp32", "--threads", "1", "--seed", "0",
                "--out", str(self.out), "--no-progress"]
        return args + (["--resume"] if self.attempts > 0 else [])


@dataclass
class Attempt:
    returncode: int
    killed: bool
    landed: str = ""  # "phase" or "phase/operation" where the kill landed
    events: list[tuple[float, str]] = field(default_factory=list)


def _child_cmd(argv: list[str]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", *argv]


def _read_events(path: Path) -> list[tuple[float, str]]:
    out = []
    for line in path.read_text().splitlines():
        t, _, what = line.partition(" ")
        if what:
            out.append((float(t), what))
    return out


def landed_at(events: list[tuple[float, str]]) -> str:
    """Where a process whose events are ``events`` was when it died: ``phase[/operation]``;
    outside the phases: ``loop`` (between training steps), ``between`` (e.g. between a sweep's
    runs), ``startup`` (no event yet). A file operation cut short is ``write, mid-file`` or
    ``append, mid-line``; ``phase/after rename``: between two operations of the phase."""
    stack: list[str] = []
    last_left = ""
    pieces = 0
    for _, what in events:
        name = what[1:]
        if what[0] == "+":
            stack.append(name)
            pieces = 0
        elif what[0] == "-" and name in stack:
            del stack[len(stack) - 1 - stack[::-1].index(name):]
            if name in PHASES:
                last_left = name
        elif what[0] == "~":
            pieces += 1
    if not events:
        return "startup"
    inner = stack[-1] if stack else ""
    if inner == "write" and 0 < pieces < 3:
        inner = "write, mid-file"
    elif inner == "append" and pieces == 1:
        inner = "append, mid-line"
    tops = [s for s in stack if s in PHASES]
    if not tops:
        where = "loop" if last_left in ("open", "step", "log", "eval", "checkpoint") else "between"
        return f"{where}/{inner}" if inner else where
    if inner == tops[-1]:  # between two operations of the phase: say which one just ended
        last = events[-1][1]
        return f"{inner}/after {last[1:]}" if last[0] == "-" and last[1:] not in PHASES else inner
    return f"{tops[-1]}/{inner}"


def run_attempt(cmd: Command, logs: Path, plan: dict[str, Any] | None, delay: float) -> Attempt:
    """Run ``cmd`` once; with ``plan``, SIGKILL it where the plan says (if it gets there)."""
    n = sum(1 for _ in logs.glob("*.events"))
    events_path = logs / f"{n:03d}-{cmd.out.name}.events"
    events_path.touch()
    env = {**os.environ, EVENTS_ENV: str(events_path), DELAY_ENV: str(delay), "OMP_NUM_THREADS": "1",
           "UNTWINE_NO_REEXEC": "1"}
    env.pop(KILL_ENV, None)
    if plan is not None and plan["phase"] != "anywhere":
        env[KILL_ENV] = f"{plan['phase']}:{plan['nth']}:{plan['jth']}"
    with open(logs / f"{n:03d}-{cmd.out.name}.log", "wb") as log:
        log.write(f"$ untwine {' '.join(cmd.argv())}\n# plan: {plan}\n".encode())
        log.flush()
        proc = subprocess.Popen(_child_cmd(cmd.argv()), env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        cmd.attempts += 1
        if plan is not None and plan["phase"] == "anywhere":
            _kill_at(proc, events_path, plan["at_s"])
        rc = proc.wait()
    events = _read_events(events_path)
    killed = rc == -signal.SIGKILL
    return Attempt(rc, killed, landed_at(events) if killed else "", events)


def _kill_at(proc: subprocess.Popen, events_path: Path, at_s: float) -> None:
    """SIGKILL ``proc`` ``at_s`` seconds after its first event (unless it exits first)."""
    deadline = None
    while proc.poll() is None:
        if deadline is None:
            first = events_path.open("rb").readline()
            if first.endswith(b"\n"):
                deadline = float(first.split()[0]) + at_s
        elif time.monotonic() >= deadline:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        time.sleep(0.002)


@dataclass
class Profile:
    """What the reference run of one command looked like: per phase, its occurrences, median
    length (s) and median number of events in an occurrence; the span from its first to its
    last event (s)."""

    counts: dict[str, int]
    length: dict[str, float]
    n_events: dict[str, int]
    span: float

    @classmethod
    def of(cls, events: list[tuple[float, str]]) -> "Profile":
        open_at: dict[str, list[tuple[float, int]]] = defaultdict(list)
        lengths: dict[str, list[float]] = defaultdict(list)
        sizes: dict[str, list[int]] = defaultdict(list)
        for i, (t, what) in enumerate(events):
            name = what[1:]
            if what[0] == "+":
                open_at[name].append((t, i))
            elif what[0] == "-" and open_at[name]:
                t0, i0 = open_at[name].pop()
                lengths[name].append(t - t0)
                sizes[name].append(i - i0 + 1)
        return cls({k: len(v) for k, v in lengths.items()},
                   {k: statistics.median(v) for k, v in lengths.items()},
                   {k: int(statistics.median(v)) for k, v in sizes.items()},
                   events[-1][0] - events[0][0] if events else 0.0)


def plan_kill(rng: random.Random, kind: str, profile: Profile) -> dict[str, Any]:
    """A seeded kill plan: ``anywhere`` (at ``at_s`` seconds), or a phase, which occurrence of it
    (``nth``, early enough that a resumed run gets there) and at which of its events (``jth``)."""
    weights = {p: w for p, w in TARGETS[kind].items() if p == "anywhere" or profile.counts.get(p)}
    phase = rng.choices(list(weights), list(weights.values()))[0]
    if phase == "anywhere":
        return {"phase": phase, "at_s": round(rng.uniform(0, profile.span), 3)}
    nth = rng.randint(1, max(1, (profile.counts[phase] + 1) // 2))
    return {"phase": phase, "nth": nth, "jth": rng.randrange(profile.n_events[phase])}


# ----------------------------------------------------------------------------- comparing folders
def _weights(run_dir: Path) -> dict[str, bytes]:
    from safetensors.torch import load_file

    from untwine.train import checkpoint

    ckpt = checkpoint.find(run_dir)
    if ckpt is None:
        return {}
    return {k: v.contiguous().numpy().tobytes() + str(v.dtype).encode() + str(tuple(v.shape)).encode()
            for k, v in load_file(ckpt / checkpoint.MODEL_FILE).items()}


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def compare_run(ref: Path, got: Path) -> list[str]:
    """What differs between two run folders (weights, metrics.jsonl, summary, metrics.json)."""
    import warnings

    from untwine.train import files

    diffs = []
    if not (got / "summary.json").is_file():
        return [f"{got}: no summary.json"]
    wa, wb = _weights(ref), _weights(got)
    if not wb or wa.keys() != wb.keys() or any(wa[k] != wb[k] for k in wa):
        bad = sorted(k for k in wa if wa.get(k) != wb.get(k))
        diffs.append(f"{got}: weights differ ({len(bad)} tensors, e.g. {bad[:2]})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra, rb = files.read_jsonl(ref / "metrics.jsonl"), files.read_jsonl(got / "metrics.jsonl")
    if ra != rb:
        diffs.append(f"{got}: metrics.jsonl differs ({len(ra)} vs {len(rb)} rows)")
    sa, sb = _json(ref / "summary.json") or {}, _json(got / "summary.json") or {}
    for key in ("status", "steps", "train", "val", "initial_val"):
        if sa.get(key) != sb.get(key):
            diffs.append(f"{got}: summary.json {key!r} differs")
    if (ref / "metrics.json").is_file():
        ma, mb = _json(ref / "metrics.json") or {}, _json(got / "metrics.json") or {}
        ma.pop("timings_s", None)
        mb.pop("timings_s", None)
        if ma != mb:
            diffs.append(f"{got}: metrics.json differs")
    return diffs


def compare(cmd: Command, ref: Command, runs: list[str]) -> list[str]:
    if cmd.kind == "train":
        return compare_run(ref.out, cmd.out)
    diffs = []
    for r in runs:
        diffs += compare_run(ref.out / r, cmd.out / r)
    a, b = ref.out / "results.csv", cmd.out / "results.csv"
    if not b.is_file() or a.read_bytes() != b.read_bytes():
        diffs.append(f"{b}: differs from the uninterrupted sweep's")
    return diffs


def leftovers(folder: Path) -> list[str]:
    """Files a kill left behind that the finished folder no longer needs (untidy, not wrong)."""
    names = ("checkpoint.tmp", "checkpoint.new", "checkpoint.trash")
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.endswith(".partial") or p.name in names)


# ----------------------------------------------------------------------------- the campaign
def campaign(workdir: Path, kills: int = 60, seed: int = 16, per_folder: int = 4, train_steps: int = 20,
             sweep_steps: int = 10, delay: float = 0.005, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole fault-injection campaign under ``workdir``; its figures (see the module doc)."""
    t0 = time.time()
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    study = workdir / "study.toml"
    study.write_text(STUDY.format(dataset=DATASET, steps=sweep_steps))
    runs = [f"{DATASET}/beta-vae/beta={b}/seed=0" for b in (1, 4)]
    rng = random.Random(seed)

    def new(kind: str, name: str) -> Command:
        return Command(kind, workdir / name, study if kind == "sweep" else None,
                       train_steps if kind == "train" else sweep_steps)

    refs, profiles = {}, {}
    for kind in ("train", "sweep"):
        refs[kind] = new(kind, f"reference-{kind}")
        a = run_attempt(refs[kind], logs, None, delay)
        if a.returncode != 0:
            raise RuntimeError(f"the uninterrupted {kind} failed (exit {a.returncode}); see {logs}")
        profiles[kind] = Profile.of(a.events)
        say(f"[{time.time() - t0:5.0f} s] reference {kind}: {profiles[kind].span:.1f} s of work, phases "
            + ", ".join(f"{p} {profiles[kind].counts[p]} x {1000 * profiles[kind].length[p]:.0f} ms "
                        f"({profiles[kind].n_events[p]} events)" for p in PHASES if p in profiles[kind].counts))

    folders: dict[str, list[Command]] = {"train": [], "sweep": []}
    landed: Counter[str] = Counter()
    planned: Counter[str] = Counter()
    n_kills = resumes = failed_reruns = external = 0
    finished_before_kill = 0
    attempts_left = 3 * kills
    i = 0
    while n_kills < kills and attempts_left > 0:
        kind = ("train", "sweep")[i % 2]
        i += 1
        attempts_left -= 1
        cur = folders[kind][-1] if folders[kind] else None
        if cur is None or cur.done or cur.kills >= per_folder:
            cur = new(kind, f"{kind}-{len(folders[kind]):02d}")
            folders[kind].append(cur)
        plan = plan_kill(rng, kind, profiles[kind])
        resuming = cur.attempts > 0
        a = run_attempt(cur, logs, plan, delay)
        resumes += resuming
        if a.killed:
            n_kills += 1
            cur.kills += 1
            planned[plan["phase"]] += 1
            landed[a.landed] += 1
            external += plan["phase"] == "anywhere"
        else:
            cur.done = True
            finished_before_kill += 1
            if a.returncode != 0:
                failed_reruns += 1
                say(f"  {cur.out.name}: exit {a.returncode} without a kill; see {logs}")
        if n_kills and (n_kills % 10 == 0) and a.killed:
            say(f"[{time.time() - t0:5.0f} s] {n_kills} kills")

    for kind in ("train", "sweep"):  # finish every folder: the same command once more
        for cmd in folders[kind]:
            if not cmd.done:
                a = run_attempt(cmd, logs, None, delay)
                resumes += 1
                cmd.done = True
                if a.returncode != 0:
                    failed_reruns += 1
                    say(f"  {cmd.out.name}: the final re-run exited {a.returncode}; see {logs}")

    diffs: list[str] = []
    untidy: list[str] = []
    for kind in ("train", "sweep"):
        for cmd in folders[kind]:
            diffs += compare(cmd, refs[kind], runs)
            untidy += [f"{cmd.out.name}/{p}" for p in leftovers(cmd.out)]
    by_group = Counter()
    for where, n in landed.items():
        top = where.split("/")[0]
        by_group[next((g for g, ps in GROUPS.items() if top in ps), "other (start-up, summary, between runs)")] += n
    return {
        "kills": n_kills,
        "kills_train": sum(c.kills for c in folders["train"]),
        "kills_sweep": sum(c.kills for c in folders["sweep"]),
        "folders": {k: len(v) for k, v in folders.items()},
        "resumes": resumes,
        "ran_through_before_the_kill": finished_before_kill,
        "failed_reruns": failed_reruns,
        "external_kills": external,
        "planned": dict(planned),
        "landed": dict(sorted(landed.items())),
        "kill_points": len(landed),
        "by_group": dict(by_group),
        "differences": len(diffs),
        "difference_list": diffs,
        "leftover_files": untidy,
        "wall_s": round(time.time() - t0, 1),
        "seed": seed,
        "train_steps": train_steps,
        "sweep_steps": sweep_steps,
    }


def report(fig: dict[str, Any]) -> str:
    lines = [
        f"kills: {fig['kills']} (train {fig['kills_train']}, sweep {fig['kills_sweep']}; "
        f"{fig['external_kills']} by the driver at a random moment, {fig['kills'] - fig['external_kills']} "
        f"targeted) in {fig['folders']['train']} train and {fig['folders']['sweep']} sweep folders; "
        f"seed {fig['seed']}",
        f"resumes (the same command re-run): {fig['resumes']}; re-runs that failed: {fig['failed_reruns']}; "
        f"attempts that finished before their planned kill: {fig['ran_through_before_the_kill']}",
        "kill points by phase:",
    ]
    for group, n in sorted(fig["by_group"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {group:42s} {n:3d}")
    lines.append(f"kill points in detail ({fig['kill_points']} distinct places; phase/operation in progress):")
    for where, n in fig["landed"].items():
        lines.append(f"  {where:42s} {n:3d}")
    lines.append(f"differences from the uninterrupted runs: {fig['differences']}")
    lines += [f"  {d}" for d in fig["difference_list"]]
    lines.append(f"leftover temporary files in finished folders: {len(fig['leftover_files'])}"
                 + (f" ({', '.join(fig['leftover_files'][:5])})" if fig["leftover_files"] else ""))
    lines.append(f"wall time: {fig['wall_s']:.0f} s")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=60, help="SIGKILLs in all (default 60)")
    ap.add_argument("--seed", type=int, default=16, help="seed of the kill plans (default 16)")
    ap.add_argument("--per-folder", type=int, default=4, help="kills per folder before a fresh one (default 4)")
    ap.add_argument("--train-steps", type=int, default=20, help="steps of the train run (default 20)")
    ap.add_argument("--sweep-steps", type=int, default=10, help="steps of each sweep run (default 10)")
    ap.add_argument("--delay", type=float, default=0.005, help="slow-motion pause, seconds (default 0.005)")
    ap.add_argument("--workdir", default=None, help="folder for the runs (default: a temp dir)")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="untwine-faults-")).resolve()
    fig = campaign(work, kills=args.kills, seed=args.seed, per_folder=args.per_folder,
                   train_steps=args.train_steps, sweep_steps=args.sweep_steps, delay=args.delay,
                   say=lambda s: print(s, flush=True))
    print(report(fig))
    print(f"work dir: {work}")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=1) + "\n")
    return 0 if fig["differences"] == 0 and fig["failed_reruns"] == 0 and fig["kills"] >= args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
