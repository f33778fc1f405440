"""Exercise 19.1 (the best answer span of one window) accepts a correct span search and rejects the
naive arg-max with a hint."""

from __future__ import annotations

import numpy as np

from helpers.course.exercises import framework, nb19  # noqa: F401 - registers 19.1


def _good(s, e, m, max_len):
    m = np.asarray(m, bool)
    scores = np.add.outer(s, e)
    si, ei = np.indices(scores.shape)
    valid = np.outer(m, m) & (ei >= si) & (ei - si < max_len)
    return np.unravel_index(np.where(valid, scores, -np.inf).argmax(), scores.shape)


def _context():
    rng = np.random.default_rng(0)
    start, end = rng.standard_normal((3, 40)), rng.standard_normal((3, 40))
    mask = np.zeros((3, 40), bool)
    mask[:, 8:38] = True
    return dict(start_logits=start, end_logits=end, context_mask=mask, max_answer_len=5)


def test_a_correct_span_search_passes():
    feedback = framework.evaluate("19.1", _good, **_context())
    assert feedback.ok, feedback.text()


def test_the_naive_arg_max_fails_with_a_hint():
    feedback = framework.evaluate(
        "19.1", lambda s, e, m, n: (int(np.argmax(s)), int(np.argmax(e))), **_context()
    )
    assert not feedback.ok and feedback.hint


def test_ignoring_the_length_limit_is_named():
    def no_limit(s, e, m, max_len):
        return _good(s, e, m, 10_000)

    feedback = framework.evaluate("19.1", no_limit, **_context())
    assert not feedback.ok and "max_answer_len" in feedback.message


def test_unanswered():
    assert not framework.evaluate("19.1", None, **_context()).answered
