"""Exercises of notebook 12: the KV cache's size, the bandwidth bound, positions of a left-padded batch."""

from __future__ import annotations

import numpy as np

from helpers import generation
from helpers.course import exercises


def test_12_1_cache_bytes() -> None:
    layout = generation.CacheLayout(num_layers=3, num_kv_heads=2, head_dim=32)
    expected = 2 * 3 * 2 * 32 * 4 * 3 * 10  # keys+values x layers x heads x dim x float32 x batch x tokens
    assert exercises.evaluate("12.1", expected, layout=layout, batch=3, tokens=10).ok
    wrong = exercises.evaluate("12.1", expected // 2, layout=layout, batch=3, tokens=10)
    assert not wrong.ok and "AND values" in wrong.hint
    wrong = exercises.evaluate("12.1", expected // 4, layout=layout, batch=3, tokens=10)
    assert not wrong.ok and "bytes each" in wrong.hint


def test_12_2_bandwidth_bound() -> None:
    per_token = {"fp32": 500_000_000, "weight-only INT4": 80_000_000}
    right = {"fp32": 40.0, "weight-only INT4": 250.0}  # 20 GB/s / bytes per token, by hand
    assert exercises.evaluate("12.2", right, bytes_per_token=per_token, bandwidth=20.0).ok
    seconds = {k: 1 / v for k, v in right.items()}
    assert "inverse" in exercises.evaluate("12.2", seconds, bytes_per_token=per_token, bandwidth=20.0).hint
    assert "Missing" in exercises.evaluate("12.2", {"fp32": 40.0}, bytes_per_token=per_token,
                                           bandwidth=20.0).message
    giga = {k: v / 1e9 for k, v in right.items()}
    assert "1e9" in exercises.evaluate("12.2", giga, bytes_per_token=per_token, bandwidth=20.0).hint


def test_12_3_positions_of_a_left_padded_batch() -> None:
    mask = np.array([[0, 1, 1], [1, 1, 1]], np.int64)
    assert exercises.evaluate("12.3", lambda m: np.cumsum(m, -1) - 1, attention_mask=mask).ok
    fb = exercises.evaluate("12.3", lambda m: np.tile(np.arange(m.shape[1]), (len(m), 1)), attention_mask=mask)
    assert not fb.ok and "cumsum" in fb.hint
