"""Exercises of notebook 12 (fast LLM decoding); registered on import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    as_number,
    correct,
    is_close,
    register,
)


def _check_12_1(answer: Any, layout: Any, batch: Any, tokens: Any) -> Feedback:
    got = as_number(answer, "the number of bytes")
    itemsize = np.dtype(getattr(layout, "dtype", "float32")).itemsize
    per_kv = layout.num_layers * layout.num_kv_heads * layout.head_dim * itemsize * int(batch) * int(tokens)
    expected = 2 * per_kv
    if is_close(got, expected, 1e-6):
        return correct(
            f"Correct: 2 (keys, values) x {layout.num_layers} layers x {layout.num_kv_heads} KV heads x "
            f"{layout.head_dim} x {itemsize} bytes x batch {batch} x {tokens} tokens = {expected / 1e6:.2f} MB."
        )
    hints = {
        per_kv: "Keys AND values are cached: multiply by 2.",
        expected / layout.num_layers: "Every layer has its own cache: multiply by the number of layers.",
        expected / int(batch): "Each sequence of the batch has its own cache: multiply by the batch size.",
        expected / int(tokens): "The cache grows with every token: multiply by the sequence length.",
        expected / itemsize: f"That counts elements; {layout.dtype} takes {itemsize} bytes each.",
    }
    for value, hint in hints.items():
        if value != expected and is_close(got, value, 1e-6):
            raise Wrong(f"{got:.0f} bytes is not it.", hint)
    raise Wrong(f"{got:.0f} bytes is not it.",
                "2 x layers x KV heads x head size x bytes per element x batch x tokens.")


register(
    Exercise(
        key="12.1",
        title="How big is the KV cache?",
        prompt=(
            "How many **bytes** does the KV cache hold at the end of a generation of `batch` sequences "
            "of `tokens` tokens each (prompt + generated)? Use `layout.num_layers`, `layout.num_kv_heads`, "
            "`layout.head_dim` and the cache's dtype (`layout.dtype`)."
        ),
        checker=_check_12_1,
        context=("layout", "batch", "tokens"),
        call='exercises.check("12.1", answer, layout=layout, batch=len(prompts), '
        'tokens=enc["input_ids"].shape[1] + max_new_tokens)',
        solution='batch, tokens = len(prompts), enc["input_ids"].shape[1] + max_new_tokens\n'
        "itemsize = np.dtype(layout.dtype).itemsize\n"
        "answer = 2 * layout.num_layers * layout.num_kv_heads * layout.head_dim * itemsize * batch * tokens\n"
        "# = layout.cache_bytes_per_token(batch) * tokens",
    )
)


def _check_12_2(answer: Any, bytes_per_token: Mapping[str, int], bandwidth: Any) -> Feedback:
    if not isinstance(answer, Mapping):
        raise Wrong("Answer with a dict {weight format: tokens/s}.",
                    "E.g. {fmt: ... for fmt, b in bytes_per_token.items()}")
    missing = sorted(set(bytes_per_token) - set(answer))
    if missing:
        raise Wrong(f"Missing weight formats: {missing}.")
    for fmt, b in bytes_per_token.items():
        expected = float(bandwidth) * 1e9 / float(b)
        got = as_number(answer[fmt], f"the bound of {fmt}")
        if is_close(got, expected, 1e-3):
            continue
        if is_close(got, 1 / expected, 1e-3):
            raise Wrong(f"{fmt}: {got:.3g} is seconds per token.", "The bound in tokens/s is its inverse.")
        if is_close(got, expected / 1e9, 1e-3) or is_close(got, expected * 1e9, 1e-3):
            raise Wrong(f"{fmt}: {got:.3g} is off by 10^9.", "bandwidth is in GB/s: multiply by 1e9 to get bytes/s.")
        raise Wrong(f"{fmt}: {got:.3g} tokens/s is not the bound.", "bandwidth (bytes/s) / bytes read per token.")
    return correct("Correct: a decode step at batch 1 cannot be faster than reading its weights once.")


register(
    Exercise(
        key="12.2",
        title="The bandwidth bound of each weight format",
        prompt=(
            "At batch 1 every decode step reads all its weights once. From `bytes_per_token` (bytes a step "
            "reads, per weight format) and the measured `bandwidth` (GB/s), compute the upper bound on "
            "tokens/s of each format, as a dict `{format: tokens_per_s}`."
        ),
        checker=_check_12_2,
        context=("bytes_per_token", "bandwidth"),
        call='exercises.check("12.2", answer, bytes_per_token=graphs.bytes_per_token(), bandwidth=bandwidth)',
        solution="answer = {fmt: bandwidth * 1e9 / b for fmt, b in graphs.bytes_per_token().items()}",
    )
)


def _check_12_3(answer: Any, attention_mask: Any) -> Feedback:
    from helpers.generation import position_ids_from_mask

    fn = as_function(answer, "position_ids(attention_mask) -> position ids")
    masks = [
        (
            "a hand-made left-padded mask",
            np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]]),
        ),
        ("the notebook's attention_mask", np.asarray(attention_mask, dtype=np.int64)),
    ]
    for label, mask in masks:
        got = np.asarray(fn(mask.copy()))
        if got.shape != mask.shape:
            raise Wrong(f"On {label}: shape {got.shape}, expected {mask.shape}.")
        expected = position_ids_from_mask(mask)
        real = mask == 1
        if not np.array_equal(got[real], expected[real]):
            row = int(np.argwhere((got != expected) & real)[0][0])
            raise Wrong(
                f"On {label}, row {row}: got {got[row].tolist()} for mask {mask[row].tolist()}.",
                "The first *real* token of every row is position 0, whatever the padding: cumsum(mask) - 1.",
            )
    return correct(
        "Correct: positions count real tokens only (padding slots are ignored by the model)."
    )


register(
    Exercise(
        key="12.3",
        title="Position ids of a left-padded batch",
        prompt=(
            "Write `position_ids(attention_mask)` for a **left-padded** batch (`int64[batch, seq]`, 0 = "
            "padding): the first real token of every row gets position 0, the next 1, ... Values at "
            "padding positions are not checked."
        ),
        checker=_check_12_3,
        context=("attention_mask",),
        call='exercises.check("12.3", position_ids, attention_mask=enc["attention_mask"])',
        solution="def position_ids(attention_mask):\n"
        "    pos = np.cumsum(attention_mask, axis=-1) - 1\n"
        "    return np.where(attention_mask == 1, pos, 1)   # padding: any value (transformers uses 1)",
    )
)
