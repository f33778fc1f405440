"""Exercises of notebook 19 (transformers in depth); registered on import."""

from __future__ import annotations

from typing import Any

import numpy as np

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    correct,
    register,
    to_numpy,
)


def _best_span_scores(
    start: np.ndarray, end: np.ndarray, mask: np.ndarray, max_len: int
) -> np.ndarray:
    """score[s, e] = start[s] + end[e] over valid spans, -inf elsewhere."""
    ctx = np.asarray(mask, dtype=bool)
    scores = np.add.outer(np.asarray(start, np.float64), np.asarray(end, np.float64))
    n = len(ctx)
    s_idx, e_idx = np.indices((n, n))
    valid = np.outer(ctx, ctx) & (e_idx >= s_idx) & (e_idx - s_idx < max_len)
    return np.where(valid, scores, -np.inf)


def _check_19_1(
    answer: Any, start_logits: Any, end_logits: Any, context_mask: Any, max_answer_len: Any = 30
) -> Feedback:
    fn = as_function(
        answer, "best_span(start_logits, end_logits, context_mask, max_answer_len) -> (s, e)"
    )
    starts, ends = np.atleast_2d(to_numpy(start_logits)), np.atleast_2d(to_numpy(end_logits))
    masks = np.atleast_2d(to_numpy(context_mask)).astype(bool)
    # Traps: the best in-context start lies after the best in-context end; the largest logits sit
    # in the question (outside the context); and a long span wins unless max_answer_len forbids it.
    trap_mask = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 0], dtype=bool)
    trap_start = np.array([0, 9, 0, 1, 2, 0, 0, 5, 0, 0], dtype=np.float32)
    trap_end = np.array([0, 9, 0, 0, 6, 1, 0, 0, 0, 0], dtype=np.float32)
    long_end = trap_end.copy()
    long_end[8] = 7.0
    cases = [
        (
            "trap 1 (best start after best end, big logits in the question)",
            trap_start,
            trap_end,
            trap_mask,
            4,
        ),
        ("trap 2 (a two-token span wins)", trap_start, long_end, trap_mask, 4),
        ("trap 2 with max_answer_len=1", trap_start, long_end, trap_mask, 1),
    ]
    limit = int(max_answer_len)
    for i in range(min(len(starts), 8)):
        cases.append((f"window {i} of the notebook", starts[i], ends[i], masks[i], limit))
    for label, s_log, e_log, mask, max_len in cases:
        result = fn(s_log, e_log, mask, max_len)
        try:
            s, e = (int(v) for v in result)
        except (TypeError, ValueError):
            raise Wrong(
                f"best_span returned {result!r}; expected a pair of token indices (s, e)."
            ) from None
        table = _best_span_scores(s_log, e_log, mask, max_len)
        n = len(mask)
        if not (0 <= s < n and 0 <= e < n):
            raise Wrong(f"On {label}: ({s}, {e}) is outside the window of {n} tokens.")
        if e < s:
            raise Wrong(
                f"On {label}: end {e} comes before start {s}.",
                "Arg-max of start and end separately is the classic bug: search pairs with s <= e.",
            )
        if not (mask[s] and mask[e]):
            raise Wrong(
                f"On {label}: ({s}, {e}) uses tokens outside the context (question, [SEP], "
                "padding).",
                "Only positions where context_mask is true may start or end an answer.",
            )
        if e - s + 1 > max_len:
            raise Wrong(
                f"On {label}: the span has {e - s + 1} tokens, more than max_answer_len={max_len}.",
                "The length limit is part of the search, not a filter afterwards.",
            )
        if table[s, e] < table.max() - 1e-5:
            best = np.unravel_index(int(np.argmax(table)), table.shape)
            raise Wrong(
                f"On {label}: ({s}, {e}) is valid but not the best span; ({best[0]}, {best[1]}) "
                "scores higher.",
                "Maximise start_logits[s] + end_logits[e] over all valid pairs.",
            )
    return correct(f"Correct on the trap windows and on {len(cases) - 3} windows of the notebook.")


register(
    Exercise(
        key="19.1",
        title="Extract the answer span properly",
        prompt=(
            "Write `best_span(start_logits, end_logits, context_mask, max_answer_len)` for **one "
            "window** "
            "(1-D arrays): return the token pair `(s, e)` with the highest `start_logits[s] + "
            "end_logits[e]` "
            "such that both tokens are in the context, `s <= e` and the span has at most "
            "`max_answer_len` "
            "tokens. (Maximising the logit sum is the same as maximising `p_start * p_end`.)"
        ),
        checker=_check_19_1,
        context=("start_logits", "end_logits", "context_mask"),
        optional_context=("max_answer_len",),
        call='exercises.check("19.1", best_span, start_logits=start_logits, end_logits=end_logits, '
        "context_mask=features.context_mask, max_answer_len=max_answer_len)",
        solution="def best_span(start_logits, end_logits, context_mask, max_answer_len):\n"
        "    mask = np.asarray(context_mask, dtype=bool)\n"
        "    scores = np.add.outer(start_logits, end_logits)            # scores[s, e]\n"
        "    s, e = np.indices(scores.shape)\n"
        "    valid = np.outer(mask, mask) & (e >= s) & (e - s < max_answer_len)\n"
        "    flat = np.where(valid, scores, -np.inf).argmax()\n"
        "    return np.unravel_index(flat, scores.shape)",
    )
)
