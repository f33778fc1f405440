"""Exercise 05.1 (write a calibration reader and quantize) on a tiny CNN: the right file passes,
every kind of wrong file gets the feedback that names its mistake."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

from helpers.course.exercises import framework, nb05  # noqa: E402

SIZE, CLASSES = 8, 6


def _cnn(path: Path, seed: int = 0, classes: int = CLASSES) -> Path:
    """pixels -> Conv(3->8) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(8->classes)."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.1, (8,)).astype(np.float32), "b"),
        numpy_helper.from_array(rng.normal(0, 1.0, (classes, 8)).astype(np.float32), "fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["pixels", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], name="classifier", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


class Reader(quantization.CalibrationDataReader):
    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels, self.i = pixels, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i == len(self.pixels):
            return None
        self.i += 1
        return {"pixels": self.pixels[self.i - 1 : self.i]}

    def rewind(self) -> None:
        self.i = 0


PIXELS = np.random.default_rng(1).normal(0, 1, (16, 3, SIZE, SIZE)).astype(np.float32)
CALIBRATION = np.random.default_rng(2).normal(0, 1, (12, 3, SIZE, SIZE)).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("nb05")
    fp32 = _cnn(folder / "fp32.onnx")
    made = {"fp32": fp32}
    for name, fmt in (("qdq", quantization.QuantFormat.QDQ), ("qop", quantization.QuantFormat.QOperator)):
        made[name] = folder / f"{name}.onnx"
        quantization.quantize_static(str(fp32), str(made[name]), Reader(CALIBRATION), quant_format=fmt,
                                     per_channel=True)
    made["dynamic"] = folder / "dynamic.onnx"
    quantization.quantize_dynamic(str(fp32), str(made["dynamic"]))
    made["other classes"] = folder / "other.onnx"
    quantization.quantize_static(str(_cnn(folder / "other_fp32.onnx", classes=CLASSES + 1)),
                                 str(made["other classes"]), Reader(CALIBRATION))
    (folder / "notes.onnx").write_text("not a model")
    made["text"] = folder / "notes.onnx"
    return made


def _fp32_logits(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"pixels": PIXELS})[0]


def _check(answer, files: dict[str, Path], floor: float = 0.5) -> framework.Feedback:
    return framework.evaluate("05.1", answer, fp32_logits=_fp32_logits(files["fp32"]), pixels=PIXELS,
                              floor=floor)


def test_registered_with_its_call() -> None:
    assert framework.all_keys("05") == ["05.1"]
    assert framework.get("05.1").call.startswith('exercises.check("05.1"')
    assert framework.get("05.1").writes_code  # the learner writes a reader and calls quantize_static


def test_a_calibrated_qdq_file_passes(files: dict[str, Path]) -> None:
    feedback = _check(files["qdq"], files)
    assert feedback.ok, feedback.text()
    assert "QuantizeLinear" in feedback.message and "%" in feedback.message
    assert _check(str(files["qdq"]), files).ok  # a string path too


def test_exact_arithmetic_matches_the_integer_free_session(files: dict[str, Path]) -> None:
    """exact_int8_logits equals an ORT_DISABLE_ALL session's output, computed separately here."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(files["qdq"]), options, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(nb05.exact_int8_logits(files["qdq"], PIXELS),
                               session.run(None, {"pixels": PIXELS})[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("which", "says"),
    [
        ("fp32", "no QuantizeLinear"),
        ("dynamic", "dynamically quantized"),
        ("qop", "QOperator"),
        ("text", "not a readable ONNX model"),
        ("other classes", "per photo"),
    ],
)
def test_wrong_files_say_what_is_wrong(files: dict[str, Path], which: str, says: str) -> None:
    feedback = _check(files[which], files)
    assert not feedback.ok and feedback.answered and says in feedback.message, feedback.text()
    assert feedback.hint


def test_below_the_floor_and_non_paths(files: dict[str, Path]) -> None:
    low = _check(files["qdq"], files, floor=1.01)  # no file can agree on more than every photo
    assert not low.ok and "below the floor" in low.message and "calibration" in low.hint
    assert "Expected the path" in _check(3, files).message
    assert "no file" in _check(files["fp32"].with_name("missing.onnx"), files).message
    assert not _check(None, files).answered
