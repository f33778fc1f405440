"""Exercises 10.1 and 10.2 accept the right answer and reject wrong ones with a hint."""

from __future__ import annotations

import time

import numpy as np
import pytest

from helpers import benchmark
from helpers.course.exercises import (
    framework,
    nb10,  # noqa: F401 - registers 10.1 and 10.2
)
from helpers.models.tiny import tiny_classifier_onnx


def test_both_exercises_are_registered() -> None:
    assert framework.all_keys("10") == ["10.1", "10.2"]


def _loop(warmup_timed: bool = False, seconds: bool = False, mean: bool = False):
    def time_calls(fn, warmup, runs):
        times = []
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            fn()
            if warmup_timed or i >= warmup:
                times.append(time.perf_counter() - t0)
        times = np.array(times) * (1 if seconds else 1e3)
        return float(np.percentile(times, 50)), float(times.mean() if mean else np.percentile(times, 99))

    return time_calls


def test_10_1_timing_loop() -> None:
    assert framework.evaluate("10.1", _loop()).ok
    assert "warm-up" in framework.evaluate("10.1", _loop(warmup_timed=True)).message
    assert "milliseconds" in framework.evaluate("10.1", _loop(seconds=True)).message
    assert not framework.evaluate("10.1", _loop(mean=True)).ok  # the mean hides the tail
    assert "called" in framework.evaluate("10.1", lambda fn, w, r: (fn(), (1.0, 2.0))[1]).message
    assert not framework.evaluate("10.1", 3.0).ok


@pytest.fixture(scope="module")
def onnx_and_limits(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("openvino")
    path = tiny_classifier_onnx(tmp_path_factory.mktemp("ex10") / "toy.onnx", num_classes=4)
    probes = {
        "float32": benchmark.Probe("float32", "GFLOP/s", (100.0, 99.0), 0.1),
        "bfloat16": benchmark.Probe("bfloat16", "GFLOP/s", (400.0, 390.0), 0.1),
    }
    return path, benchmark.Limits(1, probes)


def test_10_2_bound_peak(onnx_and_limits) -> None:
    import openvino as ov

    path, limits = onnx_and_limits
    native = benchmark.precision_hardware("bfloat16")["native"]

    def right(compiled, lim):
        computed = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        return lim.peak("bfloat16" if computed == "bf16" and native else "float32")

    assert framework.evaluate("10.2", right, onnx_path=path, limits=limits).ok
    assert not framework.evaluate("10.2", lambda c, lim: 1.0, onnx_path=path, limits=limits).ok
    bf16_compiles = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "bf16"}).get_property(
        "INFERENCE_PRECISION_HINT").get_type_name() == "bf16"
    if bf16_compiles and not native:  # the trap: OpenVINO reports bf16 on a CPU without bf16 instructions
        trusting = lambda c, lim: lim.peak(  # noqa: E731
            "bfloat16" if c.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16" else "float32")
        assert "no bf16 instructions" in framework.evaluate("10.2", trusting, onnx_path=path, limits=limits).hint
    always_bf16 = lambda c, lim: lim.peak("bfloat16")  # noqa: E731 - the hint, not what was compiled
    if not (bf16_compiles and native):
        assert not framework.evaluate("10.2", always_bf16, onnx_path=path, limits=limits).ok
