"""Prompts in, next tokens out: left-padded encoding, positions, greedy and sampled choices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from helpers.images import softmax

__all__ = [
    "ContextLengthError",
    "EmptyPromptError",
    "check_prompt",
    "encode_prompts",
    "filter_logits",
    "greedy",
    "position_ids_from_mask",
    "sample",
]


class ContextLengthError(ValueError):
    """The prompt plus the requested new tokens do not fit in the model's context window."""


class EmptyPromptError(ValueError):
    """A prompt (or one row of a batch) has no token to continue from."""


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


def check_prompt(
    input_ids: Any,
    attention_mask: Any | None,
    max_new_tokens: int,
    max_positions: int | None,
    *,
    truncate_prompt: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a prompt batch before any compute; return ``(input_ids, attention_mask)``.

    Both come back as ``int64[batch, width]`` (a 1-D prompt becomes a batch of one; a missing
    mask is all ones). Raises :class:`EmptyPromptError` for a prompt without tokens (or a batch
    row that is all padding: a decoder needs one real token to continue from -- start from the
    tokenizer's BOS token for "unconditional" text), ``ValueError`` for a bad ``max_new_tokens``
    or mask, and :class:`ContextLengthError` when prompt + ``max_new_tokens`` exceed
    ``max_positions``. With ``truncate_prompt=True`` the prompt's *oldest* tokens are dropped
    instead, keeping room for ``max_new_tokens`` (a documented truncation).
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int | np.integer):
        raise ValueError(f"max_new_tokens must be an integer, got {max_new_tokens!r}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    ids = np.asarray(input_ids)
    if ids.ndim == 1:
        ids = ids[None, :]
    if ids.ndim != 2 or ids.shape[0] == 0:
        raise ValueError(f"input_ids must be [batch, tokens] with batch >= 1, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"input_ids must be integer token ids, got {ids.dtype}")
    ids = ids.astype(np.int64)
    if ids.shape[1] == 0:
        raise EmptyPromptError(
            "the prompt is empty (0 tokens): generation continues from the last token, so it needs "
            "at least one; for text without a prompt, start from the tokenizer's BOS token."
        )
    mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask)
    if mask.ndim == 1:
        mask = mask[None, :]
    if mask.shape != ids.shape:
        raise ValueError(f"attention_mask shape {mask.shape} does not match input_ids {ids.shape}")
    mask = mask.astype(np.int64)
    empty = np.flatnonzero(mask.sum(axis=1) == 0)
    if empty.size:
        raise EmptyPromptError(
            f"prompt {int(empty[0])} of the batch is empty (its attention mask is all padding): "
            "every row needs at least one real token."
        )
    width = ids.shape[1]
    if max_positions is None or width + max_new_tokens <= max_positions:
        return ids, mask
    if max_new_tokens >= max_positions:
        raise ContextLengthError(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's context of "
            f"{max_positions} tokens."
        )
    if not truncate_prompt:
        raise ContextLengthError(
            f"prompt of {width} tokens + max_new_tokens={max_new_tokens} = {width + max_new_tokens} "
            f"exceeds the model's context of {max_positions} tokens. Shorten the prompt, ask for "
            "fewer tokens, or pass truncate_prompt=True to keep only the last "
            f"{max_positions - max_new_tokens} prompt tokens."
        )
    keep = max_positions - max_new_tokens
    ids, mask = ids[:, -keep:], mask[:, -keep:]
    if (mask.sum(axis=1) == 0).any():
        raise EmptyPromptError("after truncation a prompt of the batch has no real token left.")
    return ids, mask


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
