"""How fast can this machine possibly go? Measured limits, and the FLOPs a model needs.

- :func:`measure_gemm_peak` — how many floating-point (or int8) operations per second a large
  matrix multiply reaches here, with the same tuned libraries the runtimes use.
- :func:`measure_memory_bandwidth` — how many bytes per second the cores can stream from RAM.
- :func:`count_flops` — the FLOPs of one forward pass.

Together they turn a latency into "% of the physical limit": a model that needs ``F`` FLOPs can
never run faster than ``F / peak``, and a decoder step that must read ``B`` bytes of weights
never faster than ``B / bandwidth``. Nothing is hard-coded: the peaks are measured on the machine
the notebook runs on, with a small probe timed by :func:`helpers.benchmark.best_of`, and cached
in-process so a notebook pays for them once.
"""

from __future__ import annotations

import functools
from typing import Any

from helpers.benchmark.timing import best_of
from helpers.runners.torch_family import torch_threads

__all__ = ["count_flops", "measure_gemm_peak", "measure_memory_bandwidth"]


_ORT_TYPES = {"float32": "FLOAT", "float64": "DOUBLE", "float16": "FLOAT16", "int8": "INT8"}


def _ort_gemm_ns(dtype: str, n: int, threads: int, seconds: float) -> float:
    """Best time (ns) of an ``n × n`` GEMM in ONNX Runtime (``MatMul``; u8 × s8 ``MatMulInteger``
    for int8 — the kernel quantized models use)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if dtype == "int8":
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        a_type, b_type, y_type = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32
    else:
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type = b_type = y_type = getattr(TensorProto, _ORT_TYPES[dtype])
    graph = helper.make_graph(
        [node],
        "gemm_probe",
        [
            helper.make_tensor_value_info("A", a_type, [n, n]),
            helper.make_tensor_value_info("B", b_type, [n, n]),
        ],
        [helper.make_tensor_value_info("Y", y_type, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 10)  # readable by older ONNX Runtime releases
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if dtype == "int8":
        feeds = {
            "A": rng.integers(0, 255, (n, n), dtype=np.uint8),
            "B": rng.integers(-127, 127, (n, n), dtype=np.int8),
        }
    else:
        feeds = {
            "A": rng.standard_normal((n, n)).astype(dtype),
            "B": rng.standard_normal((n, n)).astype(dtype),
        }
    return best_of(lambda: sess.run(None, feeds), seconds)


def _torch_gemm_ns(dtype: str, n: int, threads: int, seconds: float) -> float:
    """Best time (ns) of an ``n × n`` ``torch.mm`` (``torch._int_mm`` for int8)."""
    import torch

    with torch_threads(threads), torch.inference_mode():
        gen = torch.Generator().manual_seed(0)
        if dtype == "int8":
            a = torch.randint(-127, 127, (n, n), dtype=torch.int8, generator=gen)
            b = torch.randint(-127, 127, (n, n), dtype=torch.int8, generator=gen)
            return best_of(lambda: torch._int_mm(a, b), seconds)
        torch_dtype = getattr(torch, dtype)
        a = torch.randn(n, n, generator=gen).to(torch_dtype)
        b = torch.randn(n, n, generator=gen).to(torch_dtype)
        out = torch.empty(n, n, dtype=torch_dtype)
        return best_of(lambda: torch.mm(a, b, out=out), seconds)


def _probes(dtype: str) -> list[tuple[str, Any]]:
    backends: list[tuple[str, Any]] = []
    try:
        import onnxruntime  # noqa: F401

        if dtype in _ORT_TYPES and dtype != "float16":  # ORT's CPU fp16 MatMul is not a peak
            backends.append(("onnxruntime", _ort_gemm_ns))
    except ImportError:
        pass
    if dtype != "int8" or not backends:  # torch._int_mm on CPU is far from the int8 peak
        backends.append(("torch", _torch_gemm_ns))
    return backends


@functools.cache
def _gemm_probe_cached(
    dtype: str, threads: int, seconds: float, sizes: tuple[int, ...]
) -> tuple[float, tuple[tuple[str, int, float], ...]]:
    probes = _probes(dtype)
    share = seconds / (len(probes) * len(sizes))
    details = []
    for backend, fn in probes:
        for n in sizes:
            best_ns = fn(dtype, n, threads, share)
            details.append((backend, n, 2 * n**3 / best_ns))  # FLOP per ns == GFLOP/s
    return max(d[2] for d in details), tuple(details)


def _probe_key(
    dtype: str, threads: int | None, seconds: float, size: int | None
) -> tuple[str, int, float, tuple[int, ...]]:
    if dtype not in ("float32", "float64", "bfloat16", "float16", "int8"):
        raise ValueError(
            f"measure_gemm_peak: unsupported dtype {dtype!r}; "
            "use 'float32', 'float64', 'bfloat16', 'float16' or 'int8'"
        )
    if seconds <= 0:
        raise ValueError("measure_gemm_peak: seconds must be positive")
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    if threads < 1:
        raise ValueError("measure_gemm_peak: threads must be >= 1")
    sizes = _DEFAULT_SIZES if size is None else (int(size),)
    return dtype, int(threads), float(seconds), sizes


#: Matrix sizes the probe tries: both compute-bound (2·n³ FLOPs on 3·n² numbers); the smaller
#: one finishes in a few ms, so on a busy machine some repetitions run undisturbed.
_DEFAULT_SIZES = (512, 1024)


def measure_gemm_peak(
    dtype: str = "float32",
    threads: int | None = None,
    seconds: float = 1.0,
    *,
    size: int | None = None,
) -> float:
    """Measure the matrix-multiply peak of this machine in GFLOP/s (GOP/s for ``"int8"``).

    Method: random square ``n × n`` matrices are multiplied repeatedly (after one warm-up call)
    for square sizes 512 and 1024 (or just ``size``) — compute-bound: ``2·n³`` operations on
    ``3·n²`` numbers — with two tuned libraries: ONNX Runtime's MLAS (``MatMul``; for int8 the
    u8 × s8 ``MatMulInteger`` that quantized models run on) and PyTorch's ``torch.mm`` (MKL /
    oneDNN). Each combination gets an equal share of ``seconds``. For each, the *best*
    (fastest) repetition counts, because on a shared machine interference only ever makes a
    run slower: the minimum is the closest estimate of what the hardware can do. The result is
    the highest ``2·n³ / best_time`` over all combinations.

    - ``dtype``: ``"float32"`` (default), ``"float64"``, ``"bfloat16"``, ``"float16"``,
      ``"int8"``.
    - ``threads``: intra-op threads to use (default: torch's current setting; torch's setting is
      restored afterwards). Compare a model with the peak for the *same* thread count.

    Cached in-process per ``(dtype, threads, seconds, size)``: a second call is free. This is
    a practical peak — what tuned libraries reach — not the data-sheet number; real models reach
    a fraction of it (small or odd-shaped layers, memory traffic, non-GEMM operators). On a
    heavily loaded machine (see ``fingerprint()["load_average"]``) even the best repetition
    may be slowed down, making the peak too low and "% of limit" figures too high.
    """
    key = _probe_key(dtype, threads, seconds, size)
    return _gemm_probe_cached(*key)[0]


@functools.cache
def _bandwidth_cached(seconds: float, megabytes: int, threads: int) -> float:
    import torch

    n = megabytes * 2**20 // 4
    with torch_threads(threads), torch.inference_mode():
        x = torch.ones(n, dtype=torch.float32)
        best_ns = best_of(lambda: x.sum(), seconds)
    return n * 4 / best_ns  # bytes per ns == GB/s


def measure_memory_bandwidth(
    seconds: float = 1.0, *, megabytes: int = 256, threads: int | None = None
) -> float:
    """Measure how fast the CPU can *read* memory, in GB/s (10⁹ bytes per second).

    Method: a float32 array of ``megabytes`` MiB (default 256, far larger than any CPU cache)
    is summed repeatedly for about ``seconds`` with ``torch.sum`` using ``threads`` threads
    (default: torch's current setting); the fastest pass gives ``bytes / time``. A sum does one
    addition per 4 bytes read, so the cores wait on memory, not on arithmetic.

    Why it matters: generating one token with a decoder such as GPT-2 multiplies a single
    vector by every weight matrix, so every weight byte is read once per token and almost
    nothing is reused — the step is **memory-bound**. Its lower bound is
    ``weight_bytes / bandwidth`` (e.g. 124 M float32 parameters ≈ 0.5 GB → ~27 ms at 18 GB/s),
    no matter how many FLOP/s the machine has.

    Cached in-process per ``(seconds, megabytes, threads)``.
    """
    if seconds <= 0 or megabytes <= 0:
        raise ValueError("measure_memory_bandwidth: seconds and megabytes must be positive")
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return _bandwidth_cached(float(seconds), int(megabytes), int(threads))


# ----------------------------------------------------------------------------------------------
# FLOP counting
# ----------------------------------------------------------------------------------------------


def count_flops(model: Any, example_inputs: tuple | dict | Any) -> int:
    """Count the floating-point operations of one forward pass, as FLOPs (= 2 × multiply-adds).

    Runs ``model(*example_inputs)`` (or ``model(**example_inputs)`` for a dict, or
    ``model(example_inputs)`` for a single tensor) once under ``torch.inference_mode()`` inside
    ``torch.utils.flop_counter.FlopCounterMode``, which adds up the FLOPs of the matrix
    multiplies, convolutions and attention kernels that actually executed. Element-wise
    operators (activations, norms, additions) are not counted: they are cheap in FLOPs and
    bound by memory traffic instead.

    The count is for the *given* inputs: a batch of 8 costs 8× a batch of 1. Divide by a
    measured peak (:func:`measure_gemm_peak`, GFLOP/s) to get a lower bound on latency:
    ``lower_bound_ms = flops / (peak_gflops · 1e9) · 1e3``.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            if isinstance(example_inputs, dict):
                model(**example_inputs)
            elif isinstance(example_inputs, (tuple, list)):
                model(*example_inputs)
            else:
                model(example_inputs)
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return int(counter.get_total_flops())
