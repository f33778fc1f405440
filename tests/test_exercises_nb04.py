"""Exercises 04.1 (an ONNX Runtime session that refuses a silent fallback) and 04.2 (an OpenVINO
compile with a throughput hint) accept the right code and reject wrong code with a hint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from helpers.course.exercises import (
    framework,
    nb04,  # noqa: F401 - registers 04.1 and 04.2
)
from helpers.models.tiny import tiny_classifier_onnx

PIXELS = np.random.default_rng(0).random((3, 3, 8, 8), dtype=np.float32)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_classifier_onnx(tmp_path_factory.mktemp("ex04") / "toy.onnx", num_classes=4))


def test_both_exercises_are_registered() -> None:
    assert framework.all_keys("04") == ["04.1", "04.2"]


def _session(check: bool = True, threads_from: str = "threads", path_override: str | None = None):
    def open_session(path, providers, threads):
        options = ort.SessionOptions()
        options.intra_op_num_threads = {"threads": threads, "zero": 0}[threads_from]
        session = ort.InferenceSession(path_override or path, options, providers=providers)
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if check and session.get_providers()[0] != wanted:
            raise RuntimeError(f"asked for {wanted}, runs on {session.get_providers()}")
        return session

    return open_session


def test_04_1_session_that_refuses_a_fallback(onnx_path: str, tmp_path: Path) -> None:
    ok = framework.evaluate("04.1", _session(), onnx_path=onnx_path, pixels=PIXELS)
    assert ok.ok, ok.text()
    silent = framework.evaluate("04.1", _session(check=False), onnx_path=onnx_path, pixels=PIXELS)
    assert not silent.ok and "went unnoticed" in silent.message
    default_threads = framework.evaluate("04.1", _session(threads_from="zero"), onnx_path=onnx_path,
                                         pixels=PIXELS)
    assert not default_threads.ok and "intra_op_num_threads" in default_threads.message
    other = str(tiny_classifier_onnx(tmp_path / "other.onnx", num_classes=4, seed=3))
    wrong_file = framework.evaluate("04.1", _session(path_override=other), onnx_path=onnx_path, pixels=PIXELS)
    assert not wrong_file.ok and "differ" in wrong_file.message
    runner_instead = framework.evaluate("04.1", lambda p, pr, t: object(), onnx_path=onnx_path, pixels=PIXELS)
    assert not runner_instead.ok and "InferenceSession" in runner_instead.message
    assert not framework.evaluate("04.1", "not code", onnx_path=onnx_path, pixels=PIXELS).ok


def test_04_2_throughput_compile(onnx_path: str) -> None:
    ov = pytest.importorskip("openvino")
    core = ov.Core()
    reference = core.compile_model(onnx_path, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                      "INFERENCE_PRECISION_HINT": "f32"})
    right = core.compile_model(onnx_path, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT",
                                                  "INFERENCE_PRECISION_HINT": "f32"})
    feedback = framework.evaluate("04.2", right, reference=reference, pixels=PIXELS)
    assert feedback.ok and "stream" in feedback.message, feedback.text()
    latency = framework.evaluate("04.2", reference, reference=reference, pixels=PIXELS)
    assert not latency.ok and "THROUGHPUT" in latency.message
    other = core.compile_model(str(tiny_classifier_onnx(Path(onnx_path).with_name("b.onnx"), num_classes=4,
                                                        seed=5)), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT",
                                                                          "INFERENCE_PRECISION_HINT": "f32"})
    assert "differ" in framework.evaluate("04.2", other, reference=reference, pixels=PIXELS).message
    assert "CompiledModel" in framework.evaluate("04.2", "model", reference=reference, pixels=PIXELS).message
