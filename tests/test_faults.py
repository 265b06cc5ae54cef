"""Crashes at any moment (issue 16): the small version of ``scripts/fault_injection.py``.

Real ``untwine train`` and ``untwine sweep`` subprocesses are killed with SIGKILL at seeded points,
re-run with the same command, and their final weights, metrics and results.csv compared with an
uninterrupted run's (bit-identical on CPU, one torch thread). The full campaign (60 kills) is
``.venv/bin/python scripts/fault_injection.py``; its figures are in docs/reliability.md.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import pytest

from untwine.train import files
from untwine.train.files import RunFolderWarning

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fi():
    """scripts/fault_injection.py as a module."""
    spec = importlib.util.spec_from_file_location("fault_injection", ROOT / "scripts" / "fault_injection.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fault_injection"] = mod
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("fault_injection", None)


def ev(*names: str) -> list[tuple[float, str]]:
    return [(float(i), n) for i, n in enumerate(names)]


def test_where_a_kill_landed_is_read_from_the_events(fi):
    assert fi.landed_at([]) == "startup"
    assert fi.landed_at(ev("+open", "-open", "+step")) == "step"
    assert fi.landed_at(ev("+open", "-open", "+step", "-step")) == "loop"
    ckpt = ("+checkpoint", "+write", "~piece")
    assert fi.landed_at(ev(*ckpt)) == "checkpoint/write, mid-file"
    assert fi.landed_at(ev(*ckpt, "~piece", "~piece")) == "checkpoint/write"
    assert fi.landed_at(ev(*ckpt, "~piece", "~piece", "-write", "+verify", "-verify", "+rename")) == "checkpoint/rename"
    assert fi.landed_at(ev("+log", "+append", "~piece")) == "log/append, mid-line"
    assert fi.landed_at(ev("+summary", "-summary", "+write")) == "between/write"
    assert fi.landed_at(ev("+summary", "-summary", "+results", "+write", "~piece")) == "results/write, mid-file"
    assert fi.landed_at(ev("+results", "+write", "~piece", "~piece", "~piece", "-write")) == "results/after write"
    assert fi.landed_at(ev("+checkpoint", "+rename", "-rename")) == "checkpoint/after rename"


def test_a_cut_short_last_log_line_is_removed_before_the_next_append(tmp_path):
    """What a kill mid-append leaves (see the script's slow-motion appends): the next line must not
    follow the fragment, or the fragment would become a damaged line inside the log."""
    log = tmp_path / "sweep_log.jsonl"
    log.write_text('{"a": 1}\n{"b": ')
    with pytest.warns(RunFolderWarning, match="dropped its cut-short last line"):
        files.append_line(log, '{"c": 3}')
    assert log.read_text() == '{"a": 1}\n{"c": 3}\n'
    log.write_text('{"cut')  # the only line
    with pytest.warns(RunFolderWarning):
        files.append_line(log, '{"d": 4}')
    assert files.read_jsonl(log) == [{"d": 4}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an intact log: no warning
        files.append_line(log, '{"e": 5}')
    assert files.read_jsonl(log) == [{"d": 4}, {"e": 5}]


def test_sigkilled_train_and_sweep_resume_to_the_uninterrupted_results(fi, tmp_path):
    """4 SIGKILLs (2 of `untwine train`, 2 of `untwine sweep`), each followed by the same command."""
    fig = fi.campaign(tmp_path, kills=4, seed=SEED, per_folder=2, train_steps=20, sweep_steps=10,
                      say=lambda s: None)
    assert fig["difference_list"] == []
    assert fig["failed_reruns"] == 0
    assert fig["kills"] == 4 and fig["kills_train"] >= 1 and fig["kills_sweep"] >= 1
    assert fig["resumes"] >= 4
    assert sum(fig["landed"].values()) == 4


# Seed 24's plans are all targeted (the same kill points on any machine load): a train run inside
# its first checkpoint save (twice), a sweep mid-way through writing results.csv and in a run's
# disentanglement evaluation.
SEED = 24
