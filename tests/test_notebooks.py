"""The teaching notebooks: stored clean and in sync with their builder, and they run.

Each notebook in studies/notebooks/ is executed top to bottom with nbclient (kernel
``python3``) at the tiny scale its ``parameters`` cell sets, in a temporary working
directory, so its run folders land there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason="the notebook tests need the dev extra (nbformat)"
)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "studies" / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT_S = 180


def test_there_is_one_notebook_per_study_module():
    studies = {p.stem for p in (REPO / "studies").glob("*.py") if p.stem != "__init__"}
    assert {p.stem for p in PATHS} == studies


def test_stored_notebooks_match_the_builder():
    res = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "build.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_is_stored_without_outputs_and_starts_with_parameters(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert 'SCALE = "tiny"' in code[0].source
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None
    sources = "\n".join(c.source for c in code)
    assert "plan(STUDY" in sources and "run_study(" in sources  # the public API
    assert not any("sandbox run" in c.source or "subprocess" in c.source for c in code)
    assert any("Exercise" in c.source for c in nb.cells if c.cell_type == "markdown")


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_top_to_bottom_at_tiny_scale(path, tmp_path, monkeypatch):
    NotebookClient = pytest.importorskip(
        "nbclient", reason="the notebook tests need the dev extra (nbclient, ipykernel)"
    ).NotebookClient

    monkeypatch.setenv("SANDBOX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl"))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    images = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert images, "the study's key figure is shown"
    assert any("show_figure(folder" in c.source for c in nb.cells if c.cell_type == "code")
    assert (tmp_path / "runs").is_dir(), "the runs go into the working directory"
