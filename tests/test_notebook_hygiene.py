"""Notebooks are committed clean and follow the suite's skeleton (see CONTRIBUTING.md)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from helpers import kernels

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ENVIRONMENTS = {"cpu", "gpu", "openvino"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def dirty_cells(nb: dict) -> list[int]:
    """Indexes of code cells that carry outputs or execution counts."""
    return [
        i for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]


def parameter_cells(nb: dict) -> list[int]:
    return [
        i for i, c in enumerate(nb["cells"])
        if "parameters" in c.get("metadata", {}).get("tags", [])
    ]


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ is empty"
    names = [p.name for p in NOTEBOOKS]
    assert all(re.match(r"^\d\d_[a-z0-9_]+\.ipynb$", n) for n in names), names
    numbers = [n[:2] for n in names]
    assert len(set(numbers)) == len(numbers), f"duplicate numbers: {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_clean(path: Path) -> None:
    assert not dirty_cells(load(path)), f"{path.name}: clear outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_with_profile(path: Path) -> None:
    nb = load(path)
    cells = parameter_cells(nb)
    assert len(cells) == 1, f"{path.name}: needs exactly one cell tagged 'parameters', has {len(cells)}"
    source = "".join(nb["cells"][cells[0]]["source"])
    assert nb["cells"][cells[0]]["cell_type"] == "code"
    assert re.search(r"^profile\s*=", source, flags=re.M), "parameters cell must define `profile`"


#: The most lines a code cell may have: a cell a learner reads is about one idea (~25 lines).
MAX_CELL_LINES = 30


def long_cells(nb: dict, limit: int = MAX_CELL_LINES) -> list[tuple[int, int]]:
    """``(cell index, lines)`` of every code cell with more than ``limit`` lines (all lines count)."""
    lengths = ((i, len("".join(c["source"]).splitlines())) for i, c in enumerate(nb["cells"])
               if c["cell_type"] == "code")
    return [(i, n) for i, n in lengths if n > limit]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_code_cell_is_longer_than_the_limit(path: Path) -> None:
    too_long = long_cells(load(path))
    assert too_long == [], (f"{path.name}: code cells over {MAX_CELL_LINES} lines (index, lines): {too_long}; "
                            "split them into idea-sized cells")


def test_long_cell_check_counts_lines() -> None:
    cell = lambda kind, n: {"cell_type": kind, "source": "x = 1\n" * n, "metadata": {}}  # noqa: E731
    nb = {"cells": [cell("code", MAX_CELL_LINES), cell("markdown", 99), cell("code", MAX_CELL_LINES + 1)]}
    assert long_cells(nb) == [(2, MAX_CELL_LINES + 1)]


def headings(nb: dict) -> list[tuple[int, str]]:
    """(cell index, text) of every level-2 heading, in order."""
    return [
        (i, line) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown"
        for line in "".join(c["source"]).splitlines() if line.startswith("## ")
    ]


def skeleton_problems(nb: dict, number: str) -> list[str]:
    """What differs from the skeleton: title, numbered sections, Exercises, Summary, Where to go next."""
    markdown = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    problems = []
    if not (markdown and markdown[0].startswith(f"# {number} — ") and "What you will learn" in markdown[0]):
        problems.append(f"the first cell is the title '# {number} — ...' with 'What you will learn'")
    if not any("Prerequisites and time" in m for m in markdown):
        problems.append("a 'Prerequisites and time' paragraph")
    found = headings(nb)
    names = [text for _, text in found]
    fixed = ["## Exercises", "## Summary", "## Where to go next"]
    numbered = [text for text in names if re.match(r"## \d+\. ", text)]
    if not numbered or not numbered[0].startswith("## 1. "):
        problems.append("numbered sections '## 1. ...'")
    if [n for n in names if n in fixed] != fixed or names[-3:] != fixed:
        problems.append(f"after the numbered sections, exactly {fixed} in this order; found {names[-4:]}")
    elif numbered and names.index(numbered[-1]) > names.index("## Exercises"):
        problems.append("every numbered section comes before '## Exercises'")
    summary_cell = next((i for i, text in found if text == "## Summary"), None)
    if summary_cell is not None:
        late_code = [i for i, c in enumerate(nb["cells"]) if i > summary_cell and c["cell_type"] == "code"]
        if late_code:
            problems.append(f"no code under '## Summary' / '## Where to go next' (cells {late_code})")
    params = parameter_cells(nb)
    first_section = next((i for i, text in found if text.startswith("## 1. ")), None)
    if params and first_section is not None and params[0] > first_section:
        problems.append("the parameters cell comes before section 1")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_skeleton(path: Path) -> None:
    assert skeleton_problems(load(path), path.name[:2]) == []


def test_skeleton_check_catches_deviations() -> None:
    def nb(*cells: tuple[str, str]) -> dict:
        return {"cells": [{"cell_type": kind, "source": text, "metadata": {}} for kind, text in cells]}

    title = ("markdown", "# 42 — T\n\n**What you will learn**\n\n**Prerequisites and time.** None.")
    params = ("code", "profile = 'full'")
    good = [title, params, ("markdown", "## 1. A"), ("code", "x = 1"), ("markdown", "## 2. B"),
            ("markdown", "## Exercises"), ("code", "check()"), ("markdown", "## Summary\n\n- a\n\n## Where to go next")]
    assert skeleton_problems(nb(*good), "42") == []
    no_exercises = [c for c in good if c[1] != "## Exercises"]
    assert skeleton_problems(nb(*no_exercises), "42")
    numbered_exercises = [("markdown", "## 3. Exercises") if c[1] == "## Exercises" else c for c in good]
    assert skeleton_problems(nb(*numbered_exercises), "42")
    code_in_summary = [*good[:-1], ("markdown", "## Summary"), ("code", "show(summary)"),
                       ("markdown", "## Where to go next")]
    assert any("no code under" in p for p in skeleton_problems(nb(*code_in_summary), "42"))
    section_after = [*good[:6], ("markdown", "## 3. C"), *good[6:]]
    assert skeleton_problems(nb(*section_after), "42")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_wording_about_how_the_suite_was_built(path: Path) -> None:
    from helpers.course.output_checks import check_sources

    assert [str(p) for p in check_sources(load(path))] == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_metadata(path: Path) -> None:
    meta = load(path)["metadata"]
    suite = meta.get("inference_suite", {})
    assert set(suite.get("environments", [])) <= ENVIRONMENTS and suite.get("environments")
    assert isinstance(suite.get("minutes"), int) and suite["minutes"] > 0
    assert suite.get("teaches")
    assert isinstance(suite.get("legacy", False), bool)
    assert isinstance(suite.get("prerequisites"), list), "prerequisites: notebook numbers, [] for none"
    assert isinstance(suite.get("short_title"), str) and suite["short_title"], "short_title: its series-map name"
    assert meta.get("kernelspec") == kernels.STANDARD_KERNELSPEC, (
        "committed notebooks use the standard python3 kernelspec (make run and make test name the "
        "environment's kernel themselves): run `python3 helpers/kernels.py`")


def test_hygiene_check_catches_outputs() -> None:
    nb = {"cells": [{"cell_type": "code", "source": "1", "metadata": {}, "outputs": [{"x": 1}],
                     "execution_count": 3}]}
    assert dirty_cells(nb) == [0]


# --- the setup-check cell: a kernel without `helpers` is told the one install command ----------


def setup_check_problems(nb: dict) -> list[str]:
    """What is wrong with the notebook's setup check: the code cell right after the parameters
    cell must start by looking for `helpers` (before any import of it) and, when it is missing,
    raise ModuleNotFoundError naming `pip install -e '.[ENV]'` for the notebook's first
    environment, an extra pyproject.toml really has."""
    cells = nb["cells"]
    params = parameter_cells(nb)
    if len(params) != 1 or params[0] + 1 >= len(cells) or cells[params[0] + 1]["cell_type"] != "code":
        return ["no code cell right after the parameters cell"]
    env = (nb.get("metadata", {}).get("inference_suite", {}).get("environments") or ["?"])[0]
    source = "".join(cells[params[0] + 1]["source"])
    problems = []
    check = re.search(r'^if importlib\.util\.find_spec\("helpers"\) is None:.*?(?:\n(?=\S)|\Z)', source,
                      flags=re.M | re.S)
    if not source.startswith("import importlib.util\n") or check is None:
        return ['the cell does not start with `import importlib.util` and '
                '`if importlib.util.find_spec("helpers") is None:`']
    if "raise ModuleNotFoundError(" not in check.group(0):
        problems.append("a missing `helpers` does not raise ModuleNotFoundError")
    if f"pip install -e '.[{env}]'" not in check.group(0):
        problems.append(f"the message does not name `pip install -e '.[{env}]'` (first environment: {env})")
    if re.search(r"^\s*(from|import) helpers\b", source[: check.start()], flags=re.M) or any(
            re.search(r"^\s*(from|import) helpers\b", "".join(c["source"]), flags=re.M)
            for c in cells[: params[0]] if c["cell_type"] == "code"):
        problems.append("helpers is imported before the check")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]
    if env not in extras["optional-dependencies"]:
        problems.append(f"pyproject.toml has no extra [{env}]")
    return problems


SETUP_CHECK = '''import importlib.util

if importlib.util.find_spec("helpers") is None:  # this kernel lacks the suite's package
    raise ModuleNotFoundError(
        "This notebook needs the suite's `helpers` package: at the repository root run "
        "`pip install -e '.[cpu]'` (or `make setup`), then restart the kernel."
    )

from helpers.course.settings import by_profile
'''


def test_setup_check_rule_accepts_the_cell_and_catches_its_mistakes() -> None:
    def notebook(check: str, envs: tuple[str, ...] = ("cpu", "openvino")) -> dict:
        cells = [{"cell_type": "code", "source": 'profile = "full"', "metadata": {"tags": ["parameters"]}},
                 {"cell_type": "code", "source": check, "metadata": {}}]
        return {"cells": cells, "metadata": {"inference_suite": {"environments": list(envs)}}}

    assert setup_check_problems(notebook(SETUP_CHECK)) == []
    assert any("'.[openvino]'" in p for p in setup_check_problems(notebook(SETUP_CHECK, ("openvino",))))
    assert setup_check_problems(notebook("from helpers import display\n" + SETUP_CHECK))
    assert setup_check_problems(notebook(SETUP_CHECK.replace("raise ModuleNotFoundError(", "print(")))
    assert setup_check_problems(notebook("x = 1"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_checks_for_helpers_first(path: Path) -> None:
    problems = setup_check_problems(load(path))
    assert not problems, f"{path.name}: {problems}"
