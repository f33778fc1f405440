"""Exercises of notebook 17 (classroom demo): the fastest runtime that keeps PyTorch's answer, and
an upload classified with a runner by hand; registered on import."""

from __future__ import annotations

from typing import Any

import pandas as pd

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    correct,
    register,
)

REFERENCE = "PyTorch eager"


def fastest_keeping_answer(table: pd.DataFrame, reference: str = REFERENCE) -> str:
    """The runtime with the lowest latency among those that ran and name the reference's top-1."""
    ran = table[table["error"] == ""]
    want = ran.loc[ran["runtime"] == reference, "top1"].iloc[0]
    keeping = ran[ran["top1"] == want]
    return str(keeping.loc[keeping["latency_ms"].idxmin(), "runtime"])


def _cases(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The demo's own table, and tables where the fastest row is wrong or failed (the traps)."""
    base = pd.DataFrame({
        "runtime": [REFERENCE, "ONNX Runtime — CPU EP", "OpenVINO (native)", "Imaginary INT8"],
        "top1": ["tabby", "tabby", "tabby", "toaster"],
        "latency_ms": [40.0, 25.0, 28.0, 9.0],
        "error": ["", "", "", ""],
    })
    failed = base.assign(latency_ms=[40.0, 25.0, 1.0, 9.0], error=["", "", "RuntimeError: no GPU", ""])
    return [("the demo's table", table), ("a table whose fastest row changed the answer", base),
            ("a table whose fastest row failed", failed)]


def _check_17_1(answer: Any, table: pd.DataFrame) -> Feedback:
    pick = as_function(answer, "fastest_keeping_answer(table)")
    if REFERENCE not in set(table["runtime"]):
        raise Wrong(f"The demo's table has no {REFERENCE!r} row; pick it in the runtime picker and run again.")
    for what, case in _cases(table):
        want, got = fastest_keeping_answer(case), pick(case.copy())
        if got != want:
            ran = case[case["error"] == ""]
            hint = ("Keep only rows without an error whose top1 equals the PyTorch eager row's top1, then "
                    "take the lowest latency_ms.")
            if got in set(case["runtime"]) and got == case.loc[case["latency_ms"].idxmin(), "runtime"]:
                hint = "The fastest row overall is not the answer when it changed the class or failed. " + hint
            raise Wrong(f"On {what} your function says {got!r}; the fastest runtime that kept "
                        f"{REFERENCE}'s answer ({ran.loc[ran['runtime'] == REFERENCE, 'top1'].iloc[0]}) "
                        f"is {want!r}.", hint)
    want = fastest_keeping_answer(table)
    return correct(f"Correct: here that is {want} "
                   f"({table.set_index('runtime').loc[want, 'latency_ms']:.2f} ms) — and a faster row that "
                   "changes the answer, or that failed, is never the winner.")


register(
    Exercise(
        key="17.1",
        title="The fastest runtime that keeps the answer",
        prompt=(
            "Write `fastest_keeping_answer(table)` for a table like `demo.run(...)` returns (columns "
            "`runtime`, `top1`, `latency_ms`, `error`): among the rows without an error whose `top1` equals "
            "the `'PyTorch eager'` row's, return the `runtime` with the lowest `latency_ms`. Speed only counts "
            "where the answer is kept. The check runs it on the demo's table and on two traps."
        ),
        checker=_check_17_1,
        context=("table",),
        call='exercises.check("17.1", fastest_keeping_answer, table=table)',
        solution="def fastest_keeping_answer(table):\n"
        '    ran = table[table["error"] == ""]\n'
        '    reference = ran.loc[ran["runtime"] == "PyTorch eager", "top1"].iloc[0]\n'
        '    keeping = ran[ran["top1"] == reference]\n'
        '    return keeping.loc[keeping["latency_ms"].idxmin(), "runtime"]',
    )
)


def _check_17_2(answer: Any, demo: Any, coffee: bytes) -> Feedback:
    from helpers.images import ImageError

    classify_upload = as_function(answer, "classify_upload(data)")
    table = demo.run(coffee, name="coffee.jpg")
    ran = table[table["error"] == ""]
    got = classify_upload(bytes(coffee))
    if not isinstance(got, str):
        raise Wrong(f"classify_upload returned a {type(got).__name__}; return the top-1 label, a string.",
                    "labels[int(logits.argmax())], or images.top_k(logits, labels, k=1)[0][0][0].")
    if got not in set(ran["top1"]):
        raise Wrong(f"classify_upload(coffee) says {got!r}; the demo's runtimes say "
                    f"{sorted(set(ran['top1']))}.",
                    "Preprocess with the model's size and resize (demo.size, demo.resize), numpy backend.")
    for bad, what in ((b"this is not a photo", "text bytes"), (bytes(coffee[:1000]), "a truncated JPEG")):
        try:
            classify_upload(bad)
        except ImageError:
            continue
        except Exception as exc:  # noqa: BLE001 - any other error is what the exercise is about
            raise Wrong(f"On {what} your function raised {type(exc).__name__} — from deep inside a library.",
                        "Decode with images.load_image(data) first: it raises images.ImageError with a "
                        "clear message for anything that is not a readable image.") from None
        raise Wrong(f"On {what} your function returned an answer instead of refusing the file.",
                    "Decode with images.load_image(data): it refuses broken files with images.ImageError.")
    _ = demo.run("chelsea")  # the widget back on the cat
    return correct(f"Correct: the coffee photo is {got!r} on your code as on the demo, and broken files are "
                   "refused with images.ImageError before any runtime sees them.")


register(
    Exercise(
        key="17.2",
        title="An upload, classified by hand",
        prompt=(
            "Write `classify_upload(data)` for uploaded **bytes**: decode them with `images.load_image`, "
            "preprocess with `images.preprocess_batch([...], backend=\"numpy\", size=demo.size, "
            "resize=demo.resize)`, run the demo's ONNX Runtime runner "
            "(`demo.runners_for([\"onnxruntime\"])[\"onnxruntime\"]`, inputs `{\"pixels\": ...}`) and return "
            "the top-1 label from `demo.labels`. Broken bytes must raise `images.ImageError`, not an error "
            "from inside a runtime. The check gives it the coffee photo and two broken files."
        ),
        checker=_check_17_2,
        context=("demo", "coffee"),
        call='exercises.check("17.2", classify_upload, demo=demo, coffee=coffee)',
        solution="def classify_upload(data):\n"
        "    photo = images.load_image(data)  # ImageError for anything unreadable\n"
        '    pixels = images.preprocess_batch([photo], backend="numpy", size=demo.size, resize=demo.resize)\n'
        '    runner = demo.runners_for(["onnxruntime"])["onnxruntime"]\n'
        '    logits = runner({"pixels": pixels})["logits"]\n'
        "    return demo.labels[int(logits.argmax())]",
    )
)
