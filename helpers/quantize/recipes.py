"""Which layers to treat how: depthwise and GEMM convolutions, first and last layers, recipes.

:func:`static_recipes` names the static INT8 recipes worth comparing on a CNN (notebook 11
compares them); :func:`needs_reduce_range` says whether this CPU's u8 × s8 kernels can saturate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from helpers.hardware import cpu_info, has_vnni
from helpers.quantize.calibration import check_model_file

__all__ = [
    "depthwise_convolutions",
    "first_and_last_nodes",
    "gemm_convolutions",
    "needs_reduce_range",
    "static_recipes",
]


def _conv_groups(onnx_path: str | Path) -> list[tuple[str, int, int]]:
    """``(name, group, input channels per group)`` of every named Conv node, in graph order."""
    import onnx

    model = onnx.load(str(check_model_file(onnx_path)), load_external_data=False)
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



def first_and_last_nodes(
    onnx_path: str | Path, op_types: Sequence[str] = ("Conv", "Gemm", "MatMul")
) -> list[str]:
    """Names of the first and the last compute node (of ``op_types``) in graph order.

    These layers (the stem convolution that sees raw pixels, and the classifier that produces the
    logits) are the classic candidates to keep in fp32 when INT8 accuracy suffers. Nodes without
    a name cannot be excluded and are skipped.
    """
    import onnx

    model = onnx.load(str(check_model_file(onnx_path)), load_external_data=False)
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
