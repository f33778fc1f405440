"""Quantized files made once and reused: content-keyed caches of the INT8 recipes, and NNCF.

The same fp32 file, calibration arrays and options give the same verified file without
quantizing again (:func:`helpers.cache.cached_export`); any change quantizes anew.
:func:`nncf_int8` is OpenVINO's own post-training quantization (NNCF) on the same calibration
batches, written as OpenVINO IR and cached the same way.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from helpers.quantize.calibration import (
    ArrayCalibrationReader,
    QuantizationError,
    calibration_arrays,
    check_model_file,
    input_names,
)
from helpers.quantize.ort import quantize_dynamic_int8, quantize_static_int8

__all__ = ["cached_dynamic_int8", "cached_static_int8", "nncf_int8"]


#: Part of every cache key: bump it when this module changes how a recipe's file is made.
_RECIPE_VERSION = 2


def _content_digest(onnx_path: Path, arrays: Iterable[np.ndarray] = ()) -> str:
    """SHA-256 of a model file (and its external data) and of calibration arrays."""
    digest = hashlib.sha256()
    for path in sorted([onnx_path, *onnx_path.parent.glob(onnx_path.name + "*.data")]):
        with open(path, "rb") as handle:
            for chunk in iter(functools.partial(handle.read, 1 << 20), b""):
                digest.update(chunk)
    for array in arrays:
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def cached_static_int8(
    onnx_in: str | Path,
    calibration: Iterable[Mapping[str, np.ndarray]] | ArrayCalibrationReader,
    *,
    what: str = "int8 static",
    rebuild: bool = False,
    **options: Any,
) -> Path:
    """:func:`quantize_static_int8`, cached by content: the fp32 file's bytes, the calibration
    arrays and ``options`` make the key (:func:`helpers.cache.cached_export`), so the same
    inputs give the same verified file without quantizing again, and any change quantizes anew.
    """
    from helpers.cache import cached_export

    src = check_model_file(onnx_in)
    reader = calibration_arrays(calibration, src)
    digest = _content_digest(src, (a for batch in reader.batches for a in batch.values()))
    return cached_export(
        digest,
        lambda path: quantize_static_int8(src, path, reader, **options),
        what=what,
        filename="model.int8.onnx",
        settings={"options": options, "recipe": _RECIPE_VERSION, "onnxruntime": _ort_version()},
        rebuild=rebuild,
    )


def cached_dynamic_int8(
    onnx_in: str | Path, *, what: str = "int8 dynamic", rebuild: bool = False, **options: Any
) -> Path:
    """:func:`quantize_dynamic_int8`, cached by the fp32 file's content and ``options``."""
    from helpers.cache import cached_export

    src = check_model_file(onnx_in)
    return cached_export(
        _content_digest(src),
        lambda path: quantize_dynamic_int8(src, path, **options),
        what=what,
        filename="model.int8.onnx",
        settings={"options": options, "recipe": _RECIPE_VERSION, "onnxruntime": _ort_version()},
        rebuild=rebuild,
    )


#: NNCF's quantization, run in a child process (see :func:`nncf_int8`).
_NNCF_QUANTIZE = """
import sys
import numpy as np
import nncf
import openvino as ov
src, dst, data, fix = sys.argv[1:5]
with np.load(data) as archive:
    samples = [archive[key] for key in sorted(archive.files, key=int)]
options = {}
if fix != "default":
    fixes = {"enable": nncf.OverflowFix.ENABLE, "first_layer": nncf.OverflowFix.FIRST_LAYER,
             "disable": nncf.OverflowFix.DISABLE}
    options["advanced_parameters"] = nncf.AdvancedQuantizationParameters(overflow_fix=fixes[fix])
model = ov.Core().read_model(src)
quantized = nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples), **options)
ov.save_model(quantized, dst)
"""
_OVERFLOW_FIXES = ("enable", "first_layer", "disable")


def nncf_int8(
    onnx_in: str | Path,
    calibration: Iterable[Mapping[str, np.ndarray]] | ArrayCalibrationReader,
    *,
    overflow_fix: str | None = None,
    rebuild: bool = False,
) -> Path:
    """OpenVINO's post-training INT8 quantization (``nncf.quantize``), cached by content.

    The fp32 ONNX file (one input) is read with ``openvino.Core().read_model``, quantized by NNCF
    on the *same* calibration batches as :func:`quantize_static_int8` (one sample per NNCF item)
    and saved as OpenVINO IR; returns the ``.xml`` path (its ``.bin`` lies next to it), to
    compile with ``core.compile_model`` or :func:`helpers.runners.openvino_runner`. NNCF runs in
    a child process: its progress display and the log lines of the libraries it imports stay
    out of the caller's output, and a failure is reported with NNCF's last error line.

    ``overflow_fix``: NNCF's remedy for u8 × s8 saturation on CPUs without VNNI — ``"enable"``
    (7-bit weights in every layer), ``"first_layer"`` (NNCF's default) or ``"disable"``;
    ``None`` keeps NNCF's default.

    Raises:
        QuantizationError: NNCF or OpenVINO is not installed, a bad option, a model with more than
            one input, or NNCF failed.
    """
    import importlib.util

    missing = [m for m in ("nncf", "openvino") if importlib.util.find_spec(m) is None]
    if missing:
        raise QuantizationError(
            f"nncf_int8 needs nncf and openvino ({', '.join(missing)} not installed in this "
            "environment)"
        )
    if overflow_fix is not None and overflow_fix not in _OVERFLOW_FIXES:
        raise QuantizationError(f"overflow_fix must be one of {list(_OVERFLOW_FIXES)} or None")
    from helpers.cache import cached_export
    from helpers.hardware import package_version

    src = check_model_file(onnx_in)
    names = input_names(src)
    if len(names) != 1:
        raise QuantizationError(f"nncf_int8 handles one-input models; {src.name} has {names}")
    reader = calibration_arrays(calibration, src)
    samples = [
        array[i : i + 1]
        for batch in reader.batches
        for array in batch.values()
        for i in range(len(array))
    ]

    def build(path: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="nncf-") as tmp:
            data = Path(tmp) / "calibration.npz"
            named: dict[str, Any] = {str(i): sample for i, sample in enumerate(samples)}
            np.savez(data, **named)
            fix = overflow_fix or "default"
            proc = subprocess.run(
                [sys.executable, "-c", _NNCF_QUANTIZE, str(src), str(path), str(data), fix],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=False,
            )
        if proc.returncode != 0 or not path.is_file():
            lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
            raise QuantizationError(
                f"nncf.quantize failed on {src.name}: {lines[-1] if lines else proc.returncode}"
            )

    return cached_export(
        _content_digest(src, samples),
        build,
        what="nncf int8",
        filename="model.xml",
        settings={"overflow_fix": overflow_fix, "nncf": package_version("nncf") or ""},
        rebuild=rebuild,
    )
