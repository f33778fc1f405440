"""Key results a notebook records, so the main job's summary can show them next to its status.

A notebook calls ``record("resnet50 ORT speed-up vs eager", 1.6, unit="x")``. When the notebook
runs under the main job (or the tests), ``INFERENCE_SUITE_RESULTS`` names a JSON file to write
to; interactively the results go to ``outputs/results/<name>.json`` so nothing is lost.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from helpers.paths import output_dir

ENV_VAR = "INFERENCE_SUITE_RESULTS"


def results_file(default_name: str = "interactive") -> Path:
    """The JSON file results are written to (see module docstring)."""
    target = os.environ.get(ENV_VAR)
    if target:
        return Path(target)
    return output_dir("results") / f"{default_name}.json"


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: numpy/torch scalars become numbers, non-finite floats
    strings (``"nan"``, ``"inf"``), dicts and lists are converted item by item (keys become
    strings), anything else its ``str()``."""
    if hasattr(value, "item") and callable(value.item):  # numpy/torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def record(key: str, value: Any, unit: str = "", notebook: str = "interactive") -> None:
    """Add or replace one key result; values must be JSON-friendly (numbers, strings, lists, dicts)."""
    if not key or not isinstance(key, str):
        raise ValueError("record() needs a non-empty string key")
    path = results_file(notebook)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = load(path)
    data[key] = {"value": jsonable(value), "unit": unit}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def load(path: Path) -> dict[str, Any]:
    """Read a results file; an unreadable file counts as empty rather than crashing the run."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
