"""The live view of a sweep: a rich progress bar (runs done / running / failed, elapsed, ETA) and
one line per finished run; nothing when disabled."""

from __future__ import annotations

from typing import Any

from .execute import RunOutcome, RunSpec


class ProgressView:
    """A live rich view: runs done / running / failed, elapsed and ETA; one line per finished run."""

    def __init__(self, total: int, skipped: int, jobs: int, backend: str, enabled: bool = True) -> None:
        self.total, self.skipped, self.jobs, self.backend = total, skipped, jobs, backend
        self.enabled = enabled
        self.running: list[str] = []
        self.failed = 0
        self.finished = 0
        self._progress = None

    def __enter__(self) -> "ProgressView":
        if not self.enabled:
            return self
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._progress = Progress(
            TextColumn("[bold]sweep[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("running {task.fields[running]}  failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
        )
        self._progress.__enter__()
        pending = self.total - self.skipped
        self._task = self._progress.add_task("", total=pending, running=0, failed=0)
        self._progress.console.print(
            f"{self.total} runs: {self.skipped} already finished, {pending} to run "
            f"({self.backend} backend, "
            + ("cluster-sized)" if self.jobs is None else f"{self.jobs} job{'s' if self.jobs != 1 else ''})")
        )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def _update(self, advance: int = 0) -> None:
        if self._progress is not None:
            desc = ", ".join(self.running[:2]) + (" ..." if len(self.running) > 2 else "")
            self._progress.update(self._task, advance=advance, running=len(self.running),
                                  failed=self.failed, description=desc)

    def start(self, spec: RunSpec) -> None:
        self.running.append(spec.name)
        self._update()

    def done(self, o: RunOutcome) -> None:
        if o.name in self.running:
            self.running.remove(o.name)
        self.failed += o.status == "failed"
        self.finished += o.status == "finished"
        mark = {"finished": "[green]done[/]", "failed": "[red]FAILED[/]"}.get(o.status, o.status)
        self.note(f"{mark} {o.name} ({o.wall_s:.0f} s){'  ' + o.error if o.error else ''}")
        self._update(advance=1)

    def note(self, msg: str) -> None:
        if self._progress is not None:
            self._progress.console.print(msg, highlight=False)


__all__ = ["ProgressView"]
