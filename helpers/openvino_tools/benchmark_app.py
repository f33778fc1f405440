"""OpenVINO's own ``benchmark_app`` (it ships in the ``openvino`` wheel), run and parsed.

:func:`benchmark_app_command` builds the command line, :func:`run_benchmark_app` runs it and
parses its JSON report and log into a :class:`BenchmarkAppResult`, whose :meth:`~BenchmarkAppResult.row`
has the columns of :meth:`helpers.benchmark.ThroughputResult.row` so both fit in one table.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BenchmarkAppResult", "benchmark_app_command", "run_benchmark_app"]

def _benchmark_app_executable() -> list[str]:
    beside = Path(sys.executable).parent / "benchmark_app"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("benchmark_app")
    if found:
        return [found]
    return [sys.executable, "-c", "from openvino.tools.benchmark.main import main; main()"]


def benchmark_app_command(
    model_path: str | Path,
    *,
    device: str = "CPU",
    hint: str = "latency",
    seconds: float = 5.0,
    data_shape: str | None = None,
    input_precision: str | None = "f32",
    requests: int | None = None,
    streams: int | None = None,
    threads: int | None = None,
    inference_only: bool = True,
    cache_dir: str | Path | None = None,
    report_folder: str | Path | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``benchmark_app`` command line for these settings (a list for ``subprocess``).

    ``data_shape`` (e.g. ``"[1,3,224,224]"``) is needed for a model with dynamic dimensions.
    ``input_precision`` defaults to ``"f32"``: without ``-ip``, benchmark_app feeds a 4-D input
    as ``u8`` images and adds a conversion to the graph it times. ``inference_only`` keeps
    filling the inputs out of the timed loop (the default for static models; for a dynamic model
    it needs a single ``data_shape``). ``report_folder`` adds ``-report_folder ... -json_stats``.
    """
    cmd = [*_benchmark_app_executable(), "-m", str(model_path), "-d", device, "-hint", hint,
           "-t", f"{seconds:g}"]
    if data_shape:
        cmd += ["-data_shape", data_shape]
    if input_precision:
        cmd += ["-ip", input_precision]
    if requests is not None:
        cmd += ["-nireq", str(int(requests))]
    if streams is not None:
        cmd += ["-nstreams", str(int(streams))]
    if threads is not None:
        cmd += ["-nthreads", str(int(threads))]
    if inference_only:
        cmd += ["-inference_only"]
    if cache_dir is not None:
        cmd += ["-cdir", str(cache_dir)]
    if report_folder is not None:
        cmd += ["-report_type", "no_counters", "-report_folder", str(report_folder), "-json_stats"]
    return cmd + list(extra)


@dataclass
class BenchmarkAppResult:
    """What ``benchmark_app`` reported: its JSON statistics, the settings it read back, its log."""

    command: list[str]
    returncode: int
    log: str
    configuration: dict[str, Any]
    execution: dict[str, Any]
    settings: dict[str, str]
    mode: str

    def _number(self, key: str) -> float:
        try:
            return float(self.execution[key])
        except (KeyError, TypeError, ValueError):
            return math.nan

    @property
    def requests(self) -> int:
        """Infer requests kept in flight."""
        return int(self.configuration.get("number of parallel infer requests", 0) or 0)

    @property
    def api(self) -> str:
        """``sync`` (one request at a time) or ``async``."""
        return str(self.configuration.get("API", ""))

    @property
    def latency_median_ms(self) -> float:
        """Median latency of one request (ms)."""
        return self._number("latency (ms)")

    @property
    def throughput(self) -> float:
        """Items per second (``iterations × batch / duration``)."""
        return self._number("throughput")

    def row(self) -> dict[str, Any]:
        """One table row in the same columns as :meth:`ThroughputResult.row` (where they exist)."""
        return {
            "runner": f"benchmark_app -hint {self.settings.get('PERFORMANCE_HINT', '?').lower()}",
            "method": f"benchmark_app ({self.api})",
            "in_flight": self.requests,
            "streams": _int_or_none(self.settings.get("NUM_STREAMS")),
            "batch": int(self.configuration.get("batch size", 1) or 1),
            "requests": int(self._number("total number of iterations")),
            "items_per_s": self.throughput,
            "latency_p50_ms": self.latency_median_ms,
            "latency_min_ms": self._number("min latency"),
            "latency_max_ms": self._number("max latency"),
            "seconds": self._number("total execution time (ms)") / 1e3,
            "compile_ms": self._number("compile model time (ms)"),
            "mode": self.mode,
        }


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _parse_settings(log: str) -> dict[str, str]:
    """The ``[ INFO ]   KEY: VALUE`` lines of benchmark_app's step 8 (the compiled model's properties)."""
    settings: dict[str, str] = {}
    in_step = False
    for line in log.splitlines():
        if line.startswith("[Step "):
            in_step = "Querying optimal runtime parameters" in line
            continue
        if in_step and line.startswith("[ INFO ]   ") and ": " in line:
            key, _, value = line[len("[ INFO ]   "):].partition(": ")
            if key.isupper():
                settings[key.strip()] = value.strip()
    return settings


def run_benchmark_app(
    model_path: str | Path,
    report_folder: str | Path,
    *,
    timeout_s: float = 300.0,
    **options: Any,
) -> BenchmarkAppResult:
    """Run ``benchmark_app`` (options as for :func:`benchmark_app_command`) and parse its report.

    The JSON statistics land in ``report_folder`` (created, any old report replaced). Raises
    ``RuntimeError`` with the end of its log if it fails, ``subprocess.TimeoutExpired`` after
    ``timeout_s``.
    """
    folder = Path(report_folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "benchmark_report.json"
    report.unlink(missing_ok=True)
    cmd = benchmark_app_command(model_path, report_folder=folder, **options)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    log = done.stdout + done.stderr
    if done.returncode != 0 or not report.is_file():
        tail = "\n".join(log.strip().splitlines()[-12:])
        raise RuntimeError(f"benchmark_app failed (exit {done.returncode}):\n{tail}")
    stats = json.loads(report.read_text())
    mode = "inference only" if "inference only mode" in log else "full (input filling timed)"
    return BenchmarkAppResult(
        command=cmd, returncode=done.returncode, log=log,
        configuration=stats.get("configuration_setup", {}),
        execution=stats.get("execution_results", {}),
        settings=_parse_settings(log), mode=mode,
    )
