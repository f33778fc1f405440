"""What an INT8 kernel computes: u8 × s8 dot products, exact or with AVX2's 16-bit pair sums.

Static INT8 on x86 multiplies **u8 activations** by **s8 weights** and accumulates in int32.
How the products are added depends on the instructions:

- **VNNI** (``vpdpbusd``: AVX512-VNNI, AVX-VNNI) and **AMX** add groups of products straight into
  32-bit accumulators: the result is exact (:func:`dot_u8s8` with ``kernel="exact"``).
- **AVX2 alone** uses ``vpmaddubsw``: each *pair* of neighbouring products is added into a
  **signed 16-bit** integer, which saturates at ±32,767 without any error; only then are the
  pairs widened to 32 bits and summed (``kernel="avx2"``). Two large products overflow it:
  255 × 127 × 2 = 64,770.

The remedies follow from the arithmetic: 7-bit weights (``reduce_range``: |w| ≤ 64, so a pair is
at most 255 × 64 × 2 = 32,640) or u8 weights with a kernel that widens *before* multiplying
(ORT's u8 × u8 path, exact but slower). :data:`INT16_MAX` and :func:`largest_safe_weight` give
the bound; :func:`saturated_fraction` counts the pairs a given input would clip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "INT16_MAX",
    "INT16_MIN",
    "dot_u8s8",
    "largest_safe_weight",
    "pair_risk",
    "pair_sums",
    "quantized_conv_weights",
    "saturated_fraction",
]

INT16_MAX = 32_767
INT16_MIN = -32_768
_KERNELS = ("exact", "avx2")


def _as_int(values: Any, low: int, high: int, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers (got dtype {array.dtype})")
    if array.size and (array.min() < low or array.max() > high):
        raise ValueError(f"{what} must lie in [{low}, {high}] (got {array.min()}..{array.max()})")
    return array.astype(np.int64)


def pair_sums(activations: Any, weights: Any) -> np.ndarray:
    """Sums of neighbouring products ``a[2i]·w[2i] + a[2i+1]·w[2i+1]`` along the last axis, exact.

    ``activations`` are u8 (0..255), ``weights`` s8 (-128..127), broadcast against each other; an
    odd length is padded with a zero product (as kernels pad K). These are the values
    ``vpmaddubsw`` must fit into 16 bits.
    """
    a = _as_int(activations, 0, 255, "activations (u8)")
    w = _as_int(weights, -128, 127, "weights (s8)")
    products = a * w
    if products.shape[-1] % 2:
        pad = [(0, 0)] * (products.ndim - 1) + [(0, 1)]
        products = np.pad(products, pad)
    return products[..., 0::2] + products[..., 1::2]


def dot_u8s8(activations: Any, weights: Any, *, kernel: str = "exact") -> np.ndarray:
    """The u8 × s8 dot product along the last axis, as an integer kernel computes it.

    ``kernel="exact"``: every product accumulated in wide integers (VNNI, AMX, u8 × u8 kernels).
    ``kernel="avx2"``: pairs of products first saturated to int16 (``vpmaddubsw``), then summed.
    """
    if kernel not in _KERNELS:
        raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
    pairs = pair_sums(activations, weights)
    if kernel == "avx2":
        pairs = np.clip(pairs, INT16_MIN, INT16_MAX)
    return pairs.sum(axis=-1)


def saturated_fraction(activations: Any, weights: Any) -> float:
    """The fraction of pair sums that fall outside int16 (what ``vpmaddubsw`` would clip)."""
    pairs = pair_sums(activations, weights)
    if pairs.size == 0:
        return 0.0
    return float(np.mean((pairs > INT16_MAX) | (pairs < INT16_MIN)))


def largest_safe_weight(max_activation: int = 255) -> int:
    """The largest |weight| for which no pair of u8 × s8 products can leave int16.

    Two products of at most ``max_activation × |w|`` each: ``2 × 255 × 64 = 32,640`` fits, ``65``
    does not — which is why 7-bit weights (``reduce_range``) are the remedy.
    """
    if not 0 < max_activation <= 255:
        raise ValueError("max_activation must be in 1..255")
    return min(128, INT16_MAX // (2 * max_activation))


def pair_risk(weights: Any, activation: int = 255) -> float:
    """The fraction of neighbouring weight pairs whose products overflow int16 when both
    activations equal ``activation`` — the worst case a layer can meet.

    ``weights`` is a quantized weight tensor (s8 or u8 values); pairs are taken along each output
    channel's flattened input (``weights[c].reshape(-1)``), as a GEMM kernel reads them. A
    result of 0 means the layer can never saturate.
    """
    array = np.asarray(weights)
    if array.ndim < 2:
        raise ValueError("weights must have an output-channel axis and at least one input axis")
    rows = array.reshape(array.shape[0], -1)
    return saturated_fraction(np.full(rows.shape[1], activation), rows)


def quantized_conv_weights(onnx_path: str | Path) -> dict[str, np.ndarray]:
    """``{Conv node name: its s8 weight tensor}`` for the convolutions of a QDQ file that run as
    matrix multiplies (not depthwise: one input channel per group is another kernel), in graph
    order. Only s8 weights are listed: u8 weights use the u8 × u8 kernel, which cannot saturate.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    inits = {i.name: i for i in model.graph.initializer}
    quantized = {
        node.output[0]: inits[node.input[0]]
        for node in model.graph.node
        if node.op_type == "DequantizeLinear" and node.input[0] in inits
    }
    found: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in quantized:
            continue
        weight = numpy_helper.to_array(quantized[node.input[1]])
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if weight.dtype == np.int8 and not (group > 1 and weight.shape[1] == 1):
            found[node.name] = weight
    return found
