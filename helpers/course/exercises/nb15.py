"""Exercises of notebook 15 (OpenVINO in depth); registered on import."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    correct,
    first_output,
    register,
)


def _check_15_1(answer: Any, model_path: Any, reference: Any, inputs: Any) -> Feedback:
    import tempfile

    compile_with_cache = as_function(answer, "compile_with_cache(model_path, cache_dir)")
    with tempfile.TemporaryDirectory(prefix="ov-cache-exercise-") as cache_dir:
        first = compile_with_cache(str(model_path), cache_dir)
        second = compile_with_cache(str(model_path), cache_dir)
        blobs = [p.name for p in Path(cache_dir).iterdir() if p.suffix == ".blob"]
        for compiled in (first, second):
            if not hasattr(compiled, "get_property") or not hasattr(compiled, "create_infer_request"):
                raise Wrong(f"Expected an openvino CompiledModel, got {type(compiled).__name__}.",
                            'return core.compile_model(model_path, "CPU", {...})')
        precision = first.get_property("INFERENCE_PRECISION_HINT")
        if getattr(precision, "get_type_name", lambda: str(precision))() != "f32":
            raise Wrong(f"It computes in {precision}, not f32.",
                        'Add "INFERENCE_PRECISION_HINT": "f32" to the config.')
        if not blobs:
            raise Wrong("Nothing was written to cache_dir: the cache is not switched on.",
                        'core.set_property({"CACHE_DIR": cache_dir}) before compile_model, or put '
                        '"CACHE_DIR": cache_dir in its config.')
        if not second.get_property("LOADED_FROM_CACHE"):
            raise Wrong("The second compile did not load from the cache (LOADED_FROM_CACHE is False).",
                        "Use the same cache_dir, device and settings for both compiles.")
        got = np.asarray(second.create_infer_request().infer(dict(inputs))[0])
    want = first_output(reference, inputs)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-3):
        raise Wrong("The model loaded from the cache gives other outputs than the latency runner.",
                    "Compile the same file (model_path) for the CPU.")
    return correct(f"Correct: the first compile wrote {blobs[0]} into the cache folder, the second loaded "
                   "it (LOADED_FROM_CACHE = True) and answers exactly like the runner.")


def _check_09_2(answer: Any, compiled: Any, batches: Any, reference: Any) -> Feedback:
    run_all = as_function(answer, "run_all(compiled, batches)")
    batches = list(batches)
    order = list(reversed(range(len(batches)))) + list(
        range(len(batches))
    )  # order must come from userdata
    shuffled = [batches[i] for i in order]
    got = run_all(compiled, shuffled)
    if not isinstance(got, (list, tuple)) or len(got) != len(shuffled):
        raise Wrong(
            f"Expected a list of {len(shuffled)} arrays (one per batch), got "
            f"{type(got).__name__} of length {len(got) if hasattr(got, '__len__') else '?'}."
        )
    first_name = reference.output_names[0]
    outputs = [np.asarray(g[first_name] if isinstance(g, Mapping) else g) for g in got]
    for position, (index, out) in enumerate(zip(order, outputs, strict=True)):
        want = first_output(reference, batches[index])
        if out.shape != want.shape:
            raise Wrong(f"Result {position} has shape {out.shape}, expected {want.shape}.")
        if not np.allclose(out, want, rtol=1e-3, atol=1e-3):
            same_as = [
                j
                for j in range(len(batches))
                if np.allclose(out, first_output(reference, batches[j]), rtol=1e-3, atol=1e-3)
            ]
            if same_as:
                raise Wrong(
                    f"Result {position} is the answer for another input.",
                    "Answers can finish in any order: pass the index as userdata to start_async and "
                    "store each answer at that index; copy the output (.data.copy()) in the callback.",
                )
            raise Wrong(
                f"Result {position} does not match the latency runner (max diff "
                f"{float(np.abs(out - want).max()):.2e}).",
                "Copy the output tensor in the callback: the request reuses its buffer.",
            )
    return correct(
        f"Correct: {len(shuffled)} inputs through an AsyncInferQueue, every answer in its place."
    )


register(
    Exercise(
        key="15.1",
        title="Compile once, load from the cache",
        prompt=(
            "Write `compile_with_cache(model_path, cache_dir)`: a fresh `ov.Core()` with OpenVINO's model "
            "cache in `cache_dir` (the `CACHE_DIR` property), then `compile_model` of `model_path` for the "
            "`CPU` in f32 (`INFERENCE_PRECISION_HINT`); return the compiled model. The check calls it twice "
            "with an empty folder: the second compile must come from the cache (`LOADED_FROM_CACHE`) and "
            "answer like `latency_runner`."
        ),
        checker=_check_15_1,
        context=("model_path", "reference", "inputs"),
        call='exercises.check("15.1", compile_with_cache, model_path=onnx_path, reference=latency_runner, '
        "inputs=one)",
        writes_code=True,
        solution="def compile_with_cache(model_path, cache_dir):\n"
        "    core = ov.Core()\n"
        '    core.set_property({"CACHE_DIR": str(cache_dir)})\n'
        '    return core.compile_model(model_path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})',
    )
)

register(
    Exercise(
        key="15.2",
        title="An AsyncInferQueue that keeps the order",
        prompt=(
            "Write `run_all(compiled, batches)`: run every input dict in `batches` through an "
            "`ov.AsyncInferQueue` on the compiled model and return the first output of each, **in the order of "
            "`batches`** (requests can finish in any order). The check feeds it inputs in a shuffled order and "
            "compares every answer with the latency runner."
        ),
        checker=_check_09_2,
        context=("compiled", "batches", "reference"),
        call='exercises.check("15.2", run_all, compiled=compiled_tput, batches=[...], reference=latency_runner)',
        solution="import openvino as ov\n\n\n"
        "def run_all(compiled, batches):\n"
        "    answers = [None] * len(batches)\n"
        '    queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))\n'
        "    queue.set_callback(lambda request, i: answers.__setitem__(i, request.get_output_tensor(0).data.copy()))\n"
        "    for i, inputs in enumerate(batches):\n"
        "        queue.start_async(inputs, i)\n"
        "    queue.wait_all()\n"
        "    return answers",
    )
)
