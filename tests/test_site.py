"""The rendered site: one page per executed notebook plus an index."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fakes import fake_run

from helpers.course import site


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
