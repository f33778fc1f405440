"""Exercises of notebook 11 (quantization in depth); registered on import."""

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
)
from helpers.quantize.saturation import dot_u8s8


def _cases(seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Dot products that tell the kernels apart: small, saturating up, saturating down, odd K."""
    rng = np.random.default_rng(seed)
    return [
        ("small values", rng.integers(0, 16, 64), rng.integers(-16, 16, 64)),
        ("large positive pairs", np.full(8, 255), np.full(8, 127)),
        ("large negative pairs", np.full(8, 255), np.full(8, -128)),
        ("mixed signs", np.array([255, 255, 255, 255]), np.array([127, 127, -128, -128])),
        ("an odd length", np.array([200, 200, 200]), np.array([100, 100, 100])),
        ("random full range", rng.integers(0, 256, 256), rng.integers(-128, 128, 256)),
    ]


def _check_11_1(answer: Any) -> Feedback:
    fn = as_function(answer, "avx2_dot(activations, weights)")
    for label, a, w in _cases():
        expected = int(dot_u8s8(a, w, kernel="avx2"))
        try:
            got = fn(a.astype(np.uint8), w.astype(np.int8))
        except Exception as exc:  # noqa: BLE001 - the learner's function may raise anything
            raise Wrong(
                f"Your function raised {type(exc).__name__} on {label}: {str(exc)[:120]}",
                "Convert to a wide integer type first (np.int32): u8 * s8 overflows in 8 bits.",
            ) from None
        try:
            value = int(np.asarray(got).item())
        except (TypeError, ValueError):
            raise Wrong(f"Expected one integer, got {type(got).__name__} on {label}.") from None
        if value == expected:
            continue
        exact = int(dot_u8s8(a, w))
        if value == exact:
            raise Wrong(
                f"On {label} you return the exact sum {exact:,}; AVX2 gives {expected:,}.",
                "Add neighbouring products in pairs and clip each pair to int16 "
                "(-32,768..32,767) before summing the pairs.",
            )
        raise Wrong(
            f"On {label} your function returns {value:,}; the AVX2 kernel computes {expected:,}.",
            "Multiply in int32, add element 2i and 2i+1 (pad an odd length with 0), clip each pair "
            "to int16, then sum.",
        )
    return correct(
        "Correct: pairs of u8 x s8 products clipped to int16, then summed — exactly what vpmaddubsw "
        "and the widening add compute. Two products of 255 x 127 already exceed 32,767."
    )


register(
    Exercise(
        key="11.1",
        title="Emulate AVX2's u8 x s8 dot product",
        prompt=(
            "Write `avx2_dot(activations, weights)`: the dot product of a u8 vector and an s8 vector "
            "as ONNX Runtime's AVX2 kernel (without VNNI) computes it. `vpmaddubsw` multiplies "
            "neighbouring elements and adds each **pair** of products into a **signed 16-bit** integer, "
            "which saturates at -32,768 / 32,767; the pairs are then widened and summed in 32 bits. "
            "An odd length counts as padded with a zero. Return one integer. The check compares your "
            "function with the arithmetic on vectors that do and do not saturate."
        ),
        checker=_check_11_1,
        call='exercises.check("11.1", avx2_dot)',
        solution='''def avx2_dot(activations, weights):
    products = activations.astype(np.int32) * weights.astype(np.int32)
    if len(products) % 2:
        products = np.append(products, 0)
    pairs = products[0::2] + products[1::2]
    return int(np.clip(pairs, -32768, 32767).sum())''',
    )
)
