"""Tables and charts of benchmark results: several runners compared against a baseline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from helpers.benchmark.limits import Limits, limit_key, measure_gemm_peak
from helpers.benchmark.timing import BenchmarkResult, benchmark, is_runner, label_of

__all__ = ["compare", "plot_latencies", "results_frame"]

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
    limits: Limits | Mapping[str, float] | None = None,
    precisions: Mapping[str, str | None] | None = None,
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
    model's FLOPs for one call on these inputs, e.g. from :func:`helpers.benchmark.count_flops`)
    two more columns: ``lower_bound_ms = flops / peak`` — the time the arithmetic alone needs at
    the machine's measured GEMM peak (``peak_gflops``, measured with
    :func:`helpers.benchmark.measure_gemm_peak` at torch's current thread count when not given)
    — and ``pct_of_limit = lower_bound_ms / p50_ms × 100``.

    **Each row against the limit of its own precision**: pass ``limits`` (a
    :class:`~helpers.benchmark.Limits` from :func:`~helpers.benchmark.measure_limits`, or a
    mapping ``{"float32": peak, "bfloat16": peak, "int8": peak}``) and every row gets a
    ``precision`` column — from ``precisions[label]`` when given, else the runner's
    ``precision`` attribute (what it really computes in, e.g. what OpenVINO read back), else
    float32 — and is compared with that precision's peak (column ``limit``). A precision of
    ``None`` (e.g. a GPU row, whose limits are not the CPU's) or one without a measured peak
    leaves the row's limit columns empty.

    ``frame.attrs`` carries ``baseline``, ``speedup_column``, ``fingerprint``, ``flops`` and
    ``peak_gflops``; ``frame.attrs["results"]`` the :class:`BenchmarkResult` objects.
    """
    if isinstance(runners, Mapping):
        items = [(str(k), v) for k, v in runners.items()]
    else:
        items = [(label_of(r), r) for r in runners]
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
        if is_runner(runner) or inputs is not None:
            results.append(benchmark(runner, inputs, **kwargs))
        else:
            results.append(benchmark(runner, **kwargs))

    frame = results_frame(results)
    base_p50 = frame.loc[frame["runner"] == baseline, "p50_ms"].iloc[0]
    speedup_column = f"speedup_vs_{baseline}"
    frame[speedup_column] = base_p50 / frame["p50_ms"]
    if flops is not None and limits is not None:
        row_precisions = [_row_precision(lbl, r, precisions) for lbl, r in items]
        frame["precision"] = row_precisions
        frame["limit"] = [_peak_for(limits, p) for p in row_precisions]
        frame["lower_bound_ms"] = float(flops) / (frame["limit"] * 1e9) * 1e3
        frame["pct_of_limit"] = frame["lower_bound_ms"] / frame["p50_ms"] * 100.0
    elif flops is not None:
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


def _row_precision(
    label: str, runner: Any, precisions: Mapping[str, str | None] | None
) -> str | None:
    if precisions is not None and label in precisions:
        value = precisions[label]
        return None if value is None else limit_key(value)
    device = str(getattr(runner, "device", "") or "")
    providers = getattr(runner, "providers_actual", None) or []
    gpu_providers = {"CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider"}
    if device.startswith("cuda") or (providers and providers[0] in gpu_providers):
        return None  # a GPU's limits are not the CPU's
    return limit_key(getattr(runner, "precision", None) or "float32")


def _peak_for(limits: Limits | Mapping[str, float], precision: str | None) -> float:
    if precision is None:
        return float("nan")
    if isinstance(limits, Limits):
        return limits.probes[precision].value if precision in limits.probes else float("nan")
    return float(limits.get(precision, float("nan")))


def _fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.3g}"


def plot_latencies(
    table: pd.DataFrame, *, title: str = "", ax: Any = None, quality: str | None = None
) -> Any:
    """Horizontal bars of p50 latency (ms) with whiskers up to p90, fastest at the top.

    ``table`` is the output of :func:`compare` or :func:`results_frame` (needs ``runner`` — a
    column or the index's name — ``p50_ms``, ``p90_ms``). Each bar is labelled with its p50 in
    ms, and with ``quality`` (a column holding a fraction, e.g. ``"top1_agreement"``) also with
    that figure, so the chart never shows a speed without its quality. When the table has a
    ``lower_bound_ms`` column, the physical limit is drawn as a dashed line — or, when the rows
    have different limits (different precisions), as a red tick on each bar. Returns the
    matplotlib Figure (created without pyplot, so a notebook shows it once, as the cell's
    value). Pass ``ax`` to draw into an existing axes.
    """
    from matplotlib.figure import Figure

    if "runner" not in table.columns and table.index.name == "runner":
        table = table.reset_index()
    if quality is not None and quality not in table.columns:
        raise ValueError(f"plot_latencies: table has no quality column {quality!r}")
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
    scores = data[quality].to_numpy(dtype=float) if quality else np.full(len(data), np.nan)
    label = quality.replace("_", " ") if quality else ""
    for y, (a, b, score) in enumerate(zip(p50, p90, scores, strict=True)):
        text = f"{_fmt_ms(a)} ms" + (f" · {label} {score:.0%}" if np.isfinite(score) else "")
        ax.text(max(a, b) + 0.01 * right, y, text, va="center", fontsize=9)
    bounds = data["lower_bound_ms"] if "lower_bound_ms" in data.columns else None
    mixed = bounds is not None and bounds.dropna().nunique() > 1
    if mixed and bounds is not None:  # rows of different precisions: each bar's own limit, as a tick on the bar
        ax.scatter(
            bounds.to_numpy(dtype=float),
            positions,
            marker="|",
            s=260,
            color="#C44E52",
            linewidths=2,
            zorder=3,
            label="limit for the row's precision",
        )
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    elif bounds is not None and bounds.notna().any():
        bound = float(bounds.dropna().iloc[0])
        ax.axvline(bound, color="#C44E52", linestyle="--", linewidth=1.2)
        ax.text(
            bound,
            len(data) - 0.5,
            f" limit {_fmt_ms(bound)} ms",
            color="#C44E52",
            va="bottom",
            fontsize=8,
        )
    ax.set_xlim(0, right * (1.45 if quality else 1.18))
    ax.set_xlabel("latency (ms) — bar: p50, whisker: p90")
    if title:
        ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig
