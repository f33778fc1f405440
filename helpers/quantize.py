"""INT8 post-training quantization of ONNX models with ``onnxruntime.quantization``.

Two recipes, the ones ONNX Runtime documents for CPUs:

- **Static** (:func:`quantize_static_int8`): weights *and* activations become INT8. Activation
  ranges are measured beforehand by running the fp32 model on a *calibration set* of real,
  preprocessed inputs. The result is written in **QDQ** format (``QuantizeLinear`` /
  ``DequantizeLinear`` pairs around each fp32 op), which ONNX Runtime fuses into integer kernels
  and which other runtimes (OpenVINO, TensorRT) understand too. This is the recipe for CNNs.
- **Dynamic** (:func:`quantize_dynamic_int8`): only the weights are stored as INT8; activation
  ranges are computed on the fly for every inference. No calibration set, but also little gain
  for convolutional networks (the fp32 convolutions stay). Shown for contrast: it is the recipe
  for transformers and RNNs.

Settings that matter on an x86 CPU (all exposed as keyword arguments):

- ``per_channel=True``: one scale per output channel of every weight; essential for networks
  with depthwise convolutions (MobileNet, EfficientNet), whose channels span very different ranges.
- ``reduce_range=True``: 7-bit weights. On AVX2 CPUs *without* VNNI the u8 x s8 multiply uses
  ``vpmaddubsw``, whose 16-bit intermediate sum can saturate; 7-bit weights avoid that at a small
  cost in resolution. With AVX512-VNNI / AVX-VNNI it is unnecessary (:func:`needs_reduce_range`).
- ``preprocess=True``: runs ``quant_pre_process`` first (graph optimisation + symbolic shape
  inference), which ONNX Runtime recommends so that every tensor has a known shape and
  Conv+BatchNorm etc. are fused *before* quantization parameters are chosen. It runs in a
  temporary folder (it leaves files in the working directory when it fails) and falls back,
  with a warning, to ONNX shape inference only — the dynamo exporter's transformer graphs defeat
  its symbolic shape inference — or to no pre-processing.
- ``calibrate_method``: ``"minmax"`` (default), ``"entropy"`` or ``"percentile"``; the latter two
  clip outliers in activation ranges.
- ``exclude``: node names kept in fp32, e.g. the first convolution and the classifier
  (:func:`first_and_last_nodes`), which are often the most sensitive to quantization.
- ``unsigned_weights``: convolutions whose weights are stored as **u8** instead of s8
  (:func:`gemm_convolutions` lists the ones ORT runs as GEMMs). ORT then uses its u8 × u8
  kernels, which widen to 16 bits before multiplying and never saturate — full 8-bit resolution
  without ``reduce_range``'s halving, at the cost of a slower kernel than u8 × s8. This is the
  accurate recipe on AVX2 CPUs without VNNI; elsewhere u8 × s8 does not saturate and is faster.

Also: :func:`static_recipes` (the recipes notebook 04 compares, named), content-cached variants
:func:`cached_static_int8` / :func:`cached_dynamic_int8` (the same inputs give the same file,
reused), and :func:`nncf_int8` — OpenVINO's own post-training quantization (NNCF) calibrated
on the same images, written as OpenVINO IR.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers.hardware import cpu_info, has_vnni

__all__ = [
    "QuantizationError",
    "ArrayCalibrationReader",
    "cached_dynamic_int8",
    "cached_static_int8",
    "depthwise_convolutions",
    "first_and_last_nodes",
    "gemm_convolutions",
    "needs_reduce_range",
    "nncf_int8",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "static_recipes",
]

_CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


class QuantizationError(ValueError):
    """Quantization cannot start: missing model file, empty or malformed calibration set, ..."""


def _check_model_file(onnx_in: str | Path) -> Path:
    path = Path(onnx_in)
    if not path.is_file():
        raise QuantizationError(
            f"ONNX model not found: {path}. Export the fp32 model first "
            "(helpers.export.export_onnx) and pass the path of the .onnx file."
        )
    return path


def _input_names(onnx_path: Path) -> list[str]:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


class ArrayCalibrationReader:
    """An ONNX Runtime ``CalibrationDataReader`` over in-memory batches.

    ``batches`` is any iterable of ``{input name: np.ndarray}`` dicts (for an image classifier:
    preprocessed float32 ``[N, 3, H, W]`` arrays of *real* photos, never random noise, because the
    activation ranges measured here become the INT8 scales). The batches are materialised once,
    validated against the model's inputs, and can be replayed with :meth:`rewind`.
    """

    def __init__(
        self, batches: Iterable[Mapping[str, np.ndarray]], input_names: Sequence[str] | None = None
    ) -> None:
        if isinstance(batches, Mapping):
            raise QuantizationError(
                "calibration must be an iterable of {input name: array} dicts, got a single dict; "
                "wrap it in a list: [batch]"
            )
        self._batches: list[dict[str, np.ndarray]] = []
        for i, batch in enumerate(batches):
            if not isinstance(batch, Mapping):
                raise QuantizationError(
                    f"calibration item {i} is a {type(batch).__name__}, expected a dict "
                    "{input name: np.ndarray}"
                )
            arrays = {str(k): np.ascontiguousarray(v) for k, v in batch.items()}
            if input_names is not None:
                missing = set(input_names) - set(arrays)
                extra = set(arrays) - set(input_names)
                if missing or extra:
                    raise QuantizationError(
                        f"calibration item {i} has inputs {sorted(arrays)}, the model expects "
                        f"{list(input_names)}"
                        + (f" (missing {sorted(missing)})" if missing else "")
                        + (f" (unknown {sorted(extra)})" if extra else "")
                    )
            for name, arr in arrays.items():
                if arr.size == 0:
                    raise QuantizationError(f"calibration item {i}: input {name!r} is empty")
                if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                    raise QuantizationError(
                        f"calibration item {i}: input {name!r} contains NaN or infinity"
                    )
            self._batches.append(arrays)
        if not self._batches:
            raise QuantizationError(
                "the calibration set is empty: static quantization needs a few representative "
                "inputs (e.g. 50-100 preprocessed real images) to measure activation ranges"
            )
        self._iter: Iterator[dict[str, np.ndarray]] = iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def num_samples(self) -> int:
        """Total number of samples (sum of the batch dimension of the first input)."""
        return sum(int(next(iter(b.values())).shape[0]) for b in self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """Next batch, or ``None`` when exhausted (the protocol ONNX Runtime's calibrator uses)."""
        return next(self._iter, None)

    def rewind(self) -> None:
        """Start again from the first batch."""
        self._iter = iter(self._batches)


def _as_reader(calibration: Any, input_names: Sequence[str]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    if isinstance(calibration, ArrayCalibrationReader):
        calibration.rewind()
        return _wrap(calibration)
    if isinstance(calibration, CalibrationDataReader):
        return calibration
    if calibration is None:
        raise QuantizationError(
            "static quantization needs a calibration set: an iterable of {input name: array} dicts"
        )
    return _wrap(ArrayCalibrationReader(calibration, input_names))


def _wrap(reader: ArrayCalibrationReader) -> Any:
    """Adapt to the ``CalibrationDataReader`` base class (ORT checks ``isinstance``)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return reader.get_next()

        def rewind(self) -> None:
            reader.rewind()

    return _Reader()


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

    src = _check_model_file(onnx_in)
    if calibrate_method not in _CALIBRATION_METHODS:
        raise QuantizationError(
            f"calibrate_method must be one of {_CALIBRATION_METHODS}, got {calibrate_method!r}"
        )
    if activation_type not in ("uint8", "int8"):
        raise QuantizationError(
            f"activation_type must be 'uint8' or 'int8', got {activation_type!r}"
        )
    reader = _as_reader(calibration, _input_names(src))
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

    src = _check_model_file(onnx_in)
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


def _conv_groups(onnx_path: str | Path) -> list[tuple[str, int, int]]:
    """``(name, group, input channels per group)`` of every named Conv node, in graph order."""
    import onnx

    model = onnx.load(str(_check_model_file(onnx_path)), load_external_data=False)
    shapes = {i.name: tuple(i.dims) for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "Conv" or not node.name:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        weight = shapes.get(node.input[1]) if len(node.input) > 1 else None
        found.append((node.name, int(group), int(weight[1]) if weight else 0))
    return found


def depthwise_convolutions(onnx_path: str | Path) -> list[str]:
    """Names of the depthwise ``Conv`` nodes (one input channel per group, MobileNet style)."""
    return [
        name for name, group, per_group in _conv_groups(onnx_path) if group > 1 and per_group == 1
    ]


def gemm_convolutions(onnx_path: str | Path) -> list[str]:
    """Names of the ``Conv`` nodes ONNX Runtime runs as matrix multiplies (not depthwise).

    These are where u8 × s8 INT8 kernels add pairs of products in 16 bits on AVX2 CPUs without
    VNNI (``vpmaddubsw``) and can saturate; depthwise convolutions use another kernel.
    """
    depthwise = set(depthwise_convolutions(onnx_path))
    return [name for name, _, _ in _conv_groups(onnx_path) if name not in depthwise]


def static_recipes(onnx_path: str | Path, *, full: bool = True) -> dict[str, dict[str, Any]]:
    """The static INT8 recipes worth comparing on a CNN, by name → options of
    :func:`quantize_static_int8`.

    - ``"per-channel"``: every layer, s8 per-channel weights, u8 activations (min/max ranges);
    - ``"first/last fp32"``: the stem convolution and the classifier stay fp32;
    - ``"first/last fp32 + u8 weights"``: and u8 weights on the GEMM convolutions (no
      saturation without VNNI, full resolution; a slower kernel);
    - with ``full``, also ``"first/last fp32 + reduce_range"`` (7-bit weights, ORT's documented
      remedy for saturation) and ``"first/last fp32, percentile"`` (outliers clipped from the
      activation ranges).
    """
    first_last = first_and_last_nodes(onnx_path)
    gemm = [n for n in gemm_convolutions(onnx_path) if n not in first_last]
    recipes: dict[str, dict[str, Any]] = {}
    if full:
        recipes["per-channel"] = {}
    recipes["first/last fp32"] = {"exclude": first_last}
    if full:
        recipes["first/last fp32 + reduce_range"] = {"exclude": first_last, "reduce_range": True}
        recipes["first/last fp32, percentile"] = {
            "exclude": first_last,
            "calibrate_method": "percentile",
        }
    recipes["first/last fp32 + u8 weights"] = {"exclude": first_last, "unsigned_weights": gemm}
    return recipes


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


def _calibration_arrays(calibration: Any, onnx_path: Path) -> ArrayCalibrationReader:
    if isinstance(calibration, ArrayCalibrationReader):
        return calibration
    return ArrayCalibrationReader(calibration, _input_names(onnx_path))


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

    src = _check_model_file(onnx_in)
    reader = _calibration_arrays(calibration, src)
    digest = _content_digest(src, (a for batch in reader._batches for a in batch.values()))
    return cached_export(
        digest,
        lambda path: quantize_static_int8(src, path, reader, **options),
        what=what,
        filename="model.int8.onnx",
        settings={"options": options, "recipe": _RECIPE_VERSION},
        rebuild=rebuild,
    )


def cached_dynamic_int8(
    onnx_in: str | Path, *, what: str = "int8 dynamic", rebuild: bool = False, **options: Any
) -> Path:
    """:func:`quantize_dynamic_int8`, cached by the fp32 file's content and ``options``."""
    from helpers.cache import cached_export

    src = _check_model_file(onnx_in)
    return cached_export(
        _content_digest(src),
        lambda path: quantize_dynamic_int8(src, path, **options),
        what=what,
        filename="model.int8.onnx",
        settings={"options": options, "recipe": _RECIPE_VERSION},
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

    src = _check_model_file(onnx_in)
    names = _input_names(src)
    if len(names) != 1:
        raise QuantizationError(f"nncf_int8 handles one-input models; {src.name} has {names}")
    reader = _calibration_arrays(calibration, src)
    samples = [
        array[i : i + 1]
        for batch in reader._batches
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


def first_and_last_nodes(
    onnx_path: str | Path, op_types: Sequence[str] = ("Conv", "Gemm", "MatMul")
) -> list[str]:
    """Names of the first and the last compute node (of ``op_types``) in graph order.

    These layers (the stem convolution that sees raw pixels, and the classifier that produces the
    logits) are the classic candidates to keep in fp32 when INT8 accuracy suffers. Nodes without
    a name cannot be excluded and are skipped.
    """
    import onnx

    model = onnx.load(str(_check_model_file(onnx_path)), load_external_data=False)
    nodes = [n for n in model.graph.node if n.op_type in op_types and n.name]
    if not nodes:
        return []
    return list(dict.fromkeys([nodes[0].name, nodes[-1].name]))


def needs_reduce_range(cpu_flags: Iterable[str] | None = None) -> bool:
    """True on x86 CPUs with AVX2 but no VNNI, where ORT recommends ``reduce_range=True``.

    ``cpu_flags`` defaults to this machine's (:func:`helpers.hardware.cpu_info`).
    """
    flags = set(cpu_info()["all_flags"]) if cpu_flags is None else {f.lower() for f in cpu_flags}
    return "avx2" in flags and not has_vnni(flags)
