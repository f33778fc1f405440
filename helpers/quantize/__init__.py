"""INT8 post-training quantization: ONNX Runtime's recipes with checks, NNCF, and how to judge them.

Modules, by job (import everything from ``helpers.quantize``):

- :mod:`.calibration` — :class:`ArrayCalibrationReader` (validated in-memory calibration batches
  in ONNX Runtime's ``CalibrationDataReader`` protocol) and :class:`QuantizationError`;
- :mod:`.ort` — :func:`quantize_static_int8` (QDQ, calibrated on real inputs) and
  :func:`quantize_dynamic_int8` (weights only): ``onnxruntime.quantization``'s calls plus clear
  errors, safe pre-processing and u8 weights on chosen convolutions;
- :mod:`.recipes` — which layers to treat how (:func:`first_and_last_nodes`,
  :func:`depthwise_convolutions`, :func:`gemm_convolutions`), the named :func:`static_recipes`
  and :func:`needs_reduce_range` (AVX2 without VNNI);
- :mod:`.cached` — :func:`cached_static_int8`, :func:`cached_dynamic_int8` (the same inputs give
  the same verified file, reused) and :func:`nncf_int8` (OpenVINO's NNCF on the same images);
- :mod:`.saturation` — what the integer kernels compute: u8 × s8 dot products with and without
  AVX2's 16-bit pair sums (``vpmaddubsw``), for explaining and testing saturation;
- :mod:`.report` — quality next to speed: every quantized variant's top-1 agreement with fp32,
  the asserted floor, its latency in interleaved rounds, and the fastest variant that keeps
  quality.

Settings that matter on an x86 CPU:

- ``per_channel=True``: one scale per output channel of every weight; essential for networks
  with depthwise convolutions (MobileNet, EfficientNet), whose channels span very different ranges.
- ``reduce_range=True``: 7-bit weights. On AVX2 CPUs *without* VNNI the u8 × s8 multiply uses
  ``vpmaddubsw``, whose 16-bit sum of two products can saturate; 7-bit weights avoid that at a
  small cost in resolution. With AVX512-VNNI / AVX-VNNI / AMX it is unnecessary.
- ``unsigned_weights``: convolutions whose weights are stored as **u8** instead of s8. ORT then
  uses its u8 × u8 kernels, which widen to 16 bits before multiplying and never saturate — full
  8-bit resolution without ``reduce_range``'s halving, at the cost of a slower kernel.
- ``exclude``: node names kept in fp32, e.g. the stem convolution and the classifier.
- ``calibrate_method``: ``"minmax"`` (default), ``"entropy"`` or ``"percentile"``.
"""

from helpers.quantize import report, saturation
from helpers.quantize.cached import cached_dynamic_int8, cached_static_int8, nncf_int8
from helpers.quantize.calibration import ArrayCalibrationReader, QuantizationError
from helpers.quantize.ort import quantize_dynamic_int8, quantize_static_int8
from helpers.quantize.recipes import (
    depthwise_convolutions,
    first_and_last_nodes,
    gemm_convolutions,
    needs_reduce_range,
    static_recipes,
)

__all__ = [
    "ArrayCalibrationReader",
    "QuantizationError",
    "cached_dynamic_int8",
    "cached_static_int8",
    "depthwise_convolutions",
    "first_and_last_nodes",
    "gemm_convolutions",
    "needs_reduce_range",
    "nncf_int8",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "report",
    "saturation",
    "static_recipes",
]
