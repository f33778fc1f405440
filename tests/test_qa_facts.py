"""QA facts from PyPI packages and the data set made of them: SQuAD format, answers at their
offsets, split by entity, seeded."""

from __future__ import annotations

import collections
import importlib.util

import pytest

from helpers.qa import facts as qa_facts
from helpers.qa.dataset import check_example, generate
from helpers.qa.facts import entities_mentioned, load_facts


@pytest.fixture(scope="module")
def facts():
    return load_facts()


@pytest.fixture(scope="module")
def dataset(facts):
    return generate(0, facts=facts)


def _all_names(facts):
    return [c.name for c in facts.countries] + [e.name for e in facts.elements]


def test_facts_come_from_the_packages(facts):
    by_name = {c.name: c for c in facts.countries}
    assert len(facts.countries) > 150 and len(facts.elements) == 118
    assert by_name["France"].capital == "Paris"
    assert by_name["Japan"].currency and "Yen" in by_name["Japan"].currency
    assert "Spanish" in by_name["Spain"].languages
    assert by_name["France"].cities and by_name["France"].cities[0].name == "Paris"
    assert "ESP" not in by_name["France"].neighbours and "ES" in by_name["France"].neighbours
    elements = {e.symbol: e for e in facts.elements}
    assert elements["Fe"].name == "Iron" and elements["Fe"].number == 26
    assert elements["He"].series == "noble gas"
    assert elements["Au"].discoverers is None  # known to the ancients
    assert elements["O"].year == 1774
    assert len({c.code for c in facts.countries}) == len(facts.countries)  # one per ISO code
    assert set(facts.versions) == set(qa_facts.FACT_PACKAGES)


def test_every_example_is_squad_with_its_answer_at_the_stated_offset(dataset):
    rows = dataset.train + dataset.validation
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        check_example(row)
        assert set(row) >= {"id", "context", "question", "answers"}
        assert row["question"].endswith(("?", ".")) and row["question"][0].isupper()
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"], strict=True):
            assert row["context"][start : start + len(text)] == text


def test_check_example_rejects_a_wrong_offset(dataset):
    row = next(r for r in dataset.train if r["answers"]["text"])
    bad = {
        **row,
        "answers": {
            "text": row["answers"]["text"],
            "answer_start": [row["answers"]["answer_start"][0] + 1],
        },
    }
    with pytest.raises(ValueError, match="not at offset"):
        check_example(bad)


def test_split_is_by_entity(dataset, facts):
    assert dataset.train_entities and dataset.validation_entities
    assert not dataset.train_entities & dataset.validation_entities
    names = _all_names(facts)
    for row in dataset.train:
        assert row["entity"] in dataset.train_entities
        assert not entities_mentioned(row["context"], names) & dataset.validation_entities, row
    for row in dataset.validation:
        assert row["entity"] in dataset.validation_entities
        assert not entities_mentioned(row["context"], names) & dataset.train_entities, row
    topics = collections.Counter(r["topic"] for r in dataset.validation)
    assert topics["country"] > 0 and topics["element"] > 0


def test_entities_mentioned_prefers_the_longest_whole_word_name():
    names = ["Guinea", "Equatorial Guinea", "Niger", "Nigeria"]
    assert entities_mentioned("Equatorial Guinea borders Nigeria.", names) == {
        "Equatorial Guinea",
        "Nigeria",
    }
    assert entities_mentioned("Guinea and Niger.", names) == {"Guinea", "Niger"}


def test_paragraphs_hold_several_facts_and_a_distractor(dataset, facts):
    names = _all_names(facts)
    contexts = {r["context"]: r for r in dataset.train}
    for context in contexts:
        assert context.count(".") >= 3
        assert len(entities_mentioned(context, names)) >= 2, context


def test_some_questions_are_unanswerable(dataset):
    for rows in (dataset.train, dataset.validation):
        empty = [r for r in rows if not r["answers"]["text"]]
        assert 0.1 < len(empty) / len(rows) < 0.3
        assert all(r["answers"]["answer_start"] == [] for r in empty)


def test_wording_varies(dataset):
    capital = {
        r["question"].replace(r["entity"], "X")
        for r in dataset.train
        if r["attribute"] == "capital"
    }
    assert len({q.split()[0] + " " + q.split()[1] for q in capital}) >= 3
    openings = collections.Counter(
        r["context"].split(".")[0].replace(r["entity"], "X") for r in dataset.train
    )
    assert len(openings) > 50


def test_same_seed_same_data_other_seed_other_data(facts, dataset):
    again = generate(0, facts=facts)
    assert again.train == dataset.train and again.validation == dataset.validation
    other = generate(1, facts=facts)
    assert other.validation_entities != dataset.validation_entities
    assert [r["context"] for r in other.train[:50]] != [r["context"] for r in dataset.train[:50]]


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="topics"):
        generate(0, topics=("planets",))
    with pytest.raises(ValueError, match="validation_fraction"):
        generate(0, validation_fraction=1.5)


def test_a_missing_fact_package_is_named(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "mendeleev" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    load_facts.cache_clear()
    try:
        with pytest.raises(qa_facts.QAFactsError, match="mendeleev"):
            load_facts()
    finally:
        monkeypatch.undo()
        load_facts.cache_clear()
