"""Exercise 11.1 (emulate AVX2's u8 x s8 dot product): the right function passes, the exact sum,
a wrong clip, a crashing function and a non-function get feedback that names the mistake."""

from __future__ import annotations

import numpy as np

from helpers.course.exercises import framework, nb11  # noqa: F401 - registers 11.1


def _right(activations, weights):
    products = activations.astype(np.int64) * weights.astype(np.int64)
    if len(products) % 2:
        products = np.append(products, 0)
    return int(np.clip(products[0::2] + products[1::2], -32768, 32767).sum())


def test_registered_with_its_call() -> None:
    assert framework.all_keys("11") == ["11.1"]
    assert framework.get("11.1").call == 'exercises.check("11.1", avx2_dot)'


def test_the_right_function_and_the_solution_pass() -> None:
    assert framework.evaluate("11.1", _right).ok
    namespace = {"np": np}
    exec(framework.get("11.1").solution, namespace)
    assert framework.evaluate("11.1", namespace["avx2_dot"]).ok


def test_wrong_functions_get_feedback() -> None:
    exact = framework.evaluate("11.1", lambda a, w: int((a.astype(np.int64) * w).sum()))
    # 8 x 255 x 127 = 259,080 exact; 4 pairs clipped to 32,767 = 131,068
    assert not exact.ok and "exact sum 259,080" in exact.message and "131,068" in exact.message
    assert "int16" in exact.hint

    def clip_to_int8(a, w):  # clipped to the wrong width
        products = a.astype(np.int64) * w
        products = np.append(products, 0) if len(products) % 2 else products
        return int(np.clip(products[0::2] + products[1::2], -128, 127).sum())

    wrong_clip = framework.evaluate("11.1", clip_to_int8)
    assert not wrong_clip.ok and "the AVX2 kernel computes" in wrong_clip.message

    overflow = framework.evaluate("11.1", lambda a, w: int((a * w).sum()))  # u8 * s8 in 8 bits
    assert not overflow.ok

    def crash(a, w):
        raise RuntimeError("boom")

    crashed = framework.evaluate("11.1", crash)
    assert not crashed.ok and "RuntimeError" in crashed.message
    assert "Expected a function" in framework.evaluate("11.1", 42).message
    assert not framework.evaluate("11.1", None).answered
