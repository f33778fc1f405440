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


def test_max_seconds_stops_early_but_min_runs_is_respected() -> None:
    fn = Counter(sleep=0.005)
    result = benchmark(fn, warmup=0, runs=10_000, max_seconds=0.05, min_runs=2, progress=False)
    assert 2 <= result.runs < 10_000
    fn = Counter(sleep=0.002)
    result = benchmark(fn, warmup=0, runs=100, max_seconds=1e-9, min_runs=4, progress=False)
    assert result.runs == 4 and fn.calls == 4
    # runs caps min_runs
    result = benchmark(Counter(), warmup=0, runs=3, max_seconds=1e-9, min_runs=10, progress=False)
    assert result.runs == 3


def test_sleep_latency_is_at_least_the_sleep() -> None:
    result = benchmark(lambda: time.sleep(0.002), warmup=1, runs=5, progress=False)
    assert result.p50 >= 2.0  # sleep never returns early; no upper bound asserted (shared CPU)
    assert result.p50 <= result.p90 <= result.p99


def test_statistics_from_known_latencies() -> None:
    result = BenchmarkResult("known", np.arange(1, 101, dtype=float), batch_size=4)
    assert result.p50 == pytest.approx(50.5)
    assert result.p90 == pytest.approx(np.percentile(np.arange(1, 101), 90))
    assert result.p50 <= result.p90 <= result.p99 <= 100
    assert result.mean == pytest.approx(50.5)
    assert result.std == pytest.approx(np.std(np.arange(1, 101)))
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


def test_compare_table_speedup_and_limit() -> None:
    table = compare(
        {"slow": Counter(sleep=0.004), "fast": Counter()},
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
    assert table.loc[0, "speedup_vs_slow"] == 1.0
    assert table.attrs["speedup_column"] == "speedup_vs_slow"
    assert np.allclose(table["speedup_vs_slow"], table.loc[0, "p50_ms"] / table["p50_ms"])
    assert np.allclose(table["lower_bound_ms"], 10.0)  # 1e9 FLOP at 100 GFLOP/s = 10 ms
    assert np.allclose(table["pct_of_limit"], 10.0 / table["p50_ms"] * 100)
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


def test_percentile_matches_numpy_and_is_nan_when_empty() -> None:
    values = [5.0, 1.0, 3.0, 10.0]
    assert percentile(values, 50) == pytest.approx(np.percentile(values, 50))
    assert percentile(values, 99) == pytest.approx(np.percentile(values, 99))
    assert math.isnan(percentile([], 50))


def test_best_of_warms_up_and_takes_the_minimum() -> None:
    fn = Counter()
    best_ns = best_of(fn, seconds=0.0, min_reps=4)
    assert fn.calls == 5  # one warm-up, then min_reps timed calls
    assert 0 <= best_ns < 1e9


def test_interleaved_rounds_counts_calls_and_rates() -> None:
    order: list[str] = []

    def work(label: str, sleep: float = 0.0):
        def call() -> None:
            order.append(label)
            time.sleep(sleep)
        return call

    table = interleaved(
        {
            "fast": Workload(work("fast"), items=10, runs=3, warmup=1),
            "slow": Workload(work("slow", 0.01), items=4, runs=1, warmup=0),
        },
        unit="tokens",
    )
    # warm-ups first, then rounds in which every workload that still needs runs is called once
    assert order == ["fast", "fast", "slow", "fast", "fast"]
    assert list(table.columns) == ["tokens", "runs", "s_per_call", "tokens_per_s"]
    assert table.loc["fast", "runs"] == 3 and table.loc["slow", "runs"] == 1
    assert table.loc["slow", "s_per_call"] >= 0.01
    assert table.loc["slow", "tokens_per_s"] == pytest.approx(4 / table.loc["slow", "s_per_call"])
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
