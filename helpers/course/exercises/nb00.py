"""Exercises of notebook 00 (environment check); registered on import."""

from __future__ import annotations

from typing import Any

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_names,
    correct,
    register,
)


def _check_00_1(answer: Any, report: Any) -> Feedback:
    given = set(as_names(answer))
    usable = set(report.ort_usable_providers)
    listed = set(report.ort_listed_providers)
    if given == usable:
        return correct(f"Yes: {', '.join(sorted(usable))} really run in this kernel.")
    extra, missing = given - usable, usable - given
    parts = []
    if extra & listed:
        parts.append(
            f"{', '.join(sorted(extra & listed))} is listed by the build but does not really run here"
        )
    if extra - listed:
        parts.append(f"{', '.join(sorted(extra - listed))} is not even listed by this build")
    if missing:
        parts.append(f"missing: {', '.join(sorted(missing))}")
    raise Wrong(
        "Not quite — " + "; ".join(parts) + ".",
        "Listed is not usable: look at `report.ort_usable_providers`, or the 'really runs here' "
        "column of section 2.",
    )


register(
    Exercise(
        key="00.1",
        title="Which execution providers really run here?",
        prompt=(
            "Give the list of ONNX Runtime execution providers that **really run** in this kernel "
            '(not just those the package lists), e.g. `["CPUExecutionProvider", ...]`.'
        ),
        checker=_check_00_1,
        context=("report",),
        call='exercises.check("00.1", answer, report=report)',
        solution="answer = list(report.ort_usable_providers)\n"
        "# onnxruntime.get_available_providers() lists what the package was built with;\n"
        "# the report ran a one-node model on each provider and kept those still active.",
    )
)


def _check_00_2(answer: Any, report: Any) -> Feedback:
    if not isinstance(answer, str):
        raise Wrong(f"Expected the environment name as a string, got {type(answer).__name__}.")
    given = answer.strip().lower()
    expected = report.environment
    if given == expected:
        dist = ", ".join(f"{k} {v}" for k, v in report.packages.items() if k == "onnxruntime")
        return correct(f"Yes: '{expected}' — decided by the installed ONNX Runtime package ({dist}).")
    if given not in ("cpu", "gpu", "openvino"):
        raise Wrong(f"'{answer}' is not one of the suite's environments (cpu, gpu, openvino).")
    raise Wrong(
        f"This kernel is not '{given}'.",
        "The environment is decided by which ONNX Runtime package is installed "
        "(`hardware.ort_distribution()`), not by the hardware.",
    )


register(
    Exercise(
        key="00.2",
        title="Which environment is this kernel?",
        prompt=(
            'Which of the suite\'s environments — `"cpu"`, `"gpu"` or `"openvino"` — is this kernel? '
            "Answer with the name as a string. (What decides it?)"
        ),
        checker=_check_00_2,
        context=("report",),
        call='exercises.check("00.2", answer, report=report)',
        solution="answer = report.environment\n"
        "# envreport.environment_name() looks at which ONNX Runtime package is installed:\n"
        "# onnxruntime -> cpu, onnxruntime-gpu -> gpu, onnxruntime-openvino -> openvino.",
    )
)
