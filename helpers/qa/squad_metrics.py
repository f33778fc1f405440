"""SQuAD exact match and token F1, computed locally (``evaluate.load("squad")`` needs the hub).

This is the scoring of the official SQuAD v1.1 evaluation script, with SQuAD 2.0's rule for
unanswerable questions:

- :func:`normalize_answer`: lower case, remove punctuation, remove the articles *a*, *an*, *the*,
  collapse whitespace;
- :func:`exact_match`: 1 when the normalised prediction equals a normalised gold answer;
- :func:`f1_score`: harmonic mean of token precision and recall (tokens are the normalised,
  whitespace-split words, counted with multiplicity);
- every score is the best over the gold answers;
- a question with no gold answer (unanswerable) scores 1 only for an empty prediction, and an
  empty prediction scores 0 on an answerable question.

:func:`squad_scores` averages over a data set (as percentages, like the official script) and
reports the answerable and unanswerable subsets separately; :func:`answer_scores` does the same
for a list of answers (anything with a ``text``) given in the order of the examples.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "answer_scores",
    "exact_match",
    "f1_score",
    "normalize_answer",
    "score_one",
    "squad_scores",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, strip punctuation and articles, collapse whitespace (SQuAD v1.1)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _golds(gold_answers: str | Sequence[str]) -> list[str]:
    golds = [gold_answers] if isinstance(gold_answers, str) else list(gold_answers)
    return [g for g in golds if normalize_answer(g)]  # SQuAD 2.0 drops answers that normalise away


def _f1_one(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold_answers: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0.

    With no gold answers (an unanswerable question), 1.0 exactly when the prediction is empty.
    """
    golds = _golds(gold_answers)
    if not golds:
        return float(not normalize_answer(prediction))
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def f1_score(prediction: str, gold_answers: str | Sequence[str]) -> float:
    """Best token F1 of the prediction against the gold answers (0.0 to 1.0).

    With no gold answers, 1.0 exactly when the prediction is empty (SQuAD 2.0).
    """
    golds = _golds(gold_answers)
    if not golds:
        return float(not normalize_answer(prediction))
    return max(_f1_one(prediction, g) for g in golds)


def score_one(prediction: str, gold_answers: str | Sequence[str]) -> tuple[float, float]:
    """``(exact_match, f1)`` for one prediction."""
    return exact_match(prediction, gold_answers), f1_score(prediction, gold_answers)


def squad_scores(
    predictions: Mapping[str, str], examples: Sequence[Mapping[str, Any]]
) -> dict[str, float | int]:
    """Average exact match and F1 (in %) over ``examples`` (SQuAD dicts with ``id``/``answers``).

    ``predictions`` maps example id → predicted text (``""`` = no answer). A missing prediction
    counts as wrong (as in the official script, which warns about it) and is reported as
    ``missing``. Returns ``exact_match``, ``f1``, ``total``, ``missing`` and, where the subset is
    not empty, ``has_answer_exact_match``/``has_answer_f1``/``has_answer_total`` and the same for
    ``no_answer``.
    """
    if not examples:
        raise ValueError("squad_scores needs at least one example")
    groups: dict[str, list[tuple[float, float]]] = {"has_answer": [], "no_answer": []}
    missing = 0
    for example in examples:
        golds = list(example["answers"]["text"])
        if example["id"] in predictions:
            em, f1 = score_one(predictions[example["id"]], golds)
        else:
            missing += 1
            em = f1 = 0.0
        groups["has_answer" if _golds(golds) else "no_answer"].append((em, f1))
    every = groups["has_answer"] + groups["no_answer"]
    result: dict[str, float | int] = {
        "exact_match": 100.0 * sum(em for em, _ in every) / len(every),
        "f1": 100.0 * sum(f1 for _, f1 in every) / len(every),
        "total": len(every),
        "missing": missing,
    }
    for name, scores in groups.items():
        if scores:
            result[f"{name}_exact_match"] = 100.0 * sum(em for em, _ in scores) / len(scores)
            result[f"{name}_f1"] = 100.0 * sum(f1 for _, f1 in scores) / len(scores)
            result[f"{name}_total"] = len(scores)
    return result


def answer_scores(
    answers: Sequence[Any], examples: Sequence[Mapping[str, Any]]
) -> dict[str, float | int]:
    """:func:`squad_scores` of ``answers`` — one per example, in the same order, each with a
    ``text`` (``helpers.qa.Answer``; ``""`` = no answer)."""
    if len(answers) != len(examples):
        raise ValueError(f"{len(answers)} answers for {len(examples)} examples")
    return squad_scores({e["id"]: a.text for e, a in zip(examples, answers, strict=True)}, examples)
