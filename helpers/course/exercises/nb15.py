"""Exercises of notebook 15 (OpenVINO in depth); registered on import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    as_number,
    correct,
    first_output,
    register,
)


def _check_09_1(answer: Any, runner: Any) -> Feedback:
    info = runner.describe()
    streams, requests = info["threads"]["streams"], info["infer_requests"]
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Wrong(
            f"Expected a pair (streams, infer requests), got {answer!r}.",
            "Read them with throughput_runner.describe() or compiled.get_property(...).",
        )
    got = tuple(int(as_number(a, "a count")) for a in answer)
    if got == (streams, requests):
        return correct(
            f"Right: {streams} stream(s) run at once, and the runner keeps {requests} infer request(s) "
            f"so that every stream has work (OPTIMAL_NUMBER_OF_INFER_REQUESTS = "
            f"{info['optimal_infer_requests']})."
        )
    if got == (requests, streams) and streams != requests:
        raise Wrong(
            "Those are the right numbers in the wrong order.",
            "The pair is (streams, infer requests).",
        )
    if got[0] == info["threads"]["intra_op"] and got[0] != streams:
        raise Wrong(
            f"{got[0]} is the number of threads (INFERENCE_NUM_THREADS), not of streams.",
            "describe()['threads'] has both: 'intra_op' and 'streams'.",
        )
    raise Wrong(
        f"{got} is not what this runner reports.",
        "throughput_runner.describe()['threads']['streams'] and ['infer_requests'].",
    )


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
        title="Streams and infer requests",
        prompt=(
            "How many **streams** does `throughput_runner` run, and how many **infer requests** does it keep "
            "to feed them? Answer with a pair `(streams, infer_requests)` read from the runner — not typed in."
        ),
        checker=_check_09_1,
        context=("runner",),
        call='exercises.check("15.1", answer, runner=throughput_runner)',
        solution="info = throughput_runner.describe()\n"
        'answer = (info["threads"]["streams"], info["infer_requests"])\n'
        '# or: compiled_tput.get_property("NUM_STREAMS"), '
        'compiled_tput.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")',
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
