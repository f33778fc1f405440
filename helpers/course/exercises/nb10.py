"""Exercises of notebook 10 (measuring honestly): a timing loop with warm-up and percentiles, and
the peak that really bounds an OpenVINO compiled model; registered on import."""

from __future__ import annotations

import time
from typing import Any

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    as_number,
    correct,
    register,
)

_WARMUP_S, _STEADY_S, _SLOW_S = 0.030, 0.004, 0.012  # first calls, most calls, every 8th call


class _ScriptedCall:
    """A callable whose first ``warm`` calls are slow (like a runtime's first calls) and whose
    later calls take ``_STEADY_S``, every 8th ``_SLOW_S`` (a tail). It records every call's
    own duration, so the check compares the learner's numbers with what really happened."""

    def __init__(self, warm: int) -> None:
        self.warm, self.calls = warm, 0
        self.durations: list[float] = []

    def __call__(self) -> None:
        start = time.perf_counter()
        self.calls += 1
        if self.calls <= self.warm:
            pause = _WARMUP_S
        elif (self.calls - self.warm) % 8 == 0:
            pause = _SLOW_S
        else:
            pause = _STEADY_S
        time.sleep(pause)
        self.durations.append(time.perf_counter() - start)


def _check_10_1(answer: Any) -> Feedback:
    import numpy as np

    time_calls = as_function(answer, "time_calls(fn, warmup, runs)")
    warmup, runs = 3, 24
    fn = _ScriptedCall(warm=warmup)
    result = time_calls(fn, warmup, runs)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Wrong(f"Expected a pair (p50_ms, p99_ms), got {result!r}.",
                    "return float(np.percentile(times, 50)), float(np.percentile(times, 99))")
    p50, p99 = (as_number(v, "a percentile in ms") for v in result)
    if fn.calls != warmup + runs:
        raise Wrong(f"fn was called {fn.calls} times; expected {warmup} warm-up calls + {runs} timed ones.",
                    "Call fn() `warmup` times without timing, then `runs` times, timing each call.")
    timed_ms = np.array(fn.durations[warmup:]) * 1e3
    want50, want99 = np.percentile(timed_ms, 50), np.percentile(timed_ms, 99)
    all99 = np.percentile(np.array(fn.durations) * 1e3, 99)
    if 0 < p50 < 0.1 * want50:
        raise Wrong(f"p50 = {p50:.4g}: in milliseconds? The calls took about {want50:.1f} ms.",
                    "time.perf_counter() counts seconds: multiply by 1000.")
    if abs(p50 - want50) > max(0.35 * want50, 1.5):
        raise Wrong(f"p50 {p50:.1f} ms, but the median timed call took {want50:.1f} ms.",
                    "Time each call on its own (perf_counter before and after), then take the median.")
    if abs(p99 - want99) > max(0.25 * want99, 2.0):
        if abs(p99 - all99) <= max(0.25 * all99, 2.0):
            raise Wrong(f"p99 {p99:.1f} ms: the warm-up calls were timed too (the timed calls' p99 is "
                        f"{want99:.1f} ms).", "Leave the first `warmup` calls out of the timings.")
        raise Wrong(f"p99 {p99:.1f} ms, but the 99th percentile of the timed calls is {want99:.1f} ms.",
                    "np.percentile(times_ms, 99) — the tail, not the mean.")
    return correct(f"Correct: warm-up left out, p50 {p50:.1f} ms and p99 {p99:.1f} ms — the p99 shows the slow "
                   f"calls ({_SLOW_S * 1e3:.0f} ms, one in eight) that the median hides.")


register(
    Exercise(
        key="10.1",
        title="A timing loop",
        prompt=(
            "Write `time_calls(fn, warmup, runs)`: call `fn()` `warmup` times **untimed**, then `runs` "
            "times, timing each call on its own with `time.perf_counter()`; return `(p50_ms, p99_ms)`, the "
            "50th and 99th percentiles of the timed calls in milliseconds. The check calls it with a function "
            "whose first calls are slow and a few later ones too."
        ),
        checker=_check_10_1,
        call='exercises.check("10.1", time_calls)',
        solution="def time_calls(fn, warmup, runs):\n"
        "    for _ in range(warmup):\n"
        "        fn()\n"
        "    times_ms = []\n"
        "    for _ in range(runs):\n"
        "        t0 = time.perf_counter()\n"
        "        fn()\n"
        "        times_ms.append((time.perf_counter() - t0) * 1e3)\n"
        "    return float(np.percentile(times_ms, 50)), float(np.percentile(times_ms, 99))",
    )
)


def _check_10_2(answer: Any, onnx_path: Any, limits: Any) -> Feedback:
    import openvino as ov

    from helpers.benchmark import bounding_precision

    bound_peak = as_function(answer, "bound_peak(compiled, limits)")
    core = ov.Core()
    for hint in ("f32", "bf16"):
        compiled = core.compile_model(str(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": hint})
        computed = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        want = limits.peak(bounding_precision(computed))
        got = as_number(bound_peak(compiled, limits), "a peak in GFLOP/s")
        if abs(got - want) > 1e-6 * want:
            bf16 = limits.peak("bfloat16")
            hint_text = (
                "Read compiled.get_property('INFERENCE_PRECISION_HINT') — the hint is a request, the "
                "property says what was compiled."
            )
            if computed == "bf16" and abs(got - bf16) <= 1e-6 * bf16:
                hint_text = ("This CPU has no bf16 instructions: bf16 is converted to fp32 in software, so "
                             "fp32's peak bounds it (benchmark.precision_hardware('bf16')['native']).")
            raise Wrong(f"Asked for {hint}, OpenVINO compiled {computed}: the bound is {want:.1f} GFLOP/s, "
                        f"your function says {got:.1f}.", hint_text)
    return correct("Correct: you read what OpenVINO compiled, and chose the peak of the arithmetic that "
                   "really runs on this CPU.")


register(
    Exercise(
        key="10.2",
        title="Which peak bounds a compiled model?",
        prompt=(
            "Write `bound_peak(compiled, limits)` for an OpenVINO compiled model: read what it computes in "
            "(`compiled.get_property(\"INFERENCE_PRECISION_HINT\").get_type_name()`: `'f32'` or `'bf16'`) "
            "and return the peak of `limits` (GFLOP/s, `limits.peak(...)`) that bounds it **on this CPU** — "
            "bf16's only where the CPU has bf16 instructions "
            "(`benchmark.precision_hardware('bfloat16')['native']`), otherwise fp32's. The check compiles "
            "the notebook's model asking for f32 and for bf16."
        ),
        checker=_check_10_2,
        context=("onnx_path", "limits"),
        call='exercises.check("10.2", bound_peak, onnx_path=onnx_path, limits=peaks)',
        solution="def bound_peak(compiled, limits):\n"
        '    computed = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()\n'
        '    native_bf16 = benchmark.precision_hardware("bfloat16")["native"]\n'
        '    return limits.peak("bfloat16" if computed == "bf16" and native_bf16 else "float32")',
    )
)
