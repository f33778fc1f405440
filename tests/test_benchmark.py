"""Tests for helpers.benchmark: counting, statistics, tables and charts (no timing goals)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.benchmark import (
    BenchmarkResult,
    Workload,
    benchmark,
    best_of,
    compare,
    interleaved,
    percentile,
    plot_latencies,
    results_frame,
)
from helpers.benchmark import limits as limits_module
from helpers.benchmark import timing as timing_module


class Counter:
    """A callable that counts how often it is called."""

    def __init__(self, sleep: float = 0.0) -> None:
        self.calls = 0
        self.sleep = sleep
        self.__name__ = "counter"

    def __call__(self, *args: Any) -> None:
        self.calls += 1
        if self.sleep:
            time.sleep(self.sleep)


class FakeClock:
    """Stands in for the ``time`` module: it moves only when a fake call says how long it took."""

    def __init__(self) -> None:
        self.ns = 10**12

    def perf_counter_ns(self) -> int:
        return self.ns

    def perf_counter(self) -> float:
        return self.ns / 1e9

    def calls(self, *durations_ms: float) -> Any:
        """A callable that takes ``durations_ms[i]`` milliseconds on its i-th call."""
        it = iter(durations_ms)

        def call(*args: Any) -> None:
            self.ns += round(next(it) * 1e6)

        call.__name__ = "timed"
        return call


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """Every timing loop (helpers.benchmark.timing and best_of in .limits) reads this clock."""
    fake = FakeClock()
    monkeypatch.setattr(timing_module, "time", fake)
    monkeypatch.setattr(limits_module, "time", fake)
    return fake


class DuckRunner:
    """Implements the Runner protocol the benchmark relies on (run + describe)."""

    name = "duck"

    def __init__(self) -> None:
        self.model = torch.nn.Linear(4, 2).eval()
        self.seen: list[Any] = []

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.seen.append(inputs)
        with torch.inference_mode():
            return {"y": self.model(torch.from_numpy(inputs["x"])).numpy()}

    def describe(self) -> dict[str, Any]:
        return {"name": "Duck runner", "runtime": "pytorch", "threads": {"intra": 1, "inter": 1}}


def test_warmup_and_runs_are_counted() -> None:
    fn = Counter()
    result = benchmark(fn, warmup=3, runs=10, progress=False)
    assert fn.calls == 13
    assert result.runs == 10 == len(result.latencies_ms)
    assert result.label == "counter"
    assert np.all(result.latencies_ms >= 0)


def test_max_seconds_stops_early_but_min_runs_is_respected(clock) -> None:
    # 3 ms calls against a 10 ms budget: the loop starts calls at 0, 3, 6 and 9 ms -> 4 runs
    result = benchmark(clock.calls(*[3] * 100), warmup=0, runs=100, max_seconds=0.01, min_runs=2, progress=False)
    assert result.runs == 4 and list(result.latencies_ms) == [3.0] * 4
    # min_runs wins over the budget: 6 runs although the budget ends after the 4th
    result = benchmark(clock.calls(*[3] * 100), warmup=0, runs=100, max_seconds=0.01, min_runs=6, progress=False)
    assert result.runs == 6


def test_a_budget_shorter_than_one_call_still_gives_min_runs() -> None:
    fn = Counter(sleep=0.002)  # the real clock
    result = benchmark(fn, warmup=0, runs=100, max_seconds=1e-9, min_runs=4, progress=False)
    assert result.runs == 4 and fn.calls == 4
    # runs caps min_runs
    result = benchmark(Counter(), warmup=0, runs=3, max_seconds=1e-9, min_runs=10, progress=False)
    assert result.runs == 3


def test_sleep_latency_is_at_least_the_sleep() -> None:
    result = benchmark(lambda: time.sleep(0.002), warmup=1, runs=5, progress=False)
    assert result.p50 >= 2.0  # sleep never returns early; no upper bound asserted (shared CPU)
    assert result.p50 <= result.p90 <= result.p99


def test_timed_calls_give_hand_computed_statistics(clock) -> None:
    """Warm-up calls of 100 and 50 ms are not timed; ten calls of 1..10 ms (shuffled) are.
    Linear interpolation on the sorted 1..10: p50 at rank 4.5 -> 5.5, p90 at rank 8.1 -> 9.1,
    p99 at rank 8.91 -> 9.91; mean 5.5; population std sqrt(38.5 - 5.5²) = sqrt(8.25);
    batch 4 at 5.5 ms -> 4000 / 5.5 items per second."""
    fn = clock.calls(100, 50, 4, 1, 3, 2, 10, 5, 6, 8, 7, 9)
    result = benchmark(fn, warmup=2, runs=10, batch_size=4, progress=False)
    assert list(result.latencies_ms) == [4.0, 1.0, 3.0, 2.0, 10.0, 5.0, 6.0, 8.0, 7.0, 9.0]
    assert result.p50 == pytest.approx(5.5)
    assert result.p90 == pytest.approx(9.1)
    assert result.p99 == pytest.approx(9.91)
    assert result.mean == pytest.approx(5.5)
    assert result.std == pytest.approx(math.sqrt(8.25))
    assert result.throughput == pytest.approx(727.2727, rel=1e-6)
    summary = result.to_dict()
    assert (summary["p50_ms"], summary["p90_ms"], summary["runs"]) == pytest.approx((5.5, 9.1, 10))


def test_statistics_from_known_latencies() -> None:
    result = BenchmarkResult("known", np.arange(1, 101, dtype=float), batch_size=4)
    assert result.p50 == pytest.approx(50.5)
    assert result.p90 == pytest.approx(90.1)  # rank 0.9 x 99 = 89.1: 90 + 0.1 x (91 - 90)
    assert result.p99 == pytest.approx(99.01)  # rank 98.01: 99 + 0.01
    assert result.mean == pytest.approx(50.5)
    assert result.std == pytest.approx(math.sqrt((100**2 - 1) / 12))  # 1..n: (n² - 1) / 12
    assert result.throughput == pytest.approx(4 * 1000 / 50.5)
    summary = result.to_dict()
    assert summary["p50_ms"] == pytest.approx(50.5)
    json.dumps(summary)


def test_runner_is_called_with_inputs_and_described() -> None:
    runner = DuckRunner()
    inputs = {"x": np.ones((2, 4), dtype=np.float32)}
    result = benchmark(runner, inputs, warmup=2, runs=5, batch_size=2, progress=False)
    assert len(runner.seen) == 7 and all(s is inputs for s in runner.seen)
    assert result.label == "duck"  # the runner's name
    assert result.threads == {"intra": 1, "inter": 1}
    assert result.runner_info["runtime"] == "pytorch"
    assert result.batch_size == 2
    assert "cpu_model" in result.fingerprint and "load_average" in result.fingerprint


def test_runner_without_inputs_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs `inputs`"):
        benchmark(DuckRunner(), progress=False)
    with pytest.raises(TypeError):
        benchmark(42, progress=False)


def test_real_torch_runner_if_available() -> None:
    runners = pytest.importorskip("helpers.runners")
    spec = runners.TensorSpec("x", ("batch", 4), "float32")
    runner = runners.torch_runner(torch.nn.Linear(4, 2), [spec], ["y"], name="eager", threads=1)
    result = benchmark(runner, {"x": np.ones((2, 4), np.float32)}, warmup=1, runs=3, progress=False)
    assert result.label == "eager" and result.runs == 3


def test_callable_with_inputs_receives_them() -> None:
    seen = []
    benchmark(seen.append, inputs="payload", warmup=1, runs=2, progress=False)
    assert seen == ["payload"] * 3


def test_compare_table_speedup_and_limit(clock) -> None:
    table = compare(
        {"slow": clock.calls(*[4] * 6), "fast": clock.calls(*[1] * 6)},
        baseline="slow",
        flops=1e9,
        peak_gflops=100.0,
        warmup=1,
        runs=5,
        progress=False,
    )
    expected = {
        "runner", "batch", "threads", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms",
        "throughput", "speedup_vs_slow", "lower_bound_ms", "pct_of_limit",
    }  # fmt: skip
    assert expected <= set(table.columns)
    assert list(table["runner"]) == ["slow", "fast"]
    assert table.attrs["speedup_column"] == "speedup_vs_slow"
    assert list(table["p50_ms"]) == [4.0, 1.0]
    assert list(table["speedup_vs_slow"]) == [1.0, 4.0]  # 4 ms / 1 ms
    assert list(table["throughput"]) == [250.0, 1000.0]  # 1 item / 4 ms, / 1 ms
    assert np.allclose(table["lower_bound_ms"], 10.0)  # 1e9 FLOP at 100 GFLOP/s = 10 ms
    assert np.allclose(table["pct_of_limit"], [250.0, 1000.0])  # 10 ms / 4 ms, 10 ms / 1 ms
    assert all(r.runs == 5 for r in table.attrs["results"])
    pd.concat([table, table])  # attrs with results must not break pandas operations


def test_compare_default_baseline_and_measured_peak() -> None:
    table = compare(
        [DuckRunner()], {"x": np.ones((1, 4), np.float32)}, flops=16, warmup=0, runs=3,
        progress=False,
    )  # fmt: skip
    assert table.loc[0, "speedup_vs_duck"] == 1.0
    assert table.attrs["peak_gflops"] > 0 and math.isfinite(table.loc[0, "pct_of_limit"])
    with pytest.raises(ValueError, match="baseline"):
        compare({"a": Counter()}, baseline="b", runs=1, progress=False)


def test_results_frame_and_plot() -> None:
    results = [
        BenchmarkResult("a", np.array([3.0, 4.0, 5.0])),
        BenchmarkResult("b", np.array([1.0, 1.5, 2.0])),
    ]
    frame = results_frame(results)
    assert list(frame["runner"]) == ["a", "b"]
    fig = plot_latencies(frame, title="demo")
    ax = fig.axes[0]
    assert len(ax.patches) == 2
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["a", "b"]  # bottom-up: slowest first, fastest on top
    assert any("ms" in t.get_text() for t in ax.texts)
    with pytest.raises(ValueError, match="p50_ms"):
        plot_latencies(pd.DataFrame({"runner": ["a"]}))


def test_percentile_interpolates_linearly_and_is_nan_when_empty() -> None:
    values = [5.0, 1.0, 3.0, 10.0]  # sorted 1, 3, 5, 10
    assert percentile(values, 50) == pytest.approx(4.0)  # rank 1.5: halfway from 3 to 5
    assert percentile(values, 99) == pytest.approx(9.85)  # rank 2.97: 5 + 0.97 x 5
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 10.0
    assert math.isnan(percentile([], 50))


def test_best_of_warms_up_and_takes_the_minimum(clock) -> None:
    # an untimed 50 ms warm-up, then min_reps = 3 timed calls (no time budget): the fastest, 3 ms
    assert best_of(clock.calls(50, 7, 3, 5, 1), seconds=0.0, min_reps=3) == 3_000_000
    # max_reps caps the calls although the budget (1 s) is far from spent: 2 ms of 6, 2, 8, 4, 9
    assert best_of(clock.calls(0, 6, 2, 8, 4, 9, 1), seconds=1.0, min_reps=1, max_reps=5) == 2_000_000
    # a 20 ms budget with 8 ms calls: calls start at 0, 8 and 16 ms -> the 1 ms fourth never runs
    assert best_of(clock.calls(0, 8, 9, 8, 1), seconds=0.02, min_reps=1) == 8_000_000


def test_best_of_on_the_real_clock_calls_warm_up_plus_min_reps() -> None:
    fn = Counter(sleep=0.001)
    assert best_of(fn, seconds=0.0, min_reps=4) >= 1_000_000  # sleep never returns early
    assert fn.calls == 5  # one warm-up, then min_reps timed calls


def test_interleaved_rounds_counts_calls_and_rates(clock) -> None:
    order: list[str] = []

    def work(label: str, *durations_ms: float):
        timed = clock.calls(*durations_ms)

        def call() -> None:
            order.append(label)
            timed()
        return call

    table = interleaved(
        {
            "fast": Workload(work("fast", 100, 2, 4, 3), items=10, runs=3, warmup=1),
            "slow": Workload(work("slow", 10), items=4, runs=1, warmup=0),
        },
        unit="tokens",
    )
    # warm-ups first, then rounds in which every workload that still needs runs is called once
    assert order == ["fast", "fast", "slow", "fast", "fast"]
    assert list(table.columns) == ["tokens", "runs", "s_per_call", "tokens_per_s"]
    assert table.loc["fast", "runs"] == 3 and table.loc["slow", "runs"] == 1
    # the median of 2, 4, 3 ms (the 100 ms warm-up excluded): 3 ms -> 10 tokens / 3 ms
    assert table.loc["fast", "s_per_call"] == pytest.approx(0.003)
    assert table.loc["fast", "tokens_per_s"] == pytest.approx(10 / 0.003)
    assert table.loc["slow", "s_per_call"] == pytest.approx(0.010)
    assert table.loc["slow", "tokens_per_s"] == pytest.approx(400.0)
    with pytest.raises(ValueError, match="runs"):
        interleaved({"bad": Workload(work("x"), runs=0)})


class Precise(Counter):
    """A callable with a ``precision`` attribute, like a runner computing in bf16 or int8."""

    def __init__(self, precision: str) -> None:
        super().__init__()
        self.precision = precision


def test_compare_measures_each_row_against_its_own_precision() -> None:
    peaks = {"float32": 100.0, "bfloat16": 400.0, "int8": 1000.0}
    table = compare(
        {"fp32": Counter(), "bf16": Precise("bf16"), "int8": Counter(), "gpu": Counter()},
        flops=1e9,
        limits=peaks,
        precisions={"int8": "int8 static", "gpu": None},
        warmup=0,
        runs=3,
        progress=False,
    ).set_index("runner")
    assert list(table["precision"][:3]) == ["float32", "bfloat16", "int8"]
    assert pd.isna(table.loc["gpu", "precision"])
    assert table.loc["fp32", "lower_bound_ms"] == pytest.approx(10.0)
    assert table.loc["bf16", "lower_bound_ms"] == pytest.approx(2.5)  # its own peak, not fp32's
    assert table.loc["int8", "limit"] == 1000.0
    assert math.isnan(table.loc["gpu", "pct_of_limit"])
    expected = table.loc["int8", "lower_bound_ms"] / table.loc["int8", "p50_ms"] * 100
    assert table.loc["int8", "pct_of_limit"] == pytest.approx(expected)


def test_plot_marks_each_rows_own_limit_when_precisions_differ() -> None:
    frame = pd.DataFrame(
        {
            "runner": ["fp32", "int8"],
            "p50_ms": [10.0, 4.0],
            "p90_ms": [11.0, 5.0],
            "precision": ["float32", "int8"],
            "lower_bound_ms": [5.0, 1.0],
        }
    )
    ax = plot_latencies(frame).axes[0]
    ticks = ax.collections[-1].get_offsets()
    assert sorted(float(x) for x, _ in ticks) == [1.0, 5.0]
    assert not any("limit" in t.get_text() for t in ax.texts)  # no single dashed limit line
    single = plot_latencies(frame.assign(lower_bound_ms=5.0)).axes[0]
    assert any("limit 5" in t.get_text() for t in single.texts)


def test_plot_labels_each_bar_with_its_quality() -> None:
    frame = pd.DataFrame(
        {"p50_ms": [10.0, 4.0], "p90_ms": [11.0, 5.0], "top1_agreement": [1.0, 0.875]},
        index=pd.Index(["fp32", "int8"], name="runner"),
    )
    ax = plot_latencies(frame, quality="top1_agreement").axes[0]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["10.0 ms · top1 agreement 100%", "4 ms · top1 agreement 88%"]
    plain = plot_latencies(frame).axes[0]
    assert sorted(t.get_text() for t in plain.texts) == ["10.0 ms", "4 ms"]
    with pytest.raises(ValueError, match="quality column"):
        plot_latencies(frame, quality="same_answer")
