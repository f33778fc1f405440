"""Honest latency measurement: warm-up, many timed runs, percentiles, and where it was measured.

The method (used by :func:`benchmark`, and the same for every runtime so results compare):

1. **Warm-up.** The first calls of any runtime are slow for reasons that have nothing to do
   with steady-state speed: memory gets allocated, kernels are selected or compiled, caches and
   thread pools wake up, lazy initialisation runs. ``warmup`` untimed calls absorb that.
2. **Timed runs.** Each call is timed on its own with :func:`time.perf_counter_ns` (a
   monotonic clock with nanosecond resolution, unaffected by clock adjustments). Runs stop
   after ``runs`` calls or ``max_seconds`` of measuring, whichever comes first — but never
   before ``min_runs`` calls, so a slow model still gets a distribution rather than one number.
3. **Statistics.** Latency distributions are skewed (a run can only be *slowed down* by
   interference), so the **median (p50)** is the headline and the **p90/p99** tails show how
   steady it is; they are computed with :func:`numpy.percentile` (linear interpolation). Mean
   and standard deviation are reported too. **Throughput** is ``batch_size × runs / total time``
   = ``batch_size / mean``, in items per second.
4. **Context.** Every result carries :func:`helpers.hardware.fingerprint` (CPU, cores, load
   average, package versions) and the thread settings, because a latency without them cannot
   be reproduced or compared. A 1-minute load average near the number of cores means other
   processes competed for the CPU during the measurement — trust ratios measured in one run
   more than absolute numbers then.

:func:`compare` benchmarks several runners one after the other on the same inputs and returns
a table with speed-ups against a baseline and, given the model's FLOPs, the "% of the physical
limit" (lower bound = FLOPs / measured GEMM peak). :func:`plot_latencies` draws that table.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from helpers.hardware import fingerprint as _fingerprint
from helpers.hardware import measure_gemm_peak

__all__ = [
    "BenchmarkResult",
    "benchmark",
    "compare",
    "plot_latencies",
    "results_frame",
]

_COLUMNS = [
    "runner",
    "batch",
    "threads",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "throughput",
    "runs",
]


@dataclass(eq=False)  # identity equality: latency arrays make == ambiguous
class BenchmarkResult:
    """Latencies of one runner on one input, with everything needed to interpret them.

    ``latencies_ms`` holds every timed run (warm-up excluded). ``threads`` is the thread
    configuration that was in force, ``runner_info`` the runner's ``describe()`` (empty for a
    plain callable), ``fingerprint`` the machine and package versions
    (:func:`helpers.hardware.fingerprint`).
    """

    label: str
    latencies_ms: np.ndarray
    batch_size: int = 1
    threads: dict = field(default_factory=dict)
    runner_info: dict = field(default_factory=dict)
    fingerprint: dict = field(default_factory=dict)

    def _pct(self, q: float) -> float:
        if len(self.latencies_ms) == 0:
            return math.nan
        return float(np.percentile(self.latencies_ms, q))

    @property
    def runs(self) -> int:
        """Number of timed runs."""
        return len(self.latencies_ms)

    @property
    def p50(self) -> float:
        """Median latency in ms (the headline number)."""
        return self._pct(50)

    @property
    def p90(self) -> float:
        """90th-percentile latency in ms."""
        return self._pct(90)

    @property
    def p99(self) -> float:
        """99th-percentile latency in ms (needs ≳100 runs to mean much)."""
        return self._pct(99)

    @property
    def mean(self) -> float:
        """Mean latency in ms."""
        return float(np.mean(self.latencies_ms)) if self.runs else math.nan

    @property
    def std(self) -> float:
        """Standard deviation of the latency in ms (population, ``ddof=0``)."""
        return float(np.std(self.latencies_ms)) if self.runs else math.nan

    @property
    def throughput(self) -> float:
        """Items per second: ``batch_size / mean latency``."""
        mean = self.mean
        return self.batch_size * 1000.0 / mean if mean and mean > 0 else math.nan

    def threads_label(self) -> str:
        """Thread settings as a short string, e.g. ``"intra=2, inter=1"``."""
        if not self.threads:
            return ""
        return ", ".join(
            f"{k}={v}"
            for k, v in self.threads.items()
            if v is not None and not isinstance(v, bool)  # flags such as set_by_runner
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (no raw latencies): label, statistics, threads, context."""
        return {
            "runner": self.label,
            "batch": self.batch_size,
            "threads": self.threads_label(),
            "p50_ms": self.p50,
            "p90_ms": self.p90,
            "p99_ms": self.p99,
            "mean_ms": self.mean,
            "std_ms": self.std,
            "throughput": self.throughput,
            "runs": self.runs,
            "threads_detail": dict(self.threads),
            "runner_info": {k: _plain(v) for k, v in self.runner_info.items()},
            "fingerprint": self.fingerprint,
        }

    def __repr__(self) -> str:
        return (
            f"BenchmarkResult({self.label!r}: p50 {self.p50:.2f} ms, p90 {self.p90:.2f} ms, "
            f"p99 {self.p99:.2f} ms, {self.runs} runs, batch {self.batch_size}, "
            f"{self.throughput:.1f} items/s)"
        )


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _is_runner(obj: Any) -> bool:
    """Duck-typed check for a :class:`helpers.runners.Runner` (has ``describe`` and ``run``)."""
    return callable(getattr(obj, "describe", None)) and callable(getattr(obj, "run", None))


def _current_threads() -> dict[str, Any]:
    """Thread settings of the process when the runner does not report its own."""
    threads: dict[str, Any] = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        threads["intra"] = torch.get_num_threads()
        threads["inter"] = torch.get_num_interop_threads()
    omp = os.environ.get("OMP_NUM_THREADS")
    if omp:
        threads["OMP_NUM_THREADS"] = omp
    return threads


def _runner_threads(info: Mapping[str, Any]) -> dict[str, Any]:
    threads = info.get("threads")
    if isinstance(threads, Mapping):
        return dict(threads)
    if threads is not None:
        return {"threads": threads}
    return _current_threads()


def _label_of(obj: Any) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(obj, "__name__", None) or type(obj).__name__


def benchmark(
    runner_or_callable: Any,
    inputs: Any = None,
    *,
    label: str | None = None,
    warmup: int = 5,
    runs: int = 100,
    max_seconds: float = 10.0,
    min_runs: int = 5,
    batch_size: int = 1,
    progress: bool = True,
) -> BenchmarkResult:
    """Measure the latency of a runner (or any callable) the same way for every runtime.

    ``runner_or_callable`` is either a :class:`helpers.runners.Runner` — anything with
    ``.run()`` and ``.describe()``; it is called as ``runner.run(inputs)`` and its
    ``describe()`` supplies the label and thread settings — or a plain callable, called as
    ``fn()`` (or ``fn(inputs)`` when ``inputs`` is given).

    Method (details in the module docstring): ``warmup`` untimed calls, then calls timed one by
    one with :func:`time.perf_counter_ns` until ``runs`` calls or ``max_seconds`` seconds of
    measuring, but at least ``min_runs`` calls; percentiles via :func:`numpy.percentile`.
    A tqdm progress bar appears for runs longer than about a second (``progress=False`` hides
    it). ``batch_size`` is the number of items one call processes, used for throughput.

    Returns a :class:`BenchmarkResult` with the raw latencies, statistics, thread settings,
    ``runner.describe()`` and the machine :func:`~helpers.hardware.fingerprint`.
    """
    if runs < 1 or min_runs < 0 or warmup < 0:
        raise ValueError("benchmark: runs must be >= 1; warmup and min_runs must be >= 0")
    if max_seconds <= 0:
        raise ValueError("benchmark: max_seconds must be positive")
    if batch_size < 1:
        raise ValueError("benchmark: batch_size must be >= 1")

    if _is_runner(runner_or_callable):
        if inputs is None:
            raise ValueError(
                f"benchmark: {_label_of(runner_or_callable)!r} is a Runner and needs `inputs` "
                "(a dict of input name -> numpy array)"
            )
        info = dict(runner_or_callable.describe())
        run_fn = runner_or_callable.run

        def call() -> Any:
            return run_fn(inputs)

        threads = _runner_threads(info)
        name = getattr(runner_or_callable, "name", None)
        default_label = name if isinstance(name, str) and name else info.get("name")
        default_label = default_label or type(runner_or_callable).__name__
    elif callable(runner_or_callable):
        info = {}
        fn = runner_or_callable
        if inputs is None:
            call = fn
        else:

            def call() -> Any:
                return fn(inputs)

        threads = _current_threads()
        default_label = _label_of(fn)
    else:
        raise TypeError(
            "benchmark: expected a Runner (with .run and .describe) or a callable, "
            f"got {type(runner_or_callable).__name__}"
        )
    label = label or str(default_label)

    for _ in range(warmup):
        call()

    from tqdm.auto import tqdm

    bar = tqdm(
        total=runs,
        desc=label,
        unit="run",
        disable=not progress,
        delay=1.0,  # only appears when measuring takes more than a second
        leave=False,
    )
    latencies_ns: list[int] = []
    perf = time.perf_counter_ns
    deadline = perf() + int(max_seconds * 1e9)
    try:
        while len(latencies_ns) < runs and (perf() < deadline or len(latencies_ns) < min_runs):
            start = perf()
            call()
            latencies_ns.append(perf() - start)
            bar.update(1)
    finally:
        bar.close()

    return BenchmarkResult(
        label=label,
        latencies_ms=np.asarray(latencies_ns, dtype=np.float64) / 1e6,
        batch_size=batch_size,
        threads=threads,
        runner_info=info,
        fingerprint=_fingerprint(),
    )


def results_frame(results: Sequence[BenchmarkResult]) -> pd.DataFrame:
    """One row per result: runner, batch, threads, p50/p90/p99/mean/std in ms, throughput, runs.

    The fingerprint of the last result is attached as ``frame.attrs["fingerprint"]``.
    """
    rows = [
        {
            "runner": r.label,
            "batch": r.batch_size,
            "threads": r.threads_label(),
            "p50_ms": r.p50,
            "p90_ms": r.p90,
            "p99_ms": r.p99,
            "mean_ms": r.mean,
            "std_ms": r.std,
            "throughput": r.throughput,
            "runs": r.runs,
        }
        for r in results
    ]
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    if results:
        frame.attrs["fingerprint"] = results[-1].fingerprint
    return frame


def compare(
    runners: Sequence[Any] | Mapping[str, Any],
    inputs: Any = None,
    *,
    baseline: str | None = None,
    flops: float | None = None,
    peak_gflops: float | None = None,
    **benchmark_kwargs: Any,
) -> pd.DataFrame:
    """Benchmark several runners on the same inputs and tabulate them against a baseline.

    ``runners`` is a sequence of Runners (labelled by their ``name``) or a mapping
    ``label -> Runner | callable`` (a callable is called as ``fn(inputs)``, or ``fn()`` when
    ``inputs`` is ``None``). Each is measured with :func:`benchmark` (extra keyword
    arguments such as ``runs`` or ``warmup`` are passed on), one after the other.

    Columns: ``runner, batch, threads, p50_ms, p90_ms, p99_ms, mean_ms, std_ms, throughput,
    runs, speedup_vs_<baseline>`` where the speed-up is ``baseline p50 / runner p50`` (> 1 means
    faster than the baseline; the baseline defaults to the first runner). With ``flops`` (the
    model's FLOPs for one call on these inputs, e.g. from :func:`helpers.hardware.count_flops`)
    two more columns: ``lower_bound_ms = flops / peak`` — the time the arithmetic alone needs at
    the machine's measured GEMM peak (``peak_gflops``, measured with
    :func:`helpers.hardware.measure_gemm_peak` at torch's current thread count when not given)
    — and ``pct_of_limit = lower_bound_ms / p50_ms × 100``.

    ``frame.attrs`` carries ``baseline``, ``speedup_column``, ``fingerprint``, ``flops`` and
    ``peak_gflops``; ``frame.attrs["results"]`` the :class:`BenchmarkResult` objects.
    """
    if isinstance(runners, Mapping):
        items = [(str(k), v) for k, v in runners.items()]
    else:
        items = [(_label_of(r), r) for r in runners]
    if not items:
        raise ValueError("compare: no runners given")
    labels = [k for k, _ in items]
    if len(set(labels)) != len(labels):
        raise ValueError(f"compare: runner labels must be unique, got {labels}")
    if baseline is None:
        baseline = labels[0]
    if baseline not in labels:
        raise ValueError(f"compare: baseline {baseline!r} is not one of {labels}")

    results = []
    for lbl, runner in items:
        kwargs = dict(benchmark_kwargs)
        kwargs["label"] = lbl
        if _is_runner(runner) or inputs is not None:
            results.append(benchmark(runner, inputs, **kwargs))
        else:
            results.append(benchmark(runner, **kwargs))

    frame = results_frame(results)
    base_p50 = frame.loc[frame["runner"] == baseline, "p50_ms"].iloc[0]
    speedup_column = f"speedup_vs_{baseline}"
    frame[speedup_column] = base_p50 / frame["p50_ms"]
    if flops is not None:
        if peak_gflops is None:
            peak_gflops = measure_gemm_peak()
        lower_bound_ms = float(flops) / (float(peak_gflops) * 1e9) * 1e3
        frame["lower_bound_ms"] = lower_bound_ms
        frame["pct_of_limit"] = lower_bound_ms / frame["p50_ms"] * 100.0
    frame.attrs.update(
        {
            "baseline": baseline,
            "speedup_column": speedup_column,
            "flops": flops,
            "peak_gflops": peak_gflops,
            "results": results,
        }
    )
    return frame


def _fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.3g}"


def plot_latencies(table: pd.DataFrame, *, title: str = "", ax: Any = None) -> Any:
    """Horizontal bars of p50 latency (ms) with whiskers up to p90, fastest at the top.

    ``table`` is the output of :func:`compare` or :func:`results_frame` (needs ``runner``,
    ``p50_ms``, ``p90_ms``). Each bar is labelled with its p50 in ms; when the table has a
    ``lower_bound_ms`` column, the physical limit is drawn as a dashed line. Returns the
    matplotlib Figure (created without pyplot, so a notebook shows it once, as the cell's
    value). Pass ``ax`` to draw into an existing axes.
    """
    from matplotlib.figure import Figure

    missing = {"runner", "p50_ms", "p90_ms"} - set(table.columns)
    if missing:
        raise ValueError(f"plot_latencies: table lacks columns {sorted(missing)}")
    data = table.sort_values("p50_ms", ascending=False)  # barh draws bottom-up: fastest on top
    if ax is None:
        fig = Figure(figsize=(7.5, 0.55 * len(data) + 1.4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    p50 = data["p50_ms"].to_numpy(dtype=float)
    p90 = data["p90_ms"].to_numpy(dtype=float)
    whisker = np.vstack([np.zeros_like(p50), np.clip(p90 - p50, 0, None)])
    positions = np.arange(len(data))
    ax.barh(positions, p50, xerr=whisker, color="#4C72B0", ecolor="#333333", capsize=4)
    ax.set_yticks(positions, [str(r) for r in data["runner"]])
    right = float(np.nanmax(p90)) if len(p90) else 1.0
    for y, (a, b) in enumerate(zip(p50, p90, strict=True)):
        ax.text(max(a, b) + 0.01 * right, y, f"{_fmt_ms(a)} ms", va="center", fontsize=9)
    if "lower_bound_ms" in data.columns and data["lower_bound_ms"].notna().any():
        bound = float(data["lower_bound_ms"].dropna().iloc[0])
        ax.axvline(bound, color="#C44E52", linestyle="--", linewidth=1.2)
        ax.text(
            bound,
            len(data) - 0.5,
            f" limit {_fmt_ms(bound)} ms",
            color="#C44E52",
            va="bottom",
            fontsize=8,
        )
    ax.set_xlim(0, right * 1.18)
    ax.set_xlabel("latency (ms) — bar: p50, whisker: p90")
    if title:
        ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig
