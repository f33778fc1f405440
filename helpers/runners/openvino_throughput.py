"""OpenVINO in throughput mode: a thread-safe runner with a pool of infer requests.

:func:`helpers.runners.openvino_runner` compiles for **latency**: one infer request behind a
lock, every call uses all the threads. :func:`openvino_throughput_runner` compiles with
``PERFORMANCE_HINT=THROUGHPUT`` (several *streams*) and returns a :class:`ThroughputRunner`:
``run`` takes an idle request from a pool (safe from any number of threads, one call per
stream at a time), ``run_many`` pushes a list of inputs through an ``openvino.AsyncInferQueue``.
:func:`compiled_settings` reads back what OpenVINO chose with ``get_property``.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
    "SETTINGS",
    "ThroughputRunner",
    "compiled_settings",
    "openvino_throughput_runner",
    "port_name",
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


def port_name(port: Any, fallback: str) -> str:
    """The port's tensor name, or ``fallback`` when it has none."""
    return ov_port_name(port) or fallback


def _port_spec(port: Any, fallback: str) -> TensorSpec:
    shape = tuple(None if d.is_dynamic else d.get_length() for d in port.get_partial_shape())
    return TensorSpec(port_name(port, fallback), shape, ov_dtype_name(port.get_element_type()))




class ThroughputRunner(Runner):
    """An OpenVINO compiled model with a **pool** of infer requests (throughput mode).

    Made by :func:`openvino_throughput_runner`. ``run`` (and calling the runner) takes an idle
    infer request from the pool, runs it and puts it back: safe from any number of threads, and
    up to :attr:`num_requests` calls run at the same time, one per stream. ``run_many`` sends a
    list of inputs through an ``openvino.AsyncInferQueue`` (no Python threads; callbacks collect
    the outputs) and is what :func:`helpers.benchmark.measure_throughput` uses. Outputs are
    copies, never views of a request's buffers that the next call would overwrite.
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
