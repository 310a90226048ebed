"""The committed notebooks are clean papermill templates: no outputs, one parameters cell, a title, the lstmkit kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.paths import REPO

NOTEBOOK_DIR = REPO / "notebooks"
EXPECTED = ["01_data", "02_preprocessing", "03_tuning", "04_training", "05_evaluation", "06_explainability", "07_uncertainty",
                   "08_anomalies", "09_deployment"]
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_the_six_stage_notebooks_exist():
    for name in EXPECTED:
        assert (NOTEBOOK_DIR / f"{name}.ipynb").is_file(), f"notebooks/{name}.ipynb is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_valid_nbformat_4(path):
    nb = load(path)
    assert nb["nbformat"] == 4
    assert isinstance(nb["cells"], list) and nb["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_have_no_outputs(path):
    for i, cell in enumerate(code_cells(load(path))):
        assert cell.get("outputs", []) == [], f"{path.name}: code cell {i} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_have_no_execution_counts(path):
    for i, cell in enumerate(code_cells(load(path))):
        assert cell.get("execution_count") is None, f"{path.name}: code cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exactly_one_code_cell_is_tagged_parameters(path):
    nb = load(path)
    tagged = [c for c in code_cells(nb) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} code cells tagged 'parameters'"
    others = [c for c in nb["cells"] if c["cell_type"] != "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    assert not others, f"{path.name}: a non-code cell is tagged 'parameters'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cell_is_a_markdown_title(path):
    first = load(path)["cells"][0]
    assert first["cell_type"] == "markdown", f"{path.name}: the first cell is {first['cell_type']}"
    text = source(first)
    assert text.startswith("# ") and text[2:].split("\n")[0].strip(), f"{path.name}: no '# ' title"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_kernelspec_is_lstmkit(path):
    kernelspec = load(path).get("metadata", {}).get("kernelspec", {})
    assert kernelspec.get("name") == "lstmkit", f"{path.name}: kernelspec {kernelspec!r}"
