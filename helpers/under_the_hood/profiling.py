"""Where the time goes: per-operator profiles of ONNX Runtime, PyTorch and OpenVINO in one shape.

Each runtime has its own profiler, and each speaks its own dialect:

- ONNX Runtime: ``SessionOptions.enable_profiling = True`` writes a JSON trace (Chrome trace
  format) with one event per node and run; ``session.end_profiling()`` returns its path.
- PyTorch: ``torch.profiler.profile`` records every ATen call, nested (``aten::conv2d`` calls
  ``aten::convolution`` calls ``aten::mkldnn_convolution``...).
- OpenVINO: ``PERF_COUNT`` (``openvino.properties.enable_profiling``) makes
  ``InferRequest.get_profiling_info()`` return one entry per layer of the *compiled* graph, with
  the kernel that ran it (``exec_type``, e.g. ``brgconv_avx2_f32``) and its average time over
  the inferences so far.

The readers turn each into the same table, one row per operator type, per inference:

=============  ================================================================================
column         meaning
=============  ================================================================================
``runtime``    ``onnxruntime`` / ``pytorch`` / ``openvino``
``op_type``    the runtime's own operator name (``Conv``, ``aten::conv2d``, ``Convolution``)
``category``   a runtime-independent family (:data:`CATEGORIES`), to compare runtimes row by row
``calls``      operator calls per inference
``time_ms``    time per inference spent in this operator type (each node's median over the runs)
``share``      fraction of the operator time of this profile (sums to 1)
=============  ================================================================================

``frame.attrs`` holds ``runtime``, ``runs`` (inferences averaged), ``total_ms`` (operator time
per inference) and ``trace`` (the file written under the output folder).

PyTorch is read at the level the model's Python code calls: the operators directly inside each
profiled run (``aten::conv2d``, ``aten::linear``), with the time of everything they call, so
nothing is counted twice.

:func:`profile_ort`, :func:`profile_torch` and :func:`profile_openvino` do the whole job for one
model: a **dedicated, profiled** session (or profiler context), warm-up, the profiled runs, the
trace written to disk, the table. The profiled session is discarded afterwards: profiling adds
overhead to every call, so timings always come from separate, unprofiled runners.
:func:`by_category`, :func:`compare_profiles`, :func:`explain_gap`, :func:`profiled_vs_timed` and
:func:`plot_top_operators` read the tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORIES",
    "COLUMNS",
    "RUN_LABEL",
    "category_of",
    "from_ort_trace",
    "from_torch_profiler",
    "from_openvino",
    "profile_ort",
    "profile_torch",
    "profile_openvino",
    "Gap",
    "by_category",
    "compare_profiles",
    "describe_changes",
    "explain_gap",
    "profiled_vs_timed",
    "top_operators",
    "plot_top_operators",
]

COLUMNS = ["runtime", "op_type", "category", "calls", "time_ms", "share"]
RUN_LABEL = "profiling.run"  # the record_function label around each profiled PyTorch run

# First match wins: quantisation before matmul (DynamicQuantizeLinear), attention before matmul.
_CATEGORY_PATTERNS: list[tuple[str, str]] = [
    ("quantize", r"quantizelinear|dequantize|fakequantize|quantize_per"),
    ("attention", r"attention|softmax|scaled_dot_product|sdpa"),
    ("convolution", r"conv(?!ert)"),
    ("matmul", r"matmul|gemm|(?<!q)linear|addmm|^bmm$|^mm$|fullyconnected|einsum"),
    ("normalization", r"norm|mvn"),
    ("activation", r"relu|gelu|sigmoid|tanh|erf|silu|swish|clip|clamp|elu|softplus|mish"),
    ("pooling/reduce", r"pool|reduce|mean|^sum$|argmax|topk"),
    ("data movement", r"reshape|transpose|permute|concat|^cat$|gather|slice|squeeze|expand|"
                      r"shape|split|flatten|view|reorder|copy|contiguous|embedding|identity|"
                      r"cast|^to$|convert|pad|tile|where|select|index|range|dropout|memcpy|"
                      r"broadcast|constant"),
    ("elementwise", r"add|mul|sub|div|pow|sqrt|exp|log|neg|abs|eltwise|subgraph|^max$|^min$"),
]
CATEGORIES = [name for name, _ in _CATEGORY_PATTERNS] + ["other"]


def category_of(op_type: str) -> str:
    """The runtime-independent family of an operator name, e.g. ``aten::conv2d`` → convolution.

    ``Conv``, ``QLinearConv``, ``FusedConv``, ``aten::conv2d`` and OpenVINO's ``Convolution``
    are all ``"convolution"``; ``MatMul``, ``Gemm``, ``aten::linear``, ``FullyConnected`` and
    ``MatMulInteger`` are ``"matmul"``. Unknown names are ``"other"``.
    """
    name = op_type.lower().removeprefix("aten::")
    for category, pattern in _CATEGORY_PATTERNS:
        if re.search(pattern, name):
            return category
    return "other"


def _table(rows: Iterable[tuple[str, str, float]], *, runtime: str, runs: int,
           trace: Path | None) -> pd.DataFrame:
    """``(op_type, node, microseconds)`` per call over ``runs`` inferences → the common table.

    Each node's time is its **median** over the runs (a thread preempted once by another
    process inflates one call, not the table), times how often it ran per inference.
    """
    per_node: dict[tuple[str, str], list[float]] = {}
    for op_type, node, us in rows:
        per_node.setdefault((op_type, node), []).append(float(us))
    runs = max(int(runs), 1)
    calls: dict[str, float] = {}
    micros: dict[str, float] = {}
    for (op_type, _), times in per_node.items():
        per_run = len(times) / runs
        calls[op_type] = calls.get(op_type, 0.0) + per_run
        micros[op_type] = micros.get(op_type, 0.0) + float(np.median(times)) * per_run
    frame = pd.DataFrame({
        "runtime": runtime,
        "op_type": list(calls),
        "calls": [round(calls[k], 3) for k in calls],
        "time_ms": [micros[k] / 1e3 for k in calls],
    })
    if frame.empty:
        frame = pd.DataFrame(columns=COLUMNS)
    else:
        frame["category"] = frame["op_type"].map(category_of)
        total = frame["time_ms"].sum()
        frame["share"] = frame["time_ms"] / total if total > 0 else 0.0
        frame = frame.sort_values("time_ms", ascending=False, kind="stable")
        frame = frame[COLUMNS].reset_index(drop=True)
    frame.attrs.update({"runtime": runtime, "runs": runs, "trace": str(trace) if trace else None,
                        "total_ms": float(frame["time_ms"].sum()) if len(frame) else 0.0})
    return frame


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------


def from_ort_trace(path: str | Path, *, skip_runs: int = 0) -> pd.DataFrame:
    """Read an ONNX Runtime profile (the JSON file ``session.end_profiling()`` returns).

    Node events (``cat == "Node"``, names ending in ``_kernel_time``) are grouped by their
    ``args.op_name``; each ``model_run`` event is one inference. The first ``skip_runs``
    inferences (warm-up: memory allocation, kernel selection) are left out.
    """
    path = Path(path)
    events = json.loads(path.read_text())
    if not isinstance(events, list):
        raise ValueError(f"{path.name} is not an ONNX Runtime profile (expected a JSON list)")
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                  if e.get("cat") == "Session" and e.get("name") == "model_run")
    nodes = [e for e in events if e.get("cat") == "Node"
             and str(e.get("name", "")).endswith("_kernel_time")]
    if runs:
        if skip_runs >= len(runs):
            raise ValueError(f"{path.name} has {len(runs)} runs; cannot skip {skip_runs}")
        kept = runs[skip_runs:]
        starts = np.array([s for s, _ in kept])
        ends = np.array([e for _, e in kept])

        def in_kept_run(ts: float) -> bool:
            i = np.searchsorted(starts, ts, side="right") - 1
            return bool(i >= 0 and ts <= ends[i])

        nodes = [e for e in nodes if in_kept_run(e["ts"])]
        count = len(kept)
    else:  # a trace without run markers: everything is one run
        count = 1
    rows = ((e.get("args", {}).get("op_name") or e["name"].removesuffix("_kernel_time"),
             e["name"], e["dur"]) for e in nodes)
    return _table(rows, runtime="onnxruntime", runs=count, trace=path)


def from_torch_profiler(prof: Any, *, trace: str | Path | None = None) -> pd.DataFrame:
    """Read a finished ``torch.profiler.profile`` in which each inference ran inside
    ``torch.profiler.record_function(RUN_LABEL)``.

    The operators called directly inside each run are counted with their total (inclusive)
    CPU time. Without ``RUN_LABEL`` markers the top-level operators are used, as one run.
    """
    events = list(prof.events())
    runs = [e for e in events if e.name == RUN_LABEL]
    groups = [run.cpu_children for run in runs] if runs else [
        [e for e in events if e.cpu_parent is None]]
    rows: list[tuple[str, str, float]] = []
    for ops in groups:  # the k-th call of a run is the same node in every run
        ordered = sorted(ops, key=lambda e: e.time_range.start)
        rows.extend((e.name, f"{k}:{e.name}", e.cpu_time_total) for k, e in enumerate(ordered))
    return _table(rows, runtime="pytorch", runs=max(len(runs), 1),
                  trace=Path(trace) if trace else None)


def from_openvino(infos: Sequence[Any], *, runs: int = 1, warmup_infos: Sequence[Any] = (),
                  warmup: int = 0, by: str = "node_type",
                  trace: str | Path | None = None) -> pd.DataFrame:
    """Read OpenVINO's per-layer counters (``InferRequest.get_profiling_info()``).

    OpenVINO's CPU plugin reports, for each layer, its **average** time over every inference
    of the compiled model so far (all requests together). ``infos`` is read after
    ``warmup + runs`` inferences and ``warmup_infos`` after the first ``warmup``; each layer
    then counts with its mean over the ``runs`` inferences in between:
    ``((warmup + runs) * average_now - warmup * average_then) / runs``.

    Layers that did not run (``NOT_RUN``, ``OPTIMIZED_OUT``: fused into a neighbour or
    removed) are left out. ``by="node_type"`` groups by the layer type (``Convolution``);
    ``by="exec_type"`` by layer type and the kernel that ran it (``Convolution:
    brgconv_avx2_f32``, ``Convolution: jit_avx2_I8``) — the place to see which precision ran.
    """
    if by not in ("node_type", "exec_type"):
        raise ValueError(f"by must be 'node_type' or 'exec_type', got {by!r}")
    if runs < 1 or warmup < 0 or (warmup and not warmup_infos):
        raise ValueError("runs must be >= 1, warmup >= 0, and warmup_infos given when warmup > 0")

    def key(info: Any) -> str:
        return info.node_type if by == "node_type" else f"{info.node_type}: {info.exec_type}"

    def micros(info: Any) -> float:
        return info.real_time.total_seconds() * 1e6

    before = {info.node_name: micros(info) for info in warmup_infos}
    rows = []
    for info in infos:
        if _executed(info):
            total = (warmup + runs) * micros(info) - warmup * before.get(info.node_name, 0.0)
            rows.append((key(info), info.node_name, max(total / runs, 0.0)))
    frame = _table(rows, runtime="openvino", runs=1, trace=Path(trace) if trace else None)
    frame.attrs["runs"] = runs
    return frame


def _executed(info: Any) -> bool:
    return str(info.status).rsplit(".", 1)[-1] == "EXECUTED"


# --------------------------------------------------------------------------------------------
# Profile one model on one runtime
# --------------------------------------------------------------------------------------------


def _check_runs(runs: int, warmup: int) -> None:
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")


def profile_ort(
    onnx_path: str | Path,
    inputs: Mapping[str, np.ndarray],
    output_dir: str | Path,
    *,
    name: str = "ort",
    runs: int = 10,
    warmup: int = 2,
    threads: int = 2,
    graph_optimization_level: str = "all",
    custom_ops_library: str | None = None,
) -> pd.DataFrame:
    """Profile an ONNX model on ONNX Runtime's CPU provider; the trace goes to ``output_dir``.

    A dedicated session with ``enable_profiling`` runs ``warmup + runs`` inferences, then
    ``end_profiling()`` writes the JSON trace (``<output_dir>/<name>_<date>.json``); the
    warm-up runs are not counted. ``graph_optimization_level``: ``all | extended | basic |
    disabled``. ``custom_ops_library``: a shared library of custom operators to register
    (e.g. ``onnxruntime_extensions.get_library_path()``).
    """
    import onnxruntime as ort

    _check_runs(runs, warmup)
    levels = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED",
              "basic": "ORT_ENABLE_BASIC", "disabled": "ORT_DISABLE_ALL"}
    if graph_optimization_level not in levels:
        raise ValueError(f"graph_optimization_level must be one of {list(levels)}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(out / name)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel,
                                               levels[graph_optimization_level])
    if custom_ops_library:
        options.register_custom_ops_library(custom_ops_library)
    session = ort.InferenceSession(str(onnx_path), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    feed = {i.name: inputs[i.name] for i in session.get_inputs()}
    for _ in range(warmup + runs):
        session.run(None, feed)
    trace = Path(session.end_profiling())
    del session  # profiled sessions are never reused for timing
    frame = from_ort_trace(trace, skip_runs=warmup)
    frame.attrs["graph_optimization_level"] = graph_optimization_level
    return frame


def profile_torch(
    model: Any,
    inputs: Mapping[str, Any] | Sequence[Any],
    output_dir: str | Path,
    *,
    name: str = "torch",
    runs: int = 10,
    warmup: int = 2,
    threads: int | None = None,
) -> pd.DataFrame:
    """Profile a PyTorch module (eager, ``inference_mode``) with ``torch.profiler``.

    ``inputs``: keyword inputs (a dict of tensors or numpy arrays) or positional ones. Warm-up
    runs happen before the profiler starts; each profiled run is wrapped in
    ``record_function(RUN_LABEL)``. The Chrome trace goes to ``<output_dir>/<name>.json``
    (open it in Perfetto or ``chrome://tracing``). ``threads`` sets torch's intra-op threads
    for the profile and restores the previous value afterwards.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    _check_runs(runs, warmup)

    def as_tensor(value: Any) -> Any:
        return torch.from_numpy(value) if isinstance(value, np.ndarray) else value

    if isinstance(inputs, Mapping):
        args, kwargs = (), {k: as_tensor(v) for k, v in inputs.items()}
    else:
        args, kwargs = tuple(as_tensor(v) for v in inputs), {}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    trace = out / f"{name}.json"
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(*args, **kwargs)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(runs):
                    with record_function(RUN_LABEL):
                        model(*args, **kwargs)
    finally:
        torch.set_num_threads(before)
    prof.export_chrome_trace(str(trace))
    return from_torch_profiler(prof, trace=trace)


def profile_openvino(
    model_path: str | Path,
    inputs: Mapping[str, np.ndarray],
    output_dir: str | Path,
    *,
    name: str = "openvino",
    runs: int = 10,
    warmup: int = 2,
    threads: int = 2,
    precision: str = "f32",
    by: str = "node_type",
) -> pd.DataFrame:
    """Profile an ONNX or OpenVINO IR model on OpenVINO's CPU plugin with ``PERF_COUNT``.

    A dedicated compiled model (``enable_profiling``, the ``LATENCY`` hint, ``threads`` inference
    threads, ``precision`` as the inference precision hint: ``f32`` or ``bf16``) runs ``warmup + runs``
    inferences; the counters (running averages, see :func:`from_openvino`) after the warm-up and
    at the end are written to ``<output_dir>/<name>.csv``, one row per layer.
    """
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    _check_runs(runs, warmup)
    core = ov.Core()
    config = {props.enable_profiling: True, props.inference_num_threads: threads,
              hints.inference_precision: precision,
              hints.performance_mode: hints.PerformanceMode.LATENCY}
    compiled = core.compile_model(str(model_path), "CPU", config)
    request = compiled.create_infer_request()
    feed = {}
    for port in compiled.inputs:
        names = port.get_names()
        key = next((n for n in inputs if n in names), None)
        if key is None:
            raise KeyError(f"no input for {sorted(names)}; got {sorted(inputs)}")
        feed[port] = inputs[key]
    for _ in range(warmup):
        request.infer(feed)
    after_warmup = request.get_profiling_info() if warmup else []
    for _ in range(runs):
        request.infer(feed)
    infos = request.get_profiling_info()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    trace = out / f"{name}.csv"
    frame = from_openvino(infos, runs=runs, warmup_infos=after_warmup, warmup=warmup, by=by,
                          trace=trace)
    before = {p.node_name: p.real_time.total_seconds() * 1e6 for p in after_warmup}
    pd.DataFrame([
        {"node_name": p.node_name, "node_type": p.node_type, "exec_type": p.exec_type,
         "status": str(p.status).rsplit(".", 1)[-1], "avg_us_after_warmup": before.get(p.node_name),
         "avg_us_at_end": p.real_time.total_seconds() * 1e6}
        for p in infos
    ]).to_csv(trace, index=False)
    del request, compiled  # profiled models are never reused for timing
    return frame


# --------------------------------------------------------------------------------------------
# Reading the tables
# --------------------------------------------------------------------------------------------


def _frames(profiles: pd.DataFrame | Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if isinstance(profiles, pd.DataFrame):
        return {str(profiles.attrs.get("runtime", "profile")): profiles}
    if not profiles:
        raise ValueError("no profiles given")
    return dict(profiles)


def by_category(profiles: pd.DataFrame | Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Milliseconds per inference in each :data:`CATEGORIES` family, one column per profile.

    ``profiles``: one table, or ``{label: table}`` (e.g. ``{"PyTorch": t1, "ORT": t2}``).
    Families no profile uses are dropped; a ``total`` row closes the table.
    """
    frames = _frames(profiles)
    columns = {label: frame.groupby("category")["time_ms"].sum() for label, frame in frames.items()}
    table = pd.DataFrame(columns).reindex(CATEGORIES).dropna(how="all").fillna(0.0)
    table.loc["total"] = table.sum()
    table.index.name = "category"
    return table


def compare_profiles(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Operator types side by side: calls and milliseconds per inference before and after.

    ``change`` is ``"removed"`` for types that no longer run, ``"new"`` for types that appear
    (a fused operator, a quantised kernel), ``"fewer"``/``"more"`` when the call count moved.
    Sorted by the time before, then after.
    """
    left = before.set_index("op_type")[["calls", "time_ms"]].add_suffix("_before")
    right = after.set_index("op_type")[["calls", "time_ms"]].add_suffix("_after")
    table = left.join(right, how="outer").fillna(0.0)
    table = table[["calls_before", "time_ms_before", "calls_after", "time_ms_after"]]

    def change(row: pd.Series) -> str:
        if row.calls_after == 0:
            return "removed"
        if row.calls_before == 0:
            return "new"
        if row.calls_after < row.calls_before:
            return "fewer"
        return "more" if row.calls_after > row.calls_before else ""

    table["change"] = table.apply(change, axis=1)
    table = table.sort_values(["time_ms_before", "time_ms_after"], ascending=False)
    return table.reset_index()


def describe_changes(changes: pd.DataFrame) -> str:
    """``"Gone: Conv ×52, Relu ×30. New: FusedConv ×52."`` from a :func:`compare_profiles` table.

    Calls per inference of the operator types that stopped running and of those that appeared;
    ``nothing`` for an empty side.
    """
    gone = [f"{r.op_type} ×{r.calls_before:.0f}" for r in changes[changes.change == "removed"].itertuples()]
    new = [f"{r.op_type} ×{r.calls_after:.0f}" for r in changes[changes.change == "new"].itertuples()]
    return f"Gone: {', '.join(gone) or 'nothing'}. New: {', '.join(new) or 'nothing'}."


@dataclass(frozen=True)
class Gap:
    """A measured speed difference and where the profiles put it (see :func:`explain_gap`)."""

    ratio: float  # base time / other time: > 1 means `other` is faster
    biggest: str  # the category with the largest difference in profiled time
    title: str
    body: str


def explain_gap(categories: pd.DataFrame, timed_ms: Mapping[str, float], base: str, other: str,
                *, level: float = 0.05, top: int = 3) -> Gap:
    """Sentences about why ``other`` is faster or slower than ``base``, from numbers of this run.

    ``categories``: :func:`by_category` of both profiles (columns ``base`` and ``other``);
    ``timed_ms``: unprofiled latencies (e.g. p50) by the same labels. The title states the
    timed ratio (within ``level``, 5 %, the two are called level); the body names the ``top``
    categories with the largest profiled differences, the categories ``other`` does not run
    at all (their work is done inside other operators, or was a no-op), and the biggest
    category's share of each profile.
    """
    for label in (base, other):
        if label not in categories.columns or label not in timed_ms:
            raise KeyError(f"{label!r} must be a column of categories and a key of timed_ms")
    ratio = float(timed_ms[base]) / float(timed_ms[other])
    verdict = ("faster than" if ratio > 1 + level else "slower than" if ratio < 1 / (1 + level)
               else "level with")
    title = (f"{other} is {verdict} {base}: {ratio:.2f}x (timed {float(timed_ms[other]):.2f} vs "
             f"{float(timed_ms[base]):.2f} ms)")
    per = categories.drop(index="total", errors="ignore")
    diff = (per[base] - per[other]).abs().sort_values(ascending=False)
    biggest = str(diff.index[0])
    largest = [f"{c} ({per.loc[c, base]:.3f} → {per.loc[c, other]:.3f} ms)"
               for c in diff.index[:top] if diff[c] > 0]
    body = (f"Per inference, profiled, from {base} to {other}, the largest differences are in "
            f"{_join(largest)}." if largest else "The profiles spend the same time in every category.")
    absent = [str(c) for c in per.index if per.loc[c, base] > 0 and per.loc[c, other] == 0]
    if absent:
        body += (f" {other}'s profile has no {_join(absent)} operators at all: that work happens "
                 "inside other operators (folded or fused), or was a no-op.")
    totals = per.sum()
    if totals[base] > 0 and totals[other] > 0:
        body += (f" {biggest.capitalize()} is {per.loc[biggest, other] / totals[other]:.0%} of "
                 f"{other}'s operator time and {per.loc[biggest, base] / totals[base]:.0%} of {base}'s.")
    return Gap(ratio, biggest, title, body)


def profiled_vs_timed(categories: pd.DataFrame,
                      timed_ms: Mapping[str, float]) -> tuple[pd.DataFrame, str]:
    """Each runtime's profiled operator time next to its unprofiled latency, and what a gap means.

    ``categories``: :func:`by_category` of the profiles (its ``total`` row is used);
    ``timed_ms``: unprofiled latencies (e.g. p50) by the same labels. Returns a table with
    ``timed p50 ms``, ``profiled operator ms`` and their ratio ``profiled / timed`` per runtime,
    and one sentence on the range of ratios: above 1 is the profiler's own bookkeeping, below 1
    is work outside the operators (Python dispatch, copying inputs and outputs) or other
    processes taking the CPU during the timed runs (a profile keeps each operator's median).
    """
    timed = {str(label): float(ms) for label, ms in dict(timed_ms).items()}  # a Series works too
    labels = [label for label in timed if label in categories.columns]
    if not labels:
        raise KeyError("no label of timed_ms is a column of categories")
    table = pd.DataFrame({"timed p50 ms": pd.Series({k: timed[k] for k in labels}),
                          "profiled operator ms": categories.loc["total", labels]})
    table["profiled / timed"] = table["profiled operator ms"] / table["timed p50 ms"]
    ratio = table["profiled / timed"]
    reasons = (["above 1: the profiler's own bookkeeping"] if ratio.max() > 1 else []) + (
        ["below 1: work outside the operators (Python dispatch, copying inputs and outputs), or "
         "other processes taking the CPU during the timed runs: a profile keeps each operator's "
         "median, a timed run is whole"] if ratio.min() < 1 else [])
    note = (f"Profiled operator time is {ratio.min():.2f}–{ratio.max():.2f}x the timed p50 here"
            + (f" ({'; '.join(reasons)})." if reasons else "."))
    return table, note


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def top_operators(profile: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` operator types with the most time, plus an ``(other N types)`` row for the rest."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    top = profile.head(n).copy()
    rest = profile.iloc[n:]
    if len(rest):
        top.loc[len(top)] = {"runtime": profile.attrs.get("runtime", ""),
                             "op_type": f"(other {len(rest)} types)", "category": "other",
                             "calls": rest["calls"].sum(), "time_ms": rest["time_ms"].sum(),
                             "share": rest["share"].sum()}
    top.attrs = dict(profile.attrs)
    return top


def plot_top_operators(profiles: pd.DataFrame | Mapping[str, pd.DataFrame], *, n: int = 8,
                       title: str = "", axes: Any = None) -> Any:
    """Horizontal bars of the top ``n`` operator types (ms per inference), one panel per profile,
    coloured by category so the same family has the same colour on every runtime. Returns the
    figure."""
    import matplotlib.pyplot as plt

    frames = _frames(profiles)
    if axes is None:
        fig, axes = plt.subplots(1, len(frames), figsize=(4.6 * len(frames), 0.45 * n + 1.4),
                                 squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(axes)
        fig = axes[0].figure
    palette = plt.get_cmap("tab10")
    colours = {c: palette(i % 10) for i, c in enumerate(CATEGORIES)}
    for ax, (label, frame) in zip(axes, frames.items(), strict=True):
        top = top_operators(frame, n).iloc[::-1]
        ax.barh(top["op_type"], top["time_ms"], color=[colours[c] for c in top["category"]])
        for y, (ms, share) in enumerate(zip(top["time_ms"], top["share"], strict=True)):
            ax.text(ms, y, f" {share:.0%}", va="center", fontsize=8)
        ax.set_title(label)
        ax.set_xlabel("ms per inference (profiled)")
        ax.margins(x=0.18)
    used = sorted({c for f in frames.values() for c in top_operators(f, n)["category"]},
                  key=CATEGORIES.index)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in used]
    fig.legend(handles, used, loc="lower center", ncol=min(len(used), 5), frameon=False,
               fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig

