"""The ``untwine`` command prints untwine's own user errors (:mod:`untwine.errors`) as one line, exit
status 2; any other exception is a bug: its traceback, then one line saying so, exit status 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from untwine import errors
from untwine.cli import BUG, UserError, main
from untwine.studies import StudyError
from untwine.train.files import DiskFullError, RunFolderError


def test_user_errors_are_value_errors_and_their_built_in_kind():
    assert UserError is errors.UserError and issubclass(UserError, ValueError)
    assert issubclass(errors.MissingFileError, FileNotFoundError)
    assert issubclass(errors.UnknownNameError, KeyError) and str(errors.UnknownNameError("no 'x'")) == "no 'x'"
    assert issubclass(errors.MissingExtraError, ImportError)
    for cls in (StudyError, RunFolderError, DiskFullError, errors.MissingFileError, errors.UnknownNameError,
                errors.MissingExtraError):
        assert issubclass(cls, UserError), cls


def test_check_choice_returns_the_value_or_names_every_choice():
    assert errors.check_choice("ray", ("local", "ray"), "sweep backend") == "ray"
    with pytest.raises(UserError, match=r"^unknown sweep backend 'slurm'; choose one of local, ray$"):
        errors.check_choice("slurm", ("local", "ray"), "sweep backend")
    with pytest.raises(StudyError, match=r"^s.toml: unknown eval.dci_backend 3; choose one of exact, fast$"):
        errors.check_choice(3, ["exact", "fast"], "eval.dci_backend", StudyError, "s.toml")


def test_a_user_error_is_one_line(tmp_path, capsys):
    nope = tmp_path / "nope.toml"
    assert main(["sweep", str(nope), "--out", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err == f"untwine sweep: error: study file {nope} not found\n"
    tiny = Path(__file__).resolve().parents[1] / "studies" / "tiny.toml"  # a study that loads: --pack is checked by the sweep
    assert main(["sweep", str(tiny), "--out", str(tmp_path / "s"), "--pack", "0"]) == 2
    assert capsys.readouterr().err == "untwine sweep: error: --pack must be >= 1, got 0\n"
    assert not (tmp_path / "s").exists()
    assert main(["train", "--dataset", "dsprites", "--steps", "0", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == "untwine train: error: steps must be an integer >= 1, got 0\n"
    assert main(["train", "--model", "nope", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith("untwine train: error: unknown model 'nope'; choose one of vae, beta-vae, ")


def test_a_damaged_run_folder_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{not json")
    assert main(["train", "--out", str(run), "--resume"]) == 2
    cfg = run / "config.json"
    assert capsys.readouterr().err == (
        f"untwine train: error: {cfg} is damaged: not valid JSON (Expecting property name enclosed in double "
        f"quotes: line 1 column 2). Fix: restore {cfg} (a copy of it is under \"config\" in "
        f"{run / 'summary.json'}, if that exists), or delete {run} to start this run again\n")


def test_a_missing_dataset_file_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNTWINE_DATA", str(tmp_path))
    monkeypatch.setenv("UNTWINE_CACHE", str(tmp_path / "cache"))
    assert main(["data", "info", "shapes3d", "--source", "official"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("untwine data: error: shapes3d: file not found; looked at ") and err.count("\n") == 1


@pytest.mark.parametrize("bug", [ValueError("an internal value"), KeyError("an_internal_key"),
                                 FileNotFoundError("an internal file")])
def test_any_other_error_keeps_its_traceback_and_says_it_is_a_bug(tmp_path, capsys, monkeypatch, bug):
    import untwine.studies

    def load_study(*a, **k):
        raise bug

    monkeypatch.setattr(untwine.studies, "load_study", load_study)
    assert main(["sweep", "s.toml", "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    last = f"{type(bug).__name__}: {bug}"
    assert err.startswith("Traceback (most recent call last):\n")
    assert "in load_study\n    raise bug\n" in err
    assert err.endswith(f"{last}\nuntwine sweep: {BUG}\n")
    assert BUG == ("this is a bug in untwine, not a mistake in your input; please report it with the command "
                   "and the traceback above")
