"""Beam search on the hand-written loop, step for step the algorithm of transformers' ``generate``.

Greedy decoding keeps one sequence and takes the best next token. Beam search keeps
``num_beams`` sequences per prompt ("beams"), scored by the sum of their tokens'
log-probabilities. Each step:

1. one forward pass over all ``batch × num_beams`` rows (one new token each, the KV cache of
   every beam), log-softmax, plus each beam's score: ``num_beams × vocab`` candidates per prompt;
2. the best ``2 × num_beams`` candidates are kept (twice as many, so that enough remain when
   some end with EOS); those ending with EOS -- or reaching ``max_new_tokens`` -- are
   *finished hypotheses*, scored ``sum log p / length ** length_penalty`` and kept if they beat
   the worst of the ``num_beams`` best finished so far;
3. the best ``num_beams`` unfinished candidates become the new beams, and the KV cache rows are
   **reordered** to follow them (a beam may continue another beam's history);
4. stop when no running beam can beat the finished ones (``early_stopping``), or when all hit
   the length limit. The answer is the best finished hypothesis.

:func:`beam_search` implements exactly these rules (transformers 5's ``_beam_search``, including
its ``early_stopping`` heuristic and float32 arithmetic), so with ``num_beams=4`` it returns the
same tokens as ``model.generate(num_beams=4, do_sample=False)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BeamSearchOutput", "beam_search"]

_NEG = np.float32(-1.0e9)  # transformers' "impossible" score


@dataclass
class BeamSearchOutput:
    """The best hypothesis per prompt: ``sequences`` (prompt + new tokens, finished rows padded),
    ``new_tokens``, ``scores`` (length-penalised log-probability) and ``steps`` (forward passes)."""

    sequences: np.ndarray
    new_tokens: np.ndarray
    scores: np.ndarray
    prompt_length: int
    steps: int


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float32)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values along the last axis, best first."""
    part = np.argpartition(-values, k - 1, axis=-1)[..., :k]
    order = np.argsort(-np.take_along_axis(values, part, axis=-1), axis=-1, kind="stable")
    return np.take_along_axis(part, order, axis=-1)


def _gather(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[b, index[b, j], ...]`` for every prompt ``b`` (beams along axis 1)."""
    while index.ndim < array.ndim:
        index = index[..., None]
    return np.take_along_axis(array, index, axis=1)


def beam_search(
    generator: Any,
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None = None,
    *,
    num_beams: int = 4,
    max_new_tokens: int = 20,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    stop_on_eos: bool = True,
    truncate_prompt: bool = False,
) -> BeamSearchOutput:
    """Beam search with the step of a :class:`helpers.generation.Generator` (past → present graph).

    ``early_stopping``: ``False`` (transformers' default heuristic), ``True`` (stop once
    ``num_beams`` hypotheses are finished) or ``"never"``. ``length_penalty`` > 0 favours longer
    hypotheses. Prompts are checked as for :meth:`Generator.generate`.
    """
    if getattr(generator, "uses_buffer", False):
        raise TypeError("beam_search needs a Generator on the past -> present graph (export_with_kv_cache)")
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be an integer >= 1, got {num_beams!r}")
    ids, mask = generator.check_context(input_ids, attention_mask, max_new_tokens, truncate_prompt=truncate_prompt)
    layout = generator.layout
    batch, width = ids.shape
    max_length = width + max_new_tokens
    eos = np.array(generator.eos_token_ids if stop_on_eos else (), dtype=np.int64)
    keep = max(2, 1 + eos.size) * num_beams
    top_mask = np.arange(keep) < num_beams
    # transformers' fill value for positions after a finished hypothesis: `pad or eos[0]`.
    fill = generator.pad_token_id or (int(eos[0]) if eos.size else -1)

    running = np.full((batch, num_beams, max_length), fill, dtype=np.int64)
    running[:, :, :width] = ids[:, None, :]
    finished_seqs = running.copy()
    running_scores = np.zeros((batch, num_beams), dtype=np.float32)
    running_scores[:, 1:] = _NEG  # all beams start equal: only the first one may expand at step 0
    finished_scores = np.full((batch, num_beams), _NEG, dtype=np.float32)
    is_finished = np.zeros((batch, num_beams), dtype=bool)
    improvable = np.ones((batch, 1), dtype=bool)
    running_origin = np.full((batch, num_beams, max_new_tokens), -1, dtype=np.int64)
    finished_origin = running_origin.copy()
    offsets = (np.arange(batch) * num_beams)[:, None]

    rows_mask = np.repeat(mask, num_beams, axis=0)
    positions = np.cumsum(rows_mask, axis=1) - 1
    positions[rows_mask == 0] = 1
    feed: dict[str, np.ndarray] = {
        "input_ids": np.repeat(ids, num_beams, axis=0), "attention_mask": rows_mask,
        "position_ids": positions, **layout.empty_past(batch * num_beams),
    }
    cur_len, steps = width, 0
    while True:
        out = generator.run(feed)
        steps += 1
        log_probs = _log_softmax(out["logits"][:, -1, :]).reshape(batch, num_beams, -1)
        vocab = log_probs.shape[-1]
        candidates = (log_probs + running_scores[:, :, None]).reshape(batch, -1)
        top = _top_k(candidates, keep)
        top_scores = np.take_along_axis(candidates, top, axis=1)
        origin, token = top // vocab, top % vocab
        top_seqs = _gather(running, origin)
        top_seqs[:, :, cur_len] = token
        top_origin = _gather(running_origin, origin)
        top_origin[:, :, cur_len - width] = origin + offsets
        hits = np.isin(token, eos) | (cur_len + 1 >= max_length)

        alive_scores = top_scores + hits.astype(np.float32) * _NEG
        nxt = _top_k(alive_scores, num_beams)
        running, running_scores = _gather(top_seqs, nxt), _gather(alive_scores, nxt)
        running_origin = _gather(top_origin, nxt)

        just_finished = hits & top_mask[None, :]
        scored = top_scores / np.float32((cur_len + 1 - width) ** length_penalty)
        full = is_finished.all(axis=-1, keepdims=True) & (early_stopping is True)
        scored = scored + full.astype(np.float32) * _NEG + (~improvable).astype(np.float32) * _NEG
        scored = scored + (~just_finished).astype(np.float32) * _NEG
        merged_scores = np.concatenate([finished_scores, scored], axis=1)
        best = _top_k(merged_scores, num_beams)
        finished_seqs = _gather(np.concatenate([finished_seqs, top_seqs], axis=1), best)
        finished_scores = _gather(merged_scores, best)
        finished_origin = _gather(np.concatenate([finished_origin, top_origin], axis=1), best)
        is_finished = _gather(np.concatenate([is_finished, just_finished], axis=1), best)

        beam_rows = running_origin[:, :, cur_len - width].reshape(-1)
        cur_len += 1
        hypothetical = max_length - width if early_stopping == "never" and length_penalty > 0 else cur_len - width
        best_possible = running_scores[:, :1] / np.float32(hypothetical ** length_penalty)
        worst = np.where(is_finished, finished_scores.min(axis=1, keepdims=True), _NEG)
        improvable &= (best_possible > worst).any(axis=-1, keepdims=True)
        if not improvable.any() or (is_finished.all() and early_stopping is True) or hits.all():
            break
        rows_mask = np.concatenate([rows_mask, np.ones((batch * num_beams, 1), np.int64)], axis=1)
        feed = {
            "input_ids": running.reshape(batch * num_beams, -1)[:, cur_len - 1 : cur_len],
            "attention_mask": rows_mask,
            "position_ids": positions[:, -1:] + (cur_len - width),
            **{p: out[q][beam_rows] for p, q in zip(layout.past_names, layout.present_names, strict=True)},
        }

    generated = int((finished_origin[:, 0] >= 0).sum(axis=1).max())
    sequences = finished_seqs[:, 0, : width + generated]
    return BeamSearchOutput(
        sequences=sequences, new_tokens=sequences[:, width:], scores=finished_scores[:, 0],
        prompt_length=width, steps=steps,
    )
