"""Per-operator profiles of ONNX Runtime, PyTorch and OpenVINO read into one table shape."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import matplotlib
import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from helpers import export, runners
from helpers.models import tiny as tiny_models
from helpers.under_the_hood import profiling

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = tiny_models.TinyClassifier().eval()
    x = tiny_models.example_images(batch=2, size=16)
    folder = tmp_path_factory.mktemp("profiles")
    path = export.export_onnx(model, (x,), folder / "tiny.onnx", input_names=["images"],
                              output_names=["logits"])
    return model, x, path, folder


def _check_shape(frame: pd.DataFrame, runtime: str) -> None:
    assert list(frame.columns) == profiling.COLUMNS
    assert (frame.runtime == runtime).all() and frame.attrs["runtime"] == runtime
    assert frame.share.sum() == pytest.approx(1.0)
    assert frame.time_ms.is_monotonic_decreasing
    assert frame.attrs["total_ms"] == pytest.approx(frame.time_ms.sum())
    assert set(frame.category) <= set(profiling.CATEGORIES)


@pytest.mark.parametrize("name, family", [
    ("Conv", "convolution"), ("QLinearConv", "convolution"), ("aten::conv2d", "convolution"),
    ("Convert", "data movement"), ("Gemm", "matmul"), ("aten::linear", "matmul"),
    ("FullyConnected", "matmul"), ("DynamicQuantizeMatMul", "matmul"),
    ("DynamicQuantizeLinear", "quantize"), ("DequantizeLinear", "quantize"),
    ("QLinearAdd", "elementwise"), ("aten::add", "elementwise"),
    ("SkipLayerNormalization", "normalization"), ("aten::layer_norm", "normalization"),
    ("aten::scaled_dot_product_attention", "attention"), ("Softmax", "attention"),
    ("BiasGelu", "activation"), ("Relu", "activation"), ("Reorder", "data movement"),
    ("aten::adaptive_avg_pool2d", "pooling/reduce"), ("Convolution: brgconv_avx2_f32", "convolution"),
    ("SomethingNew", "other"),
])
def test_categories(name, family):
    assert profiling.category_of(name) == family


def _event(cat, name, ts, dur, op=None):
    event = {"cat": cat, "name": name, "ts": ts, "dur": dur, "ph": "X", "pid": 1, "tid": 1}
    if op:
        event["args"] = {"op_name": op}
    return event


def test_ort_trace_reader_skips_warmup_and_takes_each_nodes_median(tmp_path):
    events = [_event("Session", "session_initialization", 0, 50)]
    conv_times = [900, 10, 12, 11, 500]  # run 0 is warm-up, run 4 has an outlier (preemption)
    for run, conv in enumerate(conv_times):
        start = 1000 * (run + 1)
        events.append(_event("Session", "model_run", start, 800))
        events.append(_event("Node", "conv1_kernel_time", start + 1, conv, "Conv"))
        events.append(_event("Node", "conv2_kernel_time", start + 2, 20, "Conv"))
        events.append(_event("Node", "relu_fence_before", start + 3, 1))  # not a kernel
        events.append(_event("Node", "gemm_kernel_time", start + 4, 10, "Gemm"))
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(events))
    frame = profiling.from_ort_trace(path, skip_runs=1)
    _check_shape(frame, "onnxruntime")
    rows = frame.set_index("op_type")
    assert frame.attrs["runs"] == 4
    assert rows.loc["Conv", "calls"] == 2 and rows.loc["Gemm", "calls"] == 1
    # conv1: median of 10, 12, 11, 500 = 11.5 us; conv2: 20 us
    assert rows.loc["Conv", "time_ms"] == pytest.approx((11.5 + 20) / 1e3)
    assert rows.loc["Gemm", "time_ms"] == pytest.approx(10 / 1e3)
    with pytest.raises(ValueError, match="cannot skip 5"):
        profiling.from_ort_trace(path, skip_runs=5)
    path.write_text(json.dumps({"traceEvents": []}))
    with pytest.raises(ValueError, match="not an ONNX Runtime profile"):
        profiling.from_ort_trace(path)


def test_profile_ort_counts_every_node_of_the_optimised_graph(tiny):
    _, x, path, folder = tiny
    feed = {"images": x.numpy()}
    for level in ("disabled", "all"):
        frame = profiling.profile_ort(path, feed, folder, name=f"ort_{level}", runs=3, warmup=1,
                                      threads=1, graph_optimization_level=level)
        _check_shape(frame, "onnxruntime")
        assert frame.attrs["trace"].startswith(str(folder / f"ort_{level}"))
        # the graph ORT really ran, written by an unprofiled session at the same level
        optimised = folder / f"optimised_{level}.onnx"
        runners.ort_runner(path, threads=1, graph_optimization_level=level,
                           optimized_model_path=optimised)
        nodes = onnx.load(str(optimised)).graph.node
        assert frame.calls.sum() == len(nodes)
        assert dict(zip(frame.op_type, frame.calls, strict=True)) == {
            op: float(sum(n.op_type == op for n in nodes)) for op in {n.op_type for n in nodes}}
    with pytest.raises(ValueError, match="graph_optimization_level"):
        profiling.profile_ort(path, feed, folder, graph_optimization_level="max")
    with pytest.raises(ValueError, match="runs"):
        profiling.profile_ort(path, feed, folder, runs=0)


def test_profile_torch_reads_the_calls_of_the_models_code(tiny):
    model, x, _, folder = tiny
    before = torch.get_num_threads()
    frame = profiling.profile_torch(model, (x,), folder, runs=3, warmup=1, threads=1)
    _check_shape(frame, "pytorch")
    assert torch.get_num_threads() == before
    calls = dict(zip(frame.op_type, frame.calls, strict=True))
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert calls["aten::conv2d"] == convs
    assert calls["aten::linear"] == sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert not any(op.startswith("aten::mkldnn") for op in calls)  # nested calls not counted
    assert (folder / "torch.json").exists() and frame.attrs["runs"] == 3
    keyword = profiling.profile_torch(model, {"x": x.numpy()}, folder, name="kw", runs=2)
    assert set(keyword.op_type) == set(frame.op_type)


def _info(name, node_type, exec_type, us, status="EXECUTED"):
    return SimpleNamespace(node_name=name, node_type=node_type, exec_type=exec_type,
                           real_time=timedelta(microseconds=us), status=f"Status.{status}")


def test_openvino_reader_takes_the_mean_of_the_profiled_runs():
    # OpenVINO's counters are averages over every inference so far: after 1 warm-up run a layer
    # shows 100 us; after 1 + 2 runs, 40 us -> the two profiled runs took (3 * 40 - 100) / 2 = 10 us.
    warm = [_info("conv", "Convolution", "brgconv_avx2_f32", 100), _info("fc", "FullyConnected", "gemm_mlas_f32", 8)]
    end = [_info("conv", "Convolution", "brgconv_avx2_f32", 40),
           _info("relu", "Relu", "undef", 0, "NOT_RUN"),
           _info("fc", "FullyConnected", "gemm_mlas_f32", 6)]
    frame = profiling.from_openvino(end, runs=2, warmup_infos=warm, warmup=1)
    _check_shape(frame, "openvino")
    rows = frame.set_index("op_type")
    assert list(rows.index) == ["Convolution", "FullyConnected"]  # Relu did not run
    assert rows.loc["Convolution", "time_ms"] == pytest.approx(10 / 1e3)
    assert rows.loc["FullyConnected", "time_ms"] == pytest.approx(5 / 1e3)
    assert list(frame.calls) == [1, 1] and frame.attrs["runs"] == 2
    no_warmup = profiling.from_openvino(end, runs=3)
    assert no_warmup.set_index("op_type").loc["Convolution", "time_ms"] == pytest.approx(40 / 1e3)
    kernels = profiling.from_openvino(end, by="exec_type")
    assert list(kernels.op_type) == ["Convolution: brgconv_avx2_f32", "FullyConnected: gemm_mlas_f32"]
    with pytest.raises(ValueError, match="by must be"):
        profiling.from_openvino(end, by="layer")
    with pytest.raises(ValueError, match="warmup_infos"):
        profiling.from_openvino(end, runs=2, warmup=1)


def test_profile_openvino(tiny):
    pytest.importorskip("openvino")
    _, x, path, folder = tiny
    frame = profiling.profile_openvino(path, {"images": x.numpy()}, folder, runs=3, warmup=1,
                                       threads=1)
    _check_shape(frame, "openvino")
    assert frame.set_index("op_type").loc["Convolution", "calls"] == 2
    counters = pd.read_csv(folder / "openvino.csv")
    executed = counters[counters.status == "EXECUTED"]
    assert len(executed) == frame.calls.sum()  # every executed layer, once per inference
    assert executed.avg_us_after_warmup.notna().all() and (executed.avg_us_at_end >= 0).all()
    with pytest.raises(KeyError, match="no input for"):
        profiling.profile_openvino(path, {"pixels": x.numpy()}, folder)


def _frame(runtime, rows):
    return profiling._table(((op, op, us) for op, us in rows), runtime=runtime, runs=1, trace=None)


def test_category_table_comparison_and_top_operators():
    before = _frame("onnxruntime", [("Conv", 300), ("Relu", 50), ("Conv", 100), ("Gemm", 40)])
    after = _frame("onnxruntime", [("FusedConv", 320), ("FusedConv", 90), ("Gemm", 40)])
    table = profiling.by_category({"before": before, "after": after})
    assert table.loc["total", "before"] == pytest.approx(0.49)
    assert table.loc["convolution", "after"] == pytest.approx(0.41)
    assert table.loc["activation", "after"] == 0
    changes = profiling.compare_profiles(before, after).set_index("op_type")["change"]
    assert changes.to_dict() == {"Conv": "removed", "FusedConv": "new", "Relu": "removed", "Gemm": ""}
    described = profiling.describe_changes(profiling.compare_profiles(before, after))
    assert described == "Gone: Conv ×2, Relu ×1. New: FusedConv ×2."
    assert profiling.describe_changes(profiling.compare_profiles(after, after)) == "Gone: nothing. New: nothing."
    top = profiling.top_operators(before, 1)
    assert list(top.op_type) == ["Conv", "(other 2 types)"]
    assert top.time_ms.sum() == pytest.approx(before.time_ms.sum())
    fig = profiling.plot_top_operators({"before": before, "after": after}, n=2, title="t")
    assert len(fig.axes) == 2
    with pytest.raises(ValueError):
        profiling.top_operators(before, 0)


def test_empty_profile_keeps_the_shape():
    frame = _frame("pytorch", [])
    assert list(frame.columns) == profiling.COLUMNS and frame.attrs["total_ms"] == 0.0
    assert np.isclose(profiling.by_category({"x": _frame("x", [("Add", 5)])}).loc["total", "x"], 0.005)


def test_explain_gap_states_the_timed_ratio_and_the_profiled_differences():
    eager = _frame("pytorch", [("aten::conv2d", 900), ("aten::batch_norm", 200), ("aten::linear", 50)])
    ort = _frame("onnxruntime", [("Conv", 400), ("Gemm", 50)])
    categories = profiling.by_category({"eager": eager, "ort": ort})
    gap = profiling.explain_gap(categories, {"eager": 2.0, "ort": 1.0}, "eager", "ort")
    assert gap.ratio == pytest.approx(2.0) and gap.biggest == "convolution"
    assert gap.title.startswith("ort is faster than eager: 2.00x")
    assert "convolution (0.900 → 0.400 ms)" in gap.body and "normalization (0.200 → 0.000 ms)" in gap.body
    assert "no normalization operators" in gap.body and "matmul" not in gap.body.split("operators at all")[0]
    level = profiling.explain_gap(categories, {"eager": 1.0, "ort": 0.98}, "eager", "ort")
    assert "level with" in level.title
    slower = profiling.explain_gap(categories, {"eager": 1.0, "ort": 2.0}, "eager", "ort")
    assert "slower than" in slower.title and slower.ratio == pytest.approx(0.5)
    with pytest.raises(KeyError):
        profiling.explain_gap(categories, {"eager": 1.0}, "eager", "ort")


def test_profiled_vs_timed_puts_each_profile_next_to_its_timing_and_explains_the_range():
    eager = _frame("pytorch", [("aten::conv2d", 900), ("aten::linear", 100)])  # 1.0 ms of operators
    ort = _frame("onnxruntime", [("Conv", 400)])  # 0.4 ms
    categories = profiling.by_category({"eager": eager, "ort": ort})
    table, note = profiling.profiled_vs_timed(categories, {"eager": 1.25, "ort": 0.32})
    assert table.loc["eager", "profiled / timed"] == pytest.approx(0.8)
    assert table.loc["ort", "profiled / timed"] == pytest.approx(1.25)
    assert note.startswith("Profiled operator time is 0.80–1.25x the timed p50 here")
    assert "above 1" in note and "below 1" in note
    from_series, _ = profiling.profiled_vs_timed(categories, pd.Series({"eager": 1.25, "ort": 0.32}))
    assert from_series.equals(table)  # a p50 column of a benchmark table works as well
    _, only_below = profiling.profiled_vs_timed(categories, {"eager": 2.0})
    assert "below 1" in only_below and "above 1" not in only_below
    _, exact = profiling.profiled_vs_timed(categories, {"ort": 0.4})
    assert exact == "Profiled operator time is 1.00–1.00x the timed p50 here."
    with pytest.raises(KeyError):
        profiling.profiled_vs_timed(categories, {"other": 1.0})
