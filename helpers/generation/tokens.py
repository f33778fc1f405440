"""Prompts in, next tokens out: left-padded encoding, positions, greedy and sampled choices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from helpers.images import softmax

__all__ = ["encode_prompts", "filter_logits", "greedy", "position_ids_from_mask", "sample"]


# ---------------------------------------------------------------------------------------------
# Prompts, masks, positions
# ---------------------------------------------------------------------------------------------


def encode_prompts(tokenizer: Any, prompts: str | Sequence[str]) -> dict[str, np.ndarray]:
    """Tokenise a prompt or a batch of prompts, **left**-padded, as int64 numpy arrays.

    Decoder-only models continue from the last position, so padding goes on the left: every
    row's last column is then a real token. GPT-2 has no pad token; its EOS is used as padding
    (masked out, so its value does not matter).
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    previous = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(list(prompts), padding=True, return_tensors="np")
    finally:
        tokenizer.padding_side = previous
    return {
        "input_ids": enc["input_ids"].astype(np.int64),
        "attention_mask": enc["attention_mask"].astype(np.int64),
    }


def position_ids_from_mask(attention_mask: np.ndarray) -> np.ndarray:
    """Positions of each token: ``cumsum(mask) - 1``; padded slots get 1 (transformers' rule)."""
    mask = np.asarray(attention_mask, dtype=np.int64)
    pos = np.cumsum(mask, axis=-1) - 1
    pos[mask == 0] = 1
    return pos


# ---------------------------------------------------------------------------------------------
# Choosing the next token
# ---------------------------------------------------------------------------------------------


def greedy(logits: np.ndarray) -> np.ndarray:
    """The highest-scoring token of each row of ``logits[batch, vocab]``."""
    return np.asarray(logits).argmax(axis=-1).astype(np.int64)


def filter_logits(
    logits: np.ndarray, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> np.ndarray:
    """Apply temperature, then keep the ``top_k`` best tokens, then the smallest set whose
    probabilities add up to ``top_p`` (nucleus); everything else becomes ``-inf``.

    ``top_k=0`` and ``top_p=1.0`` disable those filters. The best token always survives.
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (use greedy decoding for temperature 0)")
    if not 0 < top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")
    x = np.array(logits, dtype=np.float64) / temperature
    if top_k and top_k < x.shape[-1]:
        kth = np.partition(x, -top_k, axis=-1)[..., -top_k, None]
        x = np.where(x < kth, -np.inf, x)
    if top_p < 1.0:
        order = np.argsort(-x, axis=-1)
        sorted_probs = np.take_along_axis(softmax(x), order, axis=-1)
        cumulative = np.cumsum(sorted_probs, axis=-1)
        # Remove a token when the tokens before it already reach top_p.
        remove_sorted = (cumulative - sorted_probs) >= top_p
        remove = np.zeros_like(remove_sorted)
        np.put_along_axis(remove, order, remove_sorted, axis=-1)
        x = np.where(remove, -np.inf, x)
    return x


def sample(
    logits: np.ndarray,
    rng: np.random.Generator,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> np.ndarray:
    """Draw one token per row from the filtered distribution (see :func:`filter_logits`).

    Reproducible: the same ``rng`` seed gives the same tokens.
    """
    probs = softmax(filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p))
    u = rng.random((probs.shape[0], 1))
    cdf = np.cumsum(probs, axis=-1)
    tokens = (cdf < u * cdf[:, -1:]).sum(axis=-1)
    return np.minimum(tokens, probs.shape[-1] - 1).astype(np.int64)
