"""The README stays true: it links every notebook and names the commands CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_series_map_links_every_notebook() -> None:
    linked = set(re.findall(r"\(notebooks/(\d\d_[a-z0-9_]+\.ipynb)\)", README))
    present = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert linked == present, f"README map vs notebooks/: missing {present - linked}, stale {linked - present}"


def test_readme_speaks_of_the_product_only() -> None:
    from helpers.output_checks import forbidden_phrases

    for name in ("README.md", "CONTRIBUTING.md"):
        assert forbidden_phrases((ROOT / name).read_text()) == [], name


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"^(make \w+)\s+#", README, flags=re.M)
    assert commands[:2] == ["make run", "make test"], commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M), "CI must run the README's test command"
