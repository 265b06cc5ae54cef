"""The live view of a sweep: a rich progress bar (runs done / running / failed, elapsed, ETA) and
one line per finished run; nothing when disabled.

The ETA counts training steps, not runs: each pending run weighs the steps it has left (a resumed
run, those after its newest checkpoint), and the rate is the steps of the runs finished in this
call over this call's elapsed time. It is computed when a run finishes and counts down between
finishes (rich's own estimate keeps 30 s of samples, so it is blank when runs take longer).

Where the output is not a terminal (``nohup ... > log``, a scheduler's log file) the bar is not
drawn, so a line a minute says where the sweep is: runs done, each running run's step (from its
newest checkpoint, where this process can read it: with Ray on machines that do not share the run
folders, a running run shows step 0 until it finishes), the steps left and an ETA from the steps
trained so far in this call, counting down between checkpoints."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

from .execute import RunOutcome, RunSpec


def steps_left(spec: RunSpec) -> int:
    """Training steps pending run ``spec`` has left: its ``steps`` less its newest checkpoint's step
    (read from the checkpoint's manifest, unverified: an estimate for the ETA)."""
    from ..train import checkpoint

    steps = int(spec.config.get("steps") or 0)
    try:
        done = int((checkpoint.newest_manifest(spec.dir) or {})["step"])
    except (KeyError, TypeError, ValueError):  # no manifest, or one without a step
        return steps
    return max(steps - done, 0)


def clock_text(seconds: float) -> str:
    """``H:MM:SS`` (as rich's elapsed column)."""
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressView:
    """A live rich view: runs done / running / failed, elapsed and ETA; one line per finished run.

    ``pending``: the runs to do (their steps left weigh the ETA; without them each run weighs 1);
    ``clock``: seconds, for the ETA; ``lines``: print :meth:`status_line` every ``every_s`` seconds
    (``None``: when the console is not a terminal and the runs' steps are known)."""

    def __init__(self, total: int, skipped: int, jobs: int, backend: str, enabled: bool = True,
                 pending: Sequence[RunSpec] = (), clock: Callable[[], float] = time.monotonic,
                 lines: bool | None = None, every_s: float = 60.0) -> None:
        self.total, self.skipped, self.jobs, self.backend = total, skipped, jobs, backend
        self.enabled = enabled
        self.running: list[str] = []
        self.failed = 0
        self.finished = 0
        self._progress = None
        self.clock = clock
        self.by_steps = bool(pending)
        self.work = {s.name: steps_left(s) for s in pending}
        self.steps = {s.name: int(s.config.get("steps") or 0) for s in pending}
        self.left = sum(self.work.values()) if pending else total - skipped  # steps (or runs) not done yet
        self.trained = 0  # steps of the runs finished in this call
        self.t0 = self.clock()
        self.deadline: float | None = None  # when the last estimate expects the sweep to end
        self.specs = {s.name: s for s in pending}
        self.lines, self.every_s = lines, every_s
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._lock = threading.Lock()  # start/done (the backend's thread) against the status line's snapshot
        self._seen: tuple[int, float] = (0, self.t0)  # the status lines' steps trained so far, and when they last grew

    def __enter__(self) -> "ProgressView":
        if not self.enabled:
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]sweep[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("running {task.fields[running]}  failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            _eta_column(self),
            TextColumn("{task.description}"),
        )
        self._progress.__enter__()
        pending = self.total - self.skipped
        self.t0 = self.clock()
        self._task = self._progress.add_task("", total=pending, running=0, failed=0)
        resumed = [n for n, w in self.work.items() if w < self.steps[n]]
        self._progress.console.print(
            f"{self.total} runs: {self.skipped} already finished, {pending} to run"
            + (f" ({len(resumed)} resumed; {self.left:,} of {sum(self.steps.values()):,} training steps left)"
               if resumed else "")
            + f" ({self.backend} backend, "
            + ("cluster-sized)" if self.jobs is None else f"{self.jobs} job{'s' if self.jobs != 1 else ''})")
        )
        if self.lines is None:  # a log file; Jupyter draws rich's view itself
            console = self._progress.console
            self.lines = self.by_steps and not console.is_terminal and not console.is_jupyter
        if self.lines:
            self._ticker = threading.Thread(target=self._tick, name="sweep-progress-lines", daemon=True)
            self._ticker.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.note(self.status_line())
            except Exception as e:  # a status line is never worth stopping the lines (or the sweep) for
                self.note(f"sweep: no status line this time ({type(e).__name__}: {e})")

    def status_line(self) -> str:
        """Where the sweep is, in one line: runs done of those to run, each running run's step
        (its newest checkpoint's), steps left and the ETA at the pace of this call's steps so far
        (``-:--:--`` until a checkpoint or a finished run shows some). The pace is measured up to
        when a line last saw the steps grow, and the ETA counts down from there, so it does not
        climb between two checkpoints."""
        with self._lock:  # one consistent snapshot: done() may pop a run meanwhile
            now, work, running, trained = self.clock(), dict(self.work), list(self.running), self.trained
            done, failed = self.finished + self.failed, self.failed
        # only running runs have moved since the start; a pending run still has all its work left
        left = work | {n: steps_left(self.specs[n]) for n in running if n in work and n in self.specs}
        trained += sum(work[n] - left[n] for n in running if n in left)
        if trained > self._seen[0]:  # checkpoints move in steps: the pace is that of the last move
            self._seen = (trained, now)
        seen, moved_at = self._seen
        rate = seen / (moved_at - self.t0) if seen > 0 and moved_at > self.t0 else None
        steps_now = sum(left.values())
        eta = None if rate is None else max(steps_now / rate - (now - moved_at), 0.0)
        shown = [f"{n} at step {self.steps[n] - left[n]:,}/{self.steps[n]:,}" for n in running if n in left]
        return (f"sweep: {done}/{self.total - self.skipped} runs done ({failed} failed), "
                f"{clock_text(now - self.t0)} elapsed; "
                + (f"running {', '.join(shown)}; " if shown else "")
                + f"{steps_now:,} steps left, ETA {'-:--:--' if eta is None else clock_text(eta)}")

    def eta(self) -> float | None:
        """Seconds left by the estimate made when the last run finished, counted down since;
        ``None`` until a run that trained has finished."""
        return None if self.deadline is None else max(self.deadline - self.clock(), 0.0)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def _update(self, advance: int = 0) -> None:
        if self._progress is not None:
            desc = ", ".join(self.running[:2]) + (" ..." if len(self.running) > 2 else "")
            self._progress.update(self._task, advance=advance, running=len(self.running),
                                  failed=self.failed, description=desc)

    def start(self, spec: RunSpec) -> None:
        with self._lock:
            self.running.append(spec.name)
        self._update()

    def done(self, o: RunOutcome) -> None:
        with self._lock:
            if o.name in self.running:
                self.running.remove(o.name)
            self.failed += o.status == "failed"
            self.finished += o.status == "finished"
            work = self.work.pop(o.name, 0) if self.by_steps else 1
            self.left = max(self.left - work, 0)
            if o.status == "finished":  # a failed run's steps leave the estimate (it did not train them all)
                self.trained += work
            if self.trained > 0:
                now = self.clock()
                self.deadline = now + self.left * (now - self.t0) / self.trained
        mark = {"finished": "[green]done[/]", "failed": "[red]FAILED[/]"}.get(o.status, o.status)
        self.note(f"{mark} {o.name} ({o.wall_s:.0f} s){'  ' + o.error if o.error else ''}")
        self._update(advance=1)

    def note(self, msg: str) -> None:
        if self._progress is not None:
            self._progress.console.print(msg, highlight=False, soft_wrap=True)  # a log keeps whole lines


def _eta_column(view: ProgressView) -> Any:
    """The rich column that shows ``view.eta()`` (rich is imported only when the view is shown)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class EtaColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            left = view.eta()
            return Text("ETA " + ("-:--:--" if left is None else clock_text(left)), style="progress.remaining")

    return EtaColumn()


__all__ = ["ProgressView", "clock_text", "steps_left"]
