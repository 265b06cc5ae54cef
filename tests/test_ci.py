"""CI installs what the tests cover: ``make test`` (what ``.ci/run`` runs) installs the ``dev`` extra,
and ``dev`` takes in every other extra, so no test of an optional feature (Ray, the explorer,
TensorBoard, MNIST's offline subset) is skipped for a missing package."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_dev_extra_takes_in_every_other_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    own = [r for r in extras["dev"] if r.startswith(project["name"] + "[")]
    assert len(own) == 1, "dev names the project's other extras once: untwine[...]"
    taken = set(re.fullmatch(rf"{project['name']}\[(.*)\]", own[0]).group(1).split(","))
    assert taken == set(extras) - {"dev"}


def test_make_test_installs_dev_and_ci_runs_make_test():
    assert re.search(r"pip install .*-e '\.\[dev\]'", (ROOT / "Makefile").read_text())
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)
