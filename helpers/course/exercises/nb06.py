"""Exercises of notebook 06 (BERT question answering); registered on import."""

from __future__ import annotations

from collections.abc import Sequence
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

_SESSION_HINT = (
    "options = ort.SessionOptions(); options.intra_op_num_threads = 1; "
    "options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED; then "
    'ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"]).'
)
_SPAN_HINT = (
    "Tokenise with return_offsets_mapping=True, keep the tokens whose sequence id is 1 (the "
    "context), take the best start_logits[s] + end_logits[e] with s <= e and e - s < "
    "max_answer_len, and return context[offsets[s][0]:offsets[e][1]]."
)


def _check_session(session: Any, onnx_path: Any) -> None:
    """Raise :class:`Wrong` unless ``session`` is ORT's own session on ``onnx_path`` as asked."""
    import onnxruntime as ort

    from helpers import runners

    if isinstance(session, runners.Runner):
        raise Wrong(
            "`my_session` is the suite's runner; this exercise asks for ONNX Runtime's own "
            "session.",
            _SESSION_HINT,
        )
    if not isinstance(session, ort.InferenceSession):
        raise Wrong(
            "`my_session` should be an onnxruntime.InferenceSession, got "
            f"{type(session).__name__}.",
            _SESSION_HINT,
        )
    options = session.get_session_options()
    if options.intra_op_num_threads != 1:
        zero = options.intra_op_num_threads == 0
        raise Wrong(
            f"`my_session` has intra_op_num_threads = {options.intra_op_num_threads}, not 1"
            f"{' (0: ONNX Runtime picks one thread per core)' if zero else ''}.",
            "Set options.intra_op_num_threads = 1 before creating the session.",
        )
    extended = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    if options.graph_optimization_level != extended:
        raise Wrong(
            f"`my_session` optimises at {options.graph_optimization_level.name}, not "
            f"{extended.name}.",
            "A fresh SessionOptions starts at ORT_ENABLE_ALL; set "
            "options.graph_optimization_level.",
        )
    if session.get_providers() != ["CPUExecutionProvider"]:
        raise Wrong(
            f"`my_session` runs on {session.get_providers()}; the exercise asks for the CPU only.",
            'Pass providers=["CPUExecutionProvider"].',
        )
    default = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in default.get_inputs()]
    if [i.name for i in session.get_inputs()] != names:
        raise Wrong(
            f"`my_session`'s inputs are {[i.name for i in session.get_inputs()]}, not {names}.",
            "Open the notebook's exported file, onnx_path.",
        )
    rng = np.random.default_rng(0)
    feed = {n: np.zeros((1, 16), np.int64) for n in names}
    feed["input_ids"] = rng.integers(1000, 2000, (1, 16), dtype=np.int64)
    if "attention_mask" in feed:
        feed["attention_mask"][:] = 1
    got, want = session.run(None, feed)[0], default.run(None, feed)[0]
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-4):
        raise Wrong(
            "`my_session` gives other logits than a session on onnx_path.",
            "Open the notebook's exported file, onnx_path.",
        )


def _check_06_1(
    answer: Any,
    session: Any,
    onnx_path: Any,
    examples: Sequence[Any],
    expected: Sequence[Any],
    max_answer_len: Any = 30,
) -> Feedback:
    ask = as_function(answer, "ask_with_session(question, context) -> str")
    _check_session(session, onnx_path)
    asked = 0
    for example, reference in zip(examples, expected, strict=True):
        if reference.is_null:  # "no answer" is a rule on top of the span search, not asked here
            continue
        question, context = example["question"], example["context"]
        got = ask(question, context)
        if not isinstance(got, str):
            raise Wrong(
                f"ask_with_session returned {type(got).__name__}; expected the answer's text (a "
                "str).",
                _SPAN_HINT,
            )
        asked += 1
        if got == reference.text:
            continue
        hint = _SPAN_HINT
        if got and got in question and got not in context:
            hint = "Only context tokens may start or end an answer (sequence id 1). " + hint
        elif reference.text and reference.text in got:
            hint = (
                f"Your span is longer: is the limit max_answer_len={int(max_answer_len)} in the "
                "search? "
                + hint
            )
        raise Wrong(
            f"For {question!r} you answered {got!r}; the notebook's answer is {reference.text!r}.",
            hint,
        )
    if asked == 0:
        raise Wrong(
            "None of the examples has an answer to compare with; pass the notebook's examples."
        )
    return correct(
        f"Correct: your session is configured as asked, and your answers match the notebook's on "
        f"{asked} held-out questions."
    )


register(
    Exercise(
        key="06.1",
        title="Your own session, your own answers",
        prompt=(
            "Open `my_session`: ONNX Runtime's own `InferenceSession` on `onnx_path` with **one "
            "intra-op "
            "thread**, graph optimisation level **ORT_ENABLE_EXTENDED** and the CPU execution "
            "provider. "
            "Then write `ask_with_session(question, context)` that answers one question with it: "
            "tokenise "
            "with offsets, run `my_session`, pick the best span inside the context (start ≤ end, "
            "at most "
            "`max_answer_len` tokens) and return its text cut from `context`. The check compares "
            "your "
            "answers with the notebook's on held-out questions."
        ),
        checker=_check_06_1,
        context=("session", "onnx_path", "examples", "expected"),
        optional_context=("max_answer_len",),
        call='exercises.check("06.1", ask_with_session, session=my_session, onnx_path=onnx_path, '
        'examples=held_out[:12], expected=answers["ORT fp32"][:12])',
        writes_code=True,
        solution="options = ort.SessionOptions()\n"
        "options.intra_op_num_threads = 1\n"
        "options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED\n"
        'my_session = ort.InferenceSession(onnx_path, options, '
        'providers=["CPUExecutionProvider"])\n'
        "\n"
        "def ask_with_session(question, context):\n"
        '    enc = tokenizer(question, context, truncation="only_second", max_length=max_length,\n'
        '                    return_offsets_mapping=True, return_tensors="np")\n'
        '    offsets = enc.pop("offset_mapping")[0]\n'
        "    in_context = np.array(enc.sequence_ids(0)) == 1\n"
        '    start, end = my_session.run(["start_logits", "end_logits"], {n: enc[n] for n in '
        'input_names})\n'
        "    scores = start[0][:, None] + end[0][None, :]\n"
        "    s_idx, e_idx = np.indices(scores.shape)\n"
        "    valid = np.outer(in_context, in_context) & (e_idx >= s_idx) & (e_idx - s_idx < "
        "max_answer_len)\n"
        "    s, e = np.unravel_index(np.where(valid, scores, -np.inf).argmax(), scores.shape)\n"
        "    return context[offsets[s][0]:offsets[e][1]]",
    )
)
