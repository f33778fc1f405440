"""A small extractive-QA data set (SQuAD format) generated from facts that ship on PyPI.

No SQuAD data ships on PyPI, but facts do (:mod:`helpers.qa.facts`). :func:`generate` writes
paragraphs in varied wording (:mod:`helpers.qa.paragraphs`), each with several facts and a
distractor entity, and asks questions in varied wording whose answer is a span of the paragraph.
Some questions have no answer in their paragraph (SQuAD 2.0 style: empty ``answers``; a model
answers them with the null span, the ``[CLS]`` token). The split is **by entity**: a country or
element seen in validation never appears in a training paragraph, not even as a distractor or
inside another fact (Zimbabwe's currency, the Zimbabwean Gold, names the element gold), so
validation scores measure reading, not memorised facts.

Everything is driven by one ``random.Random(seed)``: the same seed gives the same data set, another
seed a different one (different split, wording and questions).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from helpers.qa.facts import Country, Element, Facts, entities_mentioned, load_facts
from helpers.qa.paragraphs import country_paragraph, element_paragraph, question_text

__all__ = [
    "DATA_VERSION",
    "QADataset",
    "SquadAnswers",
    "SquadExample",
    "check_example",
    "generate",
]

#: Bump when the templates or the generation logic change (part of every cache key).
DATA_VERSION = "qa-facts-v1"


class SquadAnswers(TypedDict):
    """SQuAD's answer record: parallel lists (empty for an unanswerable question)."""

    text: list[str]
    answer_start: list[int]


class SquadExample(TypedDict):
    """One SQuAD-format example, plus where it came from (``topic``, ``entity``, ``attribute``)."""

    id: str
    context: str
    question: str
    answers: SquadAnswers
    topic: str
    entity: str
    attribute: str


# --------------------------------------------------------------------------------------------
# Data set
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QADataset:
    """Train and validation examples, split by entity, and how they were made."""

    train: list[SquadExample]
    validation: list[SquadExample]
    train_entities: frozenset[str]
    validation_entities: frozenset[str]
    seed: int
    versions: Mapping[str, str]

    def summary(self) -> dict[str, Any]:
        """Counts for tables and banners."""

        def unanswerable(rows: Sequence[SquadExample]) -> int:
            return sum(1 for r in rows if not r["answers"]["text"])

        return {
            "data_version": DATA_VERSION,
            "seed": self.seed,
            "train_examples": len(self.train),
            "validation_examples": len(self.validation),
            "train_unanswerable": unanswerable(self.train),
            "validation_unanswerable": unanswerable(self.validation),
            "train_entities": len(self.train_entities),
            "validation_entities": len(self.validation_entities),
            "sources": dict(self.versions),
        }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _examples_for(
    rng: random.Random,
    topic: str,
    entity: Country | Element,
    pool: Sequence[Country] | Sequence[Element],
    *,
    paragraph_index: int,
    questions_per_paragraph: int,
    unanswerable_fraction: float,
) -> list[SquadExample]:
    others = [o for o in pool if o.name != entity.name]
    if topic == "country":
        assert isinstance(entity, Country)
        near = [o for o in others if isinstance(o, Country) and o.code in entity.neighbours]
        other = rng.choice(near if near and rng.random() < 0.6 else others)
        paragraph, asked = country_paragraph(rng, entity, other)  # type: ignore[arg-type]
        impossible = [
            (entity.name, k) for k in ("capital", "population", "area", "currency", "language")
        ] + [(other.name, k) for k in ("capital", "population", "currency")]
    else:
        assert isinstance(entity, Element)
        other = rng.choice(others)
        paragraph, asked = element_paragraph(rng, entity, other)  # type: ignore[arg-type]
        impossible = [
            (entity.name, k) for k in ("series", "period", "group", "weight", "discoverers", "year")
        ] + [(other.name, k) for k in ("series", "weight", "discoverers", "year")]
    # a third entity the paragraph never mentions: its facts are unanswerable here
    absent = [o for o in others if o.name != other.name and not paragraph.mentions(o.name)]
    if absent:
        stranger = rng.choice(absent)
        impossible.append((stranger.name, "capital" if topic == "country" else "symbol"))
    impossible = [f for f in impossible if f not in paragraph.spans]

    answerable = sorted(asked.items())
    rng.shuffle(answerable)
    chosen = answerable[:questions_per_paragraph]
    out: list[SquadExample] = []
    slug = f"{topic}-{_slug(entity.name)}-p{paragraph_index}"
    for q, ((subject, attribute), (kind, subject_text)) in enumerate(chosen):
        start, end = paragraph.spans[(subject, attribute)]
        out.append(
            SquadExample(
                id=f"{slug}-q{q}",
                context=paragraph.text,
                question=question_text(rng, kind, subject_text, topic),
                answers={"text": [paragraph.text[start:end]], "answer_start": [start]},
                topic=topic,
                entity=entity.name,
                attribute=attribute,
            )
        )
    # one unanswerable question with a probability that makes it this share of all questions
    p_unanswerable = unanswerable_fraction * len(chosen) / (1 - unanswerable_fraction)
    if impossible and rng.random() < p_unanswerable:
        subject, attribute = rng.choice(impossible)
        kind = {"symbol": "symbol"}.get(attribute, attribute)
        out.append(
            SquadExample(
                id=f"{slug}-q{len(chosen)}",
                context=paragraph.text,
                question=question_text(rng, kind, subject, topic),
                answers={"text": [], "answer_start": []},
                topic=topic,
                entity=entity.name,
                attribute=attribute,
            )
        )
    return out


def _scrub(entity: Country | Element, forbidden: set[str]) -> Any:
    """``entity`` without the facts whose values mention a ``forbidden`` entity name.

    E.g. Zimbabwe's currency, the Zimbabwean Gold, names the element gold; an element discovered
    in Sweden names a country. Such a fact is dropped when that entity is in the other split.
    """

    def mentions(value: str | None) -> bool:
        return bool(value) and bool(entities_mentioned(str(value), forbidden - {entity.name}))

    if isinstance(entity, Country):
        return dataclasses.replace(
            entity,
            subregion=entity.region if mentions(entity.subregion) else entity.subregion,
            currency=None if mentions(entity.currency) else entity.currency,
            languages=tuple(x for x in entity.languages if not mentions(x)),
            cities=tuple(c for c in entity.cities if not mentions(c.name)),
        )
    return dataclasses.replace(
        entity,
        discoverers=None if mentions(entity.discoverers) else entity.discoverers,
        location=None if mentions(entity.location) else entity.location,
    )


def generate(
    seed: int = 0,
    *,
    validation_fraction: float = 0.2,
    paragraphs_per_entity: int = 3,
    validation_paragraphs_per_entity: int = 2,
    questions_per_paragraph: int = 3,
    unanswerable_fraction: float = 0.2,
    topics: Iterable[str] = ("country", "element"),
    facts: Facts | None = None,
) -> QADataset:
    """Generate the SQuAD-format data set, deterministically from ``seed``.

    Args:
        seed: drives the entity split, the wording, the distractors and the questions.
        validation_fraction: share of each topic's entities held out for validation.
        paragraphs_per_entity: paragraphs (in different wording) per training entity.
        validation_paragraphs_per_entity: the same for validation entities.
        questions_per_paragraph: answerable questions per paragraph (fewer if it states fewer).
        unanswerable_fraction: about this share of the questions cannot be answered from their
            paragraph (at most one per paragraph; the answer is empty).
        topics: ``"country"`` and/or ``"element"``.
        facts: the facts to use (default: :func:`load_facts`).

    Returns:
        A :class:`QADataset`; every answer is ``context[answer_start:answer_start+len(text)]``.
    """
    topics = tuple(topics)
    unknown = sorted(set(topics) - {"country", "element"})
    if unknown or not topics:
        raise ValueError(f"topics must be 'country' and/or 'element', got {topics!r}")
    if not 0 <= unanswerable_fraction < 0.5:
        raise ValueError(f"unanswerable_fraction must be in [0, 0.5), got {unanswerable_fraction}")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    facts = facts or load_facts()
    rng = random.Random(seed)
    train: list[SquadExample] = []
    validation: list[SquadExample] = []
    splits: dict[str, tuple[list[Any], list[Any]]] = {}
    for topic in ("country", "element"):
        if topic not in topics:
            continue
        entities: list[Any] = list(facts.countries if topic == "country" else facts.elements)
        rng.shuffle(entities)
        n_val = max(2, round(len(entities) * validation_fraction))
        splits[topic] = (entities[n_val:], entities[:n_val])
    train_names = {e.name for train_pool, _ in splits.values() for e in train_pool}
    val_names = {e.name for _, val_pool in splits.values() for e in val_pool}
    for topic, (train_pool, val_pool) in splits.items():
        for pool, rows, forbidden, per_entity in (
            (train_pool, train, val_names, paragraphs_per_entity),
            (val_pool, validation, train_names, validation_paragraphs_per_entity),
        ):
            # a fact whose value names an entity of the other split is never stated
            pool = [_scrub(e, forbidden) for e in pool]
            for entity in pool:
                for index in range(per_entity):
                    rows.extend(
                        _examples_for(
                            rng,
                            topic,
                            entity,
                            pool,
                            paragraph_index=index,
                            questions_per_paragraph=questions_per_paragraph,
                            unanswerable_fraction=unanswerable_fraction,
                        )
                    )
    rng.shuffle(train)
    return QADataset(
        train=train,
        validation=validation,
        train_entities=frozenset(train_names),
        validation_entities=frozenset(val_names),
        seed=seed,
        versions=dict(facts.versions),
    )


def check_example(example: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``example`` is SQuAD-shaped with answers at their offsets."""
    for key in ("id", "context", "question", "answers"):
        if key not in example:
            raise ValueError(f"example is missing {key!r}: {example!r}")
    answers = example["answers"]
    texts, starts = answers.get("text"), answers.get("answer_start")
    if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
        raise ValueError(
            f"{example['id']}: answers.text and answers.answer_start must be lists of one length"
        )
    context = example["context"]
    for text, start in zip(texts, starts, strict=True):
        if not text or context[start : start + len(text)] != text:
            raise ValueError(
                f"{example['id']}: answer {text!r} is not at offset {start} "
                f"(found {context[start : start + len(text)]!r})"
            )
