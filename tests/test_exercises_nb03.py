"""Exercise 03.1: export with a dynamic batch and open a session with options; checked with batch 3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from helpers import runners
from helpers.course import exercises
from helpers.course.exercises import nb03

torch.manual_seed(0)
SMALL = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                            torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
EXAMPLE = torch.rand(2, 3, 16, 16)


def export(path: Path, model: torch.nn.Module = SMALL, dynamic: bool = True) -> Path:
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.onnx.export(model, (EXAMPLE,), path, dynamo=True, input_names=["images"],
                      output_names=["logits"], dynamic_shapes=shapes, external_data=False, verbose=False)
    return path


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check(answer) -> exercises.Feedback:
    return exercises.evaluate("03.1", answer, model=SMALL, example=EXAMPLE)


@pytest.fixture(scope="module")
def dynamic_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(tmp_path_factory.mktemp("nb03") / "small.onnx")


def test_the_solution_is_accepted(dynamic_file: Path) -> None:
    feedback = check(session(dynamic_file))
    assert feedback.ok, feedback.text()
    assert f"batch of {nb03.CHECK_BATCH}" in feedback.message


def test_the_solution_text_runs(tmp_path: Path) -> None:
    import onnxruntime as ort_module

    scope = {"small": SMALL, "small_example": EXAMPLE, "out": tmp_path, "torch": torch, "ort": ort_module}
    exec(exercises.get("03.1").solution, scope)  # noqa: S102 - our own solution text
    assert check(scope["answer"]).ok


def test_a_fixed_batch_is_refused_before_running(tmp_path: Path) -> None:
    feedback = check(session(export(tmp_path / "fixed.onnx", dynamic=False)))
    assert not feedback.ok and "constant 2" in feedback.message and "dynamic_shapes" in feedback.hint


def test_wrong_threads_provider_and_types_are_explained(dynamic_file: Path) -> None:
    feedback = check(session(dynamic_file, threads=2))
    assert not feedback.ok and "intra_op_num_threads is 2" in feedback.message
    feedback = check(runners.ort_runner(dynamic_file, threads=1))
    assert not feedback.ok and "suite's runner" in feedback.message
    feedback = check(str(dynamic_file))
    assert not feedback.ok and "InferenceSession" in feedback.message
    assert not check(None).answered


def test_a_file_of_another_model_is_refused(tmp_path: Path) -> None:
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    feedback = check(session(export(tmp_path / "other.onnx", model=other)))
    assert not feedback.ok and "something else" in feedback.message
    rows = np.zeros((nb03.CHECK_BATCH, 3, 16, 16), np.float32)
    assert session(tmp_path / "other.onnx").run(None, {"images": rows})[0].shape == (nb03.CHECK_BATCH, 3)
