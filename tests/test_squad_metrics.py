"""SQuAD exact match / F1: the official v1.1 normalisation and SQuAD 2.0's empty-answer rule."""

from __future__ import annotations

import pytest

from helpers.qa.squad_metrics import (
    exact_match,
    f1_score,
    normalize_answer,
    score_one,
    squad_scores,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  a   noble\tgas. ", "noble gas"),
        ("An apple, the pear & a plum!", "apple pear plum"),
        ("Guinea-Bissau", "guineabissau"),  # punctuation is removed, not replaced by a space
        ("theatre another", "theatre another"),  # articles only as whole words
        ("ZÜRICH", "zürich"),
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_after_normalisation_and_best_of_golds():
    assert exact_match("the Paris.", ["Paris"]) == 1.0
    assert exact_match("Paris, France", ["Paris"]) == 0.0
    assert exact_match("Lyon", ["Paris", "lyon"]) == 1.0
    assert exact_match("Lyon", "Lyon") == 1.0  # one gold answer as a string


def test_f1_is_token_overlap():
    # prediction "paris france" vs gold "paris": precision 1/2, recall 1 -> 2/3
    assert f1_score("Paris France", ["Paris"]) == pytest.approx(2 / 3)
    # gold "carl wilhelm scheele" vs prediction "scheele": precision 1, recall 1/3 -> 1/2
    assert f1_score("Scheele", ["Carl Wilhelm Scheele"]) == pytest.approx(0.5)
    assert f1_score("Oslo", ["Bergen"]) == 0.0
    # best over golds; tokens counted with multiplicity
    assert f1_score("new new york", ["york", "new york"]) == pytest.approx(0.8)


def test_unanswerable_questions_score_only_the_empty_prediction():
    assert score_one("", []) == (1.0, 1.0)
    assert score_one("Paris", []) == (0.0, 0.0)
    assert score_one("", ["Paris"]) == (0.0, 0.0)
    # a gold answer that normalises to nothing counts as no answer (SQuAD 2.0)
    assert score_one("", ["the"]) == (1.0, 1.0)


def test_squad_scores_aggregates_in_percent_with_subsets():
    examples = [
        {"id": "a", "answers": {"text": ["Paris"], "answer_start": [0]}},
        {"id": "b", "answers": {"text": ["Carl Wilhelm Scheele"], "answer_start": [0]}},
        {"id": "c", "answers": {"text": [], "answer_start": []}},
        {"id": "d", "answers": {"text": [], "answer_start": []}},
    ]
    predictions = {"a": "paris", "b": "Scheele", "c": "", "d": "Oslo"}
    scores = squad_scores(predictions, examples)
    assert scores["total"] == 4 and scores["missing"] == 0
    assert scores["exact_match"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.5 + 1 + 0) / 4)
    assert scores["has_answer_total"] == 2 and scores["no_answer_total"] == 2
    assert scores["has_answer_exact_match"] == pytest.approx(50.0)
    assert scores["has_answer_f1"] == pytest.approx(75.0)
    assert scores["no_answer_exact_match"] == pytest.approx(50.0)


def test_squad_scores_counts_missing_predictions_as_wrong():
    examples = [
        {"id": "a", "answers": {"text": ["Paris"], "answer_start": [0]}},
        {"id": "b", "answers": {"text": [], "answer_start": []}},
    ]
    scores = squad_scores({"a": "Paris"}, examples)
    assert scores["missing"] == 1
    assert scores["exact_match"] == pytest.approx(50.0)
    assert "no_answer_total" in scores and scores["no_answer_exact_match"] == 0.0
    with pytest.raises(ValueError, match="at least one"):
        squad_scores({}, [])


def test_answer_scores_reads_the_text_of_each_answer_in_order():
    from types import SimpleNamespace

    from helpers.qa.squad_metrics import answer_scores

    examples = [
        {"id": "a", "answers": {"text": ["Paris"], "answer_start": [0]}},
        {"id": "b", "answers": {"text": [], "answer_start": []}},
    ]
    answers = [SimpleNamespace(text="the Paris"), SimpleNamespace(text="")]
    assert answer_scores(answers, examples)["exact_match"] == pytest.approx(100.0)
    assert answer_scores(answers[::-1], examples)["exact_match"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="1 answers for 2 examples"):
        answer_scores(answers[:1], examples)
