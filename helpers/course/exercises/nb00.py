"""Exercises of notebook 00 (environment check); registered on import."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    correct,
    register,
)

#: Providers the check asks for when it needs one this build does not list.
_ELSEWHERE = ("CUDAExecutionProvider", "OpenVINOExecutionProvider", "CoreMLExecutionProvider")


def _open(open_session: Any, path: str, wanted: Sequence[str]) -> tuple[Any, BaseException | None]:
    """Call the learner's function; ``(session, None)`` or ``(None, the exception it raised)``."""
    with warnings.catch_warnings():  # ONNX Runtime warns about providers it does not list
        warnings.simplefilter("ignore")
        try:
            return open_session(path, list(wanted)), None
        except Exception as exc:  # noqa: BLE001 - raising is the expected answer in one case
            return None, exc


def _check_session(session: Any, wanted: Sequence[str]) -> None:
    import numpy as np
    import onnxruntime as ort

    if not isinstance(session, ort.InferenceSession):
        raise Wrong(
            f"open_session returned {type(session).__name__}, expected an "
            "onnxruntime.InferenceSession.",
            "Return the session you created.",
        )
    if session.get_providers()[0] != wanted[0]:
        raise Wrong(
            f"Asked for {wanted}, the session runs {session.get_providers()}.",
            "Pass the list as `providers=wanted` (in order of preference).",
        )
    threads = session.get_session_options().intra_op_num_threads
    if threads != 1:
        raise Wrong(
            f"The session uses intra_op_num_threads={threads}, expected 1.",
            "options = onnxruntime.SessionOptions(); options.intra_op_num_threads = 1; "
            "then InferenceSession(path, sess_options=options, providers=wanted).",
        )
    x = np.array([[-1.0, 0.0, 2.0, -3.0]], dtype=np.float32)
    y = session.run(None, {"x": x})[0]
    if not np.array_equal(y, np.maximum(x, 0)):
        raise Wrong(
            "The session does not compute the probe model (y = Relu(x)).", "Open `probe_path`."
        )


def _check_00_1(answer: Any, path: Any, report: Any) -> Feedback:
    open_session = as_function(answer, "open_session(path, wanted) -> InferenceSession")
    local = [p for p in report.ort_usable_providers if p != "AzureExecutionProvider"]
    kept = local[0]  # the best local provider here (the CPU's when there is no other)
    wanted = [kept] + ([] if kept == "CPUExecutionProvider" else ["CPUExecutionProvider"])
    session, error = _open(open_session, str(path), wanted)
    if error is not None:
        raise Wrong(
            f"Asked for {wanted}, which this kernel can run, your function "
            f"raised {type(error).__name__}: {str(error)[:200]}",
            "Raise only when the session's first provider (`session.get_providers()[0]`) is not "
            "the one you asked for first.",
        )
    _check_session(session, [kept])
    missing = next(p for p in _ELSEWHERE if p not in report.ort_listed_providers)
    session, error = _open(open_session, str(path), [missing, "CPUExecutionProvider"])
    if error is None:
        raise Wrong(
            f"Asked for [{missing!r}, 'CPUExecutionProvider'] and got a session running "
            f"{getattr(session, 'get_providers', lambda: '?')()} without a complaint: ONNX "
            "Runtime dropped the provider you wanted first, and your function did not notice.",
            "Compare `session.get_providers()[0]` with `wanted[0]` and raise RuntimeError when "
            "they differ.",
        )
    if not isinstance(error, RuntimeError):
        raise Wrong(
            f"Asked for {missing!r}, your function raised {type(error).__name__}, not "
            "RuntimeError.",
            "Raise RuntimeError naming what you asked for and what the session runs.",
        )
    return correct(
        f"Correct: {kept} was kept (1 thread, right outputs), and asking for {missing} — which "
        f"this build does not list — raised RuntimeError: {str(error)[:160]}"
    )


register(
    Exercise(
        key="00.1",
        title="Ask for providers, then check what you got",
        prompt=(
            "Write `open_session(path, wanted)` that opens an `onnxruntime.InferenceSession` "
            "on the ONNX file `path`, asking for the execution providers in `wanted` (in that "
            "order) and running on **one** intra-op thread (`SessionOptions`). ONNX Runtime "
            "drops a provider it cannot use and carries on: make your function **raise "
            "`RuntimeError`** when the session's first provider is not `wanted[0]`, and return "
            "the session otherwise. The check opens `probe_path` with a provider that runs "
            "here and with one this build does not have."
        ),
        checker=_check_00_1,
        context=("path", "report"),
        call='exercises.check("00.1", open_session, path=probe_path, report=report)',
        writes_code=True,
        solution="def open_session(path, wanted):\n"
        "    options = ort.SessionOptions()\n"
        "    options.intra_op_num_threads = 1\n"
        "    session = ort.InferenceSession(path, sess_options=options, providers=wanted)\n"
        "    if session.get_providers()[0] != wanted[0]:\n"
        "        raise RuntimeError(f'asked for {wanted}, got {session.get_providers()}')\n"
        "    return session",
    )
)
