"""The rendered site: one page per executed notebook plus an index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from helpers import site

ROOT = Path(__file__).resolve().parents[1]


def fake_run(root: Path) -> None:
    """A run folder as the main job writes it, with notebook 00 'executed' (an output added)."""
    executed = root / "run-cpu" / "executed"
    executed.mkdir(parents=True)
    nb = nbformat.read(ROOT / "notebooks" / "00_environment_check.ipynb", as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello from the kernel\n")]
    nbformat.write(nb, executed / "00_environment_check.ipynb")
    summary = {"notebooks": [{"notebook": "00_environment_check.ipynb", "status": "passed", "seconds": 12.0}]}
    (root / "run-cpu" / "summary.json").write_text(json.dumps(summary))


def test_site_has_index_and_pages(tmp_path: Path) -> None:
    fake_run(tmp_path / "runs")
    index = site.build(tmp_path / "runs", tmp_path / "site")
    text = index.read_text()
    assert "00 — Check your environment" in text and "passed" in text and "12 s" in text
    page = tmp_path / "site" / "cpu" / "00_environment_check.html"
    assert page.is_file() and "hello from the kernel" in page.read_text()


def test_site_without_runs_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make run"):
        site.build(tmp_path, tmp_path / "site")
    shutil.rmtree(tmp_path)
