"""helpers.quantize: static (QDQ, per-channel, calibrated) and dynamic INT8 on a tiny real CNN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

from helpers import quantize  # noqa: E402
from helpers.export import file_size_mib, op_histogram  # noqa: E402
from helpers.quantize import (  # noqa: E402
    ArrayCalibrationReader,
    QuantizationError,
    first_and_last_nodes,
    needs_reduce_range,
    quantize_dynamic_int8,
    quantize_static_int8,
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
    ops = op_histogram(static_model)
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


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _qdq_params(path: Path, tensor: str, op: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(scale, zero point, quantized initializer or None) of the ``op`` node reading ``tensor``."""
    model = onnx.load(str(path))
    inits = _initializers(path)
    for node in model.graph.node:
        if node.op_type == op and node.input[0] == tensor:
            return inits[node.input[1]], inits[node.input[2]], None
    for node in model.graph.node:  # a weight: DequantizeLinear of its quantized initializer
        if node.op_type == "DequantizeLinear" and node.input[0].startswith(tensor + "_"):
            return inits[node.input[1]], inits[node.input[2]], inits[node.input[0]]
    raise AssertionError(f"no {op} for {tensor} in {path.name}")


def test_static_scales_match_the_formulas_computed_by_hand(fp32_model: Path, tmp_path: Path) -> None:
    """Independent references, computed here with NumPy from ONNX Runtime's documented formulas:
    u8 activations are asymmetric, ``scale = (max(x, 0) - min(x, 0)) / 255`` over the calibration
    data, ``zero_point = round(-min / scale)``; s8 weights are symmetric per output channel,
    ``scale_c = max|w_c| / 127`` and ``q = round(w / scale_c)``; the int32 bias is
    ``round(b_c / (input scale x weight scale_c))``."""
    batches = _batches()
    out = quantize_static_int8(fp32_model, tmp_path / "s.onnx", batches, preprocess=False)
    x = np.concatenate([b["pixels"] for b in batches])
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    in_scale, in_zero, _ = _qdq_params(out, "pixels", "QuantizeLinear")
    assert in_zero.dtype == np.uint8
    assert float(in_scale) == pytest.approx((hi - lo) / 255, rel=1e-6)
    assert int(in_zero) == round(-lo / ((hi - lo) / 255))

    fp32 = _initializers(fp32_model)
    w = fp32["w1"].astype(np.float64)
    w_scale, w_zero, q = _qdq_params(out, "w1", "DequantizeLinear")
    expected_scale = np.abs(w).reshape(8, -1).max(axis=1) / 127
    np.testing.assert_allclose(w_scale, expected_scale, rtol=1e-6)
    assert q.dtype == np.int8 and not w_zero.any()
    expected_q = np.rint(w / expected_scale[:, None, None, None])
    assert np.abs(q - expected_q).max() <= 1 and np.mean(q == expected_q) > 0.99
    assert np.abs(q).reshape(8, -1).max(axis=1).tolist() == [127] * 8  # each channel's extreme

    b_scale, _, qb = _qdq_params(out, "b1", "DequantizeLinear")
    np.testing.assert_allclose(b_scale, float(in_scale) * expected_scale, rtol=1e-5)
    assert qb.dtype == np.int32
    assert np.abs(qb - np.rint(fp32["b1"] / b_scale)).max() <= 1


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
    # 7-bit weights, per tensor: scale = max|w| / 64, so the largest weight becomes exactly +-64
    w2 = _initializers(fp32_model)["w2"]
    w_scale, _, q = _qdq_params(out, "w2", "DequantizeLinear")
    assert w_scale.shape == () and float(w_scale) == pytest.approx(np.abs(w2).max() / 64, rel=1e-6)
    assert q.dtype == np.int8 and int(np.abs(q).max()) == 64
    x = _batches(1, 4, seed=3)[0]["pixels"]
    assert _run(out, x).shape == (4, CLASSES)


def test_dynamic_int8(fp32_model: Path, tmp_path: Path) -> None:
    out = quantize_dynamic_int8(fp32_model, tmp_path / "dyn.onnx")
    ops = op_histogram(out)
    assert any(op in ops for op in ("ConvInteger", "MatMulInteger", "DynamicQuantizeLinear")), ops
    x = _batches(1, 4, seed=5)[0]["pixels"]
    ref, q = _run(fp32_model, x), _run(out, x)
    assert np.abs(q - ref).max() < 0.2 * np.abs(ref).max()
    assert file_size_mib(out) > 0


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


def test_failing_pre_processing_leaves_no_file_behind(
    fp32_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """quant_pre_process leaves debugging files in the working directory when it fails; ours runs
    in a temporary folder and falls back with a warning."""
    work, scratch = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    failing = (  # what ORT does on an incomplete symbolic shape inference: files in cwd, then raise
        "open('sym_shape_infer_temp.onnx', 'wb').write(b'x'); open('weights.data', 'wb').write(b'x')\n"
        "raise Exception('Incomplete symbolic shape inference')\n"
    )
    monkeypatch.setattr("helpers.quantize.ort._PRE_PROCESS", failing)
    with pytest.warns(UserWarning, match="Incomplete symbolic shape inference.*as exported"):
        out = quantize_dynamic_int8(fp32_model, tmp_path / "out" / "dyn.onnx")
    assert out.is_file() and "DynamicQuantizeLinear" in op_histogram(out)
    assert list(work.iterdir()) == [] and list(scratch.iterdir()) == []


@pytest.mark.slow
def test_default_pre_processing_works_on_a_dynamo_transformer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite's own dynamo BERT export defeats symbolic shape inference: pre-processing falls
    back to ONNX shape inference, quantization works, and the working directory stays clean."""
    import torch

    from helpers import catalog, export, qa
    from helpers.qa.answer import MODEL_INPUT_NAMES

    lm = catalog.load("question-answering", "tiny", show_banner=False)
    names = list(MODEL_INPUT_NAMES)
    features = qa.encode(lm.tokenizer, ["Who?", "What?"], "Ada wrote it.", max_length=16, stride=4)
    example = {k: torch.from_numpy(v) for k, v in features.model_inputs(names).items()}
    fp32 = export.export_onnx(lm.model, example, tmp_path / "qa.onnx", input_names=names,
                              output_names=["start_logits", "end_logits"],
                              dynamic_shapes={n: {0: "batch", 1: "sequence"} for n in names})
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.warns(UserWarning, match="symbolic shape inference did not complete"):
        out = quantize_dynamic_int8(fp32, tmp_path / "qa.int8.onnx")
    assert list(work.iterdir()) == []
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = session.run(None, features.model_inputs(names))
    assert logits[0].shape == features.input_ids.shape


# ----------------------------------------------------------------------------------------------
# Depthwise / GEMM convolutions, u8 weights, recipes, content caches, NNCF
# ----------------------------------------------------------------------------------------------
def _tiny_mobile(path: Path) -> Path:
    """stem Conv(3->8) -> depthwise Conv(8, group 8) -> pointwise Conv(8->16) -> GAP -> Gemm."""
    rng = np.random.default_rng(2)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.4, (8, 3, 3, 3)).astype(np.float32), "w_stem"),
        numpy_helper.from_array(rng.normal(0, 0.4, (8, 1, 3, 3)).astype(np.float32), "w_dw"),
        numpy_helper.from_array(rng.normal(0, 0.3, (16, 8, 1, 1)).astype(np.float32), "w_pw"),
        numpy_helper.from_array(rng.normal(0, 0.1, (16,)).astype(np.float32), "b_pw"),
        numpy_helper.from_array(rng.normal(0, 1.0, (CLASSES, 16)).astype(np.float32), "w_fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["pixels", "w_stem"], ["a"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["a1"], name="act1"),
        helper.make_node("Conv", ["a1", "w_dw"], ["b"], name="dw", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b"], ["b1"], name="act2"),
        helper.make_node("Conv", ["b1", "w_pw", "b_pw"], ["c"], name="pw"),
        helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w_fc"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_mobile",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def mobile_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_mobile(tmp_path_factory.mktemp("mobile") / "mobile.onnx")


def _weight_types(path: Path) -> dict[str, np.dtype]:
    """Quantized weight initializer -> dtype, keyed by the Conv/Gemm node consuming it."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dq_of = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    found = {}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 1:
            source = dq_of.get(node.input[1])
            if source in inits:
                found[node.name] = inits[source].dtype
    return found


def test_depthwise_and_gemm_convolutions(mobile_model: Path) -> None:
    assert quantize.depthwise_convolutions(mobile_model) == ["dw"]
    assert quantize.gemm_convolutions(mobile_model) == ["stem", "pw"]


def test_unsigned_weights_store_u8_only_where_asked(mobile_model: Path, tmp_path: Path) -> None:
    out = quantize_static_int8(
        mobile_model,
        tmp_path / "u8.onnx",
        _batches(),
        unsigned_weights=["pw"],
        exclude=["fc"],  # a 10-class Gemm on random calibration data is not what is tested here
        preprocess=False,
    )
    types = _weight_types(out)
    assert types["pw"] == np.uint8
    assert types["dw"] == np.int8 and types["stem"] == np.int8 and "fc" not in types
    x = _batches(1, 8, seed=9)[0]["pixels"]
    ref, got = _run(mobile_model, x), _run(out, x)
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()
    with pytest.raises(QuantizationError, match="not a Conv node"):
        quantize_static_int8(mobile_model, tmp_path / "bad.onnx", _batches(), unsigned_weights=["fc"])


def test_static_recipes(mobile_model: Path) -> None:
    short = quantize.static_recipes(mobile_model, full=False)
    assert list(short) == ["first/last fp32", "first/last fp32 + u8 weights"]
    assert short["first/last fp32"] == {"exclude": ["stem", "fc"]}
    assert short["first/last fp32 + u8 weights"]["unsigned_weights"] == ["pw"]
    full = quantize.static_recipes(mobile_model)
    assert set(short) < set(full) and full["first/last fp32 + reduce_range"]["reduce_range"]


def test_cached_static_int8_reuses_by_content(
    mobile_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path / "cache"))
    calls = []
    real = quantize.quantize_static_int8

    def counting(*args: object, **kwargs: object) -> Path:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr("helpers.quantize.cached.quantize_static_int8", counting)
    first = quantize.cached_static_int8(mobile_model, _batches(), preprocess=False)
    again = quantize.cached_static_int8(mobile_model, _batches(), preprocess=False)
    assert first == again and len(calls) == 1 and first.is_file()
    other_calibration = quantize.cached_static_int8(mobile_model, _batches(seed=5), preprocess=False)
    other_options = quantize.cached_static_int8(
        mobile_model, _batches(), preprocess=False, exclude=["fc"]
    )
    assert len({first, other_calibration, other_options}) == 3 and len(calls) == 3
    dynamic = quantize.cached_dynamic_int8(mobile_model, preprocess=False)
    assert dynamic.is_file() and quantize.cached_dynamic_int8(mobile_model, preprocess=False) == dynamic


def test_nncf_int8_writes_openvino_ir(
    mobile_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("nncf")
    ov = pytest.importorskip("openvino")
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(QuantizationError, match="overflow_fix"):
        quantize.nncf_int8(mobile_model, _batches(), overflow_fix="sometimes")
    xml = quantize.nncf_int8(mobile_model, _batches(), overflow_fix="enable")
    assert xml.suffix == ".xml" and xml.with_suffix(".bin").is_file()
    model = ov.Core().read_model(str(xml))
    assert any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    x = _batches(1, 4, seed=4)[0]["pixels"]
    got = ov.Core().compile_model(model, "CPU")(x)[0]
    ref = _run(mobile_model, x)
    assert got.shape == ref.shape and np.abs(got - ref).max() < 0.2 * np.abs(ref).max()
