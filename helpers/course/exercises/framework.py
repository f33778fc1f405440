"""The exercise framework: exercises, feedback, the registry, and small helpers for checkers.

A checker gets the learner's answer and the notebook's own objects as keyword arguments (the
*context*) and returns a :class:`Feedback` — :func:`correct` — or raises :class:`Wrong` with a
message and a hint. :func:`evaluate` runs it safely; :func:`check` shows the feedback.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from helpers.display import banner, in_notebook

__all__ = [
    "REGISTRY",
    "Exercise",
    "Feedback",
    "Wrong",
    "all_keys",
    "as_function",
    "as_names",
    "as_number",
    "check",
    "correct",
    "evaluate",
    "first_output",
    "get",
    "image_feed",
    "is_close",
    "register",
    "show",
    "solution",
    "to_numpy",
]


@dataclass(frozen=True)
class Feedback:
    """The outcome of a check: whether it passed, what was found, and a hint when it did not."""

    ok: bool
    message: str
    hint: str = ""
    answered: bool = True

    def __bool__(self) -> bool:
        return self.ok

    def text(self) -> str:
        """Message and hint as plain text."""
        return self.message + (f"\nHint: {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class Exercise:
    """One exercise: a prompt (markdown), a checker and a solution (Python code or prose)."""

    key: str
    title: str
    prompt: str
    checker: Callable[..., Feedback]
    solution: str
    context: tuple[str, ...] = ()  # keyword arguments check() needs, e.g. ("table", "threads")
    optional_context: tuple[str, ...] = ()
    call: str = ""  # how the notebook calls check(), shown under the prompt
    notebook: str = field(default="")
    #: The learner writes runtime code (exports, opens a session, compiles, quantizes, serves),
    #: rather than reading a value off a table; every core lesson has at least one.
    writes_code: bool = False

    def __post_init__(self) -> None:
        if not self.notebook:
            object.__setattr__(self, "notebook", self.key.split(".")[0])


class Wrong(Exception):
    """Raised inside a checker: the answer is wrong; message and hint are the feedback."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to :data:`REGISTRY` (each notebook's module does this on import)."""
    if exercise.key in REGISTRY:  # pragma: no cover - guards against copy-paste slips
        raise ValueError(f"duplicate exercise key {exercise.key}")
    REGISTRY[exercise.key] = exercise
    return exercise


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def all_keys(notebook: str | None = None) -> list[str]:
    """All exercise keys in order, or those of one notebook (``keys("04")``)."""
    found = sorted(REGISTRY, key=lambda k: tuple(int(p) for p in k.split(".")))
    return [k for k in found if notebook is None or k.split(".")[0] == notebook]


def get(key: str) -> Exercise:
    """The :class:`Exercise` for ``key``; :class:`KeyError` naming the known keys otherwise."""
    try:
        return REGISTRY[str(key)]
    except KeyError:
        raise KeyError(f"no exercise {key!r}; known: {', '.join(all_keys())}") from None


def show(key: str) -> None:
    """Render the exercise's prompt (markdown in Jupyter, plain text elsewhere)."""
    ex = get(key)
    how = f"\n\nCheck your answer with `{ex.call}`." if ex.call else ""
    body = f"**✏️ Exercise {ex.key} — {ex.title}**\n\n{ex.prompt.strip()}{how}"
    if in_notebook():
        from IPython.display import Markdown, display

        display(Markdown(body))
    else:
        print(body.replace("**", ""))


def evaluate(key: str, answer: Any, **context: Any) -> Feedback:
    """Check ``answer`` against the context and return :class:`Feedback`; never raises for answers."""
    ex = get(key)
    if answer is None:
        return Feedback(
            False,
            f"Exercise {key} is not answered yet: replace `None` with your answer and run the cell again.",
            answered=False,
        )
    missing = [name for name in ex.context if context.get(name) is None]
    if missing:
        return Feedback(
            False,
            f"This check needs {', '.join(f'`{m}=`' for m in missing)} from the notebook "
            f"(call it as `{ex.call or f'exercises.check({key!r}, answer, ...)'}`).",
        )
    unknown = [name for name in context if name not in ex.context + ex.optional_context]
    if unknown:
        return Feedback(
            False,
            f"Unexpected context {', '.join(unknown)} for exercise {key}; it takes "
            f"{', '.join(ex.context + ex.optional_context) or 'no context'}.",
        )
    try:
        return ex.checker(answer, **context)
    except Wrong as wrong:
        return Feedback(False, wrong.message, wrong.hint)
    except Exception as exc:  # noqa: BLE001 - a learner's code may raise anything; report it
        return Feedback(
            False,
            f"Checking your answer raised {type(exc).__name__}: {str(exc)[:300]}",
            "Run your answer on its own first; the check calls it the way the prompt describes.",
        )


def check(key: str, answer: Any, **context: Any) -> None:
    """Check ``answer`` and show the feedback (a coloured box in Jupyter, text elsewhere).

    Returns nothing, so the cell shows only the feedback; :func:`evaluate` returns it instead.
    """
    feedback = evaluate(key, answer, **context)
    if not feedback.answered:
        banner(f"Exercise {key}: not answered yet", feedback.message, kind="info")
    elif feedback.ok:
        banner(f"Exercise {key}: correct", feedback.message, kind="success")
    else:
        banner(f"Exercise {key}: not yet", feedback.text(), kind="warning")


def solution(key: str) -> None:
    """Show the solution, collapsed (an HTML ``<details>`` block) in Jupyter; printed elsewhere."""
    ex = get(key)
    if in_notebook():
        from IPython.display import HTML, display

        display(
            HTML(
                f"<details><summary><b>Solution to exercise {html.escape(ex.key)}</b> "
                f"(click to open — try it yourself first)</summary>"
                f"<pre style='padding:8px;background:#f6f8fa'>{html.escape(ex.solution.strip())}</pre>"
                "</details>"
            )
        )
    else:
        print(f"Solution to exercise {ex.key}:\n{ex.solution.strip()}")


# --------------------------------------------------------------------------------------------
# Small helpers for checkers
# --------------------------------------------------------------------------------------------
def correct(message: str) -> Feedback:
    """The feedback of a right answer."""
    return Feedback(True, message)


def as_names(answer: Any) -> list[str]:
    """A list of names from a name or an iterable of names."""
    if isinstance(answer, str):
        return [answer]
    if isinstance(answer, Iterable):
        return [str(a) for a in answer]
    raise Wrong(f"Expected a list of names, got {type(answer).__name__}.")


def as_number(answer: Any, what: str) -> float:
    """A finite number from the answer, or :class:`Wrong` saying what came instead."""
    if isinstance(answer, bool):
        raise Wrong(f"Expected {what} as a number, got a boolean.")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        raise Wrong(f"Expected {what} as a number, got {type(answer).__name__}.") from None
    if not math.isfinite(value):
        raise Wrong(f"{what} must be a finite number, got {value}.")
    return value


def is_close(a: float, b: float, rel: float, abs_: float = 0.0) -> bool:
    """``|a - b|`` within ``rel`` of ``b`` (or within ``abs_``)."""
    return abs(a - b) <= max(rel * abs(b), abs_)


def as_function(answer: Any, signature: str) -> Callable[..., Any]:
    """The answer if it is callable, else :class:`Wrong` with a hint."""
    if not callable(answer):
        raise Wrong(
            f"Expected a function `{signature}`, got {type(answer).__name__}.",
            "Define it with `def ...:` and pass the function itself (no parentheses).",
        )
    return answer


def to_numpy(value: Any) -> np.ndarray:
    """A numpy array from an array, a list or a torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def first_output(runner: Any, feed: Mapping[str, np.ndarray]) -> np.ndarray:
    """The runner's first output on ``feed``."""
    return np.asarray(runner(feed)[runner.output_names[0]])


def image_feed(runner: Any, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """``{runner's first input: float32 pixels}``."""
    return {runner.inputs[0].name: np.ascontiguousarray(pixels, dtype=np.float32)}
