"""helpers.benchmark.measure_throughput: items/s with several requests in flight, on any runner."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from helpers.benchmark import ThroughputResult, measure_throughput, percentile, throughput_frame
from helpers.benchmark.throughput import QueueingRunner
from helpers.runners import InputError, Runner, TensorSpec
from helpers.runners.base import base_description


class SleepyRunner(Runner):
    """Sleeps ``delay`` seconds per call (releases the GIL) and counts the calls running at once."""

    runtime = "fake"

    def __init__(self, delay: float = 0.02) -> None:
        self.name, self.delay = "sleepy", delay
        self.inputs = [TensorSpec("x", (None, 4), "float32")]
        self.output_names = ["y"]
        self.calls, self.running, self.most_at_once = 0, 0, 0
        self._lock = threading.Lock()

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay)
        with self._lock:
            self.running -= 1
        return {"y": inputs["x"] * 2}

    def describe(self) -> dict[str, Any]:
        return base_description(self, threads={"intra_op": 1, "streams": 3})


class QueueRunner(SleepyRunner):
    """A runner that queues requests itself: ``run_many`` with fixed, known latencies."""

    num_requests = 4

    def run_many(self, batches: Sequence[Mapping[str, np.ndarray]], *, return_latencies: bool = False) -> Any:
        outputs = [self._run(b) for b in batches]
        latencies = np.arange(1, len(batches) + 1, dtype=float)
        return (outputs, latencies) if return_latencies else outputs


def feed(batch: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.ones((batch, 4), dtype=np.float32)}


def test_threads_keep_requests_in_flight_and_count_items() -> None:
    runner = SleepyRunner()
    result = measure_throughput(runner, feed(batch=3), requests=12, in_flight=4, warmup=2)
    assert isinstance(result, ThroughputResult) and result.method == "threads"
    assert runner.calls == 14 and runner.most_at_once == 4  # warm-up included, 4 at once
    assert result.batch_size == 3 and len(result.latencies_ms) == 12
    assert result.items_per_s == pytest.approx(12 * 3 / result.seconds)
    assert (result.latencies_ms >= runner.delay * 1e3 * 0.9).all()
    assert result.pct(50) == percentile(result.latencies_ms, 50)
    assert result.row()["streams"] == 3 and result.row()["latency_p99_ms"] == result.pct(99)


def test_a_queueing_runner_is_timed_through_run_many() -> None:
    runner = QueueRunner(delay=0.0)
    assert isinstance(runner, QueueingRunner) and not isinstance(SleepyRunner(), QueueingRunner)
    result = measure_throughput(runner, feed(), requests=5)
    assert result.method == "async" and result.in_flight == 4
    assert runner.calls == 8 + 5  # default warm-up: 2 × in_flight
    np.testing.assert_array_equal(result.latencies_ms, [1, 2, 3, 4, 5])
    assert result.pct(50) == 3.0
    forced = measure_throughput(runner, feed(), requests=5, method="threads", in_flight=2, warmup=0)
    assert forced.method == "threads" and forced.in_flight == 2
    table = throughput_frame([result, forced])
    assert list(table["method"]) == ["async", "threads"] and list(table["requests"]) == [5, 5]


def test_bad_arguments_are_refused_before_anything_runs() -> None:
    runner = SleepyRunner()
    with pytest.raises(ValueError, match="requests must be >= 1"):
        measure_throughput(runner, feed(), requests=0)
    with pytest.raises(ValueError, match="method must be"):
        measure_throughput(runner, feed(), method="fast")
    with pytest.raises(TypeError, match="queues requests itself"):
        measure_throughput(runner, feed(), method="async")
    with pytest.raises(ValueError, match="request count"):
        measure_throughput(QueueRunner(), feed(), in_flight=2)
    with pytest.raises(InputError):
        measure_throughput(runner, {"x": np.ones((1, 5), dtype=np.float32)})
    assert runner.calls == 0
