"""Key results and output folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import paths
from helpers.course import results


def test_output_dir_honours_the_environment_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INFERENCE_SUITE_OUTPUT", str(tmp_path / "out"))
    monkeypatch.delenv("INFERENCE_SUITE_CACHE", raising=False)
    target = paths.output_dir("03_onnx_export", "models")
    assert target == tmp_path / "out" / "03_onnx_export" / "models" and target.is_dir()
    assert paths.cache_dir("x") == tmp_path / "out" / "cache" / "x"
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path / "shared-cache"))
    assert paths.cache_dir("x") == tmp_path / "shared-cache" / "x"


def test_record_writes_replaces_and_converts(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "r.json"
    monkeypatch.setenv(results.ENV_VAR, str(target))
    results.record("speed-up", np.float32(1.5), unit="x")
    results.record("tokens", [np.int64(1), 2])
    results.record("speed-up", 2.0, unit="x")
    data = json.loads(target.read_text())
    assert data["speed-up"] == {"value": 2.0, "unit": "x"}
    assert data["tokens"]["value"] == [1, 2]
    results.record("nan", float("nan"))
    assert json.loads(target.read_text())["nan"]["value"] == "nan"


def test_record_rejects_empty_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(results.ENV_VAR, str(tmp_path / "r.json"))
    with pytest.raises(ValueError, match="non-empty"):
        results.record("", 1)


def test_corrupt_results_file_counts_as_empty(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert results.load(bad) == {}
