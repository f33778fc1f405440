"""Paragraphs in varied wording that state facts, and the questions each paragraph can answer.

A paragraph is built sentence by sentence from templates; every field that states a fact records
its character span, so each question's answer is a span of the paragraph by construction. Each
paragraph is about one entity (a country or an element) and mixes in facts about a second one (a
distractor), so a reader must match the question's entity, not just the kind of fact. A template
without the entity's name opens with a pronoun and only follows a sentence about that entity.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from helpers.qa.facts import Country, Element

__all__ = [
    "FactId",
    "Paragraph",
    "country_paragraph",
    "element_paragraph",
    "first_mention",
    "question_text",
]

FactId = tuple[str, str]  # (entity name, attribute)

# --------------------------------------------------------------------------------------------
# Paragraph building with tracked answer offsets
# --------------------------------------------------------------------------------------------
_FORMATTER = string.Formatter()


@dataclass
class Paragraph:
    """A paragraph under construction: text, and the character span of every stated fact."""

    text: str = ""
    spans: dict[FactId, tuple[int, int]] = field(default_factory=dict)
    last_was_other: bool = False

    def add(self, template: str, values: Mapping[str, str], facts: Mapping[str, FactId]) -> None:
        """Append one sentence; ``facts`` maps template fields to the fact each one states."""
        if self.text:
            self.text += " "
        for literal, name, _spec, _conv in _FORMATTER.parse(template):
            self.text += literal
            if name is None:
                continue
            value = values[name]
            fact = facts.get(name)
            if fact is not None and fact not in self.spans:
                self.spans[fact] = (len(self.text), len(self.text) + len(value))
            self.text += value

    def mentions(self, name: str) -> bool:
        return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", self.text) is not None


def _number(value: int) -> str:
    return f"{value:,}"


def _pick(rng: random.Random, options: Sequence[str], *, named: bool) -> str:
    """A random template; ``named`` keeps only those that name the entity (no pronoun)."""
    pool = [t for t in options if "{name}" in t] if named else list(options)
    return rng.choice(pool or list(options))


# Templates: {name} is the focal entity, {other} the distractor. A template without {name} opens
# with a pronoun, which is only used right after a sentence about the same entity.
_COUNTRY_INTRO = (
    "{name} is a country in {subregion}.",
    "{name} lies in {subregion}, part of {region}.",
    "Located in {subregion}, {name} is a country of {region}.",
    "{name} is found in {subregion}.",
)
_COUNTRY_FACTS: dict[str, tuple[str, ...]] = {
    "capital": (
        "Its capital is {capital}.",
        "The capital of {name} is {capital}.",
        "{capital} is the capital city of {name}.",
        "The government of {name} sits in {capital}, its capital.",
        "It is governed from {capital}, the capital.",
    ),
    "population": (
        "{name} has a population of {population}.",
        "About {population} people live there.",
        "Its population is {population}.",
        "Some {population} people live in {name}.",
        "{name} is home to {population} inhabitants.",
    ),
    "area": (
        "It covers {area} square kilometres.",
        "{name} has an area of {area} square kilometres.",
        "The country spans {area} km².",
        "Its territory measures {area} square kilometres.",
    ),
    "currency": (
        "The currency is the {currency}.",
        "People in {name} pay with the {currency}.",
        "Its official currency is the {currency}.",
        "Prices in {name} are given in the {currency}.",
    ),
    "language": (
        "The main language is {language}.",
        "Most people in {name} speak {language}.",
        "{language} is the principal language of {name}.",
        "Its official language is {language}.",
    ),
}
_COUNTRY_CITIES = (
    "The largest city is {largest_city}, with {city_population} inhabitants.",
    "{largest_city}, home to {city_population} people, is the largest city of {name}.",
    "The most populous city in {name} is {largest_city} ({city_population} people).",
)
_COUNTRY_SECOND_CITY = (
    "{second_city} follows with {second_population} inhabitants.",
    "{second_city}, with {second_population} people, comes second.",
)
_COUNTRY_OTHER = {
    "capital": (
        "{other}, by contrast, has its capital at {other_capital}.",
        "The capital of neighbouring {other} is {other_capital}.",
        "{other_capital} is the capital of {other}.",
    ),
    "population": (
        "{other} has about {other_population} people.",
        "By comparison, {other} is home to {other_population} inhabitants.",
    ),
    "currency": (
        "In {other}, people pay with the {other_currency}.",
        "{other} uses the {other_currency}.",
    ),
}
_COUNTRY_QUESTIONS: dict[str, tuple[str, ...]] = {
    "capital": (
        "What is the capital of {e}?",
        "Which city is the capital of {e}?",
        "What is {e}'s capital?",
        "Name the capital city of {e}.",
        "From which city is {e} governed?",
    ),
    "population": (
        "What is the population of {e}?",
        "How many people live in {e}?",
        "How many inhabitants does {e} have?",
        "What is {e}'s population?",
    ),
    "area": (
        "How large is {e} in square kilometres?",
        "What is the area of {e}?",
        "How many square kilometres does {e} cover?",
    ),
    "currency": (
        "What is the currency of {e}?",
        "Which currency is used in {e}?",
        "What money do people use in {e}?",
    ),
    "language": (
        "What language is spoken in {e}?",
        "What is the main language of {e}?",
        "Which language do people in {e} speak?",
    ),
    "subregion": (
        "In which region is {e}?",
        "Where is {e} located?",
        "Which part of the world is {e} in?",
    ),
    "largest_city": (
        "What is the largest city in {e}?",
        "Which city is the most populous in {e}?",
        "What is the biggest city of {e}?",
    ),
    "city_population": (
        "How many people live in {e}?",
        "What is the population of {e}?",
        "How many inhabitants does {e} have?",
    ),
    "capital_of": (
        "Which country has {e} as its capital?",
        "{e} is the capital of which country?",
        "Of which country is {e} the capital?",
    ),
}

_ELEMENT_INTRO = (
    "{name} is a chemical element with the symbol {symbol} and atomic number {number}.",
    "{name} (symbol {symbol}) is element number {number} of the periodic table.",
    "The element {name} has atomic number {number}; its symbol is {symbol}.",
    "With atomic number {number}, {name} is written {symbol} in chemical formulas.",
)
_ELEMENT_FACTS: dict[str, tuple[str, ...]] = {
    "series": (
        "It is {article} {series}.",
        "{name} is classed as {article} {series}.",
        "Chemists count {name} as {article} {series}.",
    ),
    "position": (
        "It sits in period {period} and group {group} of the periodic table.",
        "{name} is found in group {group}, period {period}.",
        "In the periodic table, {name} is in period {period}, group {group}.",
    ),
    "weight": (
        "Its standard atomic weight is {weight}.",
        "{name} has an atomic weight of {weight}.",
        "An atom of {name} weighs about {weight} atomic mass units.",
    ),
    "discovery": (
        "It was discovered by {discoverers} in {year}.",
        "{discoverers} discovered {name} in {year}.",
        "{name} was first identified in {year} by {discoverers}.",
        "In {year}, {discoverers} discovered the element in {location}.",
        "{name} was discovered in {location} in {year} by {discoverers}.",
    ),
}
_ELEMENT_OTHER = (
    "For comparison, {other} has the symbol {other_symbol} and atomic number {other_number}.",
    "{other}, by contrast, is written {other_symbol} and has atomic number {other_number}.",
    "Another element, {other}, carries the symbol {other_symbol} (atomic number {other_number}).",
)
_ELEMENT_QUESTIONS: dict[str, tuple[str, ...]] = {
    "symbol": (
        "What is the chemical symbol of {e}?",
        "What is the symbol for {e}?",
        "How is {e} written in chemical formulas?",
    ),
    "number": (
        "What is the atomic number of {e}?",
        "Which atomic number does {e} have?",
        "How many protons does an atom of {e} have?",
    ),
    "series": ("What kind of element is {e}?", "To which family of elements does {e} belong?"),
    "period": ("In which period of the periodic table is {e}?", "Which period is {e} in?"),
    "group": ("In which group of the periodic table is {e}?", "Which group is {e} in?"),
    "weight": ("What is the atomic weight of {e}?", "How heavy is an atom of {e}?"),
    "discoverers": (
        "Who discovered {e}?",
        "Who first identified {e}?",
        "Which scientist discovered {e}?",
    ),
    "year": (
        "When was {e} discovered?",
        "In which year was {e} discovered?",
        "What year was {e} found?",
    ),
    "location": ("Where was {e} discovered?", "In which country was {e} discovered?"),
    "element_with_symbol": ("Which element has the symbol {e}?", "What element is written {e}?"),
    "element_with_number": ("Which element has atomic number {e}?", "What is element number {e}?"),
}


def country_paragraph(
    rng: random.Random, country: Country, other: Country
) -> tuple[Paragraph, dict[FactId, tuple[str, str]]]:
    """One paragraph about ``country`` with facts about ``other`` mixed in.

    Returns the paragraph and the questions it can answer: fact id → (question kind, subject).
    """
    p = Paragraph()
    n = country.name
    values = {
        "name": n,
        "region": country.region,
        "subregion": country.subregion,
        "capital": country.capital,
        "population": _number(country.population),
        "area": _number(country.area_km2),
        "currency": country.currency or "",
        "language": " and ".join(country.languages),
        "other": other.name,
        "other_capital": other.capital,
        "other_population": _number(other.population),
        "other_currency": other.currency or "",
    }
    asked: dict[FactId, tuple[str, str]] = {}
    p.add(rng.choice(_COUNTRY_INTRO), values, {"subregion": (n, "subregion")})
    asked[(n, "subregion")] = ("subregion", n)
    kinds = [k for k in _COUNTRY_FACTS if (k != "currency" or country.currency)]
    kinds = [k for k in kinds if k != "language" or country.languages]
    rng.shuffle(kinds)
    kinds = kinds[: rng.randint(2, min(4, len(kinds)))]
    city = country.cities[0] if country.cities and rng.random() < 0.7 else None
    blocks: list[str] = [*kinds, *(["cities"] if city else [])]
    other_kinds = [k for k in _COUNTRY_OTHER if k != "currency" or other.currency]
    other_kind = rng.choice(other_kinds)
    blocks.insert(rng.randint(0, len(blocks)), "other")
    for block in blocks:
        if block == "other":
            fact = {"capital": "other_capital", "population": "other_population"}.get(
                other_kind, "other_currency"
            )
            p.add(rng.choice(_COUNTRY_OTHER[other_kind]), values, {fact: (other.name, other_kind)})
            asked[(other.name, other_kind)] = (other_kind, other.name)
            p.last_was_other = True
            continue
        named = p.last_was_other
        p.last_was_other = False
        if block == "cities":
            assert city is not None
            v = {**values, "largest_city": city.name, "city_population": _number(city.population)}
            p.add(
                _pick(rng, _COUNTRY_CITIES, named=named),
                v,
                {"largest_city": (n, "largest_city"), "city_population": (city.name, "population")},
            )
            asked[(n, "largest_city")] = ("largest_city", n)
            if city.name != n:
                asked[(city.name, "population")] = ("city_population", city.name)
            if len(country.cities) > 1 and rng.random() < 0.3:
                second = country.cities[1]
                v2 = {"second_city": second.name, "second_population": _number(second.population)}
                p.add(
                    rng.choice(_COUNTRY_SECOND_CITY),
                    v2,
                    {"second_population": (second.name, "population")},
                )
                if second.name != n:
                    asked[(second.name, "population")] = ("city_population", second.name)
            continue
        p.add(_pick(rng, _COUNTRY_FACTS[block], named=named), values, {block: (n, block)})
        asked[(n, block)] = (block, n)
        if block == "capital" and country.capital != n and rng.random() < 0.5:
            p.spans.setdefault((country.capital, "capital_of"), first_mention(p.text, n))
            asked[(country.capital, "capital_of")] = ("capital_of", country.capital)
    return p, asked


def first_mention(text: str, name: str) -> tuple[int, int]:
    match = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text)
    assert match is not None, f"{name!r} not in {text!r}"
    return match.start(), match.end()


def element_paragraph(
    rng: random.Random, element: Element, other: Element
) -> tuple[Paragraph, dict[FactId, tuple[str, str]]]:
    """One paragraph about ``element`` with ``other``'s symbol and number as distractors."""
    p = Paragraph()
    n = element.name
    values = {
        "name": n,
        "symbol": element.symbol,
        "number": str(element.number),
        "series": element.series or "",
        "article": "an" if (element.series or "x")[0] in "aeiou" else "a",
        "period": str(element.period),
        "group": str(element.group or ""),
        "weight": element.weight,
        "discoverers": element.discoverers or "",
        "year": str(element.year or ""),
        "location": element.location or "",
        "other": other.name,
        "other_symbol": other.symbol,
        "other_number": str(other.number),
    }
    asked: dict[FactId, tuple[str, str]] = {}
    p.add(
        rng.choice(_ELEMENT_INTRO),
        values,
        {"symbol": (n, "symbol"), "number": (n, "number")},
    )
    asked[(n, "symbol")] = ("symbol", n)
    asked[(n, "number")] = ("number", n)
    # reverse questions: "Which element has the symbol Fe?" → the element's first mention
    p.spans[(element.symbol, "element_with_symbol")] = first_mention(p.text, n)
    p.spans[(str(element.number), "element_with_number")] = first_mention(p.text, n)
    asked[(element.symbol, "element_with_symbol")] = ("element_with_symbol", element.symbol)
    asked[(str(element.number), "element_with_number")] = (
        "element_with_number",
        str(element.number),
    )

    kinds = ["series"] if element.series else []
    kinds += ["position"] if element.group else []
    kinds += ["weight"] if element.weight else []
    kinds += ["discovery"] if element.discoverers and element.year else []
    rng.shuffle(kinds)
    blocks = [*kinds[: max(1, rng.randint(len(kinds) - 1, len(kinds)))]]
    blocks.insert(rng.randint(0, len(blocks)), "other")
    for block in blocks:
        if block == "other":
            p.add(
                rng.choice(_ELEMENT_OTHER),
                values,
                {"other_symbol": (other.name, "symbol"), "other_number": (other.name, "number")},
            )
            asked[(other.name, "symbol")] = ("symbol", other.name)
            asked[(other.name, "number")] = ("number", other.name)
            p.last_was_other = True
            continue
        named = p.last_was_other
        p.last_was_other = False
        options = _ELEMENT_FACTS[block]
        if block == "discovery" and not element.location:
            options = tuple(t for t in options if "{location}" not in t)
        facts: dict[str, FactId] = {
            "series": (n, "series"),
            "period": (n, "period"),
            "group": (n, "group"),
            "weight": (n, "weight"),
            "discoverers": (n, "discoverers"),
            "year": (n, "year"),
            "location": (n, "location"),
        }
        template = _pick(rng, options, named=named)
        p.add(template, values, facts)
        for fid in facts.values():
            if fid in p.spans:
                asked[fid] = (fid[1], n)
    return p, asked


def question_text(rng: random.Random, kind: str, subject: str, topic: str) -> str:
    """A question of ``kind`` about ``subject``, in one of its wordings (topic: country/element)."""
    table = _COUNTRY_QUESTIONS if topic == "country" else _ELEMENT_QUESTIONS
    return rng.choice(table[kind]).format(e=subject)
