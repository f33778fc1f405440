"""Exercises of notebook 03 (ONNX export); registered on import."""

from __future__ import annotations

from typing import Any

import numpy as np

from helpers.exercises.framework import (
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


def _check_03_2(answer: Any, onnx_path: Any, inputs: Any) -> Feedback:
    from helpers import runners

    if not isinstance(answer, runners.Runner):
        raise Wrong(
            f"Expected a runner from helpers.runners, got {type(answer).__name__}.",
            "Use runners.ort_runner(onnx_path, ...).",
        )
    info = answer.describe()
    if info.get("runtime") != "onnxruntime":
        raise Wrong(f"This is a {info.get('runtime')} runner; the exercise asks for ONNX Runtime.")
    threads = info.get("threads") or {}
    if threads.get("intra_op") != 1:
        raise Wrong(
            f"intra-op threads are {threads.get('intra_op')}, not 1.", "Pass intra_op_threads=1."
        )
    if info.get("graph_optimization_level") != "basic":
        raise Wrong(
            f"graph optimisation level is {info.get('graph_optimization_level')!r}, not 'basic'.",
            'Pass graph_optimization_level="basic".',
        )
    default = runners.ort_runner(onnx_path)
    name = default.output_names[0]
    got, expected = answer(inputs)[name], default(inputs)[name]
    scale = max(1.0, float(np.abs(expected).max()))  # fusions reorder float32 sums
    if not np.allclose(got, expected, rtol=1e-3, atol=1e-4 * scale):
        raise Wrong(
            "Your runner's outputs differ from the default session's.",
            "Did you load the same file (onnx_path)?",
        )
    return correct(
        "Correct: one intra-op thread, basic optimisations, and the same outputs as the default session."
    )


register(
    Exercise(
        key="03.2",
        title="An ONNX Runtime session, configured",
        prompt=(
            "Create a runner for `onnx_path` with the suite's `runners.ort_runner` that uses exactly "
            "**one intra-op thread** and only the **basic** graph optimisations. Give the runner as "
            "your answer."
        ),
        checker=_check_03_2,
        context=("onnx_path", "inputs"),
        call='exercises.check("03.2", answer, onnx_path=onnx_path, inputs=inputs)',
        solution='answer = runners.ort_runner(onnx_path, intra_op_threads=1, graph_optimization_level="basic")',
    )
)
