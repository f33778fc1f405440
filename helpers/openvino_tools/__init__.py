"""OpenVINO beyond one request: throughput mode, compile caching, ``benchmark_app`` and ``AUTO``.

:func:`helpers.runners.openvino_runner` compiles for **latency**: one infer request behind a
lock, every call uses all the threads. A server or a batch job wants **throughput** instead:
``PERFORMANCE_HINT=THROUGHPUT`` splits the cores into several *streams*, each running its own
infer request, so several inputs are in flight at once.

- :mod:`helpers.runners.openvino_throughput` (re-exported here) — :func:`openvino_throughput_runner`
  → a :class:`ThroughputRunner` (a
  :class:`helpers.runners.Runner`): a pool of infer requests, so :meth:`~ThroughputRunner.run`
  is thread-safe and concurrent calls (FastAPI's thread pool, a load test) run in parallel on
  the streams; :meth:`~ThroughputRunner.run_many` pushes a list of inputs through an
  ``openvino.AsyncInferQueue`` without Python threads. :func:`compiled_settings` reads back what
  OpenVINO chose (streams, threads, infer requests, precision, devices) with ``get_property``.
  Its items/s are measured by :func:`helpers.benchmark.measure_throughput`, the timing loop
  for every runner.
- :mod:`.compile_cache` — :func:`timed_compile`, :func:`cache_experiment`,
  :func:`corrupt_cache`: the compiled-model cache (``CACHE_DIR``) — first vs later
  ``compile_model`` time, and that a damaged cache file is recompiled and rewritten rather than
  trusted.
- :mod:`.benchmark_app` — :func:`run_benchmark_app` runs OpenVINO's own ``benchmark_app`` (it
  ships in the ``openvino`` wheel) and parses its JSON report and log into a
  :class:`BenchmarkAppResult`.
- :mod:`.auto` — :func:`auto_device_report`: what the ``AUTO`` device picked, and whether a GPU
  was there.

Import everything from ``helpers.openvino_tools``.
"""

from helpers.openvino_tools.auto import auto_device_report
from helpers.openvino_tools.benchmark_app import (
    BenchmarkAppResult,
    benchmark_app_command,
    run_benchmark_app,
)
from helpers.openvino_tools.compile_cache import (
    CompileRecord,
    cache_experiment,
    cache_files,
    corrupt_cache,
    timed_compile,
)
from helpers.runners.openvino_throughput import (
    SETTINGS,
    ThroughputRunner,
    compiled_settings,
    openvino_throughput_runner,
)

__all__ = [
    "SETTINGS",
    "BenchmarkAppResult",
    "CompileRecord",
    "ThroughputRunner",
    "auto_device_report",
    "benchmark_app_command",
    "cache_experiment",
    "cache_files",
    "compiled_settings",
    "corrupt_cache",
    "openvino_throughput_runner",
    "run_benchmark_app",
    "timed_compile",
]
