"""Exercises of notebook 04 (one classifier, every runtime; INT8); registered on import."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_number,
    correct,
    first_output,
    image_feed,
    is_close,
    register,
)


def _check_04_1(answer: Any, table: Any, threads: Any = None, batch: Any = 1) -> Feedback:
    if isinstance(answer, str) or not isinstance(answer, Iterable):
        raise Wrong('Expected a pair (runner name, speed-up), e.g. ("ORT CPU EP", 1.5).')
    items = list(answer)
    if len(items) != 2:
        raise Wrong(f"Expected a pair (runner name, speed-up), got {len(items)} values.")
    name, speedup = str(items[0]), as_number(items[1], "the speed-up")
    rows = table
    if "batch" in rows.columns and batch is not None:
        rows = rows[rows["batch"] == batch]
    if threads is not None and "threads" in rows.columns:
        same = rows[rows["threads"].astype(str) == str(threads)]
        rows = same if len(same) else rows
    rows = rows.set_index("runner")
    best = str(rows["p50_ms"].idxmin())
    baseline = next((r for r in rows.index if "eager" in str(r).lower()), None)
    if baseline is None:
        raise Wrong("The table has no PyTorch eager row to compare with.")
    expected = float(rows.loc[baseline, "p50_ms"] / rows.loc[best, "p50_ms"])
    if name != best:
        if name not in rows.index:
            raise Wrong(
                f"There is no runner {name!r} in the table (batch {batch}).",
                f"Runners: {', '.join(map(str, rows.index))}.",
            )
        raise Wrong(
            f"{name} has p50 {rows.loc[name, 'p50_ms']:.2f} ms; another runner is faster at batch {batch}.",
            "Filter batch 1 (and the thread count), then take the row with the smallest p50_ms.",
        )
    if not is_close(speedup, expected, 0.03):
        if is_close(speedup, 1 / expected, 0.03):
            raise Wrong(
                "Upside down: that is eager's speed relative to the winner.",
                "speed-up = p50 of PyTorch eager / p50 of the runner (> 1 means faster).",
            )
        raise Wrong(
            f"{best} is right, but its speed-up is not {speedup:.2f}.",
            "speed-up = p50 of PyTorch eager / p50 of the runner.",
        )
    return correct(
        f"Correct: {best}, {expected:.2f}x PyTorch eager at batch {batch} (medians, this run)."
    )


register(
    Exercise(
        key="04.1",
        title="Read the benchmark",
        prompt=(
            "From the benchmark table `latency`: at **batch 1** with `threads` threads, which runner has "
            "the lowest median latency (p50), and what is its **speed-up over PyTorch eager** "
            "(p50 of eager / p50 of that runner)? Answer with a pair `(runner_name, speedup)`."
        ),
        checker=_check_04_1,
        context=("table",),
        optional_context=("threads", "batch"),
        call='exercises.check("04.1", answer, table=latency, threads=threads)',
        solution='rows = latency[(latency["batch"] == 1) & (latency["threads"] == threads)].set_index("runner")\n'
        'best = rows["p50_ms"].idxmin()\n'
        'answer = (best, rows.loc["PyTorch eager", "p50_ms"] / rows.loc[best, "p50_ms"])',
    )
)


def _check_04_2(answer: Any, fp32: Any, int8: Any, pixels: Any) -> Feedback:
    pixels = np.asarray(pixels, dtype=np.float32)
    ref = first_output(fp32, image_feed(fp32, pixels)).argmax(-1)
    cand = first_output(int8, image_feed(int8, pixels)).argmax(-1)
    expected = float((ref == cand).mean())
    got = as_number(answer(fp32, int8, pixels) if callable(answer) else answer, "the agreement")
    if is_close(got, expected, 0.0, 1e-9):
        return correct(
            f"Correct: INT8 picks the fp32 top-1 class on {expected:.1%} of these {len(pixels)} images."
        )
    if is_close(got, 100 * expected, 0.0, 1e-6) and expected > 0:
        raise Wrong("That is a percentage.", "Return a fraction between 0 and 1.")
    if is_close(got, 1 - expected, 0.0, 1e-9):
        raise Wrong(
            "That is the disagreement.", "Count the images where the two arg-max classes are equal."
        )
    raise Wrong(
        f"{got:.3f} is not the top-1 agreement on these images.",
        "Run both runners on the same pixels, take logits.argmax(-1) for each, and the mean of (a == b).",
    )


register(
    Exercise(
        key="04.2",
        title="Did INT8 change the answers?",
        prompt=(
            "Write `agreement(fp32_runner, int8_runner, pixels)` returning the fraction of images "
            "(0..1) on which the INT8 model's **top-1 class** equals the fp32 model's. The runners take "
            "`{input name: pixels}` and return `{output name: logits}`. (A number computed on the "
            "same pixels is accepted too.)"
        ),
        checker=_check_04_2,
        context=("fp32", "int8", "pixels"),
        call='exercises.check("04.2", agreement, fp32=all_runners["ORT CPU EP"], int8=int8_runners[chosen], '
        "pixels=eval_pixels[:16])",
        solution="def agreement(fp32_runner, int8_runner, pixels):\n"
        "    def top1(runner):\n"
        "        logits = runner({runner.inputs[0].name: pixels})[runner.output_names[0]]\n"
        "        return logits.argmax(-1)\n"
        "    return float((top1(fp32_runner) == top1(int8_runner)).mean())",
    )
)
