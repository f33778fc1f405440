"""OpenVINO beyond one request: throughput mode, compile caching, ``benchmark_app`` and ``AUTO``.

:func:`helpers.runners.openvino_runner` compiles for **latency**: one infer request behind a
lock, every call uses all the threads. A server or a batch job wants **throughput** instead:
``PERFORMANCE_HINT=THROUGHPUT`` splits the cores into several *streams*, each running its own
infer request, so several inputs are in flight at once. This module makes that reachable:

- :func:`openvino_throughput_runner` → a :class:`ThroughputRunner` (a
  :class:`helpers.runners.Runner`): a pool of infer requests, one per in-flight call, so
  :meth:`~ThroughputRunner.run` is thread-safe and concurrent calls (FastAPI's thread pool, a
  load test) run in parallel on the streams; :meth:`~ThroughputRunner.run_many` pushes a list of
  inputs through an ``openvino.AsyncInferQueue`` without any Python threads.
- :func:`measure_throughput` → items/s with several requests in flight, for this runner (via
  ``AsyncInferQueue``) or any other runner (via a thread pool), next to
  :func:`helpers.benchmark.benchmark`'s batch-1 latency.
- :func:`compiled_settings` reads back what OpenVINO chose (streams, threads, infer requests,
  precision, devices) with ``get_property``.
- :func:`timed_compile`, :func:`cache_experiment`, :func:`corrupt_cache`: the compiled-model
  cache (``CACHE_DIR``) — first vs later ``compile_model`` time, and that a damaged cache file is
  recompiled and rewritten rather than trusted.
- :func:`run_benchmark_app` runs OpenVINO's own ``benchmark_app`` (it ships in the ``openvino``
  wheel) and parses its JSON report and log into a :class:`BenchmarkAppResult`.
- :func:`auto_device_report`: what the ``AUTO`` device picked, and whether a GPU was there.
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.display import banner
from helpers.runners import (
    ProviderFallbackWarning,
    ProviderUnavailableError,
    Runner,
    TensorSpec,
    ov_dtype_name,
    ov_port_name,
    validate_inputs,
)

__all__ = [
    "BenchmarkAppResult",
    "CompileRecord",
    "ThroughputResult",
    "ThroughputRunner",
    "auto_device_report",
    "benchmark_app_command",
    "cache_experiment",
    "cache_files",
    "compiled_settings",
    "corrupt_cache",
    "measure_throughput",
    "openvino_throughput_runner",
    "run_benchmark_app",
    "throughput_frame",
    "timed_compile",
]

#: Properties of a compiled model worth reading back (those the device supports are returned).
SETTINGS = (
    "PERFORMANCE_HINT",
    "NUM_STREAMS",
    "INFERENCE_NUM_THREADS",
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
    "INFERENCE_PRECISION_HINT",
    "EXECUTION_DEVICES",
    "ENABLE_CPU_PINNING",
    "ENABLE_HYPER_THREADING",
    "LOADED_FROM_CACHE",
)
_VIRTUAL_DEVICES = {"AUTO", "MULTI", "HETERO", "BATCH"}
_PRECISIONS = {"f32": "f32", "fp32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16",
               "f16": "f16", "fp16": "f16", "float16": "f16"}


def _plain(value: Any) -> Any:
    """An OpenVINO property value as a plain Python value (Type → ``"f32"``, enums → names)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    type_name = getattr(value, "get_type_name", None)
    if callable(type_name):
        return type_name()
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(value)


def compiled_settings(compiled: Any, keys: Sequence[str] = SETTINGS) -> dict[str, Any]:
    """``{property: value}`` read back from a compiled model with ``get_property``.

    Properties the compiled model does not have are left out (an ``AUTO`` model has no
    ``NUM_STREAMS``, for example); values are plain Python (``"f32"``, ``["CPU"]``).
    """
    out: dict[str, Any] = {}
    for key in keys:
        try:
            out[key] = _plain(compiled.get_property(key))
        except Exception:  # the property does not exist for this device
            continue
    return out


def _port_name(port: Any, fallback: str) -> str:
    return ov_port_name(port) or fallback


def _port_spec(port: Any, fallback: str) -> TensorSpec:
    shape = tuple(None if d.is_dynamic else d.get_length() for d in port.get_partial_shape())
    return TensorSpec(_port_name(port, fallback), shape, ov_dtype_name(port.get_element_type()))


# --------------------------------------------------------------------------------------------
# The throughput runner
# --------------------------------------------------------------------------------------------


class ThroughputRunner(Runner):
    """An OpenVINO compiled model with a **pool** of infer requests (throughput mode).

    Made by :func:`openvino_throughput_runner`. ``run`` (and calling the runner) takes an idle
    infer request from the pool, runs it and puts it back: safe from any number of threads, and
    up to :attr:`num_requests` calls run at the same time, one per stream. ``run_many`` sends a
    list of inputs through an ``openvino.AsyncInferQueue`` (no Python threads; callbacks collect
    the outputs) and is what :func:`measure_throughput` uses. Outputs are copies, never views of
    a request's buffers that the next call would overwrite.
    """

    runtime = "openvino"

    def __init__(
        self,
        core: Any,
        compiled: Any,
        *,
        name: str,
        device_requested: str,
        artifact: str,
        num_requests: int | None,
        config: Mapping[str, Any],
        cache_dir: str | None,
        fallback: str | None,
    ) -> None:
        self.core = core
        self.compiled = compiled
        self.name = name
        self.device_requested = device_requested
        self.artifact = artifact
        self.config = dict(config)
        self.cache_dir = cache_dir
        self.fallback = fallback
        self.settings = compiled_settings(compiled)
        optimal = int(self.settings.get("OPTIMAL_NUMBER_OF_INFER_REQUESTS") or 1)
        self.num_requests = int(num_requests) if num_requests else optimal
        if self.num_requests < 1:
            raise ValueError(f"num_requests must be >= 1, got {num_requests}")
        self.inputs = [_port_spec(p, f"input_{i}") for i, p in enumerate(compiled.inputs)]
        self.output_specs = [_port_spec(p, f"output_{i}") for i, p in enumerate(compiled.outputs)]
        self.output_names = [spec.name for spec in self.output_specs]
        self.precision = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}.get(
            str(self.settings.get("INFERENCE_PRECISION_HINT", "f32")), "float32"
        )
        self._pool: queue.Queue[Any] = queue.Queue()
        for _ in range(self.num_requests):
            self._pool.put(compiled.create_infer_request())
        self._async_lock = threading.Lock()  # one run_many at a time owns the AsyncInferQueue
        self._async_queue: Any = None

    # -- one call ----------------------------------------------------------------------------
    def _feed(self, inputs: Mapping[str, np.ndarray]) -> dict[int, np.ndarray]:
        return {i: inputs[spec.name] for i, spec in enumerate(self.inputs)}

    def _outputs(self, request: Any) -> dict[str, np.ndarray]:
        return {
            name: np.array(request.get_output_tensor(i).data, copy=True)
            for i, name in enumerate(self.output_names)
        }

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = self._pool.get()  # blocks while every request is busy
        try:
            request.infer(self._feed(inputs))
            return self._outputs(request)
        finally:
            self._pool.put(request)

    # -- many calls --------------------------------------------------------------------------
    def run_many(
        self, batches: Sequence[Mapping[str, np.ndarray]], *, return_latencies: bool = False
    ) -> Any:
        """Run every input dict in ``batches`` through an ``AsyncInferQueue``; outputs in order.

        All inputs are validated first (an :class:`~helpers.runners.InputError` names the
        offending index). Up to :attr:`num_requests` run at once. With ``return_latencies=True``
        returns ``(outputs, latencies_ms)``, each latency measured from ``start_async`` to the
        completion callback (so it includes waiting for a free stream).
        """
        import openvino as ov

        for index, item in enumerate(batches):
            try:
                validate_inputs(self.inputs, item)
            except ValueError as error:
                raise type(error)(f"batches[{index}]: {error}") from None
        results: list[dict[str, np.ndarray] | None] = [None] * len(batches)
        errors: list[BaseException] = []
        started = [0] * len(batches)
        finished = [0] * len(batches)

        def done(request: Any, index: int) -> None:
            # Never raise here: an exception in a callback poisons the AsyncInferQueue.
            finished[index] = time.perf_counter_ns()
            try:
                results[index] = self._outputs(request)
            except BaseException as error:  # pragma: no cover - copying outputs does not fail
                errors.append(error)

        with self._async_lock:
            if self._async_queue is None:
                self._async_queue = ov.AsyncInferQueue(self.compiled, self.num_requests)
            infer_queue = self._async_queue
            infer_queue.set_callback(done)
            try:
                for index, item in enumerate(batches):
                    started[index] = time.perf_counter_ns()
                    infer_queue.start_async(self._feed(item), index)
                infer_queue.wait_all()
            except Exception as error:
                self._async_queue = None  # an AsyncInferQueue that failed once keeps failing
                raise RuntimeError(f"OpenVINO async inference failed: {error}") from error
        missing = [i for i, r in enumerate(results) if r is None]
        if errors or missing:
            self._async_queue = None
            raise RuntimeError(f"OpenVINO async inference produced no output for requests "
                               f"{missing[:5]}: {errors[:1]}")
        outputs = [r for r in results if r is not None]
        if return_latencies:
            latencies = (np.asarray(finished) - np.asarray(started)) / 1e6
            return outputs, latencies
        return outputs

    def describe(self) -> dict[str, Any]:
        import openvino as ov

        actual = self.settings.get("EXECUTION_DEVICES")
        device_name = None
        with contextlib.suppress(Exception):
            first = (actual or [self.device_requested])[0]
            device_name = self.core.get_property(first.split(".")[0], "FULL_DEVICE_NAME")
        return {
            "name": self.name,
            "runtime": self.runtime,
            "version": ov.get_version(),
            "device": ", ".join(actual) if actual else self.device_requested,
            "device_requested": self.device_requested,
            "device_name": device_name,
            "providers_requested": [self.device_requested],
            "providers_actual": actual,
            "threads": {
                "intra_op": self.settings.get("INFERENCE_NUM_THREADS"),
                "streams": self.settings.get("NUM_STREAMS"),
            },
            "artifact": self.artifact,
            "precision": self.precision,
            "inputs": self.signature(),
            "outputs": ", ".join(self.output_names),
            "performance_hint": self.settings.get("PERFORMANCE_HINT"),
            "infer_requests": self.num_requests,
            "optimal_infer_requests": self.settings.get("OPTIMAL_NUMBER_OF_INFER_REQUESTS"),
            "config": dict(self.config),
            "cache_dir": self.cache_dir,
            "loaded_from_cache": self.settings.get("LOADED_FROM_CACHE"),
            "fallback": self.fallback,
        }


def _check_device(core: Any, device: str, strict: bool) -> tuple[str, str | None]:
    available = list(core.available_devices)
    base = device.split(":")[0].split(".")[0].upper()
    if base in _VIRTUAL_DEVICES or any(d.split(".")[0] == base for d in available):
        return device, None
    message = f"OpenVINO device {device!r} was requested but this machine has {available}"
    if strict:
        raise ProviderUnavailableError(f"{message}; strict=True, so nothing was compiled.")
    message += "; compiling for 'CPU' instead."
    warnings.warn(message, ProviderFallbackWarning, stacklevel=3)
    banner(f"OpenVINO: {device} unavailable, running on CPU", message, kind="warning")
    return "CPU", f"{device} not available (devices: {available}); compiled for CPU"


def openvino_throughput_runner(
    model: str | Path | Any,
    *,
    device: str = "CPU",
    hint: str = "THROUGHPUT",
    streams: int | str | None = None,
    threads: int | None = None,
    num_requests: int | None = None,
    precision: str | None = None,
    cache_dir: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    name: str | None = None,
    strict: bool = False,
) -> ThroughputRunner:
    """Compile ``model`` for throughput and return a :class:`ThroughputRunner`.

    ``model``: an ``.onnx`` or ``.xml`` path (compiled straight from the file, which lets a warm
    ``cache_dir`` skip reading the model) or an ``ov.Model``. ``hint`` is ``PERFORMANCE_HINT``
    (``"THROUGHPUT"``; ``"LATENCY"`` gives one stream — the same pool then just queues);
    ``streams`` sets ``NUM_STREAMS`` (an int or ``"AUTO"``; ``None`` lets the hint decide),
    ``threads`` ``INFERENCE_NUM_THREADS``, ``precision`` ``INFERENCE_PRECISION_HINT`` (``"f32"``,
    ``"bf16"``, ``"f16"``), ``config`` any further properties. ``num_requests`` is the size of
    the request pool (default: the compiled model's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``).
    ``cache_dir`` (created if missing) turns on the compiled-model cache. A device this machine
    lacks warns with :class:`~helpers.runners.ProviderFallbackWarning` and compiles for CPU
    (``strict=True`` raises :class:`~helpers.runners.ProviderUnavailableError`).
    """
    import openvino as ov

    core = ov.Core()
    device, fallback = _check_device(core, device, strict)
    settings: dict[str, Any] = {"PERFORMANCE_HINT": hint.upper()}
    if streams is not None:
        settings["NUM_STREAMS"] = streams if isinstance(streams, str) else int(streams)
    if threads is not None:
        settings["INFERENCE_NUM_THREADS"] = int(threads)
    if precision is not None:
        if precision.lower() not in _PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(_PRECISIONS)}, got {precision!r}")
        settings["INFERENCE_PRECISION_HINT"] = _PRECISIONS[precision.lower()]
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        settings["CACHE_DIR"] = str(cache_dir)
    settings.update(config or {})
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"no model file at {path}")
        source: Any = str(path)
        artifact = str(path)
    elif isinstance(model, ov.Model):
        source, artifact = model, "ov.Model"
    else:
        raise TypeError(f"model must be a path or an openvino.Model, got {type(model).__name__}")
    compiled = core.compile_model(source, device, settings)
    runner = ThroughputRunner(
        core, compiled, name=name or "", device_requested=device, artifact=artifact,
        num_requests=num_requests, config=settings, cache_dir=str(cache_dir) if cache_dir else None,
        fallback=fallback,
    )
    if not name:
        streams_used = runner.settings.get("NUM_STREAMS")
        runner.name = f"OpenVINO {device} {hint.lower()}" + (
            f" ({streams_used} streams, {runner.num_requests} requests)" if streams_used else ""
        )
    return runner


# --------------------------------------------------------------------------------------------
# Throughput measurement
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class ThroughputResult:
    """Items/s with ``in_flight`` requests at once, and the latency of each request.

    ``seconds`` is the wall time from the first request sent to the last answer; ``items_per_s``
    is ``requests × batch_size / seconds``. ``latencies_ms`` are per request (send → answer, so
    they include waiting for a free stream or thread).
    """

    label: str
    requests: int
    batch_size: int
    in_flight: int
    seconds: float
    latencies_ms: np.ndarray
    method: str
    runner_info: dict = field(default_factory=dict)

    @property
    def items_per_s(self) -> float:
        """Items processed per second of wall time."""
        return self.requests * self.batch_size / self.seconds if self.seconds > 0 else math.nan

    def pct(self, q: float) -> float:
        """A latency percentile in ms."""
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else math.nan

    def row(self) -> dict[str, Any]:
        """One table row: label, in-flight requests, items/s, latency percentiles."""
        threads = self.runner_info.get("threads") or {}
        return {
            "runner": self.label,
            "method": self.method,
            "in_flight": self.in_flight,
            "streams": threads.get("streams") if isinstance(threads, Mapping) else None,
            "batch": self.batch_size,
            "requests": self.requests,
            "items_per_s": self.items_per_s,
            "latency_p50_ms": self.pct(50),
            "latency_p90_ms": self.pct(90),
            "latency_p99_ms": self.pct(99),
            "seconds": self.seconds,
        }

    def __repr__(self) -> str:
        return (f"ThroughputResult({self.label!r}: {self.items_per_s:.1f} items/s with "
                f"{self.in_flight} in flight, p50 {self.pct(50):.2f} ms, {self.requests} requests)")


def _batch_of(inputs: Mapping[str, np.ndarray]) -> int:
    first = next(iter(inputs.values()), None)
    return int(first.shape[0]) if isinstance(first, np.ndarray) and first.ndim else 1


def measure_throughput(
    runner: Runner,
    inputs: Mapping[str, np.ndarray],
    *,
    requests: int = 64,
    in_flight: int | None = None,
    warmup: int | None = None,
    label: str | None = None,
    method: str = "auto",
) -> ThroughputResult:
    """Send ``requests`` copies of ``inputs`` with ``in_flight`` at once; measure items/s.

    ``method``: ``"async"`` uses :meth:`ThroughputRunner.run_many` (an ``AsyncInferQueue``:
    ``in_flight`` is the runner's request count); ``"threads"`` calls ``runner.run`` from
    ``in_flight`` Python threads (works for every runner — how a threaded server calls it);
    ``"auto"`` picks ``async`` for a :class:`ThroughputRunner`, else ``threads``. ``warmup``
    untimed requests go first (default: ``2 × in_flight``). The batch size is the first
    dimension of the first input.
    """
    if requests < 1:
        raise ValueError("measure_throughput: requests must be >= 1")
    if method == "auto":
        method = "async" if isinstance(runner, ThroughputRunner) else "threads"
    if method not in ("async", "threads"):
        raise ValueError(f"method must be 'auto', 'async' or 'threads', got {method!r}")
    if method == "async" and not isinstance(runner, ThroughputRunner):
        raise TypeError("method='async' needs a ThroughputRunner (openvino_throughput_runner)")
    if method == "async":
        if in_flight is not None and in_flight != runner.num_requests:
            raise ValueError(f"with method='async' in_flight is the runner's request count "
                             f"({runner.num_requests}); pass num_requests to the factory")
        in_flight = runner.num_requests
    in_flight = max(1, int(in_flight or 1))
    warmup = 2 * in_flight if warmup is None else warmup
    validate_inputs(runner.inputs, inputs)
    if method == "async":
        assert isinstance(runner, ThroughputRunner)
        if warmup:
            runner.run_many([inputs] * warmup)
        t0 = time.perf_counter()
        _, latencies = runner.run_many([inputs] * requests, return_latencies=True)
        seconds = time.perf_counter() - t0
    else:
        def timed(_: int) -> float:
            start = time.perf_counter_ns()
            runner.run(inputs)
            return (time.perf_counter_ns() - start) / 1e6

        with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="throughput") as pool:
            list(pool.map(timed, range(warmup)))
            t0 = time.perf_counter()
            latencies = np.asarray(list(pool.map(timed, range(requests))))
            seconds = time.perf_counter() - t0
    return ThroughputResult(
        label=label or getattr(runner, "name", type(runner).__name__),
        requests=requests, batch_size=_batch_of(inputs), in_flight=in_flight, seconds=seconds,
        latencies_ms=np.asarray(latencies, dtype=float), method=method,
        runner_info=dict(runner.describe()),
    )


def throughput_frame(results: Sequence[ThroughputResult]) -> pd.DataFrame:
    """One row per :class:`ThroughputResult` (see :meth:`ThroughputResult.row`)."""
    return pd.DataFrame([r.row() for r in results])


# --------------------------------------------------------------------------------------------
# Compile caching
# --------------------------------------------------------------------------------------------


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
            request.infer({i: reference_inputs[_port_name(p, f"input_{i}")]
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


# --------------------------------------------------------------------------------------------
# benchmark_app
# --------------------------------------------------------------------------------------------


def _benchmark_app_executable() -> list[str]:
    beside = Path(sys.executable).parent / "benchmark_app"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("benchmark_app")
    if found:
        return [found]
    return [sys.executable, "-c", "from openvino.tools.benchmark.main import main; main()"]


def benchmark_app_command(
    model_path: str | Path,
    *,
    device: str = "CPU",
    hint: str = "latency",
    seconds: float = 5.0,
    data_shape: str | None = None,
    input_precision: str | None = "f32",
    requests: int | None = None,
    streams: int | None = None,
    threads: int | None = None,
    inference_only: bool = True,
    cache_dir: str | Path | None = None,
    report_folder: str | Path | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``benchmark_app`` command line for these settings (a list for ``subprocess``).

    ``data_shape`` (e.g. ``"[1,3,224,224]"``) is needed for a model with dynamic dimensions.
    ``input_precision`` defaults to ``"f32"``: without ``-ip``, benchmark_app feeds a 4-D input
    as ``u8`` images and adds a conversion to the graph it times. ``inference_only`` keeps
    filling the inputs out of the timed loop (the default for static models; for a dynamic model
    it needs a single ``data_shape``). ``report_folder`` adds ``-report_folder ... -json_stats``.
    """
    cmd = [*_benchmark_app_executable(), "-m", str(model_path), "-d", device, "-hint", hint,
           "-t", f"{seconds:g}"]
    if data_shape:
        cmd += ["-data_shape", data_shape]
    if input_precision:
        cmd += ["-ip", input_precision]
    if requests is not None:
        cmd += ["-nireq", str(int(requests))]
    if streams is not None:
        cmd += ["-nstreams", str(int(streams))]
    if threads is not None:
        cmd += ["-nthreads", str(int(threads))]
    if inference_only:
        cmd += ["-inference_only"]
    if cache_dir is not None:
        cmd += ["-cdir", str(cache_dir)]
    if report_folder is not None:
        cmd += ["-report_type", "no_counters", "-report_folder", str(report_folder), "-json_stats"]
    return cmd + list(extra)


@dataclass
class BenchmarkAppResult:
    """What ``benchmark_app`` reported: its JSON statistics, the settings it read back, its log."""

    command: list[str]
    returncode: int
    log: str
    configuration: dict[str, Any]
    execution: dict[str, Any]
    settings: dict[str, str]
    mode: str

    def _number(self, key: str) -> float:
        try:
            return float(self.execution[key])
        except (KeyError, TypeError, ValueError):
            return math.nan

    @property
    def requests(self) -> int:
        """Infer requests kept in flight."""
        return int(self.configuration.get("number of parallel infer requests", 0) or 0)

    @property
    def api(self) -> str:
        """``sync`` (one request at a time) or ``async``."""
        return str(self.configuration.get("API", ""))

    @property
    def latency_median_ms(self) -> float:
        """Median latency of one request (ms)."""
        return self._number("latency (ms)")

    @property
    def throughput(self) -> float:
        """Items per second (``iterations × batch / duration``)."""
        return self._number("throughput")

    def row(self) -> dict[str, Any]:
        """One table row in the same columns as :meth:`ThroughputResult.row` (where they exist)."""
        return {
            "runner": f"benchmark_app -hint {self.settings.get('PERFORMANCE_HINT', '?').lower()}",
            "method": f"benchmark_app ({self.api})",
            "in_flight": self.requests,
            "streams": _int_or_none(self.settings.get("NUM_STREAMS")),
            "batch": int(self.configuration.get("batch size", 1) or 1),
            "requests": int(self._number("total number of iterations")),
            "items_per_s": self.throughput,
            "latency_p50_ms": self.latency_median_ms,
            "latency_min_ms": self._number("min latency"),
            "latency_max_ms": self._number("max latency"),
            "seconds": self._number("total execution time (ms)") / 1e3,
            "compile_ms": self._number("compile model time (ms)"),
            "mode": self.mode,
        }


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _parse_settings(log: str) -> dict[str, str]:
    """The ``[ INFO ]   KEY: VALUE`` lines of benchmark_app's step 8 (the compiled model's properties)."""
    settings: dict[str, str] = {}
    in_step = False
    for line in log.splitlines():
        if line.startswith("[Step "):
            in_step = "Querying optimal runtime parameters" in line
            continue
        if in_step and line.startswith("[ INFO ]   ") and ": " in line:
            key, _, value = line[len("[ INFO ]   "):].partition(": ")
            if key.isupper():
                settings[key.strip()] = value.strip()
    return settings


def run_benchmark_app(
    model_path: str | Path,
    report_folder: str | Path,
    *,
    timeout_s: float = 300.0,
    **options: Any,
) -> BenchmarkAppResult:
    """Run ``benchmark_app`` (options as for :func:`benchmark_app_command`) and parse its report.

    The JSON statistics land in ``report_folder`` (created, any old report replaced). Raises
    ``RuntimeError`` with the end of its log if it fails, ``subprocess.TimeoutExpired`` after
    ``timeout_s``.
    """
    folder = Path(report_folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "benchmark_report.json"
    report.unlink(missing_ok=True)
    cmd = benchmark_app_command(model_path, report_folder=folder, **options)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    log = done.stdout + done.stderr
    if done.returncode != 0 or not report.is_file():
        tail = "\n".join(log.strip().splitlines()[-12:])
        raise RuntimeError(f"benchmark_app failed (exit {done.returncode}):\n{tail}")
    stats = json.loads(report.read_text())
    mode = "inference only" if "inference only mode" in log else "full (input filling timed)"
    return BenchmarkAppResult(
        command=cmd, returncode=done.returncode, log=log,
        configuration=stats.get("configuration_setup", {}),
        execution=stats.get("execution_results", {}),
        settings=_parse_settings(log), mode=mode,
    )


# --------------------------------------------------------------------------------------------
# AUTO
# --------------------------------------------------------------------------------------------


def auto_device_report(
    model: str | Path | Any,
    *,
    hint: str = "LATENCY",
    config: Mapping[str, Any] | None = None,
    core: Any = None,
) -> dict[str, Any]:
    """Compile ``model`` for ``AUTO`` and report what it picked and what it could choose from.

    Keys: ``available_devices``, ``device_names`` (``FULL_DEVICE_NAME`` of each), ``gpu_present``
    (an OpenVINO ``GPU`` device is listed), ``priorities`` (``MULTI_DEVICE_PRIORITIES``: AUTO's
    candidates, best first), ``execution_devices`` (what the compiled model runs on),
    ``performance_hint``, ``compile_s`` and ``compiled`` (the compiled model). ``config`` adds
    properties that AUTO passes on to the device it picks (e.g. ``INFERENCE_PRECISION_HINT``).
    ``AUTO`` prefers a GPU; without one it compiles for
    the CPU. (With a GPU and the LATENCY hint it may start on the CPU while the GPU compiles —
    ``EXECUTION_DEVICES`` then lists both.)
    """
    import openvino as ov

    core = core or ov.Core()
    available = list(core.available_devices)
    names = {}
    for dev in available:
        with contextlib.suppress(Exception):
            names[dev] = core.get_property(dev, "FULL_DEVICE_NAME")
    source = str(model) if isinstance(model, (str, Path)) else model
    t0 = time.perf_counter()
    compiled = core.compile_model(source, "AUTO", {"PERFORMANCE_HINT": hint.upper(), **(config or {})})
    seconds = time.perf_counter() - t0
    settings = compiled_settings(compiled, ("EXECUTION_DEVICES", "PERFORMANCE_HINT",
                                            "MULTI_DEVICE_PRIORITIES"))
    return {
        "available_devices": available,
        "device_names": names,
        "gpu_present": any(d.split(".")[0] == "GPU" for d in available),
        "priorities": settings.get("MULTI_DEVICE_PRIORITIES"),
        "execution_devices": settings.get("EXECUTION_DEVICES"),
        "performance_hint": settings.get("PERFORMANCE_HINT"),
        "compile_s": seconds,
        "compiled": compiled,
    }
