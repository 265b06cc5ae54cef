"""Shipped pretrained models: export a finished run, list it, load it back, evaluate it."""

from __future__ import annotations

import json

import pytest
import torch

import untwine
from untwine import pretrained
from untwine.cli import main
from untwine.objectives import hparams_text
from untwine.train import RunConfig, load_run, train

from conftest import TINY


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny run with a metrics.json from `untwine evaluate --metrics mig`."""
    out = tmp_path_factory.mktemp("run") / "run"
    cfg = RunConfig(dataset=TINY, model="beta-vae", arch="conv64", steps=4, batch_size=8, latents=3, eval_every=4,
                    eval_images=16, log_every=2, device="cpu", out=str(out))
    train(cfg, progress=False)
    assert main(["evaluate", str(out), "--metrics", "mig", "--sizes", "num_train=200", "--no-progress"]) == 0
    return out


@pytest.fixture
def models(tmp_path, monkeypatch):
    d = tmp_path / "models"
    d.mkdir()
    monkeypatch.setattr(pretrained, "MODELS_DIR", d)
    return d


def test_export_list_path_load_round_trip(finished_run, models, capsys):
    dest = pretrained.export(finished_run, "tiny-squares-vae", "untwine train --steps 4")
    assert dest == models / "tiny-squares-vae"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "COMMAND.txt", "checkpoint/model.safetensors", "checkpoint/state.pt", "config.json",
        "metrics.json", "metrics.jsonl", "summary.json"]
    assert torch.load(dest / "checkpoint" / "state.pt", weights_only=True) == {"step": 4}  # no optimizer
    assert sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) < pretrained.MAX_BYTES
    assert (dest / "COMMAND.txt").read_text() == "untwine train --steps 4\n"
    mig = json.loads((finished_run / "metrics.json").read_text())["mig"]
    assert json.loads((dest / "metrics.json").read_text())["mig"] == mig

    assert pretrained.names() == ["tiny-squares-vae"]
    assert main(["pretrained", "list"]) == 0
    assert capsys.readouterr().out == f"tiny-squares-vae  {TINY}  beta-vae (beta 4)  4 steps  MIG {mig:.3f}\n"
    assert main(["pretrained", "path", "tiny-squares-vae"]) == 0
    assert capsys.readouterr().out == f"{dest}\n"

    shipped, original = untwine.pretrained("tiny-squares-vae"), load_run(finished_run)
    assert type(shipped) is type(original) and shipped.dir == dest
    assert shipped.config == original.config and shipped.summary == original.summary
    for a, b in zip(shipped.model.state_dict().values(), original.model.state_dict().values()):
        assert torch.equal(a, b)


def test_evaluate_accepts_the_shipped_folder(finished_run, models, tmp_path):
    dest = pretrained.export(finished_run, "m", "cmd")
    out = tmp_path / "m.json"
    assert main(["evaluate", str(pretrained.path("m")), "--metrics", "mig", "--sizes", "num_train=200",
                 "--no-progress", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["mig"] == json.loads((dest / "metrics.json").read_text())["mig"]


def test_none_shipped_and_unknown_name(models, capsys):
    assert main(["pretrained", "list"]) == 0
    assert capsys.readouterr().out == "no pretrained models are shipped in this version of untwine\n"
    assert main(["pretrained", "path", "nope"]) == 2
    assert "unknown pretrained model 'nope'; no pretrained models are shipped" in capsys.readouterr().err
    (models / "a").mkdir()
    (models / "a" / "config.json").write_text("{}")
    with pytest.raises(KeyError, match=r"unknown pretrained model 'nope'; choose one of a \(see `untwine pretrained list`\)"):
        untwine.pretrained("nope")


def test_export_refuses_bad_inputs(finished_run, models, tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="model name 'Bad Name' must be lower-case"):
        pretrained.export(finished_run, "Bad Name", "cmd")
    with pytest.raises(ValueError, match="command must be the exact command"):
        pretrained.export(finished_run, "m", "  ")
    with pytest.raises(FileNotFoundError, match=r"not found; run `untwine evaluate .* first"):
        pretrained.export(finished_run, "m", "cmd", metrics=tmp_path / "none.json")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((finished_run / "config.json").read_text())
    (unfinished / "summary.json").write_text('{"status": "interrupted"}')
    with pytest.raises(ValueError, match=r"has not finished \(summary.json status: interrupted\)"):
        pretrained.export(unfinished, "m", "cmd")
    monkeypatch.setattr(pretrained, "MAX_BYTES", 1000)
    with pytest.raises(ValueError, match=r"m: the model folder is .* MiB, over the 0 MiB limit"):
        pretrained.export(finished_run, "m", "cmd")
    assert list(models.iterdir()) == []  # nothing half-written left
    monkeypatch.undo()
    monkeypatch.setattr(pretrained, "MODELS_DIR", models)
    assert main(["pretrained", "export", str(finished_run), "m", "--command", "cmd"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["pretrained", "export", str(finished_run), "m", "--command", "cmd"]) == 2
    assert "exists; pass overwrite=True (--force) to replace it" in capsys.readouterr().err
    assert main(["pretrained", "export", str(finished_run), "m", "--command", "cmd2", "--force"]) == 0
    assert (models / "m" / "COMMAND.txt").read_text() == "cmd2\n"


SHIPPED_STUDY = f"""
[study]
name = "beside"
datasets = ["{TINY}"]
seeds = [0]
[train]
steps = 3
batch_size = 8
arch = "conv64"
latents = 3
eval_every = 3
eval_images = 16
device = "cpu"
[eval]
metrics = ["mig"]
sizes = {{ mig = {{ num_train = 100 }} }}
[[models]]
name = "vae"
[report]
pretrained = ["tiny-shipped", "not-there"]
baseline = false
"""


def test_the_report_shows_shipped_models_beside_the_studys(finished_run, models, tmp_path, monkeypatch):
    from untwine.report import build_report
    from untwine.report import shipped as S
    from untwine.studies import parse_study, sweep

    pretrained.export(finished_run, "tiny-shipped", "untwine train --steps 4")
    monkeypatch.setitem(pretrained.CAVEATS, "tiny-shipped", "not what its name says")  # the one registry
    res = sweep(parse_study(SHIPPED_STUDY), tmp_path / "sw", jobs=1, progress=False)
    rep = build_report(res.out, figures=True)
    (table,) = [t for t in rep.tables if t.key == "trained_vs_shipped"]
    assert [row[:2] for row in table.rows] == [[f"{TINY}/vae/seed=0", "this study"],
                                               ["tiny-shipped (not what its name says)", "shipped (untwine pretrained)"]]
    mig = json.loads((models / "tiny-shipped" / "metrics.json").read_text())["mig"]
    assert table.rows[1][3] == f"{mig:.3f}" and table.rows[1][4] == ("yes" if mig >= 0.2 else "no")
    threads = json.loads((finished_run / "config.json").read_text())["threads"]
    assert table.rows[1][2].startswith(
        f"beta-vae (beta 4), 4 steps x batch 8, lr 0.0001, fp32, {threads} thread{'s' if threads > 1 else ''}, ")
    assert table.rows[1][2].endswith(" s on cpu")
    (fig,) = [f for f in rep.figures if f.title == f"Latent traversals: {TINY}, shipped model tiny-shipped"]
    assert fig.caption.startswith("The shipped pretrained model tiny-shipped (not what its name says), trained as: ")
    assert any("'not-there' is not shipped in this version" in n for n in rep.notes)
    assert rep.headline[0] == S.disentangled_sentence(res.rows)


def test_disentangled_sentence_and_verdict_known_answers():
    from untwine.report import shipped as S

    rows = [{"run": "a", "status": "finished", "mig": 0.25}, {"run": "b", "status": "finished", "mig": 0.05},
            {"run": "c", "status": "failed", "mig": float("nan")}]
    assert S.disentangled_sentence(rows) == "Disentangled: 1 of 2 of this study's models reached MIG >= 0.2: a (MIG 0.250)."
    assert S.disentangled_sentence(rows[1:]).startswith(
        "Not disentangled: none of this study's 1 models reached MIG >= 0.2 (best b, MIG 0.050)")
    assert S.disentangled_sentence(rows[2:]) is None
    assert [S.verdict(x) for x in (0.2, 0.199, None, float("nan"))] == ["yes", "no", "not measured", "not measured"]


@pytest.mark.parametrize("name", pretrained.names())
def test_every_shipped_model_is_complete_and_loads(name):
    d = pretrained.path(name)
    assert sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) < pretrained.MAX_BYTES
    assert torch.load(d / "checkpoint" / "state.pt", weights_only=True).keys() == {"step"}  # no optimizer
    run = untwine.pretrained(name)
    info = pretrained.info(name)
    assert info.steps == run.summary["steps"] == run.config.steps and run.summary["status"] == "finished"
    command = (d / "COMMAND.txt").read_text()
    assert isinstance(info.mig, float) and ("untwine train" in command or "untwine sweep" in command)
    assert info.hparams == run.config.hparams
    hp = hparams_text(info.hparams)
    assert info.line().startswith(f"{name}  {run.config.dataset}  {run.config.model}{f' ({hp})' if hp else ''}  ")
    x = torch.rand(2, run.model.channels, 64, 64)
    assert run.encode(x).shape == (2, run.config.latents)


# --------------------------------------------------------------------- names that say what a model is
FVAE16 = "factor-vae-beta16-dsprites"
FVAE16_CAVEAT = "FactorVAE with KL weight 16, not Kim & Mnih's loss"
OLD_NAME_ERROR = (
    "pretrained model 'factor-vae-dsprites' was renamed 'factor-vae-beta16-dsprites' (FactorVAE with KL "
    "weight 16, not Kim & Mnih's loss); Kim & Mnih's FactorVAE (KL weight 1) is not shipped: it has not "
    "reached the seeds' MIG 0.22 here (docs/results/). See `untwine pretrained list`"
)


def test_the_beta16_factor_vae_is_listed_with_its_caveat(capsys):
    assert FVAE16 in pretrained.names() and "factor-vae-dsprites" not in pretrained.names()
    run = untwine.pretrained(FVAE16)
    assert run.config.model == "factor-vae" and run.config.hparams["beta"] == 16  # what the caveat says
    assert pretrained.info(FVAE16).caveat == pretrained.caveat(FVAE16) == FVAE16_CAVEAT
    assert pretrained.caveat(pretrained.path(FVAE16)) == FVAE16_CAVEAT  # by folder too (the explorer's way)
    assert main(["pretrained", "list"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(FVAE16 + "  ")]
    assert line == (f"{FVAE16}  dsprites  factor-vae (gamma 10, beta 16, d_lr 0.001)  24000 steps  MIG 0.316  "
                    f"-- {FVAE16_CAVEAT}")
    for name in set(pretrained.names()) - set(pretrained.CAVEATS):  # the others say nothing more
        assert pretrained.caveat(name) is None and " -- " not in pretrained.info(name).line()


def test_caveat_is_only_a_shipped_models(tmp_path, finished_run, models, monkeypatch):
    pretrained.export(finished_run, "tiny-shipped", "cmd")
    monkeypatch.setitem(pretrained.CAVEATS, "tiny-shipped", "not what its name says")
    assert pretrained.caveat("tiny-shipped") == pretrained.caveat(models / "tiny-shipped") == "not what its name says"
    assert pretrained.info("tiny-shipped").line().endswith("MIG " + f"{pretrained.info('tiny-shipped').mig:.3f}"
                                                           "  -- not what its name says")
    assert pretrained.caveat(finished_run) is None  # a run folder of the user's
    copy = tmp_path / "tiny-shipped"
    copy.mkdir()
    assert pretrained.caveat(copy) is None and pretrained.caveat("nope") is None


def test_the_old_name_says_it_was_renamed_and_why(tmp_path, capsys):
    assert main(["pretrained", "path", "factor-vae-dsprites"]) == 2
    assert capsys.readouterr().err == f"untwine pretrained: error: {OLD_NAME_ERROR}\n"
    with pytest.raises(KeyError) as e:
        untwine.pretrained("factor-vae-dsprites")
    assert str(e.value) == OLD_NAME_ERROR
    assert main(["explore", "factor-vae-dsprites", "--no-browser"]) == 2
    assert capsys.readouterr().err == f"untwine explore: error: {OLD_NAME_ERROR}\n"
    from untwine.report import shipped as S

    assert S.resolve(["factor-vae-dsprites", FVAE16]) == ([(FVAE16, pretrained.path(FVAE16))], [OLD_NAME_ERROR])


def test_a_beta1_model_shipped_under_the_old_name_is_served(finished_run, models):
    pretrained.export(finished_run, "factor-vae-dsprites", "cmd")  # as if Kim & Mnih's model were shipped
    assert pretrained.path("factor-vae-dsprites") == models / "factor-vae-dsprites"
    assert pretrained.caveat("factor-vae-dsprites") is None


def test_a_study_naming_the_old_model_says_it_was_renamed():
    from untwine.studies import parse_study
    from untwine.studies.study import StudyError

    text = SHIPPED_STUDY.replace("[eval]\n", '[eval]\nudr_reference = ["factor-vae-dsprites"]\n')
    with pytest.raises(StudyError) as e:
        parse_study(text)
    assert str(e.value).endswith(f"eval.udr_reference: {OLD_NAME_ERROR}")
