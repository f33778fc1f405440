"""Exercises of notebook 04 (one classifier, every runtime): the learner writes the runtime code —
an ONNX Runtime session that refuses a silent fallback, and an OpenVINO compile with a throughput
hint; registered on import."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    correct,
    register,
)

#: Execution providers ORT knows by name; the check asks for one this build does not have.
_OTHER_PROVIDERS = (
    "CoreMLExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "DmlExecutionProvider",
    "QNNExecutionProvider",
)
_SESSION_HINT = (
    "options = ort.SessionOptions(); options.intra_op_num_threads = threads; "
    "session = ort.InferenceSession(path, options, providers=providers); then compare "
    "session.get_providers()[0] with the first provider you asked for and raise if they differ."
)


def _first_output(session: Any, pixels: np.ndarray) -> np.ndarray:
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(pixels, dtype=np.float32)}
    return np.asarray(session.run(None, feed)[0])


def _check_04_1(answer: Any, onnx_path: Any, pixels: Any) -> Feedback:
    import onnxruntime as ort

    open_session = as_function(answer, "open_checked_session(path, providers, threads)")
    path, pixels = str(Path(onnx_path)), np.asarray(pixels, dtype=np.float32)[:2]
    session = open_session(path, ["CPUExecutionProvider"], 1)
    if not isinstance(session, ort.InferenceSession):
        raise Wrong(
            f"Your function returned a {type(session).__name__}, not an onnxruntime.InferenceSession.",
            _SESSION_HINT,
        )
    for threads in (1, 2):
        session = session if threads == 1 else open_session(path, ["CPUExecutionProvider"], 2)
        got = session.get_session_options().intra_op_num_threads
        if got != threads:
            raise Wrong(
                f"open_checked_session(path, ['CPUExecutionProvider'], {threads}) has intra_op_num_threads "
                f"{got}{' (0: ONNX Runtime picks a thread per core)' if got == 0 else ''}.",
                "Set options.intra_op_num_threads = threads and pass the options to InferenceSession.",
            )
    default = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    if not np.allclose(_first_output(session, pixels), _first_output(default, pixels), atol=1e-4):
        raise Wrong("Your session's outputs differ from a default session's on the same file.",
                    "Open the path you are given.")
    missing = next(p for p in _OTHER_PROVIDERS if p not in ort.get_available_providers())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ORT warns, then falls back: the function must notice
        try:
            fallen = open_session(path, [missing, "CPUExecutionProvider"], 1)
        except Exception as refused:  # noqa: BLE001 - any clear error is the right answer
            return correct(
                f"Correct: the threads are set, the outputs match, and asking for {missing} — which this "
                f"ONNX Runtime build lacks — raised {type(refused).__name__} instead of quietly running "
                "on the CPU."
            )
    runs_on = fallen.get_providers() if isinstance(fallen, ort.InferenceSession) else "?"
    raise Wrong(
        f"Asked for [{missing!r}, 'CPUExecutionProvider'], your function returned a session that runs on "
        f"{runs_on}: the fallback went unnoticed.",
        "After creating the session, compare session.get_providers()[0] with providers[0] (the name, "
        "or the first item of a (name, options) pair) and raise RuntimeError when they differ.",
    )


register(
    Exercise(
        key="04.1",
        title="A session that refuses a silent fallback",
        writes_code=True,
        prompt=(
            "Write `open_checked_session(path, providers, threads)` with ONNX Runtime's own API: an "
            "`ort.SessionOptions()` with `threads` intra-op threads, then `ort.InferenceSession(path, "
            "options, providers=providers)`. ONNX Runtime runs on the CPU when the first provider is "
            "missing, with only a warning — so make your function **raise** `RuntimeError` when "
            "`session.get_providers()[0]` is not the first provider asked for, and return the session "
            "otherwise. The check opens `onnx_path` with it, on the CPU and with a provider this build lacks."
        ),
        checker=_check_04_1,
        context=("onnx_path", "pixels"),
        call='exercises.check("04.1", open_checked_session, onnx_path=onnx_path, pixels=pixels)',
        solution="def open_checked_session(path, providers, threads):\n"
        "    options = ort.SessionOptions()\n"
        "    options.intra_op_num_threads = threads\n"
        "    options.inter_op_num_threads = 1\n"
        "    session = ort.InferenceSession(path, options, providers=providers)\n"
        "    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]\n"
        "    if session.get_providers()[0] != wanted:\n"
        '        raise RuntimeError(f"asked for {wanted}, runs on {session.get_providers()}")\n'
        "    return session",
    )
)


def _property(compiled: Any, key: str) -> str:
    value = compiled.get_property(key)
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


def _check_04_2(answer: Any, reference: Any, pixels: Any) -> Feedback:
    import openvino as ov

    if not isinstance(answer, ov.CompiledModel):
        raise Wrong(
            f"Expected the compiled model (an openvino.CompiledModel), got {type(answer).__name__}.",
            'answer = core.compile_model(ir_path, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", ...})',
        )
    hint, precision = _property(answer, "PERFORMANCE_HINT"), _property(answer, "INFERENCE_PRECISION_HINT")
    if hint != "THROUGHPUT":
        raise Wrong(f"Its PERFORMANCE_HINT is {hint}, not THROUGHPUT.",
                    'Put "PERFORMANCE_HINT": "THROUGHPUT" in the config dict of compile_model.')
    if precision != "f32":
        raise Wrong(
            f"It computes in {precision}, not f32.",
            'Add "INFERENCE_PRECISION_HINT": "f32" (without it, CPUs with bf16 instructions get bf16).',
        )
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)[:2]
    got, want = np.asarray(answer(pixels)[0]), np.asarray(reference(pixels)[0])
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-3):
        raise Wrong("Its outputs differ from the notebook's f32 compile on the same photos.",
                    "Compile the same model (ir_path) for the CPU.")
    streams, requests = answer.get_property("NUM_STREAMS"), answer.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    return correct(
        f"Correct: THROUGHPUT in f32, the same outputs. OpenVINO chose {streams} stream(s) and asks for "
        f"{requests} requests in flight (OPTIMAL_NUMBER_OF_INFER_REQUESTS) to keep them busy — the latency "
        f"hint runs {reference.get_property('NUM_STREAMS')} stream(s)."
    )


register(
    Exercise(
        key="04.2",
        title="Compile for throughput, and read back what OpenVINO chose",
        writes_code=True,
        prompt=(
            "Compile the IR at `ir_path` for the `CPU` with OpenVINO's own API, asking for the "
            "**THROUGHPUT** performance hint in true **f32** (`INFERENCE_PRECISION_HINT`). Answer with "
            "the compiled model: the check reads its properties back with `get_property` and compares "
            "its outputs with `compiled_f32`'s."
        ),
        checker=_check_04_2,
        context=("reference", "pixels"),
        call='exercises.check("04.2", answer, reference=compiled_f32, pixels=pixels)',
        solution='answer = core.compile_model(ir_path, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT",\n'
        '                                                "INFERENCE_PRECISION_HINT": "f32"})',
    )
)
