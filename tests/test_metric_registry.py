"""The metric registry (``untwine.metrics.registry``): every built-in metric is registered, and the
suite, the CLI help and study files are built from it (a new metric is one file + one entry)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

import untwine.metrics as um
from untwine.cli import build_parser
from untwine.metrics import registry
from untwine.metrics.evaluate import planned_draws, resolve_sizes
from untwine.studies.study import StudyError, parse_study

from test_metrics import FakeData, make_encoder

BUILT_IN = ["mig", "sap", "modularity", "dci", "beta_vae", "factor_vae", "gaussian_tc", "irs", "unsupervised",
            "downstream", "reduced_downstream", "fairness"]
# Modules of untwine/metrics that are not a metric of the suite (helpers; UDR compares runs).
NOT_METRICS = {"__init__", "_gbt", "baseline", "code_table", "evaluate", "registry", "udr", "utils"}


def test_every_built_in_metric_is_registered_in_suite_order():
    assert registry.names() == BUILT_IN
    assert list(um.METRICS) == BUILT_IN
    assert list(um.DEFAULT_METRICS) == registry.names(opt_in=False) == BUILT_IN[:9]
    assert list(um.SLOW_METRICS) == registry.names(opt_in=True) == ["downstream", "reduced_downstream", "fairness"]
    assert um.DEFAULT_SIZES == {n: dict(registry.get(n).sizes) for n in BUILT_IN}
    for n in BUILT_IN:
        m = registry.get(n)
        assert m.cost and getattr(um, m.function.__name__) is m.function, n  # public, and its cost is said


def test_every_metric_file_has_a_registry_entry():
    folder = Path(um.__file__).parent
    files = {p.stem for p in folder.glob("*.py")} - NOT_METRICS
    homes = {registry.get(n).function.__module__.rsplit(".", 1)[-1] for n in registry.names()}
    assert files == homes, f"metric files without an entry: {sorted(files - homes)}"
    for stem in files:
        importlib.import_module(f"untwine.metrics.{stem}")


def test_names_are_normalised_and_result_keys_name_their_metric():
    assert registry.parse_names("Beta-VAE, dci_completeness,beta_vae_score ,irs") == ["beta_vae", "dci", "irs"]
    assert registry.get("reduced-downstream").name == "reduced_downstream"
    assert registry.aliases()["explicitness"] == "modularity"
    assert "gaussian_tc" not in registry.aliases()  # a metric's own name, though unsupervised writes it too
    with pytest.raises(ValueError, match=r"unknown metric 'migg', 'x'; choose one of mig, sap"):
        registry.parse_names(["migg", "mig", "x"])
    with pytest.raises(ValueError, match="no metric selected"):
        registry.parse_names(" , ")
    assert resolve_sizes({"beta-vae": {"num_eval": 7}})["beta_vae"]["num_eval"] == 7


def test_registering_is_checked():
    mig = registry.get("mig")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(mig)
    with pytest.raises(ValueError, match="snake_case"):
        registry.register(registry.Metric("My-Metric", mig.function, mig.score, mig.sizes))
    with pytest.raises(ValueError, match=r"new stream >= 1 \(taken: \[1, 2, 3\]\)"):
        registry.register(registry.Metric("other", mig.function, mig.score, {"num_train": 5}, pool=False,
                                          stream=2, draws=lambda s, f: 0))


def test_the_cli_help_and_study_files_come_from_the_registry(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, even inside words
    assert "default:" + ",".join(registry.names(opt_in=False)) + ";" in text
    for n in BUILT_IN:
        assert "".join(f"{n} ({registry.get(n).cost})".split()) in text, n
    assert "--dci-backend{" + ",".join(registry.BACKENDS) + "}" in text
    study = '[study]\nname = "t"\ndatasets = ["dsprites"]\n[eval]\nmetrics = [%s]\n[[models]]\nname = "vae"\n'
    assert parse_study(study % ", ".join(f'"{n}"' for n in BUILT_IN)).metrics == BUILT_IN
    with pytest.raises(StudyError, match=r": unknown eval\.dci_backend 'xgb'; choose one of exact, sklearn, fast$"):
        parse_study((study % '"dci"').replace("[eval]\n", '[eval]\ndci_backend = "xgb"\n'))


def _code_mean(codes, factors):
    """A toy metric for the test below: the mean of the codes."""
    return {"mean": float(np.mean(codes))}


def test_a_new_metric_is_one_function_and_one_entry(capsys):
    entry = registry.Metric("code_mean", _code_mean, lambda f, x: {"code_mean": f(*x.train)["mean"]},
                            {"num_train": 50}, opt_in=True, cost="~0 s", keys=("code_mean",))
    registry.register(entry)
    try:
        data = FakeData((3, 4))
        r = um.evaluate(make_encoder("perfect", (3, 4)), data, metrics="mig,code-mean", progress=False,
                        sizes={"num_train": 80})
        assert np.isfinite(r["code_mean"]) and r["sizes"]["code_mean"] == {"num_train": 80}
        assert "code_mean" in r["timings_s"] and "code_mean" not in registry.names(opt_in=False)
        assert planned_draws(["code_mean"], resolve_sizes(None)) == 50
        assert parse_study('[study]\nname = "t"\ndatasets = ["dsprites"]\n[eval]\nmetrics = ["code_mean"]\n'
                           '[[models]]\nname = "vae"\n').metrics == ["code_mean"]
        with pytest.raises(SystemExit):
            build_parser().parse_args(["evaluate", "--help"])
        assert "code_mean(~0s)" in "".join(capsys.readouterr().out.split())
    finally:
        registry._REGISTRY.pop("code_mean")
