"""Exercises of notebook 17 (classroom demo): the demo's table, agreement across runtimes, a broken upload;
registered on import."""

from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_number,
    correct,
    is_close,
    register,
)


def _check_08_1(answer: Any, table: pd.DataFrame) -> Feedback:
    if not isinstance(answer, str):
        raise Wrong(f"Expected a runtime's name as a string (a value of the 'runtime' column), got "
                    f"{type(answer).__name__}.")
    timed = table[table["error"] == ""] if "error" in table else table
    if timed.empty:
        raise Wrong("This table has no timed runtime: run `table = demo.run(\"chelsea\")` first.")
    names = {name.lower(): name for name in timed["runtime"]}
    given = names.get(answer.strip().lower())
    if given is None:
        raise Wrong(f"{answer!r} is not a runtime in this table.",
                    f"The 'runtime' column holds: {', '.join(timed['runtime'])}.")
    latency = timed.set_index("runtime")["latency_ms"]
    fastest = latency.min()
    if latency[given] == fastest:
        others = latency.drop(given)
        ratio = f"; the next is {others.min() / fastest:.2f}x slower" if len(others) and fastest > 0 else ""
        return correct(f"Yes: {given} took {fastest:.2f} ms (median of its timed calls){ratio}.")
    if len(latency) > 1 and latency[given] == latency.max():
        raise Wrong(f"{given} is the slowest here ({latency[given]:.2f} ms).",
                    "Lowest latency_ms wins: `table.loc[table['latency_ms'].idxmin(), 'runtime']`.")
    raise Wrong(f"{given} took {latency[given]:.2f} ms; another runtime was faster ({fastest:.2f} ms).",
                "Sort the table by latency_ms, or use idxmin().")


register(
    Exercise(
        key="17.1",
        title="Which runtime is fastest here?",
        prompt=(
            "From `table = demo.run(\"chelsea\")`, give the name (the `runtime` column) of the runtime with the "
            "lowest `latency_ms`. Then run `demo.run(\"chelsea\")` twice more: does the order stay the same on "
            "this machine? (Each latency is the median of `repeats` calls.)"
        ),
        checker=_check_08_1,
        context=("table",),
        call='exercises.check("17.1", answer, table=table)',
        solution='answer = table.loc[table["latency_ms"].idxmin(), "runtime"]\n'
        "# Latencies of a few calls on a shared machine move from run to run: when two runtimes are\n"
        "# close, the order can swap. Notebook 04 measures properly (warm-up, percentiles).",
    )
)


def agreement(demo: Any, photos: list[str] | None = None) -> tuple[float, dict[str, bool]]:
    """The fraction of ``photos`` (default: every sample) on which every picked runtime names the
    same top-1 class, and ``{photo: agreed}``."""
    photos = list(photos if photos is not None else demo.samples)
    agreed = {}
    for photo in photos:
        tops = [p.top1 for p in demo.predict(photo)]
        agreed[photo] = bool(tops) and len(set(tops)) == 1
    return sum(agreed.values()) / len(photos), agreed


def _check_08_2(answer: Any, demo: Any) -> Feedback:
    given = as_number(answer, "the fraction")
    want, agreed = agreement(demo)
    photos = ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in agreed.items())
    if is_close(given, want, rel=0, abs_=1e-9):
        return correct(f"Right: {want:.0%} of the {len(agreed)} photos ({photos}) get the same top-1 class on "
                       f"{', '.join(demo.picker.value)} — the same weights, run by different runtimes.")
    if is_close(given, want * 100, rel=0, abs_=1e-6):
        raise Wrong(f"{given:g} is a percentage; give the fraction, {want:g}.")
    raise Wrong(f"Not what this demo gives: {photos}.",
                "For each name in images.sample_images(), compare demo.run(name)['top1'] across rows; "
                "count the photos where they are all equal, divide by the number of photos.")


register(
    Exercise(
        key="17.2",
        title="The same answer everywhere?",
        prompt=(
            "For every photo in `images.sample_images()`, check that all runtimes in the picker name the same "
            "top-1 class; give the **fraction** of photos (0 to 1) on which they do."
        ),
        checker=_check_08_2,
        context=("demo",),
        call='exercises.check("17.2", answer, demo=demo)',
        solution="same = [demo.run(name)['top1'].nunique() == 1 for name in images.sample_images()]\n"
        "answer = sum(same) / len(same)\n"
        '_ = demo.run("chelsea")  # back to the cat',
    )
)


def _plain(text: str) -> str:
    """Text of a message given as plain text or as the widget's HTML."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).replace("⛔", " ").split())


def _check_08_3(answer: Any, demo: Any, coffee: bytes) -> Feedback:
    if not isinstance(answer, (tuple, list)) or len(answer) != 2 or not all(isinstance(a, str) for a in answer):
        raise Wrong(f"Expected a pair of strings (message, top-1 class afterwards), got {answer!r}.",
                    "`demo.message` (or `demo.result.value`) after the truncated upload, then "
                    "`demo.run(\"chelsea\")['top1'].iloc[0]`.")
    message, top1 = answer
    demo.run(bytes(coffee[:1000]), name="coffee.jpg (truncated)")
    want_message = demo.message
    want_top1 = demo.run("chelsea")["top1"].iloc[0]
    if _plain(message) != _plain(want_message):
        if "cannot be classified" not in want_message:  # pragma: no cover - load_image refuses it
            raise Wrong("The demo classified the truncated file; this check expects it to refuse it.")
        raise Wrong(f"The demo says something else: {want_message!r}.",
                    "Run demo.run(coffee[:1000]) and read demo.message right after it.")
    if top1 != want_top1:
        raise Wrong(f"After the broken upload the demo names {want_top1!r} for the cat, not {top1!r}.",
                    "Run demo.run(\"chelsea\") after the broken upload and read the top1 column.")
    return correct(f"Right: the truncated file is refused with a message ({want_message!r}) instead of a "
                   f"traceback, and the demo still classifies the cat ({want_top1}).")


register(
    Exercise(
        key="17.3",
        title="A broken upload",
        prompt=(
            "Give `demo.run` the first 1000 bytes of the coffee photo (`coffee[:1000]`), as a truncated download "
            "would. Answer with a pair: what the demo says (`demo.message`, the text of `demo.result`), and the "
            "top-1 class `demo.run(\"chelsea\")` names right afterwards."
        ),
        checker=_check_08_3,
        context=("demo", "coffee"),
        call='exercises.check("17.3", answer, demo=demo, coffee=coffee)',
        solution='demo.run(coffee[:1000], name="coffee.jpg (truncated)")\n'
        "message = demo.message  # load_image refused the file; the widget shows the same text\n"
        'answer = (message, demo.run("chelsea")["top1"].iloc[0])',
    )
)
