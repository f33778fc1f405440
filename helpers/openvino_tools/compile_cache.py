"""OpenVINO's compiled-model cache (``CACHE_DIR``): timed compiles, a damaged blob, the experiment.

:func:`timed_compile` compiles in a fresh ``ov.Core`` (like a new process) and records the time
and ``LOADED_FROM_CACHE``; :func:`cache_experiment` tabulates first vs later compiles and what
happens after :func:`corrupt_cache` damages the blob (OpenVINO recompiles and rewrites it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.runners.openvino_throughput import compiled_settings, port_name

__all__ = ["CompileRecord", "cache_experiment", "cache_files", "corrupt_cache", "timed_compile"]

@dataclass
class CompileRecord:
    """One ``compile_model`` call: how long it took and whether it came from the cache."""

    label: str
    seconds: float
    loaded_from_cache: bool | None
    cache_files: int
    cache_mb: float


def cache_files(cache_dir: str | Path) -> list[Path]:
    """The compiled-model blobs in an OpenVINO ``CACHE_DIR`` (``*.blob``), sorted."""
    folder = Path(cache_dir)
    return sorted(folder.glob("*.blob")) if folder.is_dir() else []


def _cache_size(cache_dir: str | Path | None) -> tuple[int, float]:
    if cache_dir is None:
        return 0, 0.0
    files = cache_files(cache_dir)
    return len(files), sum(f.stat().st_size for f in files) / 1e6


def timed_compile(
    model_path: str | Path,
    *,
    device: str = "CPU",
    config: Mapping[str, Any] | None = None,
    cache_dir: str | Path | None = None,
    label: str = "",
) -> tuple[Any, CompileRecord]:
    """``compile_model(path, device, config)`` in a **fresh** ``ov.Core`` (like a new process).

    With ``cache_dir`` (created if missing) ``CACHE_DIR`` is set. Returns the compiled model and
    a :class:`CompileRecord` (seconds, ``LOADED_FROM_CACHE``, cache files and size afterwards).
    """
    import openvino as ov

    settings = dict(config or {})
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        settings["CACHE_DIR"] = str(cache_dir)
    core = ov.Core()
    t0 = time.perf_counter()
    compiled = core.compile_model(str(model_path), device, settings)
    seconds = time.perf_counter() - t0
    loaded = compiled_settings(compiled, ("LOADED_FROM_CACHE",)).get("LOADED_FROM_CACHE")
    count, size = _cache_size(cache_dir)
    return compiled, CompileRecord(label or device, seconds, loaded, count, size)


def corrupt_cache(cache_dir: str | Path, *, truncate: bool = False) -> list[Path]:
    """Damage every blob in ``cache_dir`` (overwrite with junk, or cut in half); return them.

    For showing (and testing) that OpenVINO does not trust a damaged cache entry: it compiles
    the model again and rewrites the entry.
    """
    damaged = []
    for blob in cache_files(cache_dir):
        data = blob.read_bytes()
        blob.write_bytes(data[: len(data) // 2] if truncate else b"not a compiled model " * 8)
        damaged.append(blob)
    return damaged


def cache_experiment(
    model_path: str | Path,
    cache_dir: str | Path,
    *,
    device: str = "CPU",
    config: Mapping[str, Any] | None = None,
    reference_inputs: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Compile ``model_path`` five times and tabulate what the cache did.

    Steps (each in a fresh ``ov.Core``): without a cache; with an **emptied** ``cache_dir``
    (writes the blob); again (reads it); after :func:`corrupt_cache` (the damaged blob is
    ignored, the model recompiled, the blob rewritten); again (reads the rewritten blob).
    Columns: ``step, seconds, loaded_from_cache, cache_files, cache_mb`` and, with
    ``reference_inputs``, ``max_abs_diff`` of the outputs against the uncached compile.
    """
    cache_dir = Path(cache_dir)
    for blob in cache_files(cache_dir):
        blob.unlink()
    rows: list[dict[str, Any]] = []
    reference: list[np.ndarray] | None = None

    def step(label: str, use_cache: bool) -> None:
        nonlocal reference
        compiled, record = timed_compile(model_path, device=device, config=config,
                                         cache_dir=cache_dir if use_cache else None, label=label)
        row = dict(vars(record))
        row["step"] = row.pop("label")
        if reference_inputs is not None:
            request = compiled.create_infer_request()
            request.infer({i: reference_inputs[port_name(p, f"input_{i}")]
                           for i, p in enumerate(compiled.inputs)})
            outs = [np.array(request.get_output_tensor(i).data, copy=True)
                    for i in range(len(compiled.outputs))]
            reference = reference or outs
            row["max_abs_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(outs, reference, strict=True))
        rows.append(row)

    step("no cache", False)
    step("cache: first compile (writes the blob)", True)
    step("cache: second compile (reads the blob)", True)
    corrupt_cache(cache_dir)
    step("cache: after corrupting the blob", True)
    step("cache: next compile (blob rewritten)", True)
    columns = ["step", "seconds", "loaded_from_cache", "cache_files", "cache_mb"]
    return pd.DataFrame(rows)[columns + (["max_abs_diff"] if reference_inputs is not None else [])]
