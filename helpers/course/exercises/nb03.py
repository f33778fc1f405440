"""Exercises of notebook 03 (ONNX export); registered on import."""

from __future__ import annotations

from typing import Any

import numpy as np

from helpers.course.exercises.framework import Exercise, Feedback, Wrong, correct, register

_EXPORT_HINT = (
    "torch.onnx.export(small, (small_example,), path, dynamo=True, input_names=[...], "
    "output_names=[...], dynamic_shapes=({0: torch.export.Dim('batch')},), external_data=False)"
)
_SESSION_HINT = (
    "options = ort.SessionOptions(); options.intra_op_num_threads = 1; then "
    "ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])."
)
#: The batch the check runs through the learner's file: neither the example's 2 nor 1.
CHECK_BATCH = 3


def _check_03_1(answer: Any, model: Any, example: Any) -> Feedback:
    import onnxruntime as ort
    import torch

    from helpers import runners

    if isinstance(answer, runners.Runner):
        raise Wrong("That is the suite's runner; this exercise asks for ONNX Runtime's own session.",
                    _SESSION_HINT)
    if not isinstance(answer, ort.InferenceSession):
        raise Wrong(f"Expected an onnxruntime.InferenceSession, got {type(answer).__name__}.",
                    "Export `small` first, then open the file: " + _SESSION_HINT)
    threads = answer.get_session_options().intra_op_num_threads
    if threads != 1:
        raise Wrong(f"intra_op_num_threads is {threads}"
                    f"{' (0 lets ONNX Runtime pick one thread per core)' if threads == 0 else ''}, not 1.",
                    "Create the session with a SessionOptions whose intra_op_num_threads is 1.")
    if answer.get_providers() != ["CPUExecutionProvider"]:
        raise Wrong(f"The session runs on {answer.get_providers()}; the exercise asks for the CPU only.",
                    "Pass providers=['CPUExecutionProvider'].")
    inputs = answer.get_inputs()
    if len(inputs) != 1:
        raise Wrong(f"The file has {len(inputs)} inputs; `small` takes one.", "Did you export `small`?")
    shape = list(inputs[0].shape)
    sample = tuple(example.shape)
    if len(shape) != len(sample):
        raise Wrong(f"The file's input has shape {shape}; `small_example` has {list(sample)}.",
                    "Export with (small_example,) as the example input.")
    if isinstance(shape[0], int):
        raise Wrong(f"The batch dimension of the file is the constant {shape[0]}: a batch of "
                    f"{CHECK_BATCH} cannot run.",
                    "Declare it dynamic: " + _EXPORT_HINT)
    rows = np.random.default_rng(0).standard_normal((CHECK_BATCH, *sample[1:])).astype(np.float32)
    try:
        (got,) = answer.run(None, {inputs[0].name: rows})[:1]
    except Exception as error:  # noqa: BLE001 - ONNX Runtime raises several types; report its message
        raise Wrong(f"A batch of {CHECK_BATCH} did not run through your file: "
                    f"{str(error).splitlines()[0][:200]}", _EXPORT_HINT) from None
    with torch.inference_mode():
        expected = model(torch.from_numpy(rows)).numpy()
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise Wrong(f"Your file computes something else than `small` on a batch of {CHECK_BATCH} "
                    f"(output {tuple(got.shape)} vs {tuple(expected.shape)}).",
                    "Export `small` itself, in eval mode, and open the file you exported.")
    return correct(f"Correct: a batch of {CHECK_BATCH} ran through your file on one thread and matches "
                   f"`small` in PyTorch (max |difference| {np.abs(got - expected).max():.1e}).")


register(
    Exercise(
        key="03.1",
        title="Export with a dynamic batch, open a session with options",
        prompt=(
            "Export `small` (it takes images of shape `[batch, 3, 32, 32]`; `small_example` is a "
            "batch of 2) to a file under `out` with `torch.onnx.export(..., dynamo=True)`, with a "
            "**dynamic batch dimension**. Then open the file with ONNX Runtime's own API: an "
            "`ort.SessionOptions()` with **one intra-op thread** and an `ort.InferenceSession` on the "
            "CPU execution provider. Give the session as your answer: the check runs a batch of "
            f"{CHECK_BATCH} through it and compares with `small` in PyTorch."
        ),
        checker=_check_03_1,
        context=("model", "example"),
        call='exercises.check("03.1", answer, model=small, example=small_example)',
        solution=(
            'path = out / "small.onnx"\n'
            'torch.onnx.export(small, (small_example,), path, dynamo=True, input_names=["images"],\n'
            '                  output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("batch")},),\n'
            "                  external_data=False, verbose=False)\n"
            "options = ort.SessionOptions()\n"
            "options.intra_op_num_threads = 1\n"
            'answer = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])'
        ),
        writes_code=True,
    )
)
