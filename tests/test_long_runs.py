"""Long runs a user can leave alone (issue 31): the ETA and speed of resumed runs, in `untwine train`
(its progress bar and summary) and in `untwine sweep`'s live view."""

from __future__ import annotations

import io
import json

import pytest

from untwine.cli import main
from untwine.studies.execute import RunOutcome, RunSpec
from untwine.studies.progress import ProgressView, _eta_column, clock_text, steps_left
from untwine.train import RunConfig, train
from untwine.train.log import Progress

from conftest import TINY


# ------------------------------------------------------------------------ untwine train --resume
def test_progress_of_a_resumed_run_counts_only_this_sessions_steps(monkeypatch):
    """Resumed at step 5,000 of 10,000; 100 steps in 10 s: 10 steps/s and 4,900 steps (490 s) left."""
    import tqdm.std

    now = [1000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])
    bar = Progress(10_000, 5_000, True, "resumed", lines=False)
    now[0] += 10.0
    bar.update(5_100, 640.0, {"loss": 1.0})
    d = bar.bar.format_dict
    assert (d["n"], d["initial"], d["elapsed"]) == (5_100, 5_000, 10.0)
    assert d["rate"] == pytest.approx(10.0)
    assert (d["total"] - d["n"]) / d["rate"] == pytest.approx(490.0)
    line = bar.bar.format_meter(**d)
    assert "5100/10000 [00:10<08:09, 10.00step/s" in line or "5100/10000 [00:10<08:10, 10.00step/s" in line
    assert "img/s=640" in line
    now[0] += 30.0  # 300 more steps at the same pace: the same rate
    bar.update(5_400, 640.0, {"loss": 1.0})
    assert bar.bar.format_dict["rate"] == pytest.approx(10.0)
    bar.close()


def test_progress_in_a_log_file_is_a_plain_line_a_minute_and_one_at_the_end():
    """Not a terminal (nohup, a log file): no bar, one line per ``every_s`` with this session's
    pace and ETA (resumed at 5,000; 100 steps in 10 s: 10 steps/s, 4,900 steps = 8:10 left)."""
    now, out = [0.0], io.StringIO()
    bar = Progress(10_000, 5_000, True, "factor-vae dsprites", stream=out, clock=lambda: now[0])
    assert bar.lines and bar.bar.disable
    now[0] = 10.0
    bar.update(5_100, 640.0, {"loss": 81.25})  # 10 s since the start: not yet a minute
    assert out.getvalue() == ""
    now[0] = 60.0
    bar.update(5_600, 640.0, {"loss": 80.5})
    assert out.getvalue() == "factor-vae dsprites: step 5,600/10,000 (56.0%), 10.00 steps/s, ETA 07:20, " \
                             "loss=80.5, img/s=640\n"
    now[0] = 90.0
    bar.update(5_900, 640.0, {"loss": 80.0})  # 30 s after the last line: silent
    bar.close()  # interrupted at 5,900: the last step is said
    assert out.getvalue().splitlines()[1] == "factor-vae dsprites: step 5,900/10,000 (59.0%), 10.00 steps/s, " \
                                             "ETA 06:50, loss=80, img/s=640"
    assert "\r" not in out.getvalue()
    quiet = io.StringIO()
    off = Progress(10, 0, False, "off", stream=quiet, clock=lambda: now[0])
    off.update(10, 1.0, {})
    off.close()
    assert quiet.getvalue() == "" and not off.lines


def test_progress_on_a_terminal_is_the_bar():
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    bar = Progress(100, 0, True, "run", stream=tty)
    bar.update(50, 10.0, {"loss": 1.0})
    bar.close()
    assert not bar.lines and "\r" in tty.getvalue() and "50/100" in tty.getvalue()


def tiny(tmp_path, **kw):
    base = dict(dataset=TINY, model="beta-vae", steps=6, batch_size=8, latents=3, eval_every=3,
                eval_images=16, log_every=2, checkpoint_every=3, device="cpu", out=str(tmp_path / "run"))
    return RunConfig(**{**base, **kw})


def test_summary_of_a_resumed_run_has_this_sessions_time_and_speed(tmp_path, capsys):
    first = train(tiny(tmp_path), progress=False).summary
    s = first["session"]
    assert (s["first_step"], s["steps"]) == (0, 6) and s["wall_time_s"] == pytest.approx(first["wall_time_s"])
    assert s["images_per_s"] == pytest.approx(first["images_per_s"])

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--resume", "--steps", "10", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    s = summary["session"]
    assert (summary["steps"], s["first_step"], s["steps"]) == (10, 6, 4)
    assert 0 < s["wall_time_s"] < summary["wall_time_s"]  # the whole run holds the first session too
    assert summary["wall_time_s"] == pytest.approx(first["wall_time_s"] + s["wall_time_s"], abs=0.5)
    assert s["images_per_s"] == pytest.approx(4 * 8 / s["wall_time_s"])
    assert summary["images_per_s"] == pytest.approx(10 * 8 / summary["wall_time_s"])
    assert f"[last session: steps 6-10 in {s['wall_time_s']:.1f} s, {s['images_per_s']:.0f} images/s]" in printed


# ------------------------------------------------------------------------------ untwine sweep
def spec(tmp_path, name, steps, checkpoint_step=None):
    d = tmp_path / name
    if checkpoint_step is not None:  # as a killed run leaves it (only the manifest is read)
        (d / "checkpoint").mkdir(parents=True)
        (d / "checkpoint" / "manifest.json").write_text(json.dumps({"format": 1, "step": checkpoint_step}))
    return RunSpec(name, {"steps": steps, "out": str(d)})


def test_steps_left_of_a_pending_run(tmp_path):
    assert steps_left(spec(tmp_path, "fresh", 10_000)) == 10_000
    assert steps_left(spec(tmp_path, "resumed", 10_000, 5_000)) == 5_000
    (tmp_path / "damaged" / "checkpoint").mkdir(parents=True)
    (tmp_path / "damaged" / "checkpoint" / "manifest.json").write_text("{not json")
    assert steps_left(RunSpec("damaged", {"steps": 100, "out": str(tmp_path / "damaged")})) == 100


def test_sweep_eta_weighs_steps_left_and_counts_down_between_long_runs(tmp_path):
    """Two runs of 10,000 steps, one resumed at 5,000: it finishes after 500 s, so 10 steps/s, and
    the 10,000 steps of the other are 1,000 s away; runs an hour apart still have an ETA."""
    now = [0.0]
    pending = [spec(tmp_path, "a", 10_000, 5_000), spec(tmp_path, "b", 10_000)]
    view = ProgressView(2, 0, 1, "local", enabled=False, pending=pending, clock=lambda: now[0])
    assert view.left == 15_000 and view.eta() is None
    view.start(pending[0])
    now[0] = 500.0
    view.done(RunOutcome("a", "finished", wall_s=500.0))
    assert view.eta() == pytest.approx(1000.0)
    now[0] = 700.0
    assert view.eta() == pytest.approx(800.0)  # counts down until the next run finishes
    assert str(_eta_column(view).render(None)) == "ETA 0:13:20"
    now[0] = 4000.0
    assert view.eta() == 0.0
    view.done(RunOutcome("b", "finished", wall_s=3500.0))
    assert view.left == 0 and view.eta() == 0.0


def test_sweep_eta_without_step_counts_and_with_failures(tmp_path):
    now = [0.0]
    view = ProgressView(4, 1, 1, "local", enabled=False, clock=lambda: now[0])  # 3 to run, 1 each
    view.done(RunOutcome("x", "failed", error="boom"))  # leaves the estimate, adds no rate
    assert view.eta() is None and view.left == 2
    now[0] = 3600.0
    view.done(RunOutcome("y", "finished", wall_s=3600.0))
    assert view.eta() == pytest.approx(3600.0)
    assert clock_text(3600.0) == "1:00:00" and clock_text(59.6) == "0:01:00"


def test_sweep_view_says_how_much_of_a_resumed_sweep_is_left(tmp_path, capsys):
    pending = [spec(tmp_path, "a", 10_000, 5_000), spec(tmp_path, "b", 10_000)]
    with ProgressView(3, 1, 1, "local", enabled=True, pending=pending):
        pass
    out = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal's width
    assert ("3 runs: 1 already finished, 2 to run (1 resumed; 15,000 of 20,000 training steps left) "
            "(local backend, 1 job)") in out
    assert "0/2 running 0 failed 0 0:00:00 ETA -:--:--" in out  # no run finished yet: no estimate


def test_sweep_status_line_in_a_log_file_reads_the_running_runs_checkpoints(tmp_path):
    """Not a terminal: a line a minute. Two runs of 10,000 steps, one resumed at 5,000; after 100 s
    the running one's checkpoint is at 6,000 (1,000 steps: 10 steps/s), so 14,000 steps are left,
    1,400 s away; when it finishes, its steps count as trained."""
    now = [0.0]
    pending = [spec(tmp_path, "a", 10_000, 5_000), spec(tmp_path, "b", 10_000)]
    view = ProgressView(3, 1, 1, "local", enabled=False, pending=pending, clock=lambda: now[0])
    assert view.status_line() == "sweep: 0/2 runs done (0 failed), 0:00:00 elapsed; 15,000 steps left, ETA -:--:--"
    view.start(pending[0])
    now[0] = 100.0
    (tmp_path / "a" / "checkpoint" / "manifest.json").write_text(json.dumps({"format": 1, "step": 6_000}))
    assert view.status_line() == ("sweep: 0/2 runs done (0 failed), 0:01:40 elapsed; running a at step 6,000/10,000; "
                                  "14,000 steps left, ETA 0:23:20")
    now[0] = 160.0  # no new checkpoint yet: the ETA counts down from the last one's, it does not climb
    assert view.status_line().endswith("running a at step 6,000/10,000; 14,000 steps left, ETA 0:22:20")
    now[0] = 500.0
    view.done(RunOutcome("a", "finished", wall_s=500.0))
    view.start(pending[1])
    assert view.status_line() == ("sweep: 1/2 runs done (0 failed), 0:08:20 elapsed; running b at step 0/10,000; "
                                  "10,000 steps left, ETA 0:16:40")


def test_sweep_prints_status_lines_while_it_waits_and_survives_a_bad_one(tmp_path, capsys, monkeypatch):
    """The ticker thread prints a line every ``every_s``; a line that raises is said and skipped,
    and the lines go on (polled, not timed: this machine may be loaded)."""
    import time

    pending = [spec(tmp_path, "a", 10_000, 5_000)]
    view = ProgressView(1, 0, 1, "local", enabled=True, pending=pending, every_s=0.02)
    calls = []
    good = view.status_line

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("dictionary changed size during iteration")
        return good()

    monkeypatch.setattr(view, "status_line", flaky)
    out = ""
    with view:
        assert view.lines  # capsys is not a terminal
        view.start(pending[0])
        deadline = time.monotonic() + 30
        while out.count("running a at step 5,000/10,000") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
            out += capsys.readouterr().out
    out += capsys.readouterr().out
    assert "sweep: no status line this time (RuntimeError: dictionary changed size during iteration)" in out
    assert out.count("sweep: 0/1 runs done (0 failed)") >= 2 and "running a at step 5,000/10,000" in out
    assert not view._ticker.is_alive()
