"""Honest measurement: every timing loop of the suite, the machine's limits, comparison tables.

- :mod:`.timing` — :func:`benchmark` (warm-up, many timed runs, percentiles, the machine's
  fingerprint), :func:`interleaved` rounds of several workloads (tokens/s, images/s),
  :func:`best_of` for hardware probes, :func:`percentile`.
- :mod:`.limits` — measured peaks (:func:`measure_gemm_peak`, :func:`measure_memory_bandwidth`)
  and :func:`count_flops`, for "% of the physical limit".
- :mod:`.tables` — :func:`compare` (several runners against a baseline, with speed-ups and the
  limit), :func:`results_frame`, :func:`plot_latencies`.

Import everything from ``helpers.benchmark``.
"""

from helpers.benchmark.limits import count_flops, measure_gemm_peak, measure_memory_bandwidth
from helpers.benchmark.tables import compare, plot_latencies, results_frame
from helpers.benchmark.throughput import ThroughputResult, measure_throughput, throughput_frame  # noqa: F401
from helpers.benchmark.timing import (
    BenchmarkResult,
    Workload,
    benchmark,
    best_of,
    interleaved,
    percentile,
)

__all__ = [
    "BenchmarkResult",
    "Workload",
    "benchmark",
    "best_of",
    "compare",
    "count_flops",
    "interleaved",
    "measure_gemm_peak",
    "measure_memory_bandwidth",
    "percentile",
    "plot_latencies",
    "results_frame",
]
