"""How fast can this machine possibly go? Measured limits per precision, and the FLOPs a model needs.

- :func:`measure_limits` — the machine's limits for one thread count, measured robustly: the
  matrix-multiply peak of every precision a runner may compute in (fp32, bf16, int8) and the
  memory read bandwidth. Each probe is repeated until two readings agree within a tolerance
  (~10 %), every reading and the spread are kept, and the machine's load is checked before and
  after (a busy machine gives a warning). The result, :class:`Limits`, is attached to every
  later benchmark's fingerprint.
- :func:`measure_gemm_peak`, :func:`measure_memory_bandwidth` — one probe each (cached).
- :func:`precision_hardware` — which instructions execute a precision on this CPU (AMX, VNNI,
  AVX512-BF16, AVX2 …), from :func:`helpers.hardware.cpu_features`; :func:`limit_key` — which
  limit a runner's precision is measured against; :func:`bounding_precision` — the precision
  whose arithmetic really runs (bf16 or fp16 without instructions for it: fp32).
- :func:`count_flops` — the FLOPs of one forward pass.

Together they turn a latency into "% of the limit *for its own precision*": a model that needs
``F`` operations in int8 can never run faster than ``F / int8_peak``, in fp32 never faster than
``F / fp32_peak``; a decoder step that must read ``B`` bytes of weights never faster than
``B / bandwidth``. Nothing is hard-coded: every limit is measured on the machine the notebook
runs on.
"""

from __future__ import annotations

import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from helpers.hardware import cpu_features, cpu_info
from helpers.precisions import precision_family
from helpers.runners import torch_threads

__all__ = [
    "best_of",
    "bounding_precision",
    "LIMIT_PRECISIONS",
    "Limits",
    "Probe",
    "count_flops",
    "last_limits",
    "limit_key",
    "machine_busy",
    "measure_gemm_peak",
    "measure_limits",
    "measure_memory_bandwidth",
    "precision_hardware",
    "repeat_until_stable",
]

#: The precisions :func:`measure_limits` probes by default (the ones runners compute in).
LIMIT_PRECISIONS = ("float32", "bfloat16", "int8")
_DTYPES = ("float32", "float64", "bfloat16", "float16", "int8")
_ORT_TYPES = {"float32": "FLOAT", "float64": "DOUBLE", "float16": "FLOAT16", "int8": "INT8"}


# ----------------------------------------------------------------------------------------------
# Which precision, on which instructions
# ----------------------------------------------------------------------------------------------
def best_of(fn: Callable[[], Any], seconds: float, *, min_reps: int = 3, max_reps: int = 1000) -> float:
    """The smallest wall time (ns) of ``fn()`` over calls repeated for about ``seconds``.

    One untimed warm-up call first (allocation, kernel choice, thread wake-up); then at least
    ``min_reps`` and at most ``max_reps`` timed calls. The *minimum* is the right statistic for
    probing what hardware can do: interference from other work only ever makes a run slower.
    """
    fn()
    best = math.inf
    deadline = time.perf_counter() + seconds
    reps = 0
    while reps < min_reps or (time.perf_counter() < deadline and reps < max_reps):
        start = time.perf_counter_ns()
        fn()
        best = min(best, time.perf_counter_ns() - start)
        reps += 1
    return float(best)


def limit_key(precision: Any) -> str:
    """The limit a runner's ``precision`` is compared with: ``"float32"``, ``"bfloat16"``,
    ``"float16"``, ``"float64"`` or ``"int8"`` (``"fp32"``, ``"f32"``, ``"bf16"``, ``"uint8"``,
    ``"int8 static"``, ``"qdq"``, ``torch.bfloat16`` … are understood)."""
    family = precision_family(precision)
    if family in _DTYPES:
        return family
    raise ValueError(f"no limit for precision {precision!r}; known: {', '.join(_DTYPES)}")


def precision_hardware(precision: str, flags: Iterable[str] | None = None) -> dict[str, Any]:
    """Which instructions compute ``precision`` on this CPU (or on one with ``flags``).

    Returns ``{"precision", "native", "path", "saturates"}`` (``native`` and ``saturates`` None
    when the CPU's flags are unknown, see :func:`helpers.hardware.cpu_features`): ``native`` is False when the CPU
    has no instructions for it and libraries convert to fp32 in software (bf16 without
    AVX512-BF16/AMX); ``saturates`` is True for int8 on AVX2 without VNNI, where ``vpmaddubsw``
    adds pairs of u8 × s8 products into 16 bits, which can overflow.
    """
    key = limit_key(precision)
    feats = cpu_features(flags)
    if None in feats.values():
        return {"precision": key, "native": None, "saturates": None,
                "path": "unknown: this system does not expose the CPU's instruction-set flags"}
    found = set(cpu_info()["all_flags"]) if flags is None else {f.lower() for f in flags}
    wide = "AVX-512" if feats["AVX-512"] else "AVX2" if feats["AVX2"] else None
    native, saturates = True, False
    if key == "bfloat16":
        if feats["AMX-BF16"]:
            path = "AMX-BF16 tiles"
        elif "avx512_bf16" in found:
            path = "AVX512-BF16 dot products"
        else:
            native, path = False, "no bf16 instructions: converted to fp32 in software"
    elif key == "int8":
        if feats["AMX-INT8"]:
            path = "AMX-INT8 tiles"
        elif feats["VNNI"]:
            path = "VNNI dot products (u8 x s8 into 32 bits)"
        elif wide:
            saturates = True
            path = f"{wide} vpmaddubsw (no VNNI: u8 x s8 pair sums in 16 bits can saturate)"
        else:
            native, path = False, "no SIMD int8 instructions"
    elif key == "float16":
        native = "avx512_fp16" in found or "amx_fp16" in found
        path = "AVX512-FP16" if native else "no fp16 arithmetic: converted to fp32"
    else:
        path = f"{wide} FMA" if wide else "scalar / other SIMD"
    return {"precision": key, "native": native, "path": path, "saturates": saturates}


def bounding_precision(precision: Any, flags: Iterable[str] | None = None) -> str:
    """The precision whose peak bounds a runner that computes in ``precision`` on this CPU (or
    on one with ``flags``): its own :func:`limit_key`, except a precision the CPU has no
    instructions for (bf16 without AVX512-BF16/AMX, fp16 without AVX512-FP16), which libraries
    convert to fp32 and multiply on the fp32 units — so fp32's peak bounds it.

    A runtime that *reports* bf16 on such a CPU (OpenVINO accepts the hint on some CPUs without
    bf16 instructions) is converting in software: comparing it with a bf16 GEMM probe, itself
    converted in software, would call a slow path "near its limit".
    """
    key = limit_key(precision)
    if key in ("bfloat16", "float16") and not precision_hardware(key, flags)["native"]:
        return "float32"
    return key


# ----------------------------------------------------------------------------------------------
# One GEMM probe per library
# ----------------------------------------------------------------------------------------------
def _ort_gemm_ns(dtype: str, n: int, threads: int, seconds: float, kernel: str = "u8s8") -> float:
    """Best time (ns) of an ``n × n`` GEMM in ONNX Runtime (``MatMul``; ``MatMulInteger`` for int8,
    u8 × s8 — what ORT's QDQ models run — or u8 × u8 with ``kernel="u8u8"``)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if dtype == "int8":
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        b_int8 = kernel == "u8s8"
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
        b_type = TensorProto.INT8 if b_int8 else TensorProto.UINT8
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
            "B": rng.integers(-127, 127, (n, n), dtype=np.int8)
            if b_int8
            else rng.integers(0, 255, (n, n), dtype=np.uint8),
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


def _probes(dtype: str) -> list[tuple[str, Callable[[str, int, int, float], float]]]:
    backends: list[tuple[str, Any]] = []
    try:
        import onnxruntime  # noqa: F401

        if dtype == "int8":
            backends.append(("onnxruntime u8 x s8", _ort_gemm_ns))
            backends.append(("onnxruntime u8 x u8", functools.partial(_ort_gemm_ns, kernel="u8u8")))
        elif dtype in _ORT_TYPES and dtype != "float16":  # ORT's CPU fp16 MatMul is not a peak
            backends.append(("onnxruntime", _ort_gemm_ns))
    except ImportError:
        pass
    if dtype != "int8" or not backends:  # torch._int_mm on CPU is far from the int8 peak
        backends.append(("torch", _torch_gemm_ns))
    return backends


#: Matrix sizes the probe tries: both compute-bound (2·n³ FLOPs on 3·n² numbers); the smaller
#: one finishes in a few ms, so on a busy machine some repetitions run undisturbed.
_DEFAULT_SIZES = (512, 1024)
#: Without hardware support (bf16/fp16 converted in software, ~100x slower) large sizes take
#: seconds per multiply; these still give a compute-bound reading.
_EMULATED_SIZES = (128, 256)


def _default_sizes(dtype: str) -> tuple[int, ...]:
    if dtype in ("bfloat16", "float16") and not precision_hardware(dtype)["native"]:
        return _EMULATED_SIZES
    return _DEFAULT_SIZES


def _gemm_probe(
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


_gemm_probe_cached = functools.cache(_gemm_probe)


def _probe_key(
    dtype: str, threads: int | None, seconds: float, size: int | None
) -> tuple[str, int, float, tuple[int, ...]]:
    if dtype not in _DTYPES:
        raise ValueError(
            f"measure_gemm_peak: unsupported dtype {dtype!r}; use one of {', '.join(_DTYPES)}"
        )
    if seconds <= 0:
        raise ValueError("measure_gemm_peak: seconds must be positive")
    threads = _threads(threads)
    sizes = _default_sizes(dtype) if size is None else (int(size),)
    return dtype, threads, float(seconds), sizes


def _threads(threads: int | None) -> int:
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    if threads < 1:
        raise ValueError("threads must be >= 1")
    return int(threads)


def measure_gemm_peak(
    dtype: str = "float32",
    threads: int | None = None,
    seconds: float = 1.0,
    *,
    size: int | None = None,
) -> float:
    """Measure the matrix-multiply peak of this machine in GFLOP/s (GOP/s for ``"int8"``).

    Method: random square ``n × n`` matrices are multiplied repeatedly (after one warm-up call)
    for square sizes 512 and 1024 (128 and 256 for bf16/fp16 on CPUs without instructions for
    them, which run ~100x slower; or just ``size``) — compute-bound: ``2·n³`` operations on
    ``3·n²`` numbers — with two tuned libraries: ONNX Runtime's MLAS (``MatMul``; for int8 the
    ``MatMulInteger`` kernels quantized models run on, u8 × s8 and u8 × u8) and PyTorch's
    ``torch.mm`` (MKL / oneDNN). Each combination gets an equal share of ``seconds``. For each,
    the *best* (fastest) repetition counts, because on a shared machine interference only ever
    makes a run slower. The result is the highest ``2·n³ / best_time`` over all combinations.

    - ``dtype``: ``"float32"`` (default), ``"float64"``, ``"bfloat16"``, ``"float16"``,
      ``"int8"``.
    - ``threads``: intra-op threads to use (default: torch's current setting; torch's setting is
      restored afterwards). Compare a model with the peak for the *same* thread count.

    Cached in-process per ``(dtype, threads, seconds, size)``: a second call is free. One probe
    can read low when other processes compete for the cores: :func:`measure_limits` repeats it
    until two readings agree and records the spread.
    """
    key = _probe_key(dtype, threads, seconds, size)
    return _gemm_probe_cached(*key)[0]


def _bandwidth_probe(seconds: float, megabytes: int, threads: int) -> float:
    import torch

    n = megabytes * 2**20 // 4
    with torch_threads(threads), torch.inference_mode():
        x = torch.ones(n, dtype=torch.float32)
        best_ns = best_of(lambda: x.sum(), seconds)
    return n * 4 / best_ns  # bytes per ns == GB/s


_bandwidth_cached = functools.cache(_bandwidth_probe)


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
    return _bandwidth_cached(float(seconds), int(megabytes), _threads(threads))


# ----------------------------------------------------------------------------------------------
# Robust limits: repeated probes, spread, busy machine
# ----------------------------------------------------------------------------------------------
def repeat_until_stable(
    measure: Callable[[], float],
    *,
    tolerance: float = 0.10,
    min_repeats: int = 2,
    max_repeats: int = 4,
) -> tuple[float, ...]:
    """Call ``measure()`` (a probe returning a rate, higher is better) until its two highest
    readings are within ``tolerance`` of the highest — at least ``min_repeats``, at most
    ``max_repeats`` times. Returns every reading, in order.

    Interference only ever slows a probe down, so the highest reading is the estimate; a second
    reading close to it shows it was not a fluke of timing, and a low reading on a busy
    machine is simply outvoted.
    """
    if not 0 < tolerance < 1:
        raise ValueError("tolerance must be between 0 and 1")
    if min_repeats < 2 or max_repeats < min_repeats:
        raise ValueError("need 2 <= min_repeats <= max_repeats")
    readings: list[float] = []
    while len(readings) < max_repeats:
        value = float(measure())
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"a probe returned {value!r}; expected a positive rate")
        readings.append(value)
        if len(readings) >= min_repeats and _top_two_gap(readings) <= tolerance:
            break
    return tuple(readings)


def _top_two_gap(readings: Sequence[float]) -> float:
    if len(readings) < 2:
        return math.inf
    first, second = sorted(readings, reverse=True)[:2]
    return (first - second) / first


def _load_1min() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not available on Windows
        return None


def machine_busy(
    load_1min: float | None = None, cores: int | None = None, *, factor: float = 1.0
) -> str | None:
    """A warning when other work competes for the CPU, else ``None``.

    The machine counts as busy when the 1-minute load average (runnable processes, including
    this one) exceeds ``factor × cores``: then some thread of every measurement waits for a core,
    latencies are inflated and peaks read low. Defaults: this machine's load and logical cores.
    """
    load = _load_1min() if load_1min is None else float(load_1min)
    cores = (os.cpu_count() or 1) if cores is None else int(cores)
    if load is None or load <= factor * cores:
        return None
    return (
        f"the machine is busy: load average {load:.1f} on {cores} logical core(s). Other "
        "processes compete for the cores, so peaks read low and latencies high; compare within "
        "one run (ratios) and re-measure on a quiet machine before quoting absolute numbers."
    )


@dataclass(frozen=True)
class Probe:
    """The readings of one limit: GEMM peak of ``precision`` or memory bandwidth (``"memory"``)."""

    precision: str
    unit: str
    readings: tuple[float, ...]
    tolerance: float
    path: str = ""
    native: bool = True
    details: tuple[tuple[str, int, float], ...] = ()

    @property
    def value(self) -> float:
        """The limit: the highest reading (interference only slows a probe down)."""
        return max(self.readings)

    @property
    def spread(self) -> float:
        """``(highest - lowest) / highest`` over all readings (0 = identical)."""
        return (max(self.readings) - min(self.readings)) / max(self.readings)

    @property
    def stable(self) -> bool:
        """True when the two highest readings agree within ``tolerance``."""
        return _top_two_gap(self.readings) <= self.tolerance

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly dict: value, unit, readings, spread, stable, path."""
        return {
            "value": round(self.value, 2),
            "unit": self.unit,
            "readings": [round(r, 2) for r in self.readings],
            "spread": round(self.spread, 4),
            "stable": self.stable,
            "path": self.path,
        }


@dataclass
class Limits:
    """What :func:`measure_limits` found: one :class:`Probe` per precision (and ``"memory"``)."""

    threads: int
    probes: dict[str, Probe]
    load_before: float | None = None
    load_after: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        """True when the machine was busy before or after probing (see :func:`machine_busy`)."""
        return any(w.startswith("the machine is busy") for w in self.warnings)

    def peak(self, precision: Any) -> float:
        """The GEMM peak (GFLOP/s; GOP/s for int8) for a runner's ``precision``."""
        key = limit_key(precision)
        if key not in self.probes:
            raise KeyError(f"no {key} peak was measured; measured: {sorted(self.probes)}")
        return self.probes[key].value

    @property
    def bandwidth(self) -> float:
        """Memory read bandwidth in GB/s."""
        if "memory" not in self.probes:
            raise KeyError("memory bandwidth was not measured (bandwidth=False)")
        return self.probes["memory"].value

    def frame(self) -> Any:
        """One row per limit: value, unit, every reading, spread, stable, the instructions used."""
        import pandas as pd

        rows = [
            {
                "limit": "memory read" if key == "memory" else f"{key} GEMM peak",
                "value": round(p.value, 1),
                "unit": p.unit,
                "readings": ", ".join(f"{r:.0f}" if r >= 10 else f"{r:.2f}" for r in p.readings),
                "spread_pct": round(100 * p.spread, 1),
                "stable": p.stable,
                "hardware": p.path,
            }
            for key, p in self.probes.items()
        ]
        return pd.DataFrame(rows).set_index("limit")

    def kernels(self, precision: str) -> dict[str, float]:
        """The best reading per library (and kernel) for ``precision``, over all sizes, e.g.
        ``{"onnxruntime u8 x s8": 170.0, "onnxruntime u8 x u8": 90.0}`` for int8."""
        found: dict[str, float] = {}
        for backend, _, rate in self.probes[limit_key(precision)].details:
            found[backend] = max(rate, found.get(backend, 0.0))
        return found

    def summary(self) -> dict[str, Any]:
        """JSON-friendly: threads, load before/after, warnings and every probe's summary
        (what benchmark fingerprints carry as ``"limits"``)."""
        return {
            "threads": self.threads,
            "load_before": self.load_before,
            "load_after": self.load_after,
            "warnings": list(self.warnings),
            **{key: p.summary() for key, p in self.probes.items()},
        }


_LAST: dict[int, Limits] = {}


def last_limits(threads: int | None = None) -> Limits | None:
    """The most recent :func:`measure_limits` result in this process (for ``threads``, or any)."""
    if threads is not None:
        return _LAST.get(int(threads))
    return next(reversed(_LAST.values()), None) if _LAST else None


def measure_limits(
    threads: int | None = None,
    *,
    precisions: Sequence[str] = LIMIT_PRECISIONS,
    seconds: float = 0.4,
    bandwidth: bool = True,
    tolerance: float = 0.10,
    max_repeats: int = 5,
    megabytes: int = 256,
    warn: bool = True,
) -> Limits:
    """Measure this machine's limits at ``threads`` threads, robustly.

    For each of ``precisions`` (``"float32"``, ``"bfloat16"``, ``"int8"`` …) the GEMM peak probe
    of :func:`measure_gemm_peak` (``seconds`` per reading), and with ``bandwidth`` the memory
    read probe of :func:`measure_memory_bandwidth`, are repeated until their two highest
    readings agree within ``tolerance`` (at most ``max_repeats`` readings,
    :func:`repeat_until_stable`). Every reading is kept with its spread and the instructions
    that ran it (:func:`precision_hardware`). Warnings (also issued as ``UserWarning``): the
    machine was busy before or after (:func:`machine_busy`), or a probe's readings never agreed
    (``warn=False`` only records them in ``Limits.warnings``, e.g. for a notebook banner).

    The result is remembered (:func:`last_limits`) and its summary is added to the fingerprint
    of every later :func:`helpers.benchmark.benchmark` result.
    """
    threads = _threads(threads)
    load_before = _load_1min()
    notes = [w for w in (machine_busy(load_before),) if w]
    probes: dict[str, Probe] = {}
    for precision in precisions:
        dtype = limit_key(precision)
        sizes = _default_sizes(dtype)
        details: list[tuple[str, int, float]] = []

        def once(
            dtype: str = dtype, sizes: tuple[int, ...] = sizes, details: list = details
        ) -> float:
            value, detail = _gemm_probe(dtype, threads, seconds, sizes)
            details.extend(detail)
            return value

        readings = repeat_until_stable(once, tolerance=tolerance, max_repeats=max_repeats)
        hw = precision_hardware(dtype)
        best: dict[tuple[str, int], float] = {}
        for backend, n, rate in details:  # best reading per library and size
            best[(backend, n)] = max(rate, best.get((backend, n), 0.0))
        probes[dtype] = Probe(
            dtype,
            "GOP/s" if dtype == "int8" else "GFLOP/s",
            readings,
            tolerance,
            hw["path"],
            hw["native"],
            tuple((b, n, r) for (b, n), r in best.items()),
        )
    if bandwidth:
        readings = repeat_until_stable(
            lambda: _bandwidth_probe(seconds, megabytes, threads),
            tolerance=tolerance,
            max_repeats=max_repeats,
        )
        probes["memory"] = Probe("memory", "GB/s", readings, tolerance, "torch.sum over RAM")
    for key, probe in probes.items():
        if not probe.stable:
            notes.append(
                f"{key} probe: readings {', '.join(f'{r:.3g}' for r in probe.readings)} never "
                f"agreed within {tolerance:.0%}; its limit is uncertain"
            )
    load_after = _load_1min()
    after = machine_busy(load_after)
    if after and not any(n.startswith("the machine is busy") for n in notes):
        notes.append(after)
    for note in notes if warn else ():
        warnings.warn(note, UserWarning, stacklevel=2)
    limits = Limits(threads, probes, load_before, load_after, notes)
    _LAST.pop(threads, None)
    _LAST[threads] = limits
    return limits


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

    PyTorch's counter has no formula for the CPU's fused attention kernel
    (``_scaled_dot_product_flash_attention_for_cpu``, what ``scaled_dot_product_attention`` runs
    on a CPU); it is counted here with the same formula as the GPU kernels, so a transformer's
    attention products are not left out.

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
        counter = FlopCounterMode(display=False, custom_mapping=_uncounted_attention())
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


def _uncounted_attention() -> dict[Any, Any]:
    """Formulas for attention kernels ``torch.utils.flop_counter`` does not count (the CPU's)."""
    import torch
    from torch.utils.flop_counter import sdpa_flop_count

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None:  # pragma: no cover - an older or newer torch without this kernel
        return {}

    def flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
        return int(sdpa_flop_count(query_shape, key_shape, value_shape))

    return {op: flops}
