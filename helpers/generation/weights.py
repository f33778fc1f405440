"""Weights of a decoder graph: how many bytes a token reads, the bandwidth bound, weight-only INT8/INT4.

At batch 1 a decode step multiplies one vector by every weight matrix, so every weight byte is
read once per token and used for one multiply-add: the step is **memory-bound**, and
``bytes read per token / memory bandwidth`` is a lower bound on its time. The only ways past it
are fewer bytes (weight-only quantization: :func:`quantize_weight_only`) or more rows per read
(batching).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "bandwidth_bound_tokens_per_s",
    "bytes_read_per_token",
    "onnx_weight_bytes",
    "prepare_for_weight_only",
    "prepared_copy",
    "quantize_weight_only",
]

#: Ops whose first input is a table of which a step reads only the rows it looks up.
_LOOKUP_OPS = {"Gather", "GatherBlockQuantized"}


def _initializer_bytes(init: Any) -> int:
    import onnx

    n = int(np.prod(init.dims)) if init.dims else 1
    bits = {onnx.TensorProto.INT4: 4, onnx.TensorProto.UINT4: 4}.get(init.data_type)
    if bits:
        return (n * bits + 7) // 8
    return n * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize


def _load_structure(onnx_path: str | Path) -> Any:
    import onnx

    return onnx.load(str(onnx_path), load_external_data=False)  # sizes come from the dims


def onnx_weight_bytes(onnx_path: str | Path) -> int:
    """Bytes of all initializers (weights and constants) in an ONNX file."""
    return sum(_initializer_bytes(i) for i in _load_structure(onnx_path).graph.initializer)


def bytes_read_per_token(onnx_path: str | Path) -> int:
    """Bytes one decode step (batch 1, one new token) reads from the weights of an ONNX file.

    Every initializer counts in full -- except a table used only for look-ups (the input of
    ``Gather``: token and position embeddings), of which a step reads one row. A tied
    embedding that the graph also multiplies by (the LM head) counts in full.
    """
    graph = _load_structure(onnx_path).graph
    uses: dict[str, set[tuple[str, int]]] = {}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            uses.setdefault(name, set()).add((node.op_type, slot))
    total = 0
    for init in graph.initializer:
        size = _initializer_bytes(init)
        consumers = uses.get(init.name, set())
        if consumers and all(op in _LOOKUP_OPS and slot == 0 for op, slot in consumers) and init.dims:
            size //= int(init.dims[0])  # one row per token
        total += size
    return total


def bandwidth_bound_tokens_per_s(weight_bytes: int, bandwidth_gb_s: float, batch: int = 1) -> float:
    """Upper bound on decode tokens/s when every step must stream ``weight_bytes`` from memory.

    At batch 1 a decode step is a chain of matrix-*vector* products: each weight is used once,
    so time per token >= weight bytes / memory bandwidth. A batch of ``batch`` rows shares
    that read, hence the bound scales with the batch.
    """
    if weight_bytes <= 0 or bandwidth_gb_s <= 0:
        raise ValueError("weight_bytes and bandwidth_gb_s must be positive")
    return batch * bandwidth_gb_s * 1e9 / weight_bytes


# ---------------------------------------------------------------------------------------------
# Weight-only quantization (ONNX Runtime's MatMulNBits)
# ---------------------------------------------------------------------------------------------


def prepare_for_weight_only(model: Any) -> tuple[Any, dict[str, int]]:
    """Rewrite an ONNX model (in memory) so that every weight multiply is a ``MatMul`` on an initializer.

    ONNX Runtime's weight-only quantizers only touch ``MatMul(x, W)`` with ``W`` an initializer.
    The dynamo export of GPT-2 has two other shapes: its ``Conv1D`` layers become
    ``Gemm(x, W, b)`` (rewritten as ``MatMul`` + ``Add``), and the LM head tied to the
    embedding is ``MatMul(x, Transpose(E))`` (the transpose is folded into a new initializer;
    ``E`` itself stays for the embedding look-up). Returns the model and the counts of both
    rewrites. Llama-style exports are already plain ``MatMul`` s.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, added = [], []
    counts = {"gemm_to_matmul": 0, "folded_transposes": 0}
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Transpose" and len(node.input) == 1 and node.input[0] in inits:
            array = numpy_helper.to_array(inits[node.input[0]])
            perm = attrs.get("perm")
            added.append(numpy_helper.from_array(
                np.ascontiguousarray(array.transpose(perm) if perm else array.T), node.output[0]))
            counts["folded_transposes"] += 1
            continue
        plain_gemm = (
            node.op_type == "Gemm" and node.input[1] in inits and not attrs.get("transA", 0)
            and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
        )
        if not plain_gemm:
            nodes.append(node)
            continue
        weight = node.input[1]
        if attrs.get("transB", 0):
            array = numpy_helper.to_array(inits[weight])
            weight = f"{weight}_transposed"
            added.append(numpy_helper.from_array(np.ascontiguousarray(array.T), weight))
        has_bias = len(node.input) > 2 and node.input[2]
        product = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], weight], [product], name=f"{node.name}_MatMul"))
        if has_bias:
            nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_Add"))
        counts["gemm_to_matmul"] += 1
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(added)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model, counts


def _matmul_nbits_quantizer() -> Any:
    """``MatMulNBitsQuantizer``, imported without its side effect on the process's logging.

    Importing ``onnxruntime.quantization.matmul_nbits_quantizer`` calls ``logging.basicConfig``
    at INFO level: from then on every library's INFO messages (the ONNX exporter's passes, ...)
    would be printed. The root logger's handlers and level are put back as they were.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    return MatMulNBitsQuantizer


@contextlib.contextmanager
def _logger_level(name: str | None, level: int) -> Iterator[None]:
    """Set one logger's level (``None``: the root logger) for the duration of a block, then restore it."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def quantize_weight_only(
    onnx_in: str | Path,
    onnx_out: str | Path,
    *,
    bits: int = 4,
    block_size: int = 32,
    accuracy_level: int = 4,
    symmetric: bool = True,
) -> Path:
    """Weight-only INT8/INT4 with ONNX Runtime's ``MatMulNBitsQuantizer``.

    Every ``MatMul`` with an initializer weight (after :func:`prepare_for_weight_only`) becomes
    a ``MatMulNBits`` node: the weight stored as ``bits``-bit integers in blocks of
    ``block_size`` values along the reduction axis, one float scale per block (``symmetric``:
    no zero point). Activations stay float; ``accuracy_level`` picks the kernel's compute type
    (0/1: float32 -- the weights are dequantized; 4: the activations are quantized to int8 per
    block and multiplied with integer dot products, the fast path on x86 CPUs). Embedding
    look-ups stay float32 (a step reads one row). Written as one file.

    Raises:
        ValueError: ``bits`` is not 4 or 8, or the model has no weight ``MatMul`` to quantize.
    """
    import onnx

    quantizer_class = _matmul_nbits_quantizer()
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    src, dst = Path(onnx_in), Path(onnx_out)
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist")
    model, _ = prepare_for_weight_only(onnx.load(str(src)))
    with _logger_level("onnxruntime.quantization.matmul_nbits_quantizer", logging.WARNING):
        quantizer = quantizer_class(
            model, bits=bits, block_size=block_size, is_symmetric=symmetric,
            accuracy_level=accuracy_level, op_types_to_quantize=("MatMul",),
        )
        quantizer.process()
    quantized = quantizer.model.model
    if not any(n.op_type == "MatMulNBits" for n in quantized.graph.node):
        raise ValueError(f"{src.name}: no MatMul with a weight initializer was found to quantize")
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(quantized, str(dst))
    return dst


def prepared_copy(onnx_in: str | Path, onnx_out: str | Path) -> Path:
    """Write :func:`prepare_for_weight_only`'s rewrite of ``onnx_in`` to ``onnx_out`` (one file).

    Useful before ONNX Runtime's *dynamic* INT8 quantizer too, which, like the weight-only one,
    only quantizes ``MatMul`` s on initializers.
    """
    import onnx

    model, _ = prepare_for_weight_only(onnx.load(str(onnx_in)))
    dst = Path(onnx_out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst
