"""Exercises of notebook 07 (generation with a KV cache); registered on import."""

from __future__ import annotations

from collections.abc import Mapping
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


class _RecordingSession:
    """An ONNX Runtime session that records the shapes of what it is fed (for the feedback)."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.fed: list[tuple[int, int]] = []  # (tokens fed, past length) per call

    def run(self, output_names: Any, feed: Mapping[str, np.ndarray], *args: Any, **kwargs: Any) -> Any:
        ids = np.asarray(feed.get("input_ids", np.zeros((1, 0))))
        past = next((np.asarray(v) for k, v in feed.items() if k.startswith("past")), None)
        self.fed.append((int(ids.shape[-1]), int(past.shape[2]) if past is not None and past.ndim == 4 else -1))
        return self._session.run(output_names, feed, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _check_07_1(answer: Any, session: Any, layout: Any, token_ids: Any, reference: Any) -> Feedback:
    fn = as_function(answer, "teacher_forced_top1(session, token_ids) -> one predicted token per position")
    ids = [int(t) for t in np.asarray(token_ids).reshape(-1)]
    expected = np.asarray(reference)[: len(ids)].argmax(axis=-1)
    recorder = _RecordingSession(session)
    got = np.asarray(fn(recorder, list(ids))).reshape(-1)
    if got.size == expected.size - 1:
        expected = expected[:-1]  # the last position predicts a token beyond the text: optional
    if got.size != expected.size:
        raise Wrong(
            f"Got {got.size} predictions for {len(ids)} tokens.",
            "Return one predicted next token per position: the argmax of the last row of logits of each step.",
        )
    if np.array_equal(got, expected):
        one_at_a_time = len(recorder.fed) == len(ids) and all(n == 1 for n, _ in recorder.fed)
        how = (
            f"{len(recorder.fed)} session calls of one token each, the past fed back: the decode regime"
            if one_at_a_time
            else f"{len(recorder.fed)} session call(s)"
        )
        return correct(f"Correct: all {got.size} predictions are the notebook's fp32 ones ({how}).")
    if got.size > 1 and (np.array_equal(got[:-1], expected[1:]) or np.array_equal(got[1:], expected[:-1])):
        raise Wrong(
            "Your predictions are shifted by one position.",
            "The logits returned for position t score the token *after* it: record them before feeding t + 1.",
        )
    if np.array_equal(got, np.asarray(ids[: got.size])):
        raise Wrong("You returned the tokens you fed, not the model's predictions.",
                    "Take logits[0, -1].argmax() after each call.")
    first = int(np.flatnonzero(got != expected)[0])
    grows = [past for _, past in recorder.fed]
    hint = (
        "Feed the presents of each call back as the next call's past (zip them with layout.past_names), "
        "with an attention mask covering past + new tokens and the position of the new token."
    )
    if grows and max(grows) == 0 and len(recorder.fed) > 1:
        hint = "Every call had an empty past: feed the presents back as the past of the next call."
    raise Wrong(f"Position {first}: predicted {int(got[first])}, the notebook's fp32 session says "
                f"{int(expected[first])}.", hint)


register(
    Exercise(
        key="07.1",
        title="Teacher forcing through the KV cache",
        prompt=(
            "Write `teacher_forced_top1(session, token_ids)`: feed the tokens of a real text to the ONNX "
            "Runtime session **one at a time**, with the cache (`past_key_values.*`) of the previous call "
            "fed back, and return the model's most likely next token after each of them (a list, one "
            "per input token). It is the greedy loop of section 3 with the text's own token as each next "
            "input. Use `layout.empty_past(batch=1)` for the first call and `layout.past_names` for the "
            "names of the past inputs."
        ),
        checker=_check_07_1,
        context=("session", "layout", "token_ids", "reference"),
        call=(
            'exercises.check("07.1", teacher_forced_top1, session=sessions["fp32"], layout=layout, '
            'token_ids=text_ids[:24], reference=logits["ORT fp32"][:24])'
        ),
        writes_code=True,
        solution=(
            "def teacher_forced_top1(session, token_ids):\n"
            "    past, top1 = layout.empty_past(batch=1), []\n"
            "    for t, token in enumerate(token_ids):\n"
            '        feed = {"input_ids": np.array([[token]]),\n'
            '                "attention_mask": np.ones((1, t + 1), np.int64),\n'
            '                "position_ids": np.array([[t]]), **past}\n'
            "        logits, *presents = session.run(None, feed)\n"
            "        top1.append(int(logits[0, -1].argmax()))\n"
            "        past = dict(zip(layout.past_names, presents))\n"
            "    return top1"
        ),
    )
)
