"""A bounded loopback load test: N requests at concurrency C, with a time limit, via httpx.

:func:`load_test` sends the same request (e.g. one JPEG to ``/predict``) ``requests`` times with
``concurrency`` requests in flight, and stops early — never hangs — when ``time_limit_s`` has
passed (requests in flight get ``timeout_s`` each). It is *bounded* on purpose: a tutorial must
not be able to flood a machine or a network, and it only talks to the URL it is given (the suite
uses ``127.0.0.1`` only).

Method:

- ``concurrency`` asyncio workers share one ``httpx.AsyncClient`` (connection pool of the same
  size, keep-alive); each takes the next request number until ``requests`` are sent or the time
  limit is reached. ``warmup`` requests are sent first and not counted (connection set-up,
  first-call costs on the server).
- Each request's latency is measured from just before sending to the complete response with
  :func:`time.perf_counter`. A request counts as an **error** if it raises (timeout, connection
  refused) or its status is not 2xx (or ``expect_status``); the first few error messages are kept.
- **Throughput** is completed requests / wall time of the measured phase; **p50/p99** are
  latency percentiles (:func:`helpers.benchmark.percentile`) over successful requests.
- By default the client runs in a separate Python process (``isolate=True``), so it does not
  compete with an in-process server (e.g. uvicorn in a notebook thread) for the GIL; the
  machine's cores are still shared, which is the honest loopback situation.

:func:`memory_during` measures a server process's resident memory (RSS) before, at its peak
during, and after some work — e.g. a load test of large images.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from helpers.benchmark import percentile

__all__ = ["LoadTestResult", "MemoryUse", "load_test", "memory_during", "plot_load_tests", "results_table"]

_MAX_ERROR_EXAMPLES = 5


@dataclass
class LoadTestResult:
    """Outcome of one :func:`load_test`; :meth:`row` gives the table row."""

    label: str
    url: str
    requests_planned: int
    concurrency: int
    time_limit_s: float
    requests_sent: int = 0
    ok: int = 0
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    stopped_by_time_limit: bool = False
    status_counts: dict[str, int] = field(default_factory=dict)

    def _pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def p50_ms(self) -> float:
        """Median latency of successful requests (ms)."""
        return self._pct(50)

    @property
    def p90_ms(self) -> float:
        """90th percentile latency (ms)."""
        return self._pct(90)

    @property
    def p99_ms(self) -> float:
        """99th percentile latency (ms)."""
        return self._pct(99)

    @property
    def req_per_s(self) -> float:
        """Successful requests per second of wall time."""
        return self.ok / self.wall_s if self.wall_s > 0 else float("nan")

    def row(self) -> dict[str, Any]:
        """One table row: label, requests, errors, p50/p90/p99, req/s, wall time, limits."""
        return {
            "server": self.label,
            "requests": self.requests_sent,
            "concurrency": self.concurrency,
            "ok": self.ok,
            "errors": self.errors,
            "p50_ms": round(self.p50_ms, 2),
            "p90_ms": round(self.p90_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "req_per_s": round(self.req_per_s, 1),
            "wall_s": round(self.wall_s, 2),
            "time_limited": self.stopped_by_time_limit,
        }

    def to_frame(self) -> pd.DataFrame:
        """:meth:`row` as a one-row DataFrame."""
        return pd.DataFrame([self.row()])


async def _run_async(spec: dict[str, Any]) -> dict[str, Any]:
    import httpx

    body: bytes = base64.b64decode(spec["body_b64"])
    headers = dict(spec["headers"])
    method, url = spec["method"], spec["url"]
    n, conc = int(spec["requests"]), int(spec["concurrency"])
    expect = set(spec["expect_status"]) if spec["expect_status"] else None
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    timeout = httpx.Timeout(spec["timeout_s"])
    out: dict[str, Any] = {
        "requests_sent": 0, "ok": 0, "errors": 0, "error_examples": [], "latencies_ms": [],
        "status_counts": {}, "stopped_by_time_limit": False,
    }

    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:

        async def one() -> tuple[bool, float, str]:
            t0 = time.perf_counter()
            try:
                response = await client.request(method, url, content=body, headers=headers)
                elapsed = (time.perf_counter() - t0) * 1e3
                status = response.status_code
                good = status in expect if expect else 200 <= status < 300
                message = "" if good else f"HTTP {status}: {response.text[:160]}"
                return good, elapsed, str(status) if good else message
            except httpx.HTTPError as error:
                elapsed = (time.perf_counter() - t0) * 1e3
                return False, elapsed, f"{type(error).__name__}: {error}"[:200]

        # Warm-up (not counted), one at a time then in parallel.
        for _ in range(int(spec["warmup"])):
            await one()

        counter = {"next": 0}
        start = time.perf_counter()
        deadline = start + float(spec["time_limit_s"])

        async def worker() -> None:
            while True:
                if counter["next"] >= n:
                    return
                if time.perf_counter() >= deadline:
                    out["stopped_by_time_limit"] = True
                    return
                counter["next"] += 1
                good, elapsed, note = await one()
                out["requests_sent"] += 1
                key = note if good else note.split(":", 1)[0]
                out["status_counts"][key] = out["status_counts"].get(key, 0) + 1
                if good:
                    out["ok"] += 1
                    out["latencies_ms"].append(elapsed)
                else:
                    out["errors"] += 1
                    if len(out["error_examples"]) < _MAX_ERROR_EXAMPLES:
                        out["error_examples"].append(note)

        await asyncio.gather(*(worker() for _ in range(conc)))
        out["wall_s"] = time.perf_counter() - start
    return out


def _run_in_thread(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the async load test on a fresh event loop in a thread (works inside Jupyter)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(_run_async(spec))
        except BaseException as error:  # pragma: no cover - re-raised below
            box["error"] = error

    thread = threading.Thread(target=target, name="loadtest", daemon=True)
    thread.start()
    thread.join(float(spec["time_limit_s"]) + float(spec["timeout_s"]) * (1 + spec["warmup"]) + 30)
    if "error" in box:
        raise box["error"]
    if "result" not in box:  # pragma: no cover
        raise TimeoutError("load test did not finish")
    return box["result"]


def _run_isolated(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the load test in a child Python process (``python -m helpers.serving.loadtest``)."""
    budget = float(spec["time_limit_s"]) + float(spec["timeout_s"]) * (1 + spec["warmup"]) + 60
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.serving.loadtest"],
        input=json.dumps(spec).encode(),
        capture_output=True,
        timeout=budget,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"load-test process failed (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}"
        )
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def load_test(
    url: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    content_type: str | None = "image/jpeg",
    headers: Mapping[str, str] | None = None,
    requests: int = 200,
    concurrency: int = 8,
    time_limit_s: float = 60.0,
    timeout_s: float = 10.0,
    warmup: int = 5,
    expect_status: Sequence[int] | None = None,
    label: str | None = None,
    isolate: bool = True,
) -> LoadTestResult:
    """Send ``requests`` requests at ``concurrency`` to ``url``, bounded by ``time_limit_s``.

    Returns a :class:`LoadTestResult` (``.row()`` / ``.to_frame()`` for the table). Errors are
    counted, never raised: the caller asserts ``result.errors == 0``. ``expect_status`` lists
    the statuses counted as success (default: any 2xx) — e.g. ``[415]`` to load-test rejection.
    ``isolate=True`` runs the client in a separate process (see the module docstring).
    """
    if requests < 1 or concurrency < 1:
        raise ValueError("requests and concurrency must be at least 1")
    if time_limit_s <= 0 or timeout_s <= 0:
        raise ValueError("time_limit_s and timeout_s must be positive")
    all_headers = dict(headers or {})
    if content_type:
        all_headers.setdefault("content-type", content_type)
    spec = {
        "url": url,
        "method": method.upper(),
        "body_b64": base64.b64encode(body).decode(),
        "headers": all_headers,
        "requests": int(requests),
        "concurrency": int(concurrency),
        "time_limit_s": float(time_limit_s),
        "timeout_s": float(timeout_s),
        "warmup": int(warmup),
        "expect_status": list(expect_status) if expect_status else None,
    }
    raw = _run_isolated(spec) if isolate else _run_in_thread(spec)
    return LoadTestResult(
        label=label or url,
        url=url,
        requests_planned=int(requests),
        concurrency=int(concurrency),
        time_limit_s=float(time_limit_s),
        **raw,
    )


def results_table(results: Sequence[LoadTestResult]) -> pd.DataFrame:
    """One row per load test (see :meth:`LoadTestResult.row`)."""
    return pd.DataFrame([r.row() for r in results])


def plot_load_tests(results: Sequence[LoadTestResult], *, title: str = "") -> Any:
    """Two panels: requests/s per server, and latency p50 (bar) with p99 (marker)."""
    import textwrap

    import matplotlib.pyplot as plt

    labels = [textwrap.fill(r.label, 18) for r in results]
    x = np.arange(len(results))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.bar(x, [r.req_per_s for r in results], color="#1f5fa8")
    ax1.set_ylabel("requests / s")
    ax1.set_title("throughput")
    ax2.bar(x, [r.p50_ms for r in results], color="#9ab8dc", label="p50")
    ax2.scatter(x, [r.p99_ms for r in results], color="#b3261e", zorder=3, label="p99")
    ax2.set_ylabel("latency (ms)")
    ax2.set_title("latency")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.set_xticks(x, labels, rotation=0)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


@dataclass
class MemoryUse:
    """Resident memory (bytes) of a process: before some work, its peak during it, and after."""

    before: int
    peak: int
    after: int
    result: Any = None

    def row(self, label: str = "") -> dict[str, Any]:
        """MiB figures and the peak as a multiple of the memory before."""
        mib = 2**20
        return {"work": label, "before_MiB": round(self.before / mib), "peak_MiB": round(self.peak / mib),
                "after_MiB": round(self.after / mib), "peak / before": round(self.peak / self.before, 2)}


def memory_during(
    work: Callable[[], Any], *, pid: int | None = None, interval_s: float = 0.005,
    settle_s: float = 1.0,
) -> MemoryUse:
    """Run ``work()`` while polling the RSS of process ``pid`` (default: this one) with psutil.

    ``after`` is read ``settle_s`` after the work ends (freed memory takes a moment to be
    returned). ``result`` is what ``work()`` returned. A sampling poller can miss a peak shorter
    than ``interval_s``; RSS counts pages actually in memory, the figure the OS runs out of.
    """
    import psutil

    process = psutil.Process(pid if pid is not None else os.getpid())
    before = process.memory_info().rss
    peak, done = [before], threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(interval_s)

    poller = threading.Thread(target=poll, name="rss-poller", daemon=True)
    poller.start()
    try:
        result = work()
        time.sleep(settle_s)
    finally:
        done.set()
        poller.join(5)
    return MemoryUse(before, max(peak[0], process.memory_info().rss), process.memory_info().rss, result)


def _main() -> None:  # pragma: no cover - exercised through load_test(isolate=True)
    spec = json.loads(sys.stdin.read())
    result = asyncio.run(_run_async(spec))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":  # pragma: no cover
    _main()

