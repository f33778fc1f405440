"""Extractive question answering around any runtime: tokenise with offsets, pick spans, map back.

An extractive QA model (``BertForQuestionAnswering`` and friends) reads ``[CLS] question [SEP]
context [SEP]`` and returns two numbers per token: ``start_logits`` and ``end_logits``. Everything
else is plain logic that lives here, so the same code serves PyTorch, ONNX Runtime and OpenVINO:

1. :func:`encode` tokenises question/context pairs, keeps the character offsets of every token,
   and cuts contexts longer than ``max_length`` into overlapping windows (``stride`` tokens of
   overlap, the "document stride" of the SQuAD scripts). One *example* may become several
   *features* (windows); ``features.example_index`` says which example each window belongs to.
2. A runner turns ``features.model_inputs()`` into start/end logits for every window.
3. :func:`extract_answers` scores every (start, end) pair inside the context with
   ``end >= start`` and at most ``max_answer_len`` tokens, keeps the best pair across all windows
   of an example and cuts the answer out of the *original* text through the offsets (so accents,
   case and spacing come back exactly as written).

The span scoring is the one the transformers question-answering pipeline used (softmax over the
tokens that may hold an answer, score = p(start) * p(end)), which makes scores comparable across
windows. transformers 5 removed that pipeline; :func:`reference_answers` runs the same selection
through transformers' own ``select_starts_ends`` (kept in the document-QA pipeline, which
"mirrors the logic in the question_answering pipeline") so the hand-written path can be checked
against the library.

Null answers (SQuAD 2.0): the score of the ``[CLS]`` token pair is the model's "no answer" score.
With ``handle_impossible_answer=True`` the answer is empty when that score beats the best span;
with ``min_score`` an answer whose score is below a threshold is returned as empty instead (the
usual recipe for models never trained on unanswerable questions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from helpers.images import softmax

__all__ = [
    "MODEL_INPUT_NAMES",
    "QAInputError",
    "QAFeatures",
    "Span",
    "Answer",
    "encode",
    "position_limit",
    "span_probabilities",
    "best_spans",
    "extract_answers",
    "reference_answers",
    "answer_questions",
    "identical_share",
    "same_answers",
]

#: BERT's inputs in the order its ``forward`` takes them (DistilBERT has no ``token_type_ids``).
MODEL_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class QAInputError(ValueError):
    """A question or context that cannot be answered as given (empty, wrong lengths, ...)."""


@dataclass
class QAFeatures:
    """Tokenised question/context pairs, one row per window ("feature").

    Arrays are numpy ``int64`` of shape ``[n_features, seq]`` (``offsets`` is ``[n_features, seq,
    2]``); ``context_mask`` is True where a token belongs to the context (the only tokens an
    answer may use); ``example_index[i]`` is the question/context pair feature ``i`` came from.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    offsets: np.ndarray
    context_mask: np.ndarray
    example_index: np.ndarray
    questions: list[str]
    contexts: list[str]
    max_length: int
    stride: int
    tokens: list[list[str]] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def n_examples(self) -> int:
        """Number of question/context pairs (features can be more: long contexts are split)."""
        return len(self.questions)

    def windows_per_example(self) -> list[int]:
        """How many windows each example was split into."""
        return np.bincount(self.example_index, minlength=self.n_examples).tolist()

    def model_inputs(self, names: Sequence[str] = MODEL_INPUT_NAMES) -> dict[str, np.ndarray]:
        """The arrays a runner needs, keyed by input name (only the ``names`` asked for)."""
        arrays = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }
        unknown = [n for n in names if n not in arrays]
        if unknown:
            raise QAInputError(
                f"unknown model input(s) {unknown}; QA features provide {list(arrays)}"
            )
        return {n: arrays[n] for n in names}

    def span_text(self, feature: int, start_token: int, end_token: int) -> str:
        """The context text of tokens ``start_token..end_token`` (inclusive) of ``feature``."""
        off = self.offsets[feature]
        context = self.contexts[int(self.example_index[feature])]
        return context[int(off[start_token, 0]) : int(off[end_token, 1])]

    def select(self, rows: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Model inputs for a subset of windows (e.g. one batch)."""
        rows = np.asarray(rows)
        return {k: v[rows] for k, v in self.model_inputs().items()}


@dataclass(frozen=True)
class Span:
    """A candidate answer inside one window: token positions (inclusive) and its score."""

    start_token: int
    end_token: int
    score: float
    feature_index: int = 0


@dataclass(frozen=True)
class Answer:
    """The answer to one question: text cut from the original context, char span and score.

    ``start``/``end`` are character offsets into the context (``context[start:end] == text``);
    an empty answer (``text == ""``, ``start == end == -1``) means "no answer".
    """

    question: str
    text: str
    start: int
    end: int
    score: float
    null_score: float
    feature_index: int
    start_token: int
    end_token: int

    @property
    def is_null(self) -> bool:
        """True for the empty (no-answer) answer."""
        return self.start < 0

    @property
    def span(self) -> tuple[int, int]:
        """``(start, end)`` character offsets, ``(-1, -1)`` for no answer."""
        return (self.start, self.end)


def _as_list(value: str | Sequence[str], what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence):
        raise QAInputError(
            f"{what} must be a string or a list of strings, got {type(value).__name__}"
        )
    return list(value)


#: ``tokenizer.model_max_length`` above this means "no limit recorded" (transformers uses 1e30).
_NO_LIMIT = 1_000_000


def _is_count(value: Any) -> bool:
    """True for a Python or numpy integer (not a bool, not a float)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _pairs(
    questions: str | Sequence[str], contexts: str | Sequence[str]
) -> tuple[list[str], list[str]]:
    """Questions and contexts as two equally long lists of non-blank strings, or QAInputError."""
    qs = _as_list(questions, "questions")
    cs = _as_list(contexts, "contexts")
    if not qs:
        raise QAInputError("no questions given")
    if len(cs) == 1 and len(qs) > 1:
        cs = cs * len(qs)
    if len(cs) != len(qs):
        raise QAInputError(
            f"got {len(qs)} questions but {len(cs)} contexts; pass one context or one per question"
        )
    for i, (q, c) in enumerate(zip(qs, cs, strict=True)):
        if not isinstance(q, str) or not q.strip():
            raise QAInputError(f"question {i} is empty: ask something, e.g. 'Who founded ONNX?'")
        if not isinstance(c, str) or not c.strip():
            raise QAInputError(
                f"context {i} is empty: extractive QA needs a text to find the answer in"
            )
    return qs, cs


def position_limit(tokenizer: Any, model: Any = None) -> int | None:
    """The longest window a model can read: ``config.max_position_embeddings`` when ``model``
    (a transformers model, or anything with a ``.model`` or ``.config``) records it, else the
    tokenizer's ``model_max_length`` (512 for BERT), ``None`` when neither records one."""
    config = getattr(getattr(model, "model", model), "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        return positions
    recorded = getattr(tokenizer, "model_max_length", None)
    if isinstance(recorded, int) and 0 < recorded < _NO_LIMIT:
        return recorded
    return None


def _check_windows(
    tokenizer: Any,
    qs: Sequence[str],
    *,
    max_length: int,
    stride: int,
    padding: str,
    max_positions: int | None,
) -> None:
    """Every window setting checked before any tokenisation or compute (QAInputError)."""
    if padding not in ("max_length", "longest"):
        raise QAInputError(f"padding must be 'max_length' or 'longest', got {padding!r}")
    if not getattr(tokenizer, "is_fast", False):
        raise QAInputError("encode needs a fast (Rust) tokenizer: offsets come from it")
    side = getattr(tokenizer, "padding_side", "right")
    if side != "right":
        raise QAInputError("QA windows assume right padding (tokenizer.padding_side == 'right')")
    if not _is_count(max_length) or max_length < 1:
        raise QAInputError(f"max_length must be a positive number of tokens, got {max_length!r}")
    if not _is_count(stride):
        raise QAInputError(f"stride must be a number of tokens, got {stride!r}")
    limit = max_positions if max_positions is not None else position_limit(tokenizer)
    if limit is not None and max_length > limit:
        raise QAInputError(
            f"max_length={max_length} is more than the {limit} token positions this model has; "
            f"use max_length <= {limit} (longer contexts are split into windows with stride)"
        )
    # The room left for context in a window, for the longest question: the stride must be smaller.
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    longest_q = max(len(tokenizer(q, add_special_tokens=False)["input_ids"]) for q in qs)
    room = max_length - n_special - longest_q
    if room < 1:
        raise QAInputError(
            f"a question of {longest_q} tokens leaves no room for context in {max_length} tokens; "
            "shorten the question or raise max_length"
        )
    if not 0 <= stride < room:
        raise QAInputError(
            f"stride={stride} must be smaller than the {room} context tokens a window holds "
            f"(max_length={max_length}, longest question {longest_q} tokens)"
        )


def encode(
    tokenizer: Any,
    questions: str | Sequence[str],
    contexts: str | Sequence[str],
    *,
    max_length: int = 384,
    stride: int = 128,
    padding: str = "max_length",
    max_positions: int | None = None,
) -> QAFeatures:
    """Tokenise question/context pairs for an extractive QA model, keeping character offsets.

    Args:
        tokenizer: a *fast* Hugging Face tokenizer (offsets need the Rust tokenizer).
        questions: one question or a list.
        contexts: one context (shared by all questions) or one per question.
        max_length: tokens per window, special tokens included (BERT: at most 512).
        stride: tokens of overlap between consecutive windows of a long context (the "document
            stride"); must be smaller than the room the context gets in a window.
        padding: ``"max_length"`` (every window exactly ``max_length``: fixed shapes) or
            ``"longest"`` (pad to the longest window in the batch: less work for short inputs).
        max_positions: the most tokens the model can read (``None``: :func:`position_limit`
            of the tokenizer, 512 for BERT).

    Raises:
        QAInputError: empty or blank question/context, mismatched list lengths, ``max_length``
            above the model's positions, a question too long to leave room for context, a
            stride that leaves no room to advance, or a tokenizer without offsets.
    """
    qs, cs = _pairs(questions, contexts)
    _check_windows(
        tokenizer,
        qs,
        max_length=max_length,
        stride=stride,
        padding=padding,
        max_positions=max_positions,
    )
    return _tokenize_windows(
        tokenizer, qs, cs, max_length=max_length, stride=stride, padding=padding
    )


def _tokenize_windows(
    tokenizer: Any, qs: list[str], cs: list[str], *, max_length: int, stride: int, padding: str
) -> QAFeatures:
    """:func:`encode` after its checks (:func:`_check_windows`): the tokenisation itself."""
    enc = tokenizer(
        qs,
        cs,
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
        padding="max_length" if padding == "max_length" else "longest",
        return_tensors="np",
    )
    n = enc["input_ids"].shape[0]
    context_mask = np.zeros(enc["input_ids"].shape, dtype=bool)
    for i in range(n):
        context_mask[i] = [sid == 1 for sid in enc.sequence_ids(i)]
    tokens = [tokenizer.convert_ids_to_tokens(row.tolist()) for row in enc["input_ids"]]
    token_type_ids = enc.get("token_type_ids")
    if token_type_ids is None:
        token_type_ids = np.zeros_like(enc["input_ids"])
    return QAFeatures(
        input_ids=enc["input_ids"].astype(np.int64),
        attention_mask=enc["attention_mask"].astype(np.int64),
        token_type_ids=np.asarray(token_type_ids).astype(np.int64),
        offsets=enc["offset_mapping"].astype(np.int64),
        context_mask=context_mask,
        example_index=np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64),
        questions=qs,
        contexts=cs,
        max_length=max_length,
        stride=stride,
        tokens=tokens,
    )


def span_probabilities(
    start_logits: np.ndarray, end_logits: np.ndarray, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax of start and end logits over the ``allowed`` tokens of one window.

    ``allowed`` is a boolean mask (context tokens plus ``[CLS]``, the "no answer" slot); other
    tokens get probability 0. Returns ``(p_start, p_end)``, each summing to 1.
    """
    allowed = np.asarray(allowed, dtype=bool)
    if not allowed.any():
        raise QAInputError("no token may hold an answer in this window (empty context?)")
    p_start, p_end = (
        softmax(np.where(allowed, np.asarray(logits, dtype=np.float64), -np.inf))
        for logits in (start_logits, end_logits)
    )
    return p_start, p_end


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    context_mask: np.ndarray,
    *,
    max_answer_len: int = 30,
    top_k: int = 1,
    cls_index: int | None = 0,
    feature_index: int = 0,
) -> tuple[list[Span], float]:
    """The ``top_k`` best answer spans in one window and the window's null ("no answer") score.

    Scores are ``p_start[s] * p_end[e]`` with softmax over context tokens and ``[CLS]``; only
    pairs with both tokens in the context, ``s <= e`` and ``e - s + 1 <= max_answer_len`` count.
    Ties go to the earlier start, then the earlier end (``np.argmax`` order, like transformers).
    The null score is ``p_start[cls] * p_end[cls]`` (0 when ``cls_index`` is None).
    """
    if max_answer_len < 1:
        raise QAInputError(f"max_answer_len must be >= 1, got {max_answer_len}")
    ctx = np.asarray(context_mask, dtype=bool)
    allowed = ctx.copy()
    if cls_index is not None:
        allowed[cls_index] = True
    p_start, p_end = span_probabilities(start_logits, end_logits, allowed)
    null_score = float(p_start[cls_index] * p_end[cls_index]) if cls_index is not None else 0.0
    ps = np.where(ctx, p_start, 0.0)
    pe = np.where(ctx, p_end, 0.0)
    scores = np.triu(np.outer(ps, pe))  # end >= start
    scores = np.tril(scores, max_answer_len - 1)  # end - start < max_answer_len
    valid = np.triu(np.tril(np.outer(ctx, ctx), max_answer_len - 1))
    flat = np.where(valid, scores, -1.0).ravel()
    n_valid = int(valid.sum())
    k = min(top_k, n_valid)
    if k == 0:
        return [], null_score
    # stable sort on -score keeps the argmax (row-major) order for ties
    order = np.argsort(-flat, kind="stable")[:k]
    starts, ends = np.unravel_index(order, scores.shape)
    spans = [
        Span(int(s), int(e), float(scores[s, e]), feature_index)
        for s, e in zip(starts, ends, strict=True)
    ]
    return spans, null_score


def _check_logits(
    features: QAFeatures, start_logits: np.ndarray, end_logits: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    start = np.asarray(start_logits)
    end = np.asarray(end_logits)
    expected = features.input_ids.shape
    for name, arr in (("start_logits", start), ("end_logits", end)):
        if arr.shape != expected:
            raise QAInputError(
                f"{name} has shape {arr.shape}, expected {expected} "
                "(one value per token per window)"
            )
    return start, end


def _answer_from(
    features: QAFeatures, example: int, span: Span | None, null_score: float
) -> Answer:
    question = features.questions[example]
    if span is None:
        return Answer(question, "", -1, -1, null_score, null_score, -1, -1, -1)
    off = features.offsets[span.feature_index]
    start_char = int(off[span.start_token, 0])
    end_char = int(off[span.end_token, 1])
    text = features.contexts[example][start_char:end_char]
    return Answer(
        question,
        text,
        start_char,
        end_char,
        span.score,
        null_score,
        span.feature_index,
        span.start_token,
        span.end_token,
    )


def extract_answers(
    features: QAFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    max_answer_len: int = 30,
    handle_impossible_answer: bool = False,
    min_score: float | None = None,
) -> list[Answer]:
    """The best answer per example, across all of its windows, mapped back to the original text.

    Args:
        features: what :func:`encode` returned.
        start_logits, end_logits: model outputs, ``[n_features, seq]``.
        max_answer_len: longest answer in tokens.
        handle_impossible_answer: return the empty answer when the lowest "no answer" score over
            the example's windows beats the best span (SQuAD 2.0 models).
        min_score: return the empty answer when the best span scores below this (threshold
            recipe for models without a trained null answer).
    """
    start, end = _check_logits(features, start_logits, end_logits)
    best: dict[int, Span] = {}
    null: dict[int, float] = {}
    for i in range(len(features)):
        ex = int(features.example_index[i])
        spans, null_score = best_spans(
            start[i],
            end[i],
            features.context_mask[i],
            max_answer_len=max_answer_len,
            feature_index=i,
        )
        null[ex] = min(null.get(ex, np.inf), null_score)
        if spans and (ex not in best or spans[0].score > best[ex].score):
            best[ex] = spans[0]
    answers = []
    for ex in range(features.n_examples):
        span = best.get(ex)
        null_score = float(null.get(ex, 0.0))
        if span is not None and handle_impossible_answer and null_score > span.score:
            span = None
        if span is not None and min_score is not None and span.score < min_score:
            span = None
        answers.append(_answer_from(features, ex, span, null_score))
    return answers


def reference_answers(
    features: QAFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    max_answer_len: int = 30,
    handle_impossible_answer: bool = False,
) -> list[Answer]:
    """The same answers computed with transformers' own span selection (an independent check).

    Uses ``transformers.pipelines.document_question_answering.select_starts_ends`` — the span
    decoding of the (removed in transformers 5) question-answering pipeline — per window, then
    the pipeline's rule across windows: highest score wins; empty answer if the null score beats
    it and ``handle_impossible_answer``.
    """
    from transformers.pipelines.document_question_answering import select_starts_ends

    start, end = _check_logits(features, start_logits, end_logits)
    best: dict[int, Span] = {}
    null: dict[int, float] = {}
    for i in range(len(features)):
        ex = int(features.example_index[i])
        p_mask = (~features.context_mask[i]).astype(np.int64)
        p_mask[0] = 0  # the pipeline keeps [CLS] unmasked
        starts, ends, scores, min_null = select_starts_ends(
            start[i][None].astype(np.float64),
            end[i][None].astype(np.float64),
            p_mask,
            features.attention_mask[i],
            min_null_score=null.get(ex, 1000000),
            top_k=1,
            handle_impossible_answer=True,
            max_answer_len=max_answer_len,
        )
        null[ex] = float(min_null)
        if len(starts) and (ex not in best or float(scores[0]) > best[ex].score):
            best[ex] = Span(int(starts[0]), int(ends[0]), float(scores[0]), i)
    answers = []
    for ex in range(features.n_examples):
        span = best.get(ex)
        if span is not None and handle_impossible_answer and null[ex] > span.score:
            span = None
        answers.append(_answer_from(features, ex, span, null.get(ex, 0.0)))
    return answers


def answer_questions(
    run: Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]],
    tokenizer: Any,
    questions: str | Sequence[str],
    contexts: str | Sequence[str],
    *,
    input_names: Sequence[str] | None = None,
    max_length: int = 384,
    stride: int = 128,
    max_answer_len: int = 30,
    batch_size: int = 8,
    handle_impossible_answer: bool = False,
    min_score: float | None = None,
    padding: str = "max_length",
    max_positions: int | None = None,
) -> list[Answer]:
    """Tokenise, run the model window batch by window batch, and extract the best answers.

    ``run`` is any callable taking a dict of numpy arrays and returning one with
    ``start_logits`` and ``end_logits`` (a ``helpers.runners.Runner`` fits). ``input_names``
    defaults to the runner's declared inputs when it has them, otherwise all three BERT inputs.
    ``max_positions`` defaults to :func:`position_limit` of the runner's model (when it has one)
    or of the tokenizer.

    Questions are processed in chunks of ``batch_size`` examples of similar length (answers come
    back in the order asked), so with ``padding="longest"`` a short question is not padded to the
    longest context of a large set. Every setting is checked before any compute.

    Raises:
        QAInputError: what :func:`encode` rejects, and ``batch_size`` < 1.
    """
    if not _is_count(batch_size) or batch_size < 1:
        raise QAInputError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    qs, cs = _pairs(questions, contexts)
    if max_positions is None:
        max_positions = position_limit(tokenizer, run)
    _check_windows(
        tokenizer,
        qs,
        max_length=max_length,
        stride=stride,
        padding=padding,
        max_positions=max_positions,
    )
    if input_names is None:
        specs = getattr(run, "inputs", None)
        input_names = [s.name for s in specs] if specs else list(MODEL_INPUT_NAMES)
    order = sorted(range(len(qs)), key=lambda i: (len(qs[i]) + len(cs[i]), i))
    answers: list[Answer | None] = [None] * len(qs)
    for lo in range(0, len(order), batch_size):
        chunk = order[lo : lo + batch_size]
        features = _tokenize_windows(  # every setting was checked above, for all questions
            tokenizer,
            [qs[i] for i in chunk],
            [cs[i] for i in chunk],
            max_length=max_length,
            stride=stride,
            padding=padding,
        )
        starts, ends = [], []
        for first in range(0, len(features), batch_size):
            rows = np.arange(first, min(first + batch_size, len(features)))
            out = run({k: v for k, v in features.select(rows).items() if k in input_names})
            starts.append(np.asarray(out["start_logits"]))
            ends.append(np.asarray(out["end_logits"]))
        found = extract_answers(
            features,
            np.concatenate(starts),
            np.concatenate(ends),
            max_answer_len=max_answer_len,
            handle_impossible_answer=handle_impossible_answer,
            min_score=min_score,
        )
        for i, a in zip(chunk, found, strict=True):
            answers[i] = a
    return [a for a in answers if a is not None]


def identical_share(a: Sequence[Answer], b: Sequence[Answer]) -> float:
    """The share (0..1) of questions whose two answers have the same character span."""
    if len(a) != len(b) or not a:
        raise ValueError(
            f"need two equally long, non-empty lists of answers, got {len(a)} and {len(b)}"
        )
    return sum(x.span == y.span for x, y in zip(a, b, strict=True)) / len(a)


def same_answers(a: Sequence[Answer], b: Sequence[Answer]) -> bool:
    """True when both lists give the same character span for every question."""
    return len(a) == len(b) and all(x.span == y.span for x, y in zip(a, b, strict=True))
