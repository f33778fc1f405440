"""Items per second with several requests in flight — the throughput timing loop.

:func:`benchmark` times one call after another (latency); :func:`measure_throughput` keeps
``in_flight`` requests going at once and reports items/s and the latency of each request, the
number a server or a batch job cares about. Two ways to keep requests in flight:

- ``"threads"``: ``runner.run`` from ``in_flight`` Python threads — works for every
  :class:`helpers.runners.Runner`, and is how a threaded server (FastAPI's thread pool) calls it;
- ``"async"``: the runner's own ``run_many(batches, return_latencies=True)``, for runners that
  queue requests themselves (:class:`helpers.openvino_tools.ThroughputRunner`, through an
  ``openvino.AsyncInferQueue``: ``in_flight`` is its ``num_requests``).

Percentiles are :func:`helpers.benchmark.percentile`, as for every other result.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from helpers.benchmark.timing import percentile
from helpers.runners import Runner, validate_inputs

__all__ = ["QueueingRunner", "ThroughputResult", "measure_throughput", "throughput_frame"]


@runtime_checkable
class QueueingRunner(Protocol):
    """A runner that keeps several requests in flight itself (``method="async"``)."""

    num_requests: int

    def run_many(self, batches: Sequence[Mapping[str, np.ndarray]], *, return_latencies: bool = False) -> Any:
        """Outputs for every input dict, in order; with ``return_latencies`` also ms per request."""


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
        return percentile(self.latencies_ms, q)

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

    ``runner``: a :class:`helpers.runners.Runner`. ``method``: ``"async"`` uses the runner's
    ``run_many`` (a :class:`QueueingRunner` such as
    :class:`helpers.openvino_tools.ThroughputRunner`: ``in_flight`` is its ``num_requests``);
    ``"threads"`` calls ``runner.run`` from ``in_flight`` Python threads (works for every
    runner — how a threaded server calls it); ``"auto"`` picks ``async`` for a
    :class:`QueueingRunner`, else ``threads``. ``warmup`` untimed requests go first (default:
    ``2 × in_flight``). The batch size is the first dimension of the first input.
    """
    if requests < 1:
        raise ValueError("measure_throughput: requests must be >= 1")
    queueing = runner if isinstance(runner, QueueingRunner) else None
    if method == "auto":
        method = "async" if queueing is not None else "threads"
    if method not in ("async", "threads"):
        raise ValueError(f"method must be 'auto', 'async' or 'threads', got {method!r}")
    if method == "async" and queueing is None:
        raise TypeError("method='async' needs a runner that queues requests itself (run_many and "
                        "num_requests), e.g. helpers.openvino_tools.openvino_throughput_runner")
    if method == "async" and queueing is not None:
        if in_flight is not None and in_flight != queueing.num_requests:
            raise ValueError(f"with method='async' in_flight is the runner's request count "
                             f"({queueing.num_requests}); pass num_requests to the factory")
        in_flight = queueing.num_requests
    in_flight = max(1, int(in_flight or 1))
    warmup = 2 * in_flight if warmup is None else warmup
    validate_inputs(runner.inputs, inputs)
    counts = {"requests": requests, "in_flight": in_flight, "warmup": warmup}
    # thread_scope: e.g. PyTorch's process-wide thread count, set once for the measurement
    with getattr(runner, "thread_scope", contextlib.nullcontext)():
        if method == "async" and queueing is not None:
            seconds, latencies = _timed_async(queueing, inputs, **counts)
        else:
            seconds, latencies = _timed_threads(runner, inputs, **counts)
    return ThroughputResult(
        label=label or str(getattr(runner, "name", type(runner).__name__)),
        requests=requests, batch_size=_batch_of(inputs), in_flight=in_flight, seconds=seconds,
        latencies_ms=np.asarray(latencies, dtype=float), method=method,
        runner_info=dict(runner.describe()),
    )


def _timed_async(runner: QueueingRunner, inputs: Mapping[str, np.ndarray], *, requests: int,
                 in_flight: int, warmup: int) -> tuple[float, np.ndarray]:
    """Wall seconds and per-request latencies (ms) of ``requests`` calls through ``run_many``."""
    if warmup:
        runner.run_many([inputs] * warmup)
    t0 = time.perf_counter()
    _, latencies = runner.run_many([inputs] * requests, return_latencies=True)
    return time.perf_counter() - t0, np.asarray(latencies)


def _timed_threads(runner: Runner, inputs: Mapping[str, np.ndarray], *, requests: int,
                   in_flight: int, warmup: int) -> tuple[float, np.ndarray]:
    """Wall seconds and per-call latencies (ms) of ``requests`` calls from ``in_flight`` threads."""
    def timed(_: int) -> float:
        start = time.perf_counter_ns()
        runner.run(inputs)
        return (time.perf_counter_ns() - start) / 1e6

    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="throughput") as pool:
        list(pool.map(timed, range(warmup)))
        t0 = time.perf_counter()
        latencies = np.asarray(list(pool.map(timed, range(requests))))
        return time.perf_counter() - t0, latencies


def throughput_frame(results: Sequence[ThroughputResult]) -> pd.DataFrame:
    """One row per :class:`ThroughputResult` (see :meth:`ThroughputResult.row`)."""
    return pd.DataFrame([r.row() for r in results])
