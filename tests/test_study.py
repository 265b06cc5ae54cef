"""Study files: validation messages, run expansion, folder names, shipped studies."""

from __future__ import annotations

from pathlib import Path

import pytest

from untwine.studies import StudyError, load_study, parse_study, run_name

ROOT = Path(__file__).resolve().parents[1]

BASE = """
[study]
name = "t"
datasets = ["mpi3d"]
seeds = [0, 1]
[train]
steps = 30
batch_size = 16
[eval]
metrics = ["mig"]
sizes = { mig = { num_train = 100 } }
[[models]]
name = "beta-vae"
grid = { beta = [1, 4] }
[[models]]
name = "vae"
"""


def test_runs_expansion_order_and_folders(tmp_path):
    s = parse_study(BASE)
    assert s.run_names() == [
        "mpi3d/beta-vae/beta=1/seed=0",
        "mpi3d/beta-vae/beta=1/seed=1",
        "mpi3d/beta-vae/beta=4/seed=0",
        "mpi3d/beta-vae/beta=4/seed=1",
        "mpi3d/vae/seed=0",
        "mpi3d/vae/seed=1",
    ]
    runs = s.runs(tmp_path)
    assert [r.out for r in runs] == [str(tmp_path / n) for n in s.run_names()]
    r = runs[2]
    assert (r.dataset, r.model, r.hparams, r.seed, r.steps, r.batch_size) == (
        "mpi3d", "beta-vae", {"beta": 4.0}, 0, 30, 16,
    )
    assert runs[4].hparams == {}
    # deterministic: parsing twice gives the same runs
    assert [r.to_dict() for r in parse_study(BASE).runs(tmp_path)] == [r.to_dict() for r in runs]


def test_run_name_formats_values():
    assert run_name("dsprites", "beta-vae", {"beta": 4.0}, 0) == "dsprites/beta-vae/beta=4/seed=0"
    assert run_name("mnist", "beta-vae", {"beta": 0.001}, 2) == "mnist/beta-vae/beta=0.001/seed=2"
    assert (
        run_name("d", "m", {"gamma": 10, "beta": 0.5}, 1) == "d/m/beta=0.5,gamma=10/seed=1"
    )


def test_model_train_override_and_study_override():
    text = BASE.replace('name = "vae"', 'name = "vae"\ntrain = { batch_size = 8 }')
    s = parse_study(text, overrides={"train": {"steps": 5}})
    runs = s.runs()
    assert runs[-1].batch_size == 8 and runs[0].batch_size == 16
    assert all(r.steps == 5 for r in runs)


@pytest.mark.parametrize(
    "old,new,match",
    [
        ("seeds = [0, 1]", "seeds = [0, 1]\ncolour = 3", r"unknown key 'colour' in \[study\]"),
        ("steps = 30", "stepz = 30", r"unknown key train\.stepz; \[train\] takes RunConfig fields"),
        ("steps = 30", 'steps = "many"', r"train\.steps must be an integer, got 'many' \(str\)"),
        ("batch_size = 16", "batch_size = 1.5", r"train\.batch_size must be an integer"),
        ("steps = 30", 'model = "vae"', r"train\.model is set by the study itself"),
        ("grid = { beta = [1, 4] }", "grid = { beta = [] }",
         r"models\[0\] \(beta-vae\): grid\.beta is empty; give at least one value"),
        ("grid = { beta = [1, 4] }", 'grid = { beta = ["big"] }',
         r"grid\.beta values must be numbers, got 'big' \(str\)"),
        ('name = "vae"', 'name = "vea"', r"models\[1\]: unknown model 'vea'; choose one of .*beta-vae"),
        ("grid = { beta = [1, 4] }", "grid = { gamma = [1] }",
         r"models\[0\]: beta-vae: unknown hyperparameter\(s\) gamma; it takes beta"),
        ('datasets = ["mpi3d"]', 'datasets = ["mnits"]', r"study\.datasets: unknown dataset 'mnits'; choose one of "),
        ('datasets = ["mpi3d"]', "datasets = []", r"study\.datasets is empty"),
        ("seeds = [0, 1]", 'seeds = ["a"]', r"study\.seeds must be a list of an integer"),
        ("num_train = 100", "num_train = 0", r"eval\.sizes\.mig must be a positive integer"),
        ("sizes = { mig = { num_train = 100 } }", "sizes = { mig = { num_eval = 5 } }",
         r"eval\.sizes: mig has no size 'num_eval'; it has num_train"),
        ('metrics = ["mig"]', 'metrics = ["migg"]', r"eval\.metrics: unknown metric 'migg'; choose one of mig, sap"),
        ('name = "t"', "name = 3", r"study\.name must be a string, got 3 \(int\)"),
        ("[eval]", "[evaluation]", r"unknown key 'evaluation' in top level"),
    ],
)
def test_validation_errors(old, new, match):
    assert old in BASE
    with pytest.raises(StudyError, match=match):
        parse_study(BASE.replace(old, new, 1), path=Path("x.toml"))


def test_validation_structural_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="study file .*nope.toml not found"):
        load_study(tmp_path / "nope.toml")
    with pytest.raises(StudyError, match=r"no \[\[models\]\]"):
        parse_study(BASE.split("[[models]]")[0])
    with pytest.raises(StudyError, match=r"invalid TOML"):
        parse_study("[study\nname=")
    with pytest.raises(StudyError, match=r"missing \[study\] section"):
        parse_study("[train]\nsteps = 3\n")
    dup = BASE + '\n[[models]]\nname = "vae"\n'
    with pytest.raises(StudyError, match="model 'vae' is listed twice"):
        parse_study(dup)


def test_invalid_value_caught_when_expanding(tmp_path):
    s = parse_study(BASE.replace("steps = 30", "steps = 0"))
    with pytest.raises(StudyError, match=r"run mpi3d/beta-vae/beta=1/seed=0: steps must be an integer >= 1"):
        s.runs(tmp_path)


@pytest.mark.parametrize("name", ["tiny", "seeds_slides", "paper_mnist", "locatello", "demo", "seeds_slides_cpu",
                                  "paper_mnist_cpu", "precision_check", "weak"])
def test_shipped_studies_load(name):
    s = load_study(ROOT / "studies" / f"{name}.toml")
    runs = s.runs("/tmp/x")
    assert runs and len(runs) == len(set(r.out for r in runs))


def test_shipped_study_sizes():
    slides = load_study(ROOT / "studies" / "seeds_slides.toml")
    assert len(slides.runs()) == 2 * 14 * len(slides.seeds)
    loc = load_study(ROOT / "studies" / "locatello.toml")
    per_model = {m.name: m.settings() for m in loc.models}
    assert [p["beta"] for p in per_model["beta-vae"]] == [1, 2, 4, 6, 8, 16]
    assert [p["c_max"] for p in per_model["annealed-vae"]] == [5, 10, 25, 50, 75, 100]
    assert loc.train["steps"] == 300_000


@pytest.mark.parametrize("name", ["tiny", "demo", "seeds_slides", "paper_mnist", "locatello"])
def test_studies_ship_inside_the_package(name):
    from untwine.cli.demo import shipped_study

    path = shipped_study(name)
    assert "untwine" in path.parts and path.is_file()
    assert load_study(path).runs(Path("/tmp/x"))


def test_metric_aliases_normalised():
    s = parse_study(BASE.replace('metrics = ["mig"]', 'metrics = ["mig", "beta_vae_score", "dci_completeness", "dci"]'))
    assert s.metrics == ["mig", "beta_vae", "dci"]


REF = BASE + '''
[[reference]]
name = "t1"
citation = "A. Author (2024)"
dataset = "mpi3d"
model = "beta-vae"
hparam = "beta"
columns = [{ name = "rec", ours = "val_rec" }]
rows = [[1, 10.0], [2, 20.0]]
'''


def test_reference_tables_parse():
    s = parse_study(REF)
    (r,) = s.references
    assert (r.name, r.title, r.dataset, r.model, r.hparam) == ("t1", "t1", "mpi3d", "beta-vae", "beta")
    assert r.rows == {1.0: [10.0], 2.0: [20.0]} and r.columns[0].ours == "val_rec" and s.claims == []


@pytest.mark.parametrize("column", ["irs", "mutual_info_score", "fairness_max", "dci_disentanglement"])
def test_a_reference_may_compare_any_metric_result_key(column):
    """Every fixed result key of the metric registry is a results.csv column a reference may name."""
    (r,) = parse_study(REF.replace('ours = "val_rec"', f'ours = "{column}"')).references
    assert r.columns[0].ours == column


@pytest.mark.parametrize("old, new, message", [
    ('dataset = "mpi3d"\nmodel', 'dataset = "dsprites"\nmodel',
     r"reference\[0\] \(t1\)\.dataset 'dsprites' is not in study\.datasets \(mpi3d\); add it there or remove the reference"),
    ('model = "beta-vae"\nhparam = "beta"', 'model = "factor-vae"\nhparam = "beta"',
     r"reference\[0\] \(t1\)\.model 'factor-vae' is not one of the study's \[\[models\]\] \(beta-vae, vae\)"),
    ('hparam = "beta"', 'hparam = "gamma"', r"reference\[0\] \(t1\)\.hparam 'gamma' is not swept for beta-vae"),
    ('ours = "val_rec"', 'ours = "recon"', r"reference\[0\] \(t1\)\.columns\[0\]\.ours 'recon' is not a results\.csv column"),
    ("[2, 20.0]]", "[2]]", r"reference\[0\] \(t1\)\.rows\[1\] must be \[beta, then 1 number\(s\): rec\], got \[2\]"),
    ("[2, 20.0]]", "[1, 20.0]]", r"reference\[0\] \(t1\)\.rows\[1\]: beta = 1 appears twice"),
    ('citation = "A. Author (2024)"\n', '', r"reference\[0\] needs 'citation'"),
    ('name = "t1"', 'name = "t 1"', r"name 't 1' may only hold letters, digits, '-' and '_'"),
    ('rows =', 'colour = 1\nrows =', r"unknown key 'colour' in reference\[0\]; allowed: citation, columns"),
])
def test_reference_errors_name_the_key(old, new, message):
    assert old in REF
    with pytest.raises(StudyError, match=message):
        parse_study(REF.replace(old, new))


def test_claims_parse_and_errors():
    claim = REF + '\n[[claim]]\nname = "best"\ncitation = "x"\ndataset = "mpi3d"\nmetric = "mig"\nvalue = 0.21\n'
    (c,) = parse_study(claim).claims
    assert (c.metric, c.value, c.statistic, c.model) == ("mig", 0.21, "max", "")
    with pytest.raises(StudyError, match=r"claim\[0\] \(best\)\.statistic must be \"max\" or \"min\", got 'mean'"):
        parse_study(claim + 'statistic = "mean"\n')
    with pytest.raises(StudyError, match=r"claim\[0\]\.value must be a number, got 'high' \(str\)"):
        parse_study(claim.replace("value = 0.21", 'value = "high"'))
    with pytest.raises(StudyError, match="reference/claim name 't1' is used twice"):
        parse_study(claim.replace('name = "best"', 'name = "t1"'))


def test_slides_studies_carry_the_published_tables():
    full = load_study(ROOT / "studies" / "seeds_slides.toml")
    assert [r.name for r in full.references] == ["slides-01", "slides-02", "slides-03", "slides-04"]
    assert full.references[1].rows[64.0] == [56.28, 16.29, -0.20, 0.45, 0.43]
    assert [(c.dataset, c.value) for c in full.claims] == [("dsprites", 0.22), ("mpi3d", 0.21)]
    cpu = load_study(ROOT / "studies" / "seeds_slides_cpu.toml")
    assert [r.name for r in cpu.references] == ["slides-01", "slides-02"] and len(cpu.claims) == 1
    assert cpu.references[0].rows[1.0] == [24.71, 27.29] and len(cpu.runs()) == 14
