"""Exercises 10.1 and 10.2 accept the right answer (computed from their context) and reject wrong ones."""

from __future__ import annotations

from helpers.course.exercises import (
    framework,
    nb16,  # noqa: F401 - registers 10.1 and 10.2
)
from helpers.under_the_hood import profiling


def _profile(runtime, rows):
    return profiling._table(((op, op, us) for op, us in rows), runtime=runtime, runs=1, trace=None)


BEFORE = _profile("onnxruntime", [("Conv", 300), ("Conv", 100), ("Relu", 50), ("Add", 20), ("Gemm", 30)])
AFTER = _profile("onnxruntime", [("Conv", 200), ("Conv", 80), ("ReorderOutput", 5), ("Gemm", 30)])
MIXED = _profile("pytorch", [("aten::conv2d", 300), ("aten::_convolution", 100), ("aten::linear", 30)])


def test_both_exercises_are_registered():
    assert framework.all_keys("16") == ["16.1", "16.2"]
    for key in ("16.1", "16.2"):
        assert framework.get(key).call.startswith(f'exercises.check("{key}"')


def test_10_1_category_share():
    def right(profile, category):
        return profile.loc[profile.category == category, "time_ms"].sum() / profile.time_ms.sum()

    assert framework.evaluate("16.1", right, profiles=[BEFORE, AFTER, MIXED]).ok
    percent = framework.evaluate("16.1", lambda p, c: 100 * right(p, c), profiles=[BEFORE])
    assert not percent.ok and "percentage" in percent.message
    one_row = framework.evaluate("16.1", lambda p, c: p.loc[p.category == c, "share"].iloc[0]
                                 if (p.category == c).any() else 0.0, profiles=[MIXED])
    assert not one_row.ok and "one operator type" in one_row.message
    assert not framework.evaluate("16.1", "matmul", profiles=[BEFORE]).ok
    assert not framework.evaluate("16.1", None, profiles=[BEFORE]).answered


def test_10_2_removed_operators():
    assert framework.evaluate("16.2", ["Relu", "Add"], before=BEFORE, after=AFTER).ok
    assert framework.evaluate("16.2", sorted(set(BEFORE.op_type) - set(AFTER.op_type)),
                              before=BEFORE, after=AFTER).ok
    swapped = framework.evaluate("16.2", ["ReorderOutput"], before=BEFORE, after=AFTER)
    assert not swapped.ok and "appeared" in swapped.message
    partial = framework.evaluate("16.2", ["Relu"], before=BEFORE, after=AFTER)
    assert not partial.ok and "missing Add" in partial.message
    unknown = framework.evaluate("16.2", ["Softmax"], before=BEFORE, after=AFTER)
    assert not unknown.ok and "neither" in unknown.message
