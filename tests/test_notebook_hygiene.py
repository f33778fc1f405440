"""Notebooks are committed clean and follow the suite's skeleton (see CONTRIBUTING.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ENVIRONMENTS = {"cpu", "gpu", "openvino"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def dirty_cells(nb: dict) -> list[int]:
    """Indexes of code cells that carry outputs or execution counts."""
    return [
        i for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]


def parameter_cells(nb: dict) -> list[int]:
    return [
        i for i, c in enumerate(nb["cells"])
        if "parameters" in c.get("metadata", {}).get("tags", [])
    ]


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ is empty"
    names = [p.name for p in NOTEBOOKS]
    assert all(re.match(r"^\d\d_[a-z0-9_]+\.ipynb$", n) for n in names), names
    numbers = [n[:2] for n in names]
    assert len(set(numbers)) == len(numbers), f"duplicate numbers: {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_clean(path: Path) -> None:
    assert not dirty_cells(load(path)), f"{path.name}: clear outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_with_profile(path: Path) -> None:
    nb = load(path)
    cells = parameter_cells(nb)
    assert len(cells) == 1, f"{path.name}: needs exactly one cell tagged 'parameters', has {len(cells)}"
    source = "".join(nb["cells"][cells[0]]["source"])
    assert nb["cells"][cells[0]]["cell_type"] == "code"
    assert re.search(r"^profile\s*=", source, flags=re.M), "parameters cell must define `profile`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_skeleton(path: Path) -> None:
    nb = load(path)
    markdown = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    text = "\n".join(markdown)
    assert markdown and markdown[0].startswith(f"# {path.name[:2]} — "), "title '# NN — ...' first"
    assert "What you will learn" in markdown[0]
    assert re.search(r"Prerequisites and time", text), "a 'Prerequisites and time' paragraph"
    assert re.search(r"^## 1\. ", text, flags=re.M), "numbered sections '## 1. ...'"
    assert re.search(r"^## Summary", text, flags=re.M)
    assert re.search(r"^## Where to go next", text, flags=re.M)
    first_params = parameter_cells(nb)[0]
    first_section = next(i for i, c in enumerate(nb["cells"]) if "## 1. " in "".join(c["source"]))
    assert first_params < first_section, "the parameters cell comes before section 1"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_metadata(path: Path) -> None:
    meta = load(path)["metadata"]
    suite = meta.get("inference_suite", {})
    assert set(suite.get("environments", [])) <= ENVIRONMENTS and suite.get("environments")
    assert isinstance(suite.get("minutes"), int) and suite["minutes"] > 0
    assert suite.get("teaches")
    assert isinstance(suite.get("legacy", False), bool)
    assert meta["kernelspec"]["name"].startswith("inference-")


def test_hygiene_check_catches_outputs() -> None:
    nb = {"cells": [{"cell_type": "code", "source": "1", "metadata": {}, "outputs": [{"x": 1}],
                     "execution_count": 3}]}
    assert dirty_cells(nb) == [0]
