"""helpers.quantize.saturation (u8 x s8 arithmetic, pinned to hand-computed numbers) and
helpers.quantize.report (agreement next to speed, the fastest variant that keeps quality)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from helpers.quantize import report, saturation


# ----------------------------------------------------------------------------------- saturation
def test_pairs_of_large_products_saturate_on_avx2() -> None:
    # 255*127 + 255*127 = 64,770: exact with VNNI, clipped to int16's 32,767 by vpmaddubsw
    assert saturation.dot_u8s8([255, 255], [127, 127]) == 64_770
    assert saturation.dot_u8s8([255, 255], [127, 127], kernel="avx2") == 32_767
    # two pairs clipped in opposite directions: exact 64,770 - 65,280 = -510; AVX2 32,767 - 32,768 = -1
    a, w = [255, 255, 255, 255], [127, 127, -128, -128]
    assert saturation.dot_u8s8(a, w) == -510
    assert saturation.dot_u8s8(a, w, kernel="avx2") == -1
    assert saturation.pair_sums(a, w).tolist() == [64_770, -65_280]
    assert saturation.saturated_fraction(a, w) == 1.0


def test_small_products_and_odd_lengths_are_exact_on_both_kernels() -> None:
    assert saturation.dot_u8s8([10, 20, 30], [1, 2, 3]) == 140  # 10 + 40 + 90, last pair padded
    assert saturation.dot_u8s8([10, 20, 30], [1, 2, 3], kernel="avx2") == 140
    assert saturation.pair_sums([10, 20, 30], [1, 2, 3]).tolist() == [50, 90]
    rows = saturation.dot_u8s8([[1, 2], [3, 4]], [5, -6])  # broadcast: one dot product per row
    assert rows.tolist() == [1 * 5 - 2 * 6, 3 * 5 - 4 * 6]
    assert saturation.saturated_fraction([200, 100], [-128, 100]) == 0.0  # -25,600 + 10,000


def test_seven_bit_weights_are_the_bound() -> None:
    assert saturation.largest_safe_weight() == 64  # 2 * 255 * 64 = 32,640 <= 32,767
    assert saturation.largest_safe_weight(127) == 128  # half-range activations: any s8 weight fits
    assert saturation.dot_u8s8([255, 255], [64, 64], kernel="avx2") == 32_640
    assert saturation.saturated_fraction([255, 255], [64, 64]) == 0.0
    assert saturation.saturated_fraction([255, 255, 255, 255], [65, 65, 64, 64]) == 0.5  # 33,150
    assert saturation.saturated_fraction([255, 255], [-64, -64]) == 0.0  # -32,640 >= -32,768


def test_saturation_inputs_are_checked() -> None:
    with pytest.raises(TypeError, match="integers"):
        saturation.dot_u8s8([0.5, 1.0], [1, 1])
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        saturation.dot_u8s8([256], [1])
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        saturation.dot_u8s8([1], [128])
    with pytest.raises(ValueError, match="kernel"):
        saturation.dot_u8s8([1], [1], kernel="vnni")
    with pytest.raises(ValueError, match="max_activation"):
        saturation.largest_safe_weight(0)


# --------------------------------------------------------------------------------------- report
REFERENCE = np.eye(8, 5, dtype=np.float32)[:, :5] * 4 + np.arange(5, dtype=np.float32) * 0.1


def _variant(logits: np.ndarray, seconds: float = 0.0, kind: str = "array"):
    def run(pixels: np.ndarray):
        if seconds:
            time.sleep(seconds)
        rows = logits[: len(pixels)] if len(pixels) == 1 else logits[_rows(pixels)]
        if kind == "list":
            return [rows]
        if kind == "dict":
            return {"logits": rows}
        return rows

    return run


def _rows(pixels: np.ndarray) -> np.ndarray:
    return pixels[:, 0].astype(int)  # each "image" carries its row index


PIXELS = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)


def test_logits_in_chunks_accepts_arrays_lists_and_dicts() -> None:
    for kind in ("array", "list", "dict"):
        got = report.logits_in_chunks(_variant(REFERENCE, kind=kind), PIXELS, chunk=3)
        np.testing.assert_array_equal(got, REFERENCE)
    with pytest.raises(ValueError, match="chunk"):
        report.logits_in_chunks(_variant(REFERENCE), PIXELS, chunk=0)


def test_speed_and_agreement_rows() -> None:
    one_flipped = REFERENCE.copy()
    one_flipped[0] = one_flipped[0, ::-1]  # row 0's winner changes: 7 of 8 agree
    table = report.speed_and_agreement(
        {
            "fp32": _variant(REFERENCE, 0.030),
            "int8 good": _variant(REFERENCE + 0.01, 0.010),
            "int8 bad": _variant(one_flipped),
        },
        PIXELS,
        reference="fp32",
        floor=0.9,
        runs=3,
        warmup=0,
        chunk=4,
    )
    assert table["top1_agreement"].to_dict() == {"fp32": 1.0, "int8 good": 1.0, "int8 bad": 0.875}
    assert table["keeps_quality"].to_dict() == {"fp32": True, "int8 good": True, "int8 bad": False}
    assert table.loc["fp32", "p50_ms"] >= 30.0 and table.loc["int8 good", "p50_ms"] >= 10.0
    assert table.loc["fp32", "speedup"] == 1.0
    assert table.attrs["floor"] == 0.9 and table.attrs["photos"] == 8
    # "int8 bad" is the fastest row but loses quality; "int8 good" is the answer whenever it beats
    # fp32 (a 10 ms sleep against 30 ms)
    assert table.attrs["fastest"] == report.fastest_keeping_quality(table)
    assert table.attrs["fastest"] in {"int8 good", "fp32"}
    with pytest.raises(ValueError, match="reference"):
        report.speed_and_agreement({"a": _variant(REFERENCE)}, PIXELS, reference="b", floor=0.9)
    with pytest.raises(ValueError, match="floor"):
        report.speed_and_agreement({"a": _variant(REFERENCE)}, PIXELS, reference="a", floor=90)


def test_fastest_keeping_quality_reads_the_table() -> None:
    table = pd.DataFrame(
        {"keeps_quality": [True, True, False, True], "p50_ms": [10.0, 4.0, 1.0, 6.0]},
        index=["fp32", "int8 a", "int8 b", "int8 c"],
    )
    assert report.fastest_keeping_quality(table) == "int8 a"
    table.loc["int8 a", "keeps_quality"] = False
    assert report.fastest_keeping_quality(table) == "int8 c"
    table.loc["int8 c", "p50_ms"] = 12.0  # slower than fp32: fp32 is the fastest path that keeps quality
    assert report.fastest_keeping_quality(table) == "fp32"
    with pytest.raises(ValueError, match="no row keeps quality"):
        report.fastest_keeping_quality(table.assign(keeps_quality=False))


def test_precomputed_logits_and_runner_variants() -> None:
    class FakeRunner:  # the duck type of helpers.runners.Runner: describe, run, inputs
        inputs = [type("Spec", (), {"name": "images"})()]

        def describe(self) -> dict:
            return {}

        def run(self, feed):
            return self(feed)

        def __call__(self, feed):
            return {"logits": REFERENCE[_rows(feed["images"])]}

    np.testing.assert_array_equal(report.logits_in_chunks(FakeRunner(), PIXELS, chunk=5), REFERENCE)
    table = report.speed_and_agreement(
        {"fp32": FakeRunner(), "int8": _variant(REFERENCE)}, PIXELS, reference="fp32", floor=0.5,
        runs=1, warmup=0, logits={"int8": REFERENCE[::-1].copy()},  # used as given: 0 of 8 rows agree
    )
    # winners by row: reference 0 1 2 3 4 4 4 4, reversed rows 4 4 4 4 3 2 1 0 -- no row agrees
    assert table.loc["int8", "top1_agreement"] == 0.0
    with pytest.raises(ValueError, match="not one row per image"):
        report.speed_and_agreement({"fp32": FakeRunner()}, PIXELS, reference="fp32", floor=0.5,
                                   logits={"fp32": REFERENCE[:3]})
    with pytest.raises(TypeError, match="callable"):
        report.logits_in_chunks(42, PIXELS)


def test_plot_marks_the_floor() -> None:
    table = pd.DataFrame({"top1_agreement": [1.0, 0.9, 0.5], "speedup": [1.0, 2.0, 3.0],
                          "keeps_quality": [True, True, False]}, index=["fp32", "a", "b"])
    table.attrs.update(floor=0.8, photos=48, reference="fp32")
    fig = report.plot_speed_and_agreement(table, title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["fp32", "a", "b"]
    assert any(list(line.get_ydata()) == [0.8, 0.8] for line in ax.get_lines())


def test_pair_risk_counts_the_worst_case_by_hand() -> None:
    # channel 0: pairs (127, 127) -> 64,770 overflows, (1, 1) -> 510 does not; channel 1: 64s never do
    weights = np.array([[127, 127, 1, 1], [64, 64, -64, -64]], dtype=np.int8)
    assert saturation.pair_risk(weights) == 0.25  # 1 of 4 pairs
    assert saturation.pair_risk(weights, activation=100) == 0.0  # 2 x 100 x 127 = 25,400
    assert saturation.pair_risk(weights.reshape(2, 2, 2, 1)) == 0.25  # conv layout, same pairs
    with pytest.raises(ValueError, match="output-channel axis"):
        saturation.pair_risk(np.array([1, 2], dtype=np.int8))


def test_quantized_conv_weights_skips_depthwise_and_u8(tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w_gemm = np.array([[[[100]], [[-100]]]] * 2, dtype=np.int8)  # [2, 2, 1, 1]
    w_dw = np.full((2, 1, 3, 3), 5, dtype=np.int8)
    w_u8 = np.full((2, 2, 1, 1), 200, dtype=np.uint8)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w_gemm, "wg"), (w_dw, "wd"), (w_u8, "wu"))]
    inits += [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
              numpy_helper.from_array(np.array(0, np.int8), "z8"),
              numpy_helper.from_array(np.array(128, np.uint8), "zu")]
    nodes = [helper.make_node("DequantizeLinear", [w, "s", z], [w + "_dq"])
             for w, z in (("wg", "z8"), ("wd", "z8"), ("wu", "zu"))]
    nodes += [helper.make_node("Conv", ["x", "wg_dq"], ["a"], name="gemm"),
              helper.make_node("Conv", ["a", "wd_dq"], ["b"], name="depthwise", group=2,
                               pads=[1, 1, 1, 1]),
              helper.make_node("Conv", ["b", "wu_dq"], ["y"], name="unsigned")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                        [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=inits)
    path = tmp_path / "q.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    found = saturation.quantized_conv_weights(path)
    assert list(found) == ["gemm"] and np.array_equal(found["gemm"], w_gemm)


def test_compiled_precisions_reads_the_runtime_model() -> None:
    class Any_:
        def __init__(self, value: str) -> None:
            self.value = value

        def astype(self, kind):
            return self.value

    class Op:
        def __init__(self, layer: str, precision: str) -> None:
            self.info = {"layerType": Any_(layer), "runtimePrecision": Any_(precision)}

        def get_rt_info(self):
            return self.info

    class Compiled:
        def get_runtime_model(self):
            ops = [Op("Convolution", "u8")] * 3 + [Op("Convolution", "f32"), Op("Reorder", "f32")]
            return type("M", (), {"get_ops": lambda self: ops})()

    counts = report.compiled_precisions(Compiled())
    assert counts.to_dict() == {"Convolution f32": 1, "Convolution u8": 3}


def test_compiled_precisions_on_a_real_openvino_model(tmp_path) -> None:
    """An fp32 convolution compiled with the f32 hint runs in f32; the same layer behind a
    QuantizeLinear/DequantizeLinear pair runs in an integer precision."""
    ov = pytest.importorskip("openvino")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, (8, 4, 3, 3)).astype(np.float32)

    def save(qdq: bool):
        inits = [numpy_helper.from_array(w, "w")]
        nodes, source = [], "x"
        if qdq:
            scale_w = np.abs(w).reshape(8, -1).max(axis=1) / 127
            inits += [numpy_helper.from_array(np.rint(w / scale_w[:, None, None, None]).astype(np.int8), "wq"),
                      numpy_helper.from_array(scale_w.astype(np.float32), "sw"),
                      numpy_helper.from_array(np.zeros(8, np.int8), "zw"),
                      numpy_helper.from_array(np.array(0.02, np.float32), "sx"),
                      numpy_helper.from_array(np.array(128, np.uint8), "zx")]
            nodes += [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
                      helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
                      helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], axis=0)]
            source = "xd"
        nodes.append(helper.make_node("Conv", [source, "wd" if qdq else "w"], ["y"], name="conv"))
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                            [1, 4, 8, 8])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  initializer=inits)
        path = tmp_path / f"conv_{qdq}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        return ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    assert report.compiled_precisions(save(qdq=False)).to_dict() == {"Convolution f32": 1}
    integer = report.compiled_precisions(save(qdq=True))
    assert list(integer.index) in (["Convolution u8"], ["Convolution i8"]), integer
