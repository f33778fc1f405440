"""Honest measurement: every timing loop of the suite, the machine's limits, comparison tables.

- :mod:`.timing` — :func:`benchmark` (warm-up, many timed runs, percentiles, the machine's
  fingerprint), :func:`interleaved` rounds of several workloads (tokens/s, images/s),
  :func:`percentile`.
- :mod:`.limits` — the machine's limits per precision, measured robustly (:func:`measure_limits`:
  fp32/bf16/int8 GEMM peaks and memory bandwidth, repeated probes with their spread, a busy
  warning; :func:`measure_gemm_peak`, :func:`measure_memory_bandwidth` for one probe;
  :func:`best_of`, the probes' statistic), which instructions run each precision here
  (:func:`precision_hardware`; :func:`bounding_precision`: the limit that really bounds a
  precision here) and :func:`count_flops`, for "% of the limit".
- :mod:`.throughput` — :func:`measure_throughput` (items per second with several requests in
  flight, by threads or a runner's own queue), :class:`ThroughputResult`, :func:`throughput_frame`.
- :mod:`.tables` — :func:`compare` (several runners against a baseline, with speed-ups and each
  row's limit for its own precision), :func:`results_frame`, :func:`plot_latencies`.

Import everything from ``helpers.benchmark``.
"""

from helpers.benchmark.limits import (
    LIMIT_PRECISIONS,
    Limits,
    Probe,
    best_of,
    bounding_precision,
    count_flops,
    last_limits,
    limit_key,
    machine_busy,
    measure_gemm_peak,
    measure_limits,
    measure_memory_bandwidth,
    precision_hardware,
    repeat_until_stable,
)
from helpers.benchmark.tables import compare, plot_latencies, results_frame
from helpers.benchmark.throughput import ThroughputResult, measure_throughput, throughput_frame
from helpers.benchmark.timing import (
    BenchmarkResult,
    Workload,
    benchmark,
    interleaved,
    measurement_fingerprint,
    percentile,
)

__all__ = [
    "LIMIT_PRECISIONS",
    "BenchmarkResult",
    "Limits",
    "Probe",
    "ThroughputResult",
    "Workload",
    "benchmark",
    "best_of",
    "bounding_precision",
    "compare",
    "count_flops",
    "interleaved",
    "last_limits",
    "limit_key",
    "machine_busy",
    "measure_gemm_peak",
    "measure_limits",
    "measure_memory_bandwidth",
    "measure_throughput",
    "measurement_fingerprint",
    "percentile",
    "plot_latencies",
    "precision_hardware",
    "repeat_until_stable",
    "results_frame",
    "throughput_frame",
]
