"""One source for what the series says about itself: each notebook's metadata.

The README's series map, each notebook's *Prerequisites and time* cell and every "NN — Title"
cross-reference must agree with the notebooks' metadata and titles.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.course import series

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INFOS = series.discover()
BY_NUMBER = {info.stem[:2]: info for info in INFOS}
DOCUMENTS = [info.path for info in INFOS] + [README, ROOT / "CONTRIBUTING.md"]

MAP_ROW = re.compile(
    r"^\| (?P<number>\d\d) \| \[(?P<name>[^\]]+)\]\(notebooks/(?P<file>[^)]+)\) \| [^|]* \| "
    r"(?P<before>[^|]*) \| (?P<time>[^|]*) \| (?P<envs>[^|]*) \|$",
    re.MULTILINE,
)
PREREQ_LABEL = "**Prerequisites and time.**"
PREREQ_LIST = re.compile(
    r"(?:None\b|Notebooks? (?P<list>\d\d(?: \([^)]*\))?(?:(?:,| and) \d\d(?: \([^)]*\))?)*))"
)
REFERENCE = re.compile(r"(?P<open>\*\*|\[)?\b(?P<number>\d\d) — (?=(?P<rest>[^\n]*))")
NOTEBOOK_LINK = re.compile(r"\]\((?:\.\./)?(?:notebooks/)?(?P<file>\d\d_[A-Za-z0-9_]+\.ipynb)(?:#[^)]*)?\)")


def full_title(info: series.NotebookInfo) -> str:
    return info.title.split(" — ", 1)[-1]


def markdown_of(path: Path) -> str:
    if path.suffix != ".ipynb":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def series_map() -> dict[str, dict[str, str]]:
    return {m["number"]: m.groupdict() for m in MAP_ROW.finditer(README.read_text())}


def prerequisites_cell(info: series.NotebookInfo) -> str:
    text = markdown_of(info.path)
    start = text.find(PREREQ_LABEL)
    assert start >= 0, f"{info.stem}: no '{PREREQ_LABEL}' paragraph"
    return text[start + len(PREREQ_LABEL):].split("\n\n", 1)[0].strip()


def stated_prerequisites(paragraph: str) -> list[str] | None:
    """The notebook numbers the paragraph opens with ("Notebooks 01 (...) and 03 (...)"); None if unparsable."""
    match = PREREQ_LIST.match(paragraph)
    if match is None:
        return None
    listed = re.sub(r"\([^)]*\)", "", match["list"] or "")
    return re.findall(r"\b\d\d\b", listed)


def bad_references(text: str) -> list[str]:
    """Every "NN — Title" reference whose number is not a notebook or whose title is not that notebook's."""
    problems = []
    for match in REFERENCE.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        if text.startswith("# ", line_start) and match.start() == line_start + 2:
            continue  # the notebook's own title heading
        number, rest, opener = match["number"], match["rest"], match["open"]
        seen = f"{number} — {rest}"
        info = BY_NUMBER.get(number)
        if info is None:
            problems.append(f"{seen[:60]!r}: there is no notebook {number}")
            continue
        names = [info.short_title, full_title(info)]
        closer = {"**": "**", "[": "]"}.get(opener or "")
        if closer and closer in rest:
            ok = rest[: rest.index(closer)] in names
        else:
            ok = any(rest.startswith(name) for name in names if name)
        if not ok:
            problems.append(f"{seen[:70]!r}: notebook {number} is "
                            f"'{info.short_title}' (or '{full_title(info)}')")
    return problems


def test_metadata_names_prerequisites_and_a_short_title() -> None:
    for info in INFOS:
        number = info.stem[:2]
        meta = json.loads(info.path.read_text())["metadata"]["inference_suite"]
        assert isinstance(meta.get("prerequisites"), list), f"{info.stem}: metadata needs 'prerequisites'"
        assert all(p in BY_NUMBER and p < number for p in info.prerequisites), (info.stem, info.prerequisites)
        assert info.prerequisites == sorted(set(info.prerequisites)), info.prerequisites
        assert info.short_title, f"{info.stem}: metadata needs 'short_title' (its name in the series map)"


def test_readme_series_map_follows_the_metadata() -> None:
    rows = series_map()
    assert sorted(rows) == sorted(BY_NUMBER), f"README map rows {sorted(rows)} vs notebooks {sorted(BY_NUMBER)}"
    for number, info in BY_NUMBER.items():
        row = rows[number]
        expected = {
            "file": info.path.name,
            "name": info.short_title,
            "before": ", ".join(info.prerequisites) or "–",
            "time": f"{info.minutes} min",
            "envs": ", ".join(info.environments),
        }
        actual = {key: row[key].strip() for key in expected}
        assert actual == expected, f"README row {number} disagrees with {info.path.name}'s metadata"


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.stem)
def test_prerequisites_cell_follows_the_metadata(info: series.NotebookInfo) -> None:
    paragraph = prerequisites_cell(info)
    stated = stated_prerequisites(paragraph)
    assert stated is not None, (f"{info.stem}: the paragraph must open with 'None' or 'Notebook(s) NN (...) and "
                                f"NN (...)': {paragraph[:80]!r}")
    assert stated == info.prerequisites, f"{info.stem}: prose says {stated}, metadata {info.prerequisites}"
    minutes = re.search(r"\bAbout (\d+) minutes\b", paragraph)
    assert minutes, f"{info.stem}: say 'About N minutes' in the paragraph"
    assert int(minutes.group(1)) == info.minutes, f"{info.stem}: prose {minutes.group(1)} min, metadata {info.minutes}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_cross_references_name_the_real_titles(path: Path) -> None:
    text = markdown_of(path)
    assert bad_references(text) == []
    missing = [m["file"] for m in NOTEBOOK_LINK.finditer(text) if not (ROOT / "notebooks" / m["file"]).exists()]
    assert missing == [], f"{path.name} links notebooks that do not exist: {missing}"


def test_reference_checker_catches_wrong_titles() -> None:
    four = BY_NUMBER["04"]
    good = (f"- **04 — {four.short_title}**: more. See [04 — {full_title(four)}](04_x.ipynb) and "
            f"04 — {four.short_title}, in prose; fp16 — not a reference.")
    assert bad_references(good) == []
    assert len(bad_references("- **04 — Quantisation**: INT8. And 04 — quantisation in prose.")) == 2
    assert bad_references(f"**04 — {four.short_title} extra**") != []
    assert "no notebook 77" in bad_references("**77 — Nowhere**")[0]
    assert bad_references("# 04 — Any title heading\n") == []


def test_prerequisite_parser() -> None:
    assert stated_prerequisites("Notebooks 01 (basics) and 03 (ONNX export). Kernel x") == ["01", "03"]
    assert stated_prerequisites("Notebook 00 (environments) and, for the story, notebook 04") == ["00"]
    assert stated_prerequisites("Notebooks 01, 02 and 03. About") == ["01", "02", "03"]
    assert stated_prerequisites("None — this is the first notebook.") == []
    assert stated_prerequisites("Some of 01–04 help.") is None
