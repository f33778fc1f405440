"""Exercises of notebook 03 (ONNX export); registered on import."""

from __future__ import annotations

from typing import Any

import numpy as np

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_number,
    correct,
    is_close,
    register,
)


def _check_03_1(answer: Any, reference: Any, candidate: Any, inputs: Any) -> Feedback:
    value = as_number(answer, "the maximum absolute difference")
    ref, cand = reference(inputs), candidate(inputs)
    common = [n for n in ref if n in cand]
    if not common:
        common = [reference.output_names[0]]
        cand = {common[0]: next(iter(cand.values()))}
    diffs = [
        np.abs(np.asarray(ref[n], np.float64) - np.asarray(cand[n], np.float64)) for n in common
    ]
    expected = float(max(d.max() for d in diffs))
    mean = float(np.mean([d.mean() for d in diffs]))
    if is_close(value, expected, 1e-3, 1e-9):
        return correct(
            f"Right: max |PyTorch - ONNX Runtime| = {expected:.3g} — float32 rounding, not a bug."
        )
    if is_close(value, mean, 1e-3, 1e-12):
        raise Wrong(
            "That is the mean absolute difference.",
            "Parity is judged on the worst element: np.max.",
        )
    raise Wrong(
        f"{value:.3g} is not the maximum absolute difference of the outputs.",
        "Run both runners on `inputs`, subtract the logits as float arrays, take np.abs(...).max().",
    )


register(
    Exercise(
        key="03.1",
        title="Parity by hand",
        prompt=(
            "Run `eager` and `ort_cpu` on `inputs` yourself and compute the **maximum absolute "
            "difference** of their logits with NumPy. Answer with the number."
        ),
        checker=_check_03_1,
        context=("reference", "candidate", "inputs"),
        call='exercises.check("03.1", answer, reference=eager, candidate=ort_cpu, inputs=inputs)',
        solution='ref = eager(inputs)["logits"]\ncand = ort_cpu(inputs)["logits"]\n'
        "answer = float(np.abs(ref - cand).max())",
    )
)


_SESSION_HINT = (
    "options = ort.SessionOptions(); set options.intra_op_num_threads and "
    "options.graph_optimization_level; then ort.InferenceSession(str(onnx_path), options, "
    'providers=["CPUExecutionProvider"]).'
)


def _check_03_2(answer: Any, onnx_path: Any, inputs: Any) -> Feedback:
    import onnxruntime as ort

    from helpers import runners

    if isinstance(answer, runners.Runner):
        raise Wrong(
            "That is the suite's runner; this exercise asks for ONNX Runtime's own session.",
            _SESSION_HINT,
        )
    if not isinstance(answer, ort.InferenceSession):
        raise Wrong(
            f"Expected an onnxruntime.InferenceSession, got {type(answer).__name__}.", _SESSION_HINT
        )
    options = answer.get_session_options()
    if options.intra_op_num_threads != 1:
        raise Wrong(
            f"intra_op_num_threads is {options.intra_op_num_threads}"
            f"{' (0: ONNX Runtime picks one thread per core)' if options.intra_op_num_threads == 0 else ''}"
            ", not 1.",
            "Set options.intra_op_num_threads = 1 before creating the session.",
        )
    basic = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if options.graph_optimization_level != basic:
        raise Wrong(
            f"graph_optimization_level is {options.graph_optimization_level.name}, not {basic.name}.",
            "Set options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC "
            "(a fresh SessionOptions starts at ORT_ENABLE_ALL).",
        )
    if answer.get_providers() != ["CPUExecutionProvider"]:
        raise Wrong(
            f"The session runs on {answer.get_providers()}; the exercise asks for the CPU only.",
            'Pass providers=["CPUExecutionProvider"].',
        )
    default = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in default.get_inputs()]
    if [i.name for i in answer.get_inputs()] != names:
        raise Wrong(
            f"Your session's inputs are {[i.name for i in answer.get_inputs()]}, not {names}.",
            "Did you load the same file (onnx_path)?",
        )
    feed = {name: inputs[name] for name in names}
    got, expected = answer.run(None, feed)[0], default.run(None, feed)[0]
    scale = max(1.0, float(np.abs(expected).max()))  # fusions reorder float32 sums
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-3, atol=1e-4 * scale):
        raise Wrong(
            "Your session's outputs differ from a default session's on the same file.",
            "Did you load the same file (onnx_path)?",
        )
    return correct(
        "Correct: one intra-op thread, basic optimisations, the CPU provider, and the same outputs as "
        "a default session."
    )


register(
    Exercise(
        key="03.2",
        title="An ONNX Runtime session, configured",
        prompt=(
            "Create an ONNX Runtime session for `onnx_path` with ONNX Runtime's own API: an "
            "`ort.SessionOptions()` with exactly **one intra-op thread** and only the **basic** graph "
            "optimisations, then `ort.InferenceSession(...)` on the CPU execution provider. Give the "
            "session as your answer."
        ),
        checker=_check_03_2,
        context=("onnx_path", "inputs"),
        call='exercises.check("03.2", answer, onnx_path=onnx_path, inputs=inputs)',
        solution="options = ort.SessionOptions()\n"
        "options.intra_op_num_threads = 1\n"
        "options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC\n"
        'answer = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])',
    )
)
