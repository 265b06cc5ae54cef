"""Tables (known answers) and the HTML report of a real toy sweep with one failed run."""

from __future__ import annotations

import base64
import importlib
import math
import re

import pytest

from test_sweep import toy_data  # tests/ is on sys.path (pytest rootdir)
from untwine.cli import main as cli_main
from untwine.data import registry
from untwine.report.tables import Stat, beta_table, failures_table, gamma_table, suite_table, weak_table
from untwine.studies import parse_study, sweep

sweep_mod = importlib.import_module("untwine.studies.execute")  # where runs are executed

STUDY = """
[study]
name = "toyreport"
datasets = ["toy"]
seeds = [0]
[train]
steps = 3
batch_size = 8
arch = "conv64"
latents = 3
eval_every = 1
eval_images = 8
val_fraction = 0.25
device = "cpu"
[eval]
metrics = ["mig", "beta_vae"]
sizes = { mig = { num_train = 64 }, beta_vae = { batch_size = 4, num_train = 20, num_eval = 10 } }
[[models]]
name = "beta-vae"
grid = { beta = [1, 4] }
[[models]]
name = "factor-vae"
grid = { gamma = [10, 1000] }
[report]
title = "Toy report"
[[reference]]
name = "pub-1"
title = "Table 1"
citation = "A. Author, 2024"
dataset = "toy"
model = "beta-vae"
hparam = "beta"
columns = [{ name = "rec", ours = "val_rec", units = "nats" }]
rows = [[1, 100.0], [4, 200.0]]
[[claim]]
name = "best-mig"
title = "best MIG"
citation = "A. Author, 2024"
dataset = "toy"
metric = "mig"
value = 0.5
"""


def _rows():
    base = {"dataset": "d", "status": "finished", "error": ""}
    return [
        {"run": "a0", "model": "beta-vae", "beta": 1.0, "gamma": None, "seed": 0, **base,
         "val_rec": 10.0, "val_kl": 1.0, "mig": 0.1, "beta_vae_score": 0.5},
        {"run": "a1", "model": "beta-vae", "beta": 1.0, "gamma": None, "seed": 1, **base,
         "val_rec": 12.0, "val_kl": 3.0, "mig": 0.3, "beta_vae_score": 0.7},
        {"run": "b0", "model": "factor-vae", "beta": None, "gamma": 10.0, "seed": 0, **base,
         "val_rec": 20.0, "val_kl": 2.0, "val_tc": 0.5, "val_d_real": 0.6, "val_d_perm": 0.4, "mig": 0.2},
        {"run": "b1", "model": "factor-vae", "beta": None, "gamma": 10.0, "seed": 1, "dataset": "d",
         "status": "failed", "error": "train: FloatingPointError: NaN"},
    ]


def test_stat_mean_and_sample_std():
    s = Stat.of([1.0, 2.0, 3.0, None, float("nan")])
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    assert s.text() == "2.00 ± 1.00"
    assert Stat.of([0.25]).text() == "0.250" and Stat.of([]) is None


def test_tables_known_answers():
    rows = _rows()
    b = beta_table(rows)
    assert b.columns == ["dataset", "beta", "seeds", "val_rec", "val_kl", "mig", "beta_vae_score"]
    assert [b._text(c) for c in b.rows[0]] == ["d", "1", "2", "11.00 ± 1.41", "2.00 ± 1.41", "0.200 ± 0.141", "0.600 ± 0.141"]
    md = b.to_markdown().splitlines()
    assert md[0] == "### beta-VAE per beta"
    assert md[4] == "| dataset | beta | seeds | rec (nats) | KL (nats) | MIG | beta-VAE score |"
    csv = b.to_csv().splitlines()
    assert csv[0].startswith("dataset,beta,seeds,val_rec_mean,val_rec_std,val_rec_n")
    assert csv[1].startswith("d,1,2,11,1.41421,2,")
    g = gamma_table(rows)
    assert g.columns[3:] == ["val_rec", "val_kl", "val_tc", "val_d_real", "val_d_perm", "mig"]
    assert [g._text(c) for c in g.rows[0]][:4] == ["d", "10", "1", "20.00"]  # the failed seed is left out
    s = suite_table(rows)
    assert [r[2] for r in s.rows] == ["beta=1", "gamma=10"] and s.columns[4:] == ["mig", "beta_vae_score"]
    f = failures_table(rows)
    assert f.rows == [["b1", "failed", "train: FloatingPointError: NaN"]]
    assert failures_table(rows[:3]) is None


def test_weak_table_pairs_beside_the_same_loss_without_pairs():
    base = {"dataset": "d", "status": "finished", "error": "", "gamma": None}
    rows = _rows() + [
        {"run": "w0", "model": "ada-gvae", "beta": 1.0, "k": 1.0, "seed": 0, **base, "mig": 0.4, "val_rec": 30.0},
        {"run": "w1", "model": "ada-gvae", "beta": 1.0, "k": 1.0, "seed": 1, **base, "mig": 0.6, "val_rec": 32.0},
        {"run": "w2", "model": "gvae", "beta": 4.0, "k": 0.0, "seed": 0, **base, "mig": 0.5, "val_rec": 40.0},
    ]
    t = weak_table(rows)
    assert t.columns == ["dataset", "model", "k", "beta", "seeds", "mig", "val_rec", "MIG without pairs (beta-vae)"]
    assert [[t._text(c) for c in r] for r in t.rows] == [
        ["d", "ada-gvae", "1", "1", "2", "0.500 ± 0.141", "31.00 ± 1.41", "0.200 ± 0.141"],
        ["d", "gvae", "0", "4", "1", "0.500", "40.00", "not in study"],
    ]
    assert weak_table(_rows()) is None


@pytest.fixture(scope="module")
def toy_sweep(tmp_path_factory):
    """A real 4-run sweep (3 steps each) on the toy dataset; factor-vae gamma=1000 is made to fail."""
    out = tmp_path_factory.mktemp("report") / "sweep"
    data = toy_data()
    spec = registry.DatasetSpec(
        name="toy", factor_names=data.factor_names, factor_sizes=data.factor_sizes,
        sources=("arrays",), load=lambda source, root: data, present=lambda s, r: True,
    )
    registry.names()
    real_train = sweep_mod._train

    def train(cfg):
        if cfg.hparams.get("gamma") == 1000:
            raise FloatingPointError("loss is NaN at step 2")
        return real_train(cfg)

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._REGISTRY, "toy", spec)
        mp.setattr(registry, "_LOADED", {})
        mp.setattr(sweep_mod, "_train", train)
        res = sweep(parse_study(STUDY), out, jobs=1, progress=False)
        assert res.count("finished") == 3 and res.count("failed") == 1
        assert cli_main(["report", str(out)]) == 0
    return out


def test_report_html(toy_sweep):
    html = (toy_sweep / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<title>Toy report</title>" in html
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) >= 5 and html.count("<img") == len(imgs)
    assert all(base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n" for _, b64 in imgs)
    titles = [t for t, _ in imgs]
    for want in ("Loss curves", "KL per latent dimension", "Latent traversals: toy, beta-vae (beta=",
                 "Latent traversals: toy, factor-vae (gamma=10)", "Reconstructions: toy",
                 "Latent clusters: toy", "How the beta-VAE score is built: toy", "Metrics vs hyperparameter",
                 "Mean |latent| vs hyperparameter", "Metrics per model: toy"):
        assert any(t.startswith(want) for t in titles), (want, titles)
    for table in ("Did the models learn?", "beta-VAE per beta", "FactorVAE per gamma",
                  "Metric suite per model and setting", "Runs that did not finish"):
        assert f">{table}</h3>" in html, table
    assert "toy/factor-vae/gamma=1000/seed=0" in html and "FloatingPointError: loss is NaN at step 2" in html
    assert "MIG untrained" in html and "torch" in html and "training wall time" in html
    assert "Published numbers beside ours" in html and "Table 1 — published vs ours" in html
    assert "best MIG (toy, any model): theirs 0.500; ours " in html


def test_report_files(toy_sweep):
    tables = sorted(p.name for p in (toy_sweep / "tables").iterdir())
    keys = ("beta", "gamma", "suite", "failures", "learning", "reference_pub-1")
    assert tables == sorted(f"{k}.{e}" for k in keys for e in ("csv", "md"))
    assert len(list((toy_sweep / "figures").glob("*.png"))) >= 5
    assert (toy_sweep / "results.csv").read_text().count("\n") == 5


def test_report_needs_a_sweep_folder(tmp_path):
    assert cli_main(["report", str(tmp_path)]) == 2


# ------------------------------------------------------------------ published numbers beside ours
REF_STUDY = """
[study]
name = "refs"
datasets = ["dsprites"]
[[models]]
name = "factor-vae"
grid = { gamma = [1, 2, 4, 8] }
[train]
steps = 100
[[reference]]
name = "t2"
title = "Table 2"
citation = "Slides"
dataset = "dsprites"
model = "factor-vae"
hparam = "gamma"
protocol = "steps not stated"
notes = ["their rec may not be a sum over pixels"]
columns = [{ name = "rec", ours = "val_rec" }, { name = "TC", ours = "val_tc_batch", units = "nats" }]
rows = [[1, 30.0, 5.0], [2, 40.0, 2.5], [4, 45.0, 1.0], [64, 56.0, -0.2]]
[[claim]]
name = "mig"
title = "best MIG"
citation = "Slides"
dataset = "dsprites"
model = "factor-vae"
metric = "mig"
value = 0.22
"""


def _ref_rows():
    rows = []
    for g, rec, tc, mig in [(1, 20.0, 3.0, 0.1), (1, 22.0, 3.0, 0.3), (2, 25.0, 2.0, 0.15), (4, 30.0, 1.0, 0.12),
                            (8, 31.0, 0.5, 0.05)]:
        rows.append({"run": f"g{g}", "dataset": "dsprites", "model": "factor-vae", "gamma": float(g), "seed": 0,
                     "status": "finished", "error": "", "val_rec": rec, "val_tc_batch": tc, "mig": mig})
    return rows


def test_reference_comparison_known_answers():
    from untwine.report.reference import compare, comparisons, comparisons_markdown

    study = parse_study(REF_STUDY)
    c = compare(study.references[0], _ref_rows(), study)
    assert c.table.columns == ["gamma", "seeds", "rec: ours", "rec: theirs", "rec: ours − theirs",
                               "TC: ours", "TC: theirs", "TC: ours − theirs"]
    text = [[c.table._text(x) for x in r] for r in c.table.rows]
    assert text[0] == ["1", "2", "21.00 ± 1.41", "30.00", "-9", "3.00 ± 0.000", "5.00", "-2"]
    assert text[3] == ["8", "1", "31.00", "", "", "0.500", "", ""]  # ours only
    assert text[4] == ["64", "0", "", "56.00", "", "", "-0.200", ""]  # theirs only
    # ours: rec rises (4 settings, +1), TC falls (-1), MIG 0.2, 0.15, 0.12, 0.05 falls (-1); theirs: rec +1, TC -1
    assert c.trend == ("Spearman rank correlation with gamma (ours over 4 settings, theirs over 4): "
                       "rec ours +1.00, theirs +1.00; TC ours -1.00, theirs -1.00; MIG ours -1.00, theirs not published.")
    assert any(n.startswith("Units — rec: ours = Bernoulli negative log-likelihood summed over all pixels")
               and n.endswith("theirs = not stated.") for n in c.notes)
    assert any("discriminator's density-ratio estimate" in n for n in c.notes)
    assert "Protocol — ours: steps 100; theirs: steps not stated." in " ".join(c.notes)
    assert "No finished runs of ours for gamma = 64." in c.notes
    assert c.notes[-1] == "their rec may not be a sum over pixels"
    _, claims = comparisons(study, _ref_rows())
    assert claims == ["best MIG (dsprites, factor-vae): theirs 0.220; ours 0.200 ± 0.141 (factor-vae, gamma=1, "
                      "2 seeds) — not reached (-0.02). Source: Slides."]
    md = comparisons_markdown(study, _ref_rows())
    assert md.startswith("# refs: published numbers beside ours\n\n## Claims\n\n- best MIG")
    assert "| gamma | seeds | rec: ours | rec: theirs |" in md and "**Trends.** Spearman" in md


def test_reference_trend_figure_has_one_panel_per_column_and_mig():
    from untwine.report.reference import compare, trend_figure

    study = parse_study(REF_STUDY)
    fig = trend_figure(compare(study.references[0], _ref_rows(), study), _ref_rows())
    used = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_ylabel() for ax in used] == ["rec", "TC", "MIG"]
    rec = used[0]
    ours, theirs = rec.get_lines()[0], rec.get_lines()[-1]
    assert list(ours.get_xdata()) == [1.0, 2.0, 4.0, 8.0] and list(ours.get_ydata()) == [21.0, 25.0, 30.0, 31.0]
    assert list(theirs.get_xdata()) == [1.0, 2.0, 4.0, 64.0] and list(theirs.get_ydata()) == [30.0, 40.0, 45.0, 56.0]
    assert rec.get_xscale() == "log"


def test_report_cli_markdown_and_references_file(toy_sweep, tmp_path):
    other = tmp_path / "refs.toml"
    other.write_text(STUDY.replace('rows = [[1, 100.0], [4, 200.0]]', 'rows = [[1, 7.5]]'))
    md = tmp_path / "published.md"
    assert cli_main(["report", str(toy_sweep), "--no-figures", "--references", str(other),
                     "--markdown", str(md), "--output", str(tmp_path / "r.html")]) == 0
    text = md.read_text()
    assert "| 1 | 1 |" in text and "7.50" in text and "200.0" not in text


def test_latent_clusters_legend_names_categories():
    """A categorical factor (dSprites' shape) gets a legend with its value names, not a colour bar."""
    import numpy as np
    from types import SimpleNamespace

    from untwine import data as udata
    from untwine.report import figures as F

    fac = np.stack(np.meshgrid(np.arange(3), np.arange(4), indexing="ij"), -1).reshape(-1, 2)
    imgs = np.zeros((len(fac), 8, 8), np.uint8)
    ds = udata.from_arrays(imgs, fac, ["shape", "posX"], name="dsprites")
    run = SimpleNamespace(summary={}, model=SimpleNamespace(latents=2),
                          encode=lambda x: np.random.default_rng(0).normal(size=(len(x), 2)))
    fig = F.latent_clusters([("m", run)], ds, 0, n=60)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["square", "ellipse", "heart"]
    assert legend.get_title().get_text() == "shape"
    fig2 = F.latent_clusters([("m", run)], ds, 1, n=60)  # posX: no names -> colour bar
    assert not fig2.legends and len(fig2.axes) == 2
    assert F.category_names(ds, 1) is None


def _loss_log(root, run, values):
    """A run folder holding only metrics.jsonl: val rows at steps 0, 1, ... with ``values``."""
    import json

    (root / run).mkdir(parents=True)
    (root / run / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": i, "split": "val", "loss": v}) + "\n" for i, v in enumerate(values)))
    model, hp = run.split("/")[1:3]
    name, value = hp.split("=")
    return {"run": run, "dataset": "ds", "model": model, name: float(value), "seed": 0, "status": "finished"}


def test_loss_curves_axis_scale_is_what_the_caption_says(tmp_path):
    """Log y where a panel's losses are positive and span > 10x (the padded axis limits of such a
    panel go below 0, which once kept every panel linear under a "log scale" caption)."""
    from untwine.report import figures as F

    wide = [_loss_log(tmp_path, "ds/beta-vae/beta=1/seed=0", [2800.0, 300.0, 90.0, 85.0])]
    negative = [_loss_log(tmp_path, "ds/factor-vae/gamma=10/seed=0", [2800.0, 90.0, -40.0])]
    narrow = [_loss_log(tmp_path, "ds/vae/beta=2/seed=0", [2981.0, 2978.0, 2976.0])]
    fig = F.loss_curves(wide, tmp_path, ["beta"])
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()
    assert F.y_scale_caption(fig) == "log scale"
    for rows in (negative, narrow):
        fig = F.loss_curves(rows, tmp_path, ["beta", "gamma"])
        assert fig.axes[0].get_yscale() == "linear" and "log" not in fig.axes[0].get_ylabel()
        assert F.y_scale_caption(fig) == "linear scale"
    both = F.loss_curves(wide + negative, tmp_path, ["beta", "gamma"])
    assert [a.get_yscale() for a in both.axes] == ["log", "linear"]
    assert F.y_scale_caption(both).startswith("log scale in the panels whose axis label says so")


def test_a_damaged_log_costs_its_own_curve_not_the_figure(tmp_path):
    """A metrics.jsonl damaged in its middle (not a torn last line) leaves that run out of the loss
    curves, with a warning naming it; the other settings' curves are drawn."""
    from untwine.report import figures as F

    good = _loss_log(tmp_path, "ds/beta-vae/beta=1/seed=0", [300.0, 90.0, 85.0])
    bad = _loss_log(tmp_path, "ds/beta-vae/beta=4/seed=0", [300.0, 90.0, 85.0])
    log = tmp_path / bad["run"] / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    with pytest.warns(UserWarning, match=r"loss curves: ds/beta-vae/beta=4/seed=0 left out: .*metrics.jsonl"):
        fig = F.loss_curves([good, bad], tmp_path, ["beta"])
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["beta=1 (val)"]


def test_report_loss_caption_matches_its_axes(toy_sweep):
    """The toy sweep's losses span < 10x (3 steps): the caption says linear, never log."""
    html = (toy_sweep / "report.html").read_text()
    caption = re.search(r"<b>Loss curves\.</b>([^<]*)</figcaption>", html).group(1)
    assert "linear scale" in caption and "log" not in caption


# ------------------------------------------------------------------ a results folder without run folders
def _results_only(sweep_dir, dest):
    """What gets committed of a sweep: results.csv and the study files, no run folders."""
    import shutil

    dest.mkdir()
    for name in ("results.csv", "study.json", "study.toml", "sweep_log.jsonl"):
        shutil.copy(sweep_dir / name, dest / name)
    return dest


def test_report_of_a_results_only_folder_shows_the_tables(toy_sweep, tmp_path):
    """The tables equal those of the sweep folder itself; the figures results.csv can give are
    drawn and the page says which need the run folders."""
    out = _results_only(toy_sweep, tmp_path / "committed")
    assert cli_main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "4 (3 finished, 1 failed, 0 not finished)" in html
    assert "results.csv for all runs: their run folders are not in" in html
    for key in ("beta", "gamma", "suite", "failures"):  # same numbers as from the run folders
        assert (out / "tables" / f"{key}.csv").read_text() == (toy_sweep / "tables" / f"{key}.csv").read_text(), key
    # the learning check's rec at step 0 and at the end come from results.csv's val_rec_step0 and
    # val_rec; only the untrained encoder's MIG needs the sweep's baseline/ folder
    def learning(folder):
        return [line.split(",") for line in (folder / "tables" / "learning.csv").read_text().splitlines()]

    ours, theirs = learning(out), learning(toy_sweep)
    assert ours[0][3] == "rec at step 0_mean" and ours[0][-1] == "MIG untrained" and len(ours) == len(theirs) > 1
    assert [row[:-1] for row in ours] == [row[:-1] for row in theirs]
    assert float(ours[1][3]) > float(ours[1][6]) > 0 and float(ours[1][9]) < 1  # step-0 rec, final rec, ratio
    assert {row[-1] for row in ours[1:]} == {"needs the sweep's baseline/ folder"}
    titles = re.findall(r'<img alt="([^"]+)"', html)
    assert titles == ["Metrics vs hyperparameter", "Published vs ours: Table 1", "Metrics per model: toy"]
    assert "None of the 4 runs has a run folder here (results.csv only): the figures below are" in html
    assert "loss curves (metrics.jsonl), KL per latent dimension (summary.json), latent traversals" in html
    assert "needs the run folder" not in html  # the learning check's step-0 rec is in results.csv
    assert "could not be" not in html  # no run was tried and failed to load


def test_report_takes_only_missing_runs_from_results_csv(toy_sweep, tmp_path):
    import shutil

    from untwine.studies.results import collect, collect_for_report
    from untwine.studies.study import load_sweep_study

    out = tmp_path / "sweep"
    shutil.copytree(toy_sweep, out)
    study = load_sweep_study(out)
    (out / "results.csv").write_text("damaged")  # not read while every run folder is there
    assert collect_for_report(study, out) == (collect(study, out), [])
    shutil.copy(toy_sweep / "results.csv", out / "results.csv")
    gone = "toy/beta-vae/beta=4/seed=0"
    shutil.rmtree(out / gone)
    rows, recorded = collect_for_report(study, out)
    assert recorded == [gone]
    assert [r["status"] for r in rows] == ["finished", "finished", "finished", "failed"]
    row = next(r for r in rows if r["run"] == gone)
    assert math.isclose(row["mig"], next(r for r in collect(study, toy_sweep) if r["run"] == gone)["mig"],
                        rel_tol=1e-5)
    assert cli_main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "1 of the 4 runs have no run folder here (results.csv only): they are in the figures" in html
    assert "Loss curves" in html


def test_report_of_a_truncated_results_csv_is_a_clear_error(toy_sweep, tmp_path, capsys):
    from untwine.report import build_report
    from untwine.train.files import RunFolderError

    out = _results_only(toy_sweep, tmp_path / "committed")
    text = (out / "results.csv").read_text()
    (out / "results.csv").write_text(text[: len(text) // 2])
    last = text[: len(text) // 2].count("\n") + 1
    message = (f"{out / 'results.csv'} is damaged: it is cut short (its last line, {last}, has no newline). "
               f"Fix: restore {out / 'results.csv'} from where it came from (a copy, git), or delete it and run "
               f"`untwine sweep` with the same study and --out {out}, which writes it again from the run folders")
    with pytest.raises(RunFolderError) as e:
        build_report(out, figures=False)
    assert str(e.value) == message
    capsys.readouterr()
    assert cli_main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"untwine report: error: {message}\n" and "Traceback" not in err
    assert not (out / "report.html").exists()
