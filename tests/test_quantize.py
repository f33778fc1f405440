"""helpers.quantize: static (QDQ, per-channel, calibrated) and dynamic INT8 on a tiny real CNN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

from helpers.quantize import (  # noqa: E402
    ArrayCalibrationReader,
    QuantizationError,
    file_size_mb,
    first_and_last_nodes,
    needs_reduce_range,
    quantize_dynamic_int8,
    quantize_static_int8,
    quantized_op_summary,
)

SIZE = 16
CLASSES = 10


def _tiny_cnn(path: Path) -> Path:
    """Conv(3->8) -> Relu -> Conv(8->16) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(16->10)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.4, (8, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, (8,)).astype(np.float32), "b1"),
        # very different ranges per output channel: what per-channel scales are for
        numpy_helper.from_array(
            (
                rng.normal(0, 0.2, (16, 8, 3, 3)) * np.logspace(-2, 0, 16)[:, None, None, None]
            ).astype(np.float32),
            "w2",
        ),
        numpy_helper.from_array(rng.normal(0, 0.1, (16,)).astype(np.float32), "b2"),
        numpy_helper.from_array(rng.normal(0, 1.0, (CLASSES, 16)).astype(np.float32), "w3"),
        numpy_helper.from_array(np.zeros(CLASSES, np.float32), "b3"),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["pixels", "w1", "b1"], ["c1"], name="stem_conv", pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"], name="classifier", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"pixels": x})[0]


def _batches(n_batches: int = 4, batch: int = 4, seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {"pixels": rng.normal(0, 1, (batch, 3, SIZE, SIZE)).astype(np.float32)}
        for _ in range(n_batches)
    ]


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_cnn(tmp_path_factory.mktemp("quant") / "tiny.onnx")


@pytest.fixture(scope="module")
def static_model(fp32_model: Path) -> Path:
    return quantize_static_int8(fp32_model, fp32_model.with_name("tiny.int8.onnx"), _batches())


def test_static_int8_is_qdq_and_close_to_fp32(fp32_model: Path, static_model: Path) -> None:
    ops = quantized_op_summary(static_model)
    assert ops.get("QuantizeLinear", 0) >= 3 and ops.get("DequantizeLinear", 0) >= 5, ops
    x = _batches(1, 16, seed=7)[0]["pixels"]
    ref, q = _run(fp32_model, x), _run(static_model, x)
    assert q.shape == ref.shape and q.dtype == np.float32
    # INT8 is an approximation: close relative to the logit range, same winner almost always
    assert np.abs(q - ref).max() < 0.1 * np.abs(ref).max()
    assert np.mean(q.argmax(1) == ref.argmax(1)) >= 0.8


def test_static_int8_weights_are_per_channel(static_model: Path) -> None:
    model = onnx.load(str(static_model))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    conv_weight_dq = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and inits.get(n.input[0]) is not None
        and inits[n.input[0]].ndim == 4
    ]
    assert conv_weight_dq, "no dequantized convolution weights found"
    scales = [inits[n.input[1]] for n in conv_weight_dq]
    assert all(s.ndim == 1 and s.size > 1 for s in scales), [s.shape for s in scales]
    assert all(inits[n.input[0]].dtype == np.int8 for n in conv_weight_dq)


def test_static_options_reduce_range_exclude_and_no_preprocess(
    fp32_model: Path, tmp_path: Path
) -> None:
    exclude = first_and_last_nodes(fp32_model)
    assert exclude == ["stem_conv", "classifier"]
    out = quantize_static_int8(
        fp32_model,
        tmp_path / "sub" / "rr.onnx",
        ArrayCalibrationReader(_batches()),
        reduce_range=True,
        per_channel=False,
        preprocess=False,
        exclude=exclude,
    )
    assert out.exists() and out.parent.name == "sub"
    model = onnx.load(str(out))
    consumers = {i for n in model.graph.node for i in n.input if n.op_type == "DequantizeLinear"}
    assert "w1" not in consumers and "w3" not in consumers  # excluded layers keep fp32 weights
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    q_weights = [v for v in inits.values() if v.dtype == np.int8 and v.ndim == 4]
    assert q_weights and max(int(np.abs(w).max()) for w in q_weights) <= 64  # 7-bit weights
    x = _batches(1, 4, seed=3)[0]["pixels"]
    assert _run(out, x).shape == (4, CLASSES)


def test_dynamic_int8(fp32_model: Path, tmp_path: Path) -> None:
    out = quantize_dynamic_int8(fp32_model, tmp_path / "dyn.onnx")
    ops = quantized_op_summary(out)
    assert any(op in ops for op in ("ConvInteger", "MatMulInteger", "DynamicQuantizeLinear")), ops
    x = _batches(1, 4, seed=5)[0]["pixels"]
    ref, q = _run(fp32_model, x), _run(out, x)
    assert np.abs(q - ref).max() < 0.2 * np.abs(ref).max()
    assert file_size_mb(out) > 0


def test_clear_errors(fp32_model: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantizationError, match="not found"):
        quantize_static_int8(tmp_path / "missing.onnx", tmp_path / "o.onnx", _batches())
    with pytest.raises(QuantizationError, match="not found"):
        quantize_dynamic_int8(tmp_path / "missing.onnx", tmp_path / "o.onnx")
    with pytest.raises(QuantizationError, match="empty"):
        quantize_static_int8(fp32_model, tmp_path / "o.onnx", [])
    with pytest.raises(QuantizationError, match="empty"):
        quantize_static_int8(fp32_model, tmp_path / "o.onnx", iter(()))
    with pytest.raises(QuantizationError, match="expects"):
        quantize_static_int8(
            fp32_model, tmp_path / "o.onnx", [{"image": np.zeros((1, 3, SIZE, SIZE), np.float32)}]
        )
    with pytest.raises(QuantizationError, match="single dict"):
        quantize_static_int8(fp32_model, tmp_path / "o.onnx", _batches()[0])
    with pytest.raises(QuantizationError, match="NaN"):
        ArrayCalibrationReader([{"pixels": np.full((1, 3, SIZE, SIZE), np.nan, np.float32)}])
    with pytest.raises(QuantizationError, match="calibrate_method"):
        quantize_static_int8(fp32_model, tmp_path / "o.onnx", _batches(), calibrate_method="best")
    assert not (tmp_path / "o.onnx").exists()


def test_calibration_reader_replays() -> None:
    reader = ArrayCalibrationReader(_batches(3, 2))
    assert len(reader) == 3 and reader.num_samples == 6
    first = [reader.get_next() for _ in range(4)]
    assert first[-1] is None
    reader.rewind()
    assert np.array_equal(reader.get_next()["pixels"], first[0]["pixels"])


def test_needs_reduce_range() -> None:
    assert needs_reduce_range({"avx2", "fma"}) is True
    assert needs_reduce_range({"avx2", "avx512f", "avx512_vnni"}) is False
    assert needs_reduce_range({"avx2", "avx_vnni"}) is False
    assert needs_reduce_range({"neon"}) is False
    assert isinstance(needs_reduce_range(), bool)
