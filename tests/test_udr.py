"""UDR (untwine.metrics.udr): hand-computed answers on orthogonal codes, structure on random codes,
bad input, trained runs, the CLI, and UDR per setting in a study's results and report."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

import untwine.metrics as um
from untwine.metrics.udr import gaussian_kl, lasso_matrix, relative_strength, spearman_matrix

from conftest import TINY

A = 1 / math.sqrt(2) - 0.1  # Lasso(alpha=0.1) coefficient of x0 on (x0 +- x1) / sqrt(2)
ON = np.ones(3)


def design(reps: int = 4) -> np.ndarray:
    """``8 reps x 3`` codes: every sign pattern of 3 latents, ``reps`` times; the columns are
    orthonormal with zero mean and unit variance (already standardised)."""
    return np.array(list(itertools.product([-1.0, 1.0], repeat=3)) * reps)


def mixed(x: np.ndarray) -> np.ndarray:
    """Latents 0 and 1 rotated by 45 degrees (still orthonormal): each new latent mixes two old ones."""
    return np.stack([(x[:, 0] + x[:, 1]) / math.sqrt(2), (x[:, 0] - x[:, 1]) / math.sqrt(2), x[:, 2]], 1)


# ------------------------------------------------------------------------------ known answers
def test_relative_strength_known_answers():
    assert relative_strength(np.eye(3)) == 1.0
    assert relative_strength(0.9 * np.eye(3)[[2, 0, 1]]) == pytest.approx(0.9)
    assert relative_strength([[1, 1, 0], [1, 1, 0], [0, 0, 1]]) == pytest.approx(2 / 3)
    assert relative_strength(np.ones((3, 3))) == pytest.approx(1 / 3)
    assert relative_strength(np.zeros((3, 3))) == 0.0  # 0 / 0 counts 0
    assert relative_strength([[1.0, np.nan], [0.0, 1.0]]) == pytest.approx(0.5)  # NaN row and column count 0
    assert relative_strength(np.zeros((0, 3))) == 0.0  # no active latent in one model


@pytest.mark.parametrize("correlation, perfect", [("lasso", 0.9), ("spearman", 1.0)])
def test_identical_permuted_and_sign_flipped_models_score_perfect(correlation, perfect):
    """Lasso(alpha=0.1) shrinks the unit coefficient of a standardised latent to 0.9: the reference's
    lasso UDR of identical models is 0.9, its Spearman UDR 1."""
    x = design()
    flipped = -3.0 * x[:, [2, 0, 1]] + 5.0
    r = um.udr([x, x.copy(), flipped], [ON] * 3, correlation=correlation)
    np.testing.assert_allclose(r["udr"], perfect, atol=1e-9)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(r["pairwise"][off], perfect, atol=1e-9)
    assert np.isnan(np.diag(r["pairwise"])).all()
    # model 2's latent 0 is model 0's latent 2 (row: the first model's latent, column: the second's)
    np.testing.assert_allclose(r["correlations"][0, 2], perfect * np.eye(3)[:, [2, 0, 1]], atol=1e-9)
    assert r["correlations"].shape == (3, 3, 3, 3) and not r["correlations"][1, 1].any()
    assert r["num_active"].tolist() == [3, 3, 3] and r["correlation"] == correlation


@pytest.mark.parametrize("correlation, weight", [("lasso", A), ("spearman", 1 / math.sqrt(2))])
def test_mixed_latents_hand_computed_and_the_pick(correlation, weight):
    """Model 2 mixes two latents: its similarity to the others is [[w, w, 0], [w, w, 0], [0, 0, p]],
    pair score (w + p) / 3; the model scores are medians of two and one kind of pair."""
    x = design()
    p = 0.9 if correlation == "lasso" else 1.0
    s = (weight + p) / 3
    r = um.udr([x, -x[:, [1, 0, 2]], mixed(x)], [ON] * 3, correlation=correlation)
    np.testing.assert_allclose(r["pairwise"][2, :2], s, atol=1e-9)
    np.testing.assert_allclose(r["pairwise"][:2, 2], s, atol=1e-9)
    np.testing.assert_allclose(r["udr"], [(p + s) / 2, (p + s) / 2, s], atol=1e-9)
    assert int(np.argmax(r["udr"])) in (0, 1)  # the pick is a consistent model, never the mixed one


@pytest.mark.parametrize("correlation", ["lasso", "spearman"])
def test_inactive_latents_are_filtered_by_kl(correlation):
    """A 4th latent of noise with KL 0.001 nats (<= 0.01): ignored with filter_low_kl; without the
    filter it is zeroed and its row and column count 0: lasso (3 x 0.9 + 0) / 4 = 0.675 per axis;
    Spearman correlations of a constant latent are NaN, which zeroes every row and column (as the
    reference does)."""
    x = design()
    noise = np.random.default_rng(0).normal(size=(len(x), 1))
    codes = [np.hstack([x, noise]), np.hstack([x[:, [1, 2, 0]], -noise[::-1]]), np.hstack([-x, noise ** 2])]
    kl = [np.array([1.0, 2.0, 0.5, 0.001])] * 3
    p = 0.9 if correlation == "lasso" else 1.0
    r = um.udr(codes, kl, correlation=correlation)
    np.testing.assert_allclose(r["udr"], p, atol=1e-9)
    assert r["num_active"].tolist() == [3, 3, 3] and r["active"][:, 3].sum() == 0
    unfiltered = um.udr(codes, kl, correlation=correlation, filter_low_kl=False)
    np.testing.assert_allclose(unfiltered["udr"], 0.675 if correlation == "lasso" else 0.0, atol=1e-9)
    # a threshold below the noise latent's KL makes it active: now it lowers the scores
    low = um.udr(codes, kl, correlation=correlation, kl_threshold=1e-4)
    assert low["num_active"].tolist() == [4, 4, 4] and (low["udr"] < p - 0.05).all()


def test_a_model_without_active_latents_scores_zero():
    x = design()
    r = um.udr([x, x, x], [ON, ON, np.zeros(3)])
    np.testing.assert_allclose(r["udr"], [0.45, 0.45, 0.0], atol=1e-9)  # median(0.9, 0) = 0.45


@pytest.mark.parametrize("correlation", ["lasso", "spearman"])
def test_noise_model_ranks_last_and_the_pick_is_consistent(correlation):
    """Random continuous codes: three models are permuted, rescaled, sign-flipped copies of one
    representation (+ small noise), one model is independent noise, one entangles everything."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(1000, 5))
    good = [z[:, rng.permutation(5)] * rng.choice([-2.0, 0.5], 5) + 0.05 * rng.normal(size=z.shape) for _ in range(3)]
    noise = rng.normal(size=z.shape)
    entangled = z @ rng.normal(size=(5, 5))
    r = um.udr([noise, good[0], entangled, good[1], good[2]], [np.ones(5)] * 5, correlation=correlation)
    s, pair = r["udr"], r["pairwise"]
    assert min(pair[i, j] for i in (1, 3, 4) for j in (1, 3, 4) if i != j) > 0.85
    assert np.nanmax(pair[0]) < 0.05 and np.nanmax(pair[:, 0]) < 0.05  # noise matches nothing
    # a median over all four others: two good pairs (~0.9), the entangled (~0.28), the noise (~0)
    assert s[[1, 3, 4]].min() > 0.55 and s[0] < 0.05 and s[0] + 0.2 < s[2] < s[[1, 3, 4]].min() - 0.2
    assert int(np.argmax(s)) in (1, 3, 4) and int(np.argmin(s)) == 0
    if correlation == "spearman":  # symmetric: the similarity of (j, i) is that of (i, j) transposed
        np.testing.assert_allclose(r["pairwise"], r["pairwise"].T)


def test_spearman_matrix_equals_scipy_with_ties():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 5, size=(200, 3)).astype(float)
    b = np.hstack([rng.normal(size=(200, 2)), a[:, :1] ** 2])
    want = np.array([[abs(spearmanr(a[:, i], b[:, j])[0]) for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(spearman_matrix(a, b), want, atol=1e-12)
    assert np.isnan(spearman_matrix(np.ones((5, 1)), a[:5, :1])).all()  # constant latent: NaN, as scipy


def test_lasso_matrix_orientation():
    x = design()
    r = lasso_matrix(x, x[:, [2, 0, 1]])  # b's latent j is a's latent perm[j]
    np.testing.assert_allclose(r, 0.9 * np.eye(3)[:, [2, 0, 1]], atol=1e-9)
    assert lasso_matrix(x, x[:, :1]).shape == (3, 1)  # one target latent


def test_gaussian_kl_per_latent():
    mu = np.array([[0.0, 1.0], [0.0, -1.0]])
    logvar = np.array([[0.0, math.log(2)], [0.0, math.log(2)]])
    np.testing.assert_allclose(gaussian_kl(mu, logvar), [0.0, 0.5 * (1 + 2 - math.log(2) - 1)])


# ------------------------------------------------------------------------------ bad input
def test_bad_input_messages():
    x = design()
    with pytest.raises(ValueError) as e:
        um.udr([x], [ON])
    assert str(e.value) == ("UDR compares models with each other: got the codes of 1 model(s); pass the codes "
                            "of >= 2 models (e.g. the seeds of one setting)")
    with pytest.raises(ValueError) as e:
        um.udr(x, [ON])
    assert str(e.value) == ("codes must be a list of N x D arrays, one per model; got one array of shape "
                            "(32, 3): pass [codes_of_model_0, codes_of_model_1, ...]")
    with pytest.raises(ValueError) as e:
        um.udr([x, x[:10]], [ON, ON])
    assert str(e.value) == "codes[1] has 10 rows but codes[0] has 32; encode the same observations with every model"
    with pytest.raises(ValueError) as e:
        um.udr([x, x[:, :2]], [ON, ON])
    assert str(e.value) == ("codes[1] has 2 latents but codes[0] has 3; UDR compares models with the same "
                            "number of latents")
    with pytest.raises(ValueError) as e:
        um.udr([x, x], [ON])
    assert str(e.value) == "kl has 1 entries but codes has 2 models; pass one per-latent KL vector per model"
    with pytest.raises(ValueError) as e:
        um.udr([x, x], [ON, np.ones(4)])
    assert str(e.value) == "kl[1] must be a vector of the 3 per-latent KLs (nats) of model 1, got shape (4,)"
    with pytest.raises(ValueError) as e:
        um.udr([x, x], [ON, np.array([1.0, np.nan, 1.0])])
    assert str(e.value) == "kl[1] has NaN or infinite values; check the encoder's log-variances"
    with pytest.raises(ValueError) as e:
        um.udr([x, x], [ON, ON], correlation="pearson")
    assert str(e.value) == "correlation must be 'lasso' or 'spearman', got 'pearson'"
    bad = x.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"^codes\[1\] contain 1 NaN or infinite values \(first at row 3, column 1\)"):
        um.udr([x, bad], [ON, ON])
    assert um.udr(np.stack([x, x]), [ON, ON])["udr"].shape == (2,)  # an M x N x D array is M models


# ------------------------------------------------------------------------------ trained runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny beta-VAE runs (seeds 0-2) and one with 4 latents, under one folder."""
    from untwine.train import RunConfig, train

    root = tmp_path_factory.mktemp("udr_runs")
    base = dict(dataset=TINY, model="beta-vae", steps=6, batch_size=8, latents=3, eval_every=3, eval_images=16,
                device="cpu")
    dirs = []
    for seed in range(3):
        dirs.append(train(RunConfig(**base, seed=seed, out=str(root / "setting" / f"seed={seed}")), progress=False).dir)
    wide = train(RunConfig(**{**base, "latents": 4}, out=str(root / "wide")), progress=False).dir
    return dirs, wide


def test_udr_runs_equals_udr_on_the_encoded_sample(runs):
    from untwine.data import load
    from untwine.train import load_run

    dirs, _ = runs
    r = um.udr_runs(dirs, seed=3)
    assert r["runs"] == [str(d) for d in dirs] and r["dataset"] == TINY and r["num_data_points"] == 1000
    assert r["kl"].shape == (3, 3) and r["pairwise_lasso"].shape == (3, 3) and r["udr_spearman"].shape == (3,)
    loaded = [load_run(d) for d in dirs]
    _, x = load(TINY).sample(1000, np.random.default_rng(3))
    post = [run.encode_gaussian(x) for run in loaded]
    np.testing.assert_array_equal(post[0][0], loaded[0].encode(x))  # the means are encode's codes
    codes, kls = [mu for mu, _ in post], [gaussian_kl(mu, lv) for mu, lv in post]
    np.testing.assert_array_equal(r["kl"], np.stack(kls))
    for c in ("lasso", "spearman"):
        want = um.udr(codes, kls, correlation=c)
        np.testing.assert_array_equal(r[f"udr_{c}"], want["udr"])
        np.testing.assert_array_equal(r[f"pairwise_{c}"], want["pairwise"])
    assert r["num_active"].tolist() == [int((k > 0.01).sum()) for k in kls]
    again = um.udr_runs(loaded, seed=3)  # Run objects: the same numbers
    np.testing.assert_array_equal(again["udr_lasso"], r["udr_lasso"])


def test_udr_runs_bad_input(runs):
    dirs, wide = runs
    with pytest.raises(ValueError) as e:
        um.udr_runs(dirs[:1])
    assert str(e.value) == ("UDR compares runs with each other: got 1 run(s); pass >= 2 runs (e.g. the seeds "
                            "of one setting)")
    with pytest.raises(ValueError) as e:
        um.udr_runs([dirs[0], wide])
    assert str(e.value) == (f"run {wide} has 4 latents but {dirs[0]} has 3; UDR compares runs with the same "
                            "number of latents")


def test_cli_evaluate_udr(runs, tmp_path, capsys):
    from untwine.cli import main

    dirs, wide = runs
    folder = dirs[0].parent
    (folder / "udr.json").unlink(missing_ok=True)
    assert main(["evaluate", *map(str, dirs), "--metrics", "udr", "--seed", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["run", "UDR", "lasso", "UDR", "Spearman", "active", "MIG"]
    written = json.loads((folder / "udr.json").read_text())
    want = um.udr_runs(dirs, seed=3)
    assert written["runs"] == ["seed=0", "seed=1", "seed=2"] and written["seed"] == 3
    assert written["udr_lasso"] == pytest.approx(want["udr_lasso"].tolist(), abs=1e-12)
    assert written["udr_spearman"] == pytest.approx(want["udr_spearman"].tolist(), abs=1e-12)
    assert written["pairwise_lasso"][0][0] is None and len(written["fingerprints"][0]) == 64
    for line, d, a, b in zip(out[1:4], dirs, written["udr_lasso"], written["udr_spearman"]):
        assert line.split()[:3] == [str(d), f"{a:.4f}", f"{b:.4f}"]
    assert out[-1] == f"wrote {folder / 'udr.json'}"
    tops = {v: [d for d, x in zip(dirs, written[f"udr_{v}"]) if x == max(written[f"udr_{v}"])]
            for v in ("lasso", "spearman")}
    said = {v: str(t[0]) if len(t) == 1 else "none (a tie)" for v, t in tops.items()}
    assert out[-2] == f"UDR's pick: {said['lasso']} (lasso), {said['spearman']} (Spearman)"
    # with a suite metric: each run is evaluated too, and the table shows its MIG
    assert main(["evaluate", *map(str, dirs[:2]), "--metrics", "mig,udr", "--sizes", "num_train=200",
                 "--no-progress", "--output", str(tmp_path / "x.json")]) == 2
    assert "--output names one file" in capsys.readouterr().err
    assert main(["evaluate", *map(str, dirs[:2]), "--metrics", "mig,udr", "--sizes", "num_train=200",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    mig = json.loads((dirs[0] / "metrics.json").read_text())["mig"]
    assert f"{mig:6.4f}" in next(ln for ln in out.splitlines() if ln.startswith(str(dirs[0]) + " "))
    assert main(["evaluate", *map(str, dirs[:2]), "--metrics", "udr", "--output", str(tmp_path / "u.json")]) == 0
    assert json.loads((tmp_path / "u.json").read_text())["runs"] == [str(d.resolve()) for d in dirs[:2]]
    capsys.readouterr()
    assert main(["evaluate", str(dirs[0]), "--metrics", "udr"]) == 2
    assert capsys.readouterr().err == (
        "untwine evaluate: error: udr compares runs with each other: pass >= 2 run folders (e.g. the seeds of "
        "one setting), as in `untwine evaluate RUN RUN ... --metrics udr`\n")
    assert main(["evaluate", str(dirs[0]), str(wide), "--metrics", "udr"]) == 2
    assert "has 4 latents but" in capsys.readouterr().err


# ------------------------------------------------------------------------------ studies and report
def _row(run, seed, mig, lasso, spearman, beta=1.0):
    return {"run": run, "dataset": "d", "model": "beta-vae", "beta": beta, "seed": seed, "status": "finished",
            "error": "", "mig": mig, "udr_lasso": lasso, "udr_spearman": spearman}


def test_report_picks_known_answers():
    from untwine.report.selection import agreement, headline, picks_table, udr_table

    rows = [_row("a0", 0, 0.1, 0.5, 0.9), _row("a1", 1, 0.3, 0.7, 0.1), _row("a2", 2, 0.2, 0.6, 0.2),
            _row("b0", 0, 0.4, 0.1, 0.8, 4.0), _row("b1", 1, 0.2, 0.3, 0.3, 4.0),
            _row("c0", 0, 0.5, None, None, 8.0), _row("c1", 1, 0.6, None, None, 8.0),  # no UDR
            _row("e0", 0, 0.5, 0.2, 0.2, 16.0)]  # one seed: nothing to compare
    a = agreement(rows)
    assert a == {"settings": 2, "chance": pytest.approx(1 / 3 + 1 / 2), "udr_lasso": 1, "udr_spearman": 1}
    t = udr_table(rows)
    assert [r[2:] for r in t.rows] == [
        ["beta=1", 0, "0.100", "0.500", "0.900", "UDR Spearman"],
        ["beta=1", 1, "0.300", "0.700", "0.100", "MIG, UDR lasso"],
        ["beta=1", 2, "0.200", "0.600", "0.200", ""],
        ["beta=4", 0, "0.400", "0.100", "0.800", "MIG, UDR Spearman"],
        ["beta=4", 1, "0.200", "0.300", "0.300", "UDR lasso"],
    ]
    p = picks_table(rows)
    assert [r[2:] for r in p.rows] == [
        ["beta=1", 3, "seed 1", "seed 1", "seed 0"],
        ["beta=4", 2, "seed 0", "seed 1", "seed 0"],
        ["2 settings", "", "", "1 of 2 = MIG's", "1 of 2 = MIG's"],
    ]
    assert "a random seed would agree in 0.83 of 2" in p.caption
    assert headline(rows) == ("UDR's pick among a setting's seeds (no factors needed) is MIG's pick in 1 of 2 "
                              "settings (lasso) and 1 of 2 (Spearman); a random seed: 0.83 of 2 on average.")
    # a tie picks nothing: the Spearman UDR of two seeds is symmetric; a MIG tie leaves nothing to compare
    ties = [_row("t0", 0, 0.3, 0.1, 0.4), _row("t1", 1, 0.2, 0.2, 0.4)]
    assert agreement(ties) == {"settings": 1, "chance": 0.5, "udr_lasso": 0, "udr_spearman": 0}
    assert [r[-1] for r in udr_table(ties).rows] == ["MIG", "UDR lasso"]
    assert picks_table(ties).rows[0][4:] == ["seed 0", "seed 1", "tie"]
    assert agreement([_row("t0", 0, 0.2, 0.1, 0.4), _row("t1", 1, 0.2, 0.2, 0.3)]) is None
    assert udr_table(rows[5:]) is None and picks_table(rows[5:]) is None and headline(rows[5:]) is None


STUDY = """
[study]
name = "udr"
datasets = ["tiny-squares"]
seeds = [0, 1]
[train]
steps = 4
batch_size = 8
latents = 3
eval_every = 2
eval_images = 8
val_fraction = 0.25
device = "cpu"
[eval]
metrics = ["mig"]
sizes = { mig = { num_train = 64 } }
seed = 5
[[models]]
name = "beta-vae"
grid = { beta = [1, 4] }
[report]
baseline = false
figures = false
"""


def test_study_results_and_report_have_udr_per_setting(tmp_path):
    from untwine.report import build_report
    from untwine.studies import parse_study, sweep
    from untwine.studies.results import collect, read_results

    out = tmp_path / "sweep"
    study = parse_study(STUDY)
    sweep(study, out, jobs=1, progress=False)
    rows = read_results(out / "results.csv")
    assert len(rows) == 4 and all(0.0 <= r["udr_lasso"] <= 1.0 and 0.0 <= r["udr_spearman"] <= 1.0 for r in rows)
    for setting in ("beta=1", "beta=4"):  # each setting compares its own two seeds, sampled with [eval] seed
        folder = out / TINY / "beta-vae" / setting
        want = um.udr_runs([folder / "seed=0", folder / "seed=1"], seed=5)
        got = [r for r in rows if r["run"].startswith(f"{TINY}/beta-vae/{setting}/")]
        assert [r["udr_lasso"] for r in got] == pytest.approx(want["udr_lasso"].tolist(), rel=1e-5, abs=1e-9)
        assert [r["udr_spearman"] for r in got] == pytest.approx(want["udr_spearman"].tolist(), rel=1e-5, abs=1e-9)
        cached = json.loads((folder / "udr.json").read_text())
        assert cached["runs"] == ["seed=0", "seed=1"] and cached["seed"] == 5
    # written once: collect reads it back while the checkpoints are unchanged
    path = out / TINY / "beta-vae" / "beta=1" / "udr.json"
    mtime = path.stat().st_mtime_ns
    assert collect(study, out)[0]["udr_lasso"] == pytest.approx(rows[0]["udr_lasso"], rel=1e-5, abs=1e-9)
    assert path.stat().st_mtime_ns == mtime
    # another checkpoint (a fingerprint that no longer matches): computed again
    original = json.loads(path.read_text())
    stale = json.loads(path.read_text())
    stale["fingerprints"][1] = "0" * 64
    stale["udr_lasso"] = [9.0, 9.0]
    path.write_text(json.dumps(stale))
    assert collect(study, out, compute_udr=False)[0].get("udr_lasso") is None  # stale and not computed
    assert collect(study, out)[0]["udr_lasso"] == pytest.approx(rows[0]["udr_lasso"], rel=1e-5, abs=1e-9)
    assert json.loads(path.read_text()) == original  # rewritten with the real fingerprints and scores
    # the report of a sweep folder without udr.json computes it
    for p in out.rglob("udr.json"):
        p.unlink()
    rep = build_report(out, figures=False)
    assert path.is_file()
    keys = [t.key for t in rep.tables]
    assert keys[keys.index("suite"):] == ["suite", "udr", "udr_picks"]
    udr_rows = next(t for t in rep.tables if t.key == "udr").rows
    assert [(r[2], r[3]) for r in udr_rows] == [("beta=1", 0), ("beta=1", 1), ("beta=4", 0), ("beta=4", 1)]
    assert [r[5] for r in udr_rows] == [f"{r['udr_lasso']:.3f}" for r in rows]
    assert any(h.startswith("UDR's pick among a setting's seeds (no factors needed) is MIG's pick in ")
               and h.endswith("a random seed: 1.00 of 2 on average.") for h in rep.headline)
    suite = next(t for t in rep.tables if t.key == "suite")
    assert suite.columns[-2:] == ["udr_lasso", "udr_spearman"]


def test_udr_reference_joins_each_settings_pool_and_the_report_names_the_kept_seed(tmp_path, monkeypatch):
    """[eval] udr_reference: a shipped model (here a tiny run posing as one) is an extra member of
    every setting's pool, so two seeds (or one) are ranked; [report] keep names the kept seed."""
    import untwine.pretrained as P
    from untwine.report import build_report
    from untwine.report.selection import kept_sentence
    from untwine.studies import StudyError, parse_study, sweep
    from untwine.studies.results import read_results
    from untwine.train import RunConfig, train

    steps = "steps = 150\n"  # long enough for active latents (KL > 0.01 nats), else every score is 0
    ref = train(RunConfig(dataset=TINY, model="beta-vae", steps=150, batch_size=8, latents=3, eval_every=150,
                          eval_images=16, device="cpu", seed=7, out=str(tmp_path / "ref")), progress=False).dir
    monkeypatch.setattr(P, "names", lambda: ["ref"])
    real_path = P.path  # names() patched: it raises for any other name
    monkeypatch.setattr(P, "path", lambda name: ref if name == "ref" else real_path(name))
    text = (STUDY.replace("steps = 4\n", steps).replace("beta = [1, 4]", "beta = [1]")
            .replace('seed = 5\n', 'seed = 5\nudr_reference = ["ref"]\n')
            .replace("figures = false\n", 'figures = false\nkeep = "udr_lasso"\n'))
    study = parse_study(text)
    assert study.udr_reference == ["ref"] and study.report["keep"] == "udr_lasso"
    out = tmp_path / "sweep"
    sweep(study, out, jobs=1, progress=False)
    rows = read_results(out / "results.csv")
    folder = out / TINY / "beta-vae" / "beta=1"
    want = um.udr_runs([folder / "seed=0", folder / "seed=1", ref], seed=5)
    got = [r for r in rows if r["run"].startswith(f"{TINY}/beta-vae/beta=1/")]
    assert [r["udr_lasso"] for r in got] == pytest.approx(want["udr_lasso"][:2].tolist(), rel=1e-5, abs=1e-9)
    assert json.loads((folder / "udr.json").read_text())["runs"] == ["seed=0", "seed=1", "pretrained:ref"]
    best = max(got, key=lambda r: r["udr_lasso"])
    sentence = kept_sentence(rows, "udr_lasso", ["ref"])
    assert sentence.startswith("Kept without labels (the highest UDR lasso among each setting's seeds, with the "
                               f"shipped ref in the pool as a reference): {best['run']} (MIG ")
    rep = build_report(out, figures=False)
    assert sentence in rep.headline
    from untwine.report.html import render

    assert "; UDR pool also holds ref</td>" in render(rep)  # the settings table says so
    # bad values name the choices
    with pytest.raises(StudyError,
                       match=r"eval.udr_reference: unknown pretrained model 'nope'; choose one of ref"):
        parse_study(STUDY.replace('seed = 5\n', 'seed = 5\nudr_reference = ["nope"]\n'))
    with pytest.raises(StudyError, match=r": unknown report.keep 'mig'; choose one of udr_lasso, udr_spearman$"):
        parse_study(STUDY.replace("figures = false\n", 'figures = false\nkeep = "mig"\n'))


def test_kept_sentence_known_answers():
    from untwine.report.selection import kept, kept_sentence

    rows = [_row("a0", 0, 0.1, 0.5, 0.9), _row("a1", 1, 0.3, 0.7, 0.1),
            _row("b0", 0, 0.25, 0.4, 0.4, 4.0), _row("b1", 1, 0.2, 0.4, 0.3, 4.0)]  # lasso tie in b
    assert [r["run"] for r in kept(rows)] == ["a1"]
    assert [r["run"] for r in kept(rows, "udr_spearman")] == ["a0", "b0"]
    assert kept_sentence(rows) == ("Kept without labels (the highest UDR lasso among each setting's seeds): "
                                   "a1 (MIG 0.300, disentangled: yes).")
    assert kept_sentence(rows[2:]) is None
