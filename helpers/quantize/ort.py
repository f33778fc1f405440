"""ONNX Runtime's post-training INT8 quantization, with checks: static (QDQ) and dynamic.

- **Static** (:func:`quantize_static_int8`): weights *and* activations become INT8. Activation
  ranges are measured beforehand by running the fp32 model on a *calibration set* of real,
  preprocessed inputs. The result is written in **QDQ** format (``QuantizeLinear`` /
  ``DequantizeLinear`` pairs around each fp32 op), which ONNX Runtime fuses into integer kernels
  and which other runtimes (OpenVINO, TensorRT) understand too. This is the recipe for CNNs.
- **Dynamic** (:func:`quantize_dynamic_int8`): only the weights are stored as INT8; activation
  ranges are computed on the fly for every inference. No calibration set; the recipe for
  transformers and RNNs (MatMul-heavy graphs).

Both are ``onnxruntime.quantization.quantize_static`` / ``quantize_dynamic`` plus: a clear
:class:`~helpers.quantize.calibration.QuantizationError` for a missing file or a bad calibration
set, ONNX Runtime's ``quant_pre_process`` run where it cannot litter the working directory (with
fallbacks), and u8 weights on chosen convolutions (``unsigned_weights``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers.quantize.calibration import (
    QuantizationError,
    as_ort_reader,
    check_model_file,
    input_names,
)

__all__ = ["quantize_dynamic_int8", "quantize_static_int8"]

_CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


#: ONNX Runtime's pre-processing, run in a child process (see :func:`_preprocess`).
_PRE_PROCESS = (
    "import sys\n"
    "from onnxruntime.quantization.shape_inference import quant_pre_process\n"
    "quant_pre_process(sys.argv[1], sys.argv[2], skip_symbolic_shape=sys.argv[3] == '1')\n"
)


def _run_pre_process(
    src: Path, dst: Path, workdir: Path, *, skip_symbolic_shape: bool
) -> str | None:
    """``quant_pre_process`` in a child process working in ``workdir``: None, or what failed."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _PRE_PROCESS,
            str(src),
            str(dst),
            "1" if skip_symbolic_shape else "0",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0 and dst.is_file():
        return None
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


def _preprocess(onnx_in: Path, workdir: Path) -> Path:
    """ONNX Runtime's recommended pre-processing (optimisation + shape inference), made safe.

    ``quant_pre_process`` writes debugging files (``sym_shape_infer_temp.onnx`` and its weights)
    into the *current directory* when symbolic shape inference does not complete — which it does
    not on the dynamo exporter's transformer graphs. So it runs in a child process whose working
    directory is ``workdir`` (a temporary folder, removed afterwards): nothing is left behind and
    the notebook's own working directory is never changed. When symbolic shape inference fails,
    it runs again without it (ONNX shape inference only); when that fails too, the model is
    quantized as exported. Both fallbacks warn, naming the error.
    """
    src = onnx_in.resolve()
    out = workdir / f"{onnx_in.stem}.preprocessed.onnx"
    error = _run_pre_process(src, out, workdir, skip_symbolic_shape=False)
    if error is None:
        return out
    retry = _run_pre_process(src, out, workdir, skip_symbolic_shape=True)
    if retry is None:
        warnings.warn(
            f"quantization pre-processing: symbolic shape inference did not complete on "
            f"{onnx_in.name} ({error}); pre-processed with ONNX shape inference only",
            UserWarning,
            stacklevel=3,
        )
        return out
    warnings.warn(
        f"quantization pre-processing failed on {onnx_in.name} ({retry}); quantizing the model as "
        "exported (pass preprocess=False to skip the attempt)",
        UserWarning,
        stacklevel=3,
    )
    return onnx_in


def quantize_static_int8(
    onnx_in: str | Path,
    onnx_out: str | Path,
    calibration: Iterable[Mapping[str, np.ndarray]] | Any,
    *,
    per_channel: bool = True,
    reduce_range: bool = False,
    preprocess: bool = True,
    calibrate_method: str = "minmax",
    exclude: Sequence[str] = (),
    activation_type: str = "uint8",
    symmetric_activations: bool = False,
    op_types: Sequence[str] | None = None,
    unsigned_weights: Sequence[str] = (),
) -> Path:
    """Static INT8 quantization (QDQ format) calibrated on real inputs; returns ``onnx_out``.

    Args:
        onnx_in: the fp32 ``.onnx`` file (single file; external data is fine too).
        onnx_out: where to write the INT8 model (parent folders are created).
        calibration: an iterable of ``{input name: np.ndarray}`` batches of *real* preprocessed
            inputs, an :class:`ArrayCalibrationReader`, or any ORT ``CalibrationDataReader``.
        per_channel: one scale per output channel of each weight (recommended for CNNs).
        reduce_range: 7-bit weights, avoids u8 x s8 saturation on AVX2 CPUs without VNNI.
        preprocess: run ``quant_pre_process`` (optimisation + shape inference) first, with the
            fallbacks described in the module docstring.
        calibrate_method: ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        exclude: names of nodes to keep in fp32 (see :func:`first_and_last_nodes`).
        activation_type: ``"uint8"`` (u8 x s8, the fast path on x86) or ``"int8"``.
        symmetric_activations: force zero-point 0 for activations.
        op_types: restrict quantization to these op types (default: everything ORT can).
        unsigned_weights: names of ``Conv`` nodes whose weights are stored as u8 (u8 × u8
            kernels: no saturation on AVX2 without VNNI, see the module docstring).

    Raises:
        QuantizationError: missing model file, empty/malformed calibration set, bad option.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    src = check_model_file(onnx_in)
    if calibrate_method not in _CALIBRATION_METHODS:
        raise QuantizationError(
            f"calibrate_method must be one of {_CALIBRATION_METHODS}, got {calibrate_method!r}"
        )
    if activation_type not in ("uint8", "int8"):
        raise QuantizationError(
            f"activation_type must be 'uint8' or 'int8', got {activation_type!r}"
        )
    reader = as_ort_reader(calibration, input_names(src))
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[calibrate_method]
    dst = Path(onnx_out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {"ActivationSymmetric": symmetric_activations}
    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        model_in = _preprocess(src, Path(tmp)) if preprocess else src
        if unsigned_weights:  # weight names as in the graph being quantized (after pre-processing)
            extra["TensorQuantOverrides"] = _unsigned_weight_overrides(
                model_in, unsigned_weights, per_channel=per_channel, reduce_range=reduce_range
            )
        quantize_static(
            str(model_in),
            str(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude) or None,
            op_types_to_quantize=list(op_types) if op_types else None,
            calibrate_method=method,
            extra_options=extra,
        )
    return dst


def quantize_dynamic_int8(
    onnx_in: str | Path,
    onnx_out: str | Path,
    *,
    per_channel: bool = False,
    reduce_range: bool = False,
    preprocess: bool = True,
    op_types: Sequence[str] | None = None,
) -> Path:
    """Dynamic INT8 quantization (weights only, activation ranges computed at run time).

    No calibration set is needed. Good for MatMul-heavy models (transformers, RNNs); for CNNs it
    usually brings little, because ONNX Runtime keeps most convolutions in fp32 -- which is the
    point of showing it next to :func:`quantize_static_int8`. ``preprocess`` runs
    ``quant_pre_process`` first, as for the static recipe (same fallbacks).

    Raises:
        QuantizationError: the model file does not exist.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = check_model_file(onnx_in)
    dst = Path(onnx_out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        model_in = _preprocess(src, Path(tmp)) if preprocess else src
        quantize_dynamic(
            str(model_in),
            str(dst),
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(op_types) if op_types else None,
        )
    return dst


#: A u8 weight channel spans at least this fraction of its tensor's widest channel (see below).
_MIN_CHANNEL_SPAN = 1e-3


def _unsigned_weight_overrides(
    onnx_path: Path, nodes: Sequence[str], *, per_channel: bool, reduce_range: bool
) -> dict[str, list[dict[str, Any]]]:
    """ORT ``TensorQuantOverrides`` storing the weights of the ``Conv`` nodes ``nodes`` as u8.

    ORT enlarges too-small weight scales so that ``input_scale × weight_scale`` can hold the bias
    in int32 — but only for symmetric s8 weights. For u8 weights a channel whose weights are all
    ~0 (a "dead" channel, common in depthwise-separable networks) would get a tiny scale and a
    clipped bias. So each channel's range is widened to at least ``_MIN_CHANNEL_SPAN`` of the
    widest channel's (its weights still quantize exactly as before: to the zero point).
    """
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType

    model = onnx.load(str(onnx_path))
    by_name = {n.name: n for n in model.graph.node}
    initializers = {i.name: i for i in model.graph.initializer}
    overrides: dict[str, list[dict[str, Any]]] = {}
    for name in nodes:
        node = by_name.get(name)
        if node is None or node.op_type != "Conv":
            raise QuantizationError(
                f"unsigned_weights: {name!r} is not a Conv node of {onnx_path.name} "
                "(see gemm_convolutions())"
            )
        if len(node.input) < 2 or node.input[1] not in initializers:
            raise QuantizationError(f"unsigned_weights: {name!r} has no constant weight")
        first: dict[str, Any] = {"quant_type": QuantType.QUInt8, "reduce_range": reduce_range}
        if not per_channel:
            overrides[node.input[1]] = [first]
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float64)
        flat = weight.reshape(weight.shape[0], -1)
        rmin, rmax = np.minimum(flat.min(axis=1), 0.0), np.maximum(flat.max(axis=1), 0.0)
        floor = _MIN_CHANNEL_SPAN * float((rmax - rmin).max() or 1.0)
        rmax = rmax + np.maximum(floor - (rmax - rmin), 0.0)
        channels = [
            {"rmin": float(lo), "rmax": float(hi)} for lo, hi in zip(rmin, rmax, strict=True)
        ]
        channels[0].update(first, axis=0)  # Conv weights: one scale per output channel
        overrides[node.input[1]] = channels
    return overrides
