"""docs/tutorial.ipynb: committed without outputs, and runs end to end (its tiny version).

The run executes every cell in a fresh kernel of this interpreter (nbclient, the runner Jupyter's
nbconvert uses) with ``UNTWINE_TUTORIAL_TINY=1``, in a temporary working directory; any cell that
raises fails the test. It loads the full procedural dSprites (builds the cache on a fresh
machine, ~15-30 s; ~3.7 GB of memory in the kernel) and takes well under a minute after that.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
KERNEL = "untwine-tutorial-test"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the tutorial has no code cells"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, (
        f"cells {dirty} of {NOTEBOOK.name} have outputs or execution counts; strip them before committing "
        "(Jupyter: Edit > Clear All Outputs, then save; or `jupyter nbconvert --clear-output --inplace`)"
    )


def test_tutorial_runs_tiny(tmp_path, monkeypatch):
    # A kernel spec for exactly this interpreter (a user's own "python3" kernel could be another one).
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "untwine test", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("UNTWINE_TUTORIAL_TINY", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name=KERNEL, resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError naming the cell and the traceback
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "tiny version" in out and "MIG" in out
    assert (work / "tutorial-runs" / "tiny" / "sweep" / "report.html").is_file()
    shutil.rmtree(work)  # ~0.5 GB of MLP checkpoints; pytest keeps its last three temporary folders
