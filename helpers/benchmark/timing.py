"""The timing loops: every measurement the suite takes is timed here, the same way for every runtime.

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

Three more loops build on the same clock:

- :func:`interleaved` — several workloads (each a callable doing a fixed amount of work: tokens,
  images) timed in *rounds*, every workload once per round, so a change in the machine's load
  hits all of them alike; returns seconds per call and items per second.
- :func:`helpers.benchmark.limits.best_of` — the fastest of many repetitions, for probing what
  the hardware can do: interference only ever slows a run down.
- :func:`percentile` — the statistic every result uses (also for HTTP load tests).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from helpers.benchmark.limits import last_limits
from helpers.course.results import jsonable
from helpers.hardware import fingerprint as _fingerprint
from helpers.runners.torch_family import torch_threads

__all__ = [
    "BenchmarkResult",
    "Workload",
    "benchmark",
    "interleaved",
    "measurement_fingerprint",
    "percentile",
]


def percentile(values: Any, q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` (``numpy.percentile``, linear
    interpolation); NaN when there are no values."""
    array = np.asarray(values, dtype=np.float64)
    return float(np.percentile(array, q)) if array.size else math.nan


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
        return percentile(self.latencies_ms, q)

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
            "runner_info": jsonable(self.runner_info),
            "fingerprint": self.fingerprint,
        }

    def __repr__(self) -> str:
        return (
            f"BenchmarkResult({self.label!r}: p50 {self.p50:.2f} ms, p90 {self.p90:.2f} ms, "
            f"p99 {self.p99:.2f} ms, {self.runs} runs, batch {self.batch_size}, "
            f"{self.throughput:.1f} items/s)"
        )


def is_runner(obj: Any) -> bool:
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


def label_of(obj: Any) -> str:
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

    if is_runner(runner_or_callable):
        if inputs is None:
            raise ValueError(
                f"benchmark: {label_of(runner_or_callable)!r} is a Runner and needs `inputs` "
                "(a dict of input name -> numpy array)"
            )
        info = dict(runner_or_callable.describe())
        run_fn = runner_or_callable.run

        def call() -> Any:
            return run_fn(inputs)

        threads = _runner_threads(info)
        scope = getattr(runner_or_callable, "thread_scope", contextlib.nullcontext)()
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
        scope = contextlib.nullcontext()
        default_label = label_of(fn)
    else:
        raise TypeError(
            "benchmark: expected a Runner (with .run and .describe) or a callable, "
            f"got {type(runner_or_callable).__name__}"
        )
    label = label or str(default_label)

    with scope:  # the runner's thread count for the whole measurement, never toggled per call
        latencies_ns = _timed_loop(call, label, warmup=warmup, runs=runs, max_seconds=max_seconds,
                                   min_runs=min_runs, progress=progress)
    return BenchmarkResult(
        label=label,
        latencies_ms=np.asarray(latencies_ns, dtype=np.float64) / 1e6,
        batch_size=batch_size,
        threads=threads,
        runner_info=info,
        fingerprint=measurement_fingerprint(),
    )


def _timed_loop(call: Callable[[], Any], label: str, *, warmup: int, runs: int, max_seconds: float,
                min_runs: int, progress: bool) -> list[int]:
    """Warm-up calls, then timed calls (ns) until ``runs`` or ``max_seconds`` (at least ``min_runs``)."""
    from helpers.display import progress as progress_bar

    for _ in range(warmup):
        call()

    bar = progress_bar(
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
    return latencies_ns


def measurement_fingerprint() -> dict[str, Any]:
    """:func:`helpers.hardware.fingerprint` plus, once :func:`helpers.benchmark.measure_limits`
    has run in this process, ``"limits"``: the measured peaks with every reading and their
    spread — so each result says how far the machine's own limits could be trusted."""
    info = _fingerprint()
    limits = last_limits()
    if limits is not None:
        info["limits"] = limits.summary()
    return info


@dataclass(frozen=True)
class Workload:
    """One thing to time in :func:`interleaved`: ``call()`` does ``items`` units of work
    (tokens generated, images classified) and is timed ``runs`` times after ``warmup``
    untimed calls. ``threads`` runs every call with that many torch intra-op threads
    (:func:`helpers.runners.torch_threads`; outside the timed region), ``None`` as set."""

    call: Callable[[], Any]
    items: float = 1
    runs: int = 3
    warmup: int = 1
    threads: int | None = None

    def timed_call(self) -> float:
        """Call once; the wall time of the call in seconds."""
        with torch_threads(self.threads) if self.threads is not None else contextlib.nullcontext():
            start = time.perf_counter()
            self.call()
            return time.perf_counter() - start


def interleaved(workloads: Mapping[str, Workload], *, unit: str = "items") -> pd.DataFrame:
    """Time several workloads in interleaved rounds; one row per workload.

    All warm-ups run first; then round after round every workload that still needs runs is
    called once, timed with :func:`time.perf_counter`. A change in the machine's load (another
    process starting) thus hits every workload alike instead of whichever one happened to be
    measuring at that moment — the ratios between rows stay honest on a shared machine.

    Columns (index: the workload labels): ``<unit>`` (items per call), ``runs``,
    ``s_per_call`` (median seconds) and ``<unit>_per_s`` (items / median seconds).
    """
    if not workloads:
        raise ValueError("interleaved: no workloads given")
    for label, work in workloads.items():
        if work.runs < 1 or work.warmup < 0 or work.items <= 0:
            raise ValueError(f"interleaved: {label!r} needs runs >= 1, warmup >= 0, items > 0")
    for work in workloads.values():
        for _ in range(work.warmup):
            work.timed_call()
    seconds: dict[str, list[float]] = {label: [] for label in workloads}
    for round_ in range(max(work.runs for work in workloads.values())):
        for label, work in workloads.items():
            if round_ < work.runs:
                seconds[label].append(work.timed_call())
    rows = {}
    for label, work in workloads.items():
        per_call = float(np.median(seconds[label]))
        rows[label] = {
            unit: work.items,
            "runs": len(seconds[label]),
            "s_per_call": per_call,
            f"{unit}_per_s": work.items / per_call if per_call > 0 else math.nan,
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "workload"
    return frame
