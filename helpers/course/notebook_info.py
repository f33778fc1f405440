"""The one reader of a notebook's ``inference_suite`` metadata (the series map's source).

The main job (:mod:`helpers.course.series`), the output checks, the test harness and the README
checks all read a notebook's title, environments, minutes, prerequisites, track and legacy flag
through :func:`read_info` / :func:`suite_metadata`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.paths import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"


@dataclass
class NotebookInfo:
    """A notebook of the series and what its metadata says about it."""

    path: Path
    title: str
    environments: list[str]
    minutes: int | None
    teaches: str
    legacy: bool = False  # a legacy lesson may show deprecation warnings (TorchScript, old exporter)
    prerequisites: list[str] = field(default_factory=list)  # notebook numbers to do first, e.g. ["01"]
    short_title: str = ""  # the name in the README's series map and in "NN — Title" references
    track: str = ""  # "core" (the lessons a learner finishes) or "deep-dive"

    @property
    def stem(self) -> str:
        return self.path.stem


def suite_metadata(nb: Any) -> dict[str, Any]:
    """The ``inference_suite`` metadata of a notebook (a parsed JSON dict or an nbformat node)."""
    metadata = nb.get("metadata", {}) if isinstance(nb, Mapping) else nb.metadata
    return dict(metadata.get("inference_suite") or {})


def read_info(path: Path) -> NotebookInfo:
    """Title (first markdown heading) and the ``inference_suite`` metadata of a notebook."""
    nb = json.loads(Path(path).read_text())
    meta = suite_metadata(nb)
    title = path.stem
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", ""))
            for line in source.splitlines():
                if line.startswith("# "):
                    title = line[2:].strip()
                    break
            break
    return NotebookInfo(
        path=Path(path),
        title=title,
        environments=list(meta.get("environments", [])),
        minutes=meta.get("minutes"),
        teaches=meta.get("teaches", ""),
        legacy=bool(meta.get("legacy", False)),
        prerequisites=[str(p) for p in meta.get("prerequisites", [])],
        short_title=str(meta.get("short_title", "")),
        track=str(meta.get("track", "")),
    )


def discover(env: str | None = None, only: list[str] | None = None) -> list[NotebookInfo]:
    """The series in order; filtered to one environment and/or notebook number prefixes."""
    infos = [read_info(p) for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]
    if env:
        infos = [i for i in infos if env in i.environments]
    if only:
        infos = [i for i in infos if any(i.stem.startswith(prefix) for prefix in only)]
    return infos
