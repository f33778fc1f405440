"""Exercises 15.1 and 15.2 accept the right answer (from their context) and reject wrong ones with a hint."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.course.exercises import (
    framework,
    nb15,  # noqa: F401 - registers 09.1 and 09.2
)
from helpers.models.tiny import tiny_classifier_onnx

ov = pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory):
    from helpers.openvino_tools import openvino_throughput_runner
    from helpers.runners import openvino_runner

    path = tiny_classifier_onnx(tmp_path_factory.mktemp("ex09") / "toy.onnx", num_classes=4)
    compiled = ov.Core().compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT",
                                                          "INFERENCE_PRECISION_HINT": "f32"})
    batches = [{"pixel_values": np.random.default_rng(i).random((1, 3, 8, 8), dtype=np.float32)}
               for i in range(5)]
    return {"runner": openvino_throughput_runner(path, precision="f32", num_requests=3), "path": str(path),
            "compiled": compiled, "batches": batches, "reference": openvino_runner(path, precision="f32")}


def test_both_exercises_are_registered() -> None:
    assert framework.all_keys("15") == ["15.1", "15.2"]
    for key in ("15.1", "15.2"):
        assert framework.get(key).call.startswith(f'exercises.check("{key}"')


def _compiler(cache: bool = True, precision: str = "f32", other_path: str | None = None):
    def compile_with_cache(model_path, cache_dir):
        core = ov.Core()
        if cache:
            core.set_property({"CACHE_DIR": str(cache_dir)})
        return core.compile_model(other_path or model_path, "CPU", {"INFERENCE_PRECISION_HINT": precision})

    return compile_with_cache


def test_15_1_compile_with_cache(context, tmp_path) -> None:
    args = {"model_path": context["path"], "reference": context["reference"],
            "inputs": context["batches"][0]}
    ok = framework.evaluate("15.1", _compiler(), **args)
    assert ok.ok and "LOADED_FROM_CACHE" in ok.message, ok.text()
    namespace: dict = {"ov": ov}
    exec(framework.get("15.1").solution, namespace)  # the published solution passes its own check
    assert framework.evaluate("15.1", namespace["compile_with_cache"], **args).ok
    no_cache = framework.evaluate("15.1", _compiler(cache=False), **args)
    assert not no_cache.ok and "CACHE_DIR" in no_cache.hint
    other = tiny_classifier_onnx(tmp_path / "other.onnx", num_classes=4, seed=7)
    assert "other outputs" in framework.evaluate("15.1", _compiler(other_path=str(other)), **args).message
    assert "CompiledModel" in framework.evaluate("15.1", lambda path, folder: 3, **args).message
    assert not framework.evaluate("15.1", "not a function", **args).ok


def _queue_runner(copy: bool, keep_order: bool):
    def run_all(compiled, batches):
        answers: list = [None] * len(batches) if keep_order else []

        def done(request, index):
            data = request.get_output_tensor(0).data
            data = data.copy() if copy else data
            if keep_order:
                answers[index] = data
            else:
                answers.append(data)

        queue = ov.AsyncInferQueue(compiled, 2)
        queue.set_callback(done)
        for index, inputs in enumerate(batches):
            queue.start_async(inputs, index)
        queue.wait_all()
        return answers if keep_order else sorted(answers, key=lambda a: float(a.sum()))

    return run_all


def test_09_2_async_queue_in_order(context) -> None:
    args = {k: context[k] for k in ("compiled", "batches", "reference")}
    assert framework.evaluate("15.2", _queue_runner(copy=True, keep_order=True), **args).ok
    namespace: dict = {}
    exec(framework.get("15.2").solution, namespace)  # the published solution passes its own check
    assert framework.evaluate("15.2", namespace["run_all"], **args).ok
    for wrong in (_queue_runner(copy=False, keep_order=True), _queue_runner(copy=True, keep_order=False)):
        feedback = framework.evaluate("15.2", wrong, **args)
        assert not feedback.ok and "another input" in feedback.message and feedback.hint
    assert "function" in framework.evaluate("15.2", 3, **args).message
    assert not framework.evaluate("15.2", lambda compiled, batches: [], **args).ok
