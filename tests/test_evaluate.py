"""The metric suite ``untwine.metrics.evaluate`` and the ``untwine evaluate`` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from untwine.cli import main
from untwine.metrics import DEFAULT_SIZES, evaluate, resolve_sizes

from test_metrics import FakeData, make_encoder

SMALL = {"num_train": 300, "num_test": 150, "num_eval": 100, "batch_size": 16, "num_variance_estimate": 300}


def test_suite_small_all_keys_and_deterministic():
    data = FakeData((3, 4, 5))
    metrics = "mig,sap,modularity,beta_vae,factor_vae,gaussian_tc"
    enc = make_encoder("noise", (3, 4, 5))
    a = evaluate(enc, data, metrics=metrics, seed=3, progress=False, sizes=SMALL)
    for key in ("mig", "sap", "modularity", "explicitness", "beta_vae_score", "factor_vae_score", "gaussian_tc"):
        assert isinstance(a[key], float) and np.isfinite(a[key])
    assert set(a["timings_s"]) == {"encode", "mig", "sap", "modularity", "beta_vae", "factor_vae", "gaussian_tc"}
    assert a["sizes"]["mig"] == {"num_train": 300}
    perfect = make_encoder("perfect", (3, 4, 5))
    b = evaluate(perfect, data, metrics=metrics, seed=3, progress=False, sizes=SMALL)
    c = evaluate(make_encoder("perfect", (3, 4, 5)), data, metrics=metrics, seed=3, progress=False, sizes=SMALL)
    assert b["mig"] > a["mig"] + 0.5 and b["factor_vae_score"] > 0.9
    assert {k: v for k, v in b.items() if k != "timings_s"} == {k: v for k, v in c.items() if k != "timings_s"}


def test_suite_accepts_run_object_with_torch_codes():
    enc = make_encoder("perfect", (3, 4, 5))

    class Run:
        def encode(self, x):
            return torch.from_numpy(enc(x)).float()

    r = evaluate(Run(), FakeData((3, 4, 5)), metrics=["mig"], progress=False, sizes=SMALL)
    assert r["mig"] > 0.6 and set(r) == {"mig", "per_factor", "timings_s", "seed", "sizes", "code_table"}
    # each factor's MIG term, in factor order; their mean is MIG
    assert len(r["per_factor"]["mig"]) == 3 and r["mig"] == pytest.approx(np.mean(r["per_factor"]["mig"]))
    assert r["code_table"] is False  # FakeData cannot be enumerated


def test_sizes_resolution_and_errors():
    s = resolve_sizes({"num_train": 100, "dci": {"num_train": 50}})
    assert s["mig"]["num_train"] == 100 and s["dci"]["num_train"] == 50
    assert s["factor_vae"]["num_variance_estimate"] == DEFAULT_SIZES["factor_vae"]["num_variance_estimate"]
    with pytest.raises(ValueError, match="unknown size 'num_points'"):
        resolve_sizes({"num_points": 3})
    with pytest.raises(ValueError, match="mig has no size 'num_test'"):
        resolve_sizes({"mig": {"num_test": 3}})
    with pytest.raises(ValueError, match=r"unknown metric 'no_such_metric'; choose one of mig, sap"):
        evaluate(lambda x: x, FakeData(), metrics="mig,no_such_metric", progress=False)
    with pytest.raises(ValueError, match="run_or_encoder must be a callable"):
        evaluate(42, FakeData(), progress=False)


def test_cli_missing_run_dir(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_unknown_dci_backend(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--dci-backend", "xgb"]) == 2
    assert capsys.readouterr().err == ("untwine evaluate: error: unknown --dci-backend 'xgb'; choose one of exact, "
                                       "sklearn, fast\n")


def test_cli_bad_sizes(tmp_path, capsys):
    from untwine.cli.evaluate import _parse_sizes
    from untwine.cli import UserError

    assert _parse_sizes("num_train=10,dci.num_test=5") == {"num_train": 10, "dci": {"num_test": 5}}
    with pytest.raises(UserError, match="--sizes expects KEY=INT"):
        _parse_sizes("num_train=ten")


@pytest.mark.parametrize("duplicates", [False, True])
def test_code_table_gives_the_same_scores_as_direct_encoding(duplicates):
    """Encoding every image once and looking codes up draws the same factors, images and random
    numbers as encoding each draw (also where several images share a factor combination)."""
    from conftest import squares
    from untwine import data as udata

    sq = squares()
    imgs, fac = sq.images.numpy()[:, 0], sq.factors.numpy()
    if duplicates:  # every combination twice, shifted copies: a random row is drawn per observation
        imgs = np.concatenate([imgs, np.roll(imgs, 1, axis=2)])
        fac = np.concatenate([fac, fac])
    ds = udata.from_arrays(imgs, fac, ["x", "y", "size"], name="squares-table")
    proj = np.random.default_rng(0).normal(size=(64 * 64, 4))
    calls = []

    def encode(x):
        calls.append(len(x))
        return np.asarray(x, np.float64).reshape(len(x), -1) @ proj

    kw = dict(metrics="mig,sap,beta_vae,factor_vae", seed=1, progress=False, sizes=SMALL)
    direct = evaluate(encode, ds, code_table=False, **kw)
    n_direct = sum(calls)
    calls.clear()
    table = evaluate(encode, ds, code_table="auto", **kw)
    assert table["code_table"] is True and direct["code_table"] is False
    assert sum(calls) == len(ds) < n_direct  # each image encoded exactly once
    for k in ("mig", "sap", "beta_vae_score", "beta_vae_train", "factor_vae_score", "factor_vae_train"):
        assert table[k] == pytest.approx(direct[k], abs=1e-9), k
    assert "encode_table" in table["timings_s"]


def test_code_table_refused_for_data_that_cannot_be_enumerated():
    with pytest.raises(ValueError, match="code_table=True needs enumerable data; FakeData"):
        evaluate(make_encoder("perfect", (3, 4, 5)), FakeData((3, 4, 5)), metrics="mig", code_table=True,
                 progress=False, sizes=SMALL)
    with pytest.raises(ValueError, match="code_table must be 'auto', True or False"):
        evaluate(make_encoder("perfect", (3, 4, 5)), FakeData((3, 4, 5)), metrics="mig", code_table="yes",
                 progress=False, sizes=SMALL)


def test_metrics_that_need_two_factors_are_skipped_with_a_reason():
    """One factor (MNIST's digit): beta-VAE / FactorVAE scores, modularity and DCI disentanglement
    are undefined; they are left out with a reason and the others are computed."""
    data = FakeData((10,))
    r = evaluate(make_encoder("perfect", (10,)), data, seed=0, progress=False, sizes=SMALL)
    why = "needs >= 2 factors; FakeData has 1"
    assert r["skipped"] == {"beta_vae": why, "factor_vae": why, "modularity": why, "dci_disentanglement": why}
    for key in ("mig", "sap", "explicitness", "dci_completeness", "dci_informativeness", "gaussian_tc"):
        assert np.isfinite(r[key]), key
    for key in ("beta_vae_score", "factor_vae_score", "modularity", "dci_disentanglement"):
        assert key not in r
    assert "beta_vae" not in r["timings_s"] and "beta_vae" not in r["sizes"]
    two = evaluate(make_encoder("perfect", (3, 4)), FakeData((3, 4)), metrics="mig,beta_vae", progress=False, sizes=SMALL)
    assert "skipped" not in two and "beta_vae_score" in two


def test_cli_evaluate_mnist_run_exits_0_and_records_skipped(tmp_path, capsys):
    """`untwine evaluate` on an MNIST run (offline IDX files written here) writes MIG and the reasons."""
    import json

    from test_mnist import make_mnist
    from untwine.train import RunConfig, train

    make_mnist(tmp_path / "data", n=60)
    cfg = RunConfig(dataset="mnist", source="official", data_root=str(tmp_path / "data"), model="beta-vae",
                    steps=2, batch_size=8, latents=3, eval_every=2, eval_images=8, log_every=1,
                    val_fraction=0.2, device="cpu", out=str(tmp_path / "run"))
    train(cfg, progress=False)
    sizes = "num_train=200,num_test=100,num_eval=50,batch_size=8,num_variance_estimate=200"
    assert main(["evaluate", str(tmp_path / "run"), "--sizes", sizes, "--no-progress", "--jobs", "1"]) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= m["mig"] <= 1
    assert m["skipped"]["beta_vae"] == "needs >= 2 factors; mnist has 1"
    assert set(m["skipped"]) == {"beta_vae", "factor_vae", "modularity", "dci_disentanglement"}
    out = capsys.readouterr().out
    assert any(ln.split() == ["beta_vae", "skipped:", "needs", ">=", "2", "factors;", "mnist", "has", "1"]
               for ln in out.splitlines())
