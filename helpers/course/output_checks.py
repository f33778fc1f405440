"""What a learner sees in an executed notebook must be clean: the checks, one owner.

``make test`` (through ``conftest.py``, over the cells nbval ran) and the main job
(:mod:`helpers.course.series`, over papermill's executed copy) run the same checks, and a notebook with
any problem fails. The rules (:data:`RULES`):

- ``error``: an error output (a traceback) in any cell;
- ``ansi``: ANSI escape codes (terminal colours, cursor moves) in any text output;
- ``bare-result``: a cell whose displayed result says nothing (``True``, ``False``, ``None``,
  ``<x.Y object at 0x…>``, a matplotlib artist such as ``[<matplotlib.lines.Line2D …>]``);
- ``figure-not-shown``: a matplotlib figure was created but not displayed (its text repr such as
  ``<Figure size 640x480 with 1 Axes>`` without any image in that cell, or matplotlib saying it
  cannot show figures with a non-interactive backend);
- ``html-as-text``: HTML markup printed as plain text instead of rendered;
- ``native-log``: log lines forwarded from worker processes or C++ code (Ray's ``(raylet)`` /
  ``(ServeController pid=…)`` lines, ``core_worker.cc`` errors, glog ``E…``/``F…`` lines): noise a
  learner cannot act on;
- ``progress-incomplete``: a progress bar saved below 100 % (a ``tqdm.auto`` widget saved by a
  batch run keeps the state it was first drawn in; :func:`helpers.display.progress` saves its
  final state);
- ``table-cut``: a pandas table cell cut at pandas' default ``display.max_colwidth`` (50);
- ``forbidden-phrase``: words about how the suite was built, or paths outside the repository, in
  outputs or in the notebook's own markdown and code (see :data:`FORBIDDEN`);
- ``deprecation``: a ``DeprecationWarning``/``FutureWarning`` outside a legacy lesson;
- ``files-outside-outputs``: files the run wrote inside the repository but outside ``outputs/``
  (see :func:`snapshot` and :func:`written_files`).

Every function takes a notebook as an ``nbformat`` node or as the plain dict of its JSON.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.course.notebook_info import suite_metadata
from helpers.paths import REPO_ROOT

RULES: dict[str, str] = {
    "error": "an error output (traceback)",
    "ansi": "ANSI escape codes in an output",
    "bare-result": "a displayed result that says nothing (bool, None, default object repr)",
    "figure-not-shown": "a matplotlib figure created but not displayed",
    "html-as-text": "HTML markup printed as plain text",
    "native-log": "log lines from worker processes or C++ code in an output",
    "progress-incomplete": "a progress bar saved below 100 %",
    "table-cut": "a table cell cut at pandas' default max_colwidth (50 characters)",
    "forbidden-phrase": "wording about how the suite was built, or a path outside the repository",
    "deprecation": "a DeprecationWarning/FutureWarning outside a legacy lesson",
    "files-outside-outputs": "files written inside the repository but outside outputs/",
}

# Phrases the product never uses about itself: (label, pattern). Targeted so that ordinary words
# stay allowed ("a random seed", "seeded sampling", "the goal of this section").
FORBIDDEN: list[tuple[str, re.Pattern[str]]] = [
    ("FACTS (a file outside the repository)", re.compile(r"\bFACTS\b")),
    ("a path outside the repository",
     re.compile(r"(?:\.\./)+shared\b|/work/shared\b|\bshared/(?:FACTS|seeds)\b")),
    ("the seed documents the suite was made from",
     re.compile(r"\bseeds/|\bthe seeds? (?:says?|said|answers?|documents?|notebooks?|texts?|asks?|asked"
                r"|wants?|wanted|briefs?)\b|\bseed (?:answers?|documents?|notebooks?|texts?|briefs?)\b",
                re.IGNORECASE)),
    ("a development goal (\"Goal … not reached\")",
     re.compile(r"\bgoals?\b[^\n]{0,80}?\bnot (?:yet )?(?:reached|met|achieved)\b", re.IGNORECASE)),
    ("a development target", re.compile(r"\bdevelopment (?:targets?|goals?)\b", re.IGNORECASE)),
    ("\"we have not verified\"",
     re.compile(r"\bwe (?:have not|haven't|did not|didn't|could not|couldn't) (?:yet )?verif",
                re.IGNORECASE)),
    ("the suite's issue tracker", re.compile(r"\bissues show\b|\b(?:see|per|in) issue #?\d+\b", re.IGNORECASE)),
]

DEPRECATION = re.compile(r"\b(DeprecationWarning|FutureWarning): (.*)")
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
_BARE_VALUE = re.compile(r"(?:np\.)?(?:True|False)_?|None")
_DEFAULT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")
_FIGURE_REPR = re.compile(r"<Figure size [\d.]+x[\d.]+ with \d+ Axes>")
_MPL_REPR = re.compile(
    r"^\[?<(?:Figure size [\d.]+x[\d.]+ with \d+ Axes|Axes(?:3D)?: ?[^>]*"
    r"|matplotlib\.[\w.]+ (?:object )?at 0x[0-9a-fA-F]+)>|^Text\(-?[\d.e+-]+, -?[\d.e+-]+, '.*'\)$",
    re.MULTILINE,
)
_MPL_CANNOT_SHOW = re.compile(r"FigureCanvas\w+ is non-interactive, and thus cannot be shown"
                              r"|Matplotlib is currently using agg")
UNSHOWN_FIGURE_MARKER = "[output check] a matplotlib figure was created in this cell and never displayed"
_UNSHOWN_MARKER = re.compile(re.escape(UNSHOWN_FIGURE_MARKER))
_HTML_TAG = re.compile(
    r"<(?:div|span|table|thead|tbody|tr|td|th|details|summary|style|br|hr|h[1-6]|strong|em|pre|img|ul|ol|li)"
    r"\b(?:\s[^<>]*)?/?>|</(?:div|span|table|tr|td|th|p|b|li|ul|details|pre)>",
    re.IGNORECASE,
)
_NATIVE_LOG = re.compile(
    r"^\((?:raylet|pid=\d+|[\w:.\-]+ pid=\d+)(?:, [^)]*)?\)"  # Ray: output forwarded from a worker process
    r"|^\[\d{4}-\d\d-\d\d [\d:,.]+ [EF] \d+ \d+\] \w+\.cc:\d+"  # Ray's C++ error log
    r"|^[EF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w./-]+:\d+\]",  # glog error/fatal
    re.MULTILINE,
)
# A tqdm meter: "desc:  23%|██▎       | 14/60 [...]" (percent, bar, count/total).
_PROGRESS_METER = re.compile(r"(?<![\d.])(\d{1,3})%\|[^|\n]{0,80}\|\s*[\d.]+[kMGT]?/[\d.?]+")
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "application/pdf", "image/gif")
_TABLE_CELL = re.compile(r"<t[dh][^>]*>(.*?)</t[dh]>", re.DOTALL)
PANDAS_DEFAULT_COLWIDTH = 50
# A cell pandas cut at the default width: 46 characters + "..." in pandas 3's HTML, 47 + "..." before.
_CUT_LENGTHS = {PANDAS_DEFAULT_COLWIDTH - 1, PANDAS_DEFAULT_COLWIDTH}

# Directories never compared by the files-written check: generated output, environments, caches.
SKIP_DIRS = {".git", ".venvs", "outputs", "__pycache__", ".ipynb_checkpoints", ".pytest_cache",
             ".ruff_cache", ".mypy_cache", "node_modules", ".cache"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an executed notebook; ``cell`` is the index in ``nb.cells`` (None: the run)."""

    rule: str
    cell: int | None
    detail: str
    snippet: str = ""

    def __str__(self) -> str:
        where = "notebook" if self.cell is None else f"cell {self.cell}"
        if self.snippet:
            where += f" «{self.snippet}»"
        return f"{where}: [{self.rule}] {self.detail}"


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _snippet(cell: Mapping[str, Any], width: int = 60) -> str:
    for line in _text(cell.get("source", "")).splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= width else line[: width - 1] + "…"
    return ""


def _cells(nb: Any) -> list[Mapping[str, Any]]:
    return list(nb["cells"] if isinstance(nb, Mapping) else nb.cells)


def _output_texts(output: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, text) of every text an output carries; error tracebacks are left to the error rule."""
    kind = output.get("output_type", "")
    if kind == "stream":
        yield f"stream {output.get('name', '')}".strip(), _text(output.get("text", ""))
    elif kind == "error":
        yield "error", f"{output.get('ename', '')}: {output.get('evalue', '')}"
    else:
        for mime, value in (output.get("data") or {}).items():
            if mime.startswith("text/"):
                yield mime, _text(value)


def _plain_only(output: Mapping[str, Any]) -> str | None:
    """The text/plain of a display/result output that has nothing richer, else None."""
    if output.get("output_type") not in ("execute_result", "display_data"):
        return None
    data = output.get("data") or {}
    if set(data) != {"text/plain"}:
        return None
    return _text(data["text/plain"])


def _shown(text: str, width: int = 90) -> str:
    """A short, escaped excerpt (escape codes and newlines visible)."""
    text = text.strip()
    text = text if len(text) <= width else text[: width - 1] + "…"
    return repr(text)[1:-1]


def _line_with(text: str, start: int) -> str:
    begin = text.rfind("\n", 0, start) + 1
    end = text.find("\n", start)
    return text[begin: end if end >= 0 else len(text)]


def forbidden_phrases(text: str) -> list[str]:
    """``label: "excerpt"`` for every forbidden phrase in ``text``."""
    found = []
    for label, pattern in FORBIDDEN:
        for match in pattern.finditer(text):
            found.append(f"{label}: \"{_shown(_line_with(text, match.start()))}\"")
    return found


def deprecation_warnings(nb: Any) -> list[str]:
    """Distinct DeprecationWarning/FutureWarning lines printed by an executed notebook."""
    found: list[str] = []
    for cell in _cells(nb):
        for output in cell.get("outputs", []) or []:
            if output.get("output_type") != "stream":
                continue
            for match in DEPRECATION.finditer(_text(output.get("text", ""))):
                line = f"{match.group(1)}: {match.group(2).strip()}"[:160]
                if line not in found:
                    found.append(line)
    return found


def _figure_problems(output: Mapping[str, Any], has_image: bool) -> Iterator[tuple[str, str]]:
    kind = output.get("output_type", "")
    text = _text(output.get("text", "")) if kind == "stream" else ""
    if kind == "stream":
        for pattern in (_MPL_CANNOT_SHOW, _UNSHOWN_MARKER):
            match = pattern.search(text)
            if match:
                yield "figure-not-shown", f"\"{_shown(_line_with(text, match.start()), 160)}\""
        match = _FIGURE_REPR.search(text)
        if match and not has_image:
            yield "figure-not-shown", f"\"{match.group(0)}\" printed and no image in this cell"
    plain = _plain_only(output)
    if plain is None:
        return
    match = _MPL_REPR.search(plain)
    if match and (not has_image or _FIGURE_REPR.search(plain)):
        yield "figure-not-shown", f"\"{_shown(match.group(0))}\" shown as text, no image" + (
            "" if has_image else " in this cell")
    elif match and kind == "execute_result":
        yield "bare-result", f"the cell's value {_shown(plain)} is displayed — end the cell with `;` or " \
            "a statement"


def _cell_output_problems(cell: Mapping[str, Any], *, legacy: bool) -> Iterator[tuple[str, str]]:
    outputs = list(cell.get("outputs", []) or [])
    has_image = any(mime in (o.get("data") or {}) for o in outputs for mime in _IMAGE_MIMES)
    for output in outputs:
        kind = output.get("output_type", "")
        if kind == "error":
            yield "error", f"{output.get('ename', '')}: {_shown(_text(output.get('evalue', '')), 160)}"
        for where, text in _output_texts(output):
            match = ANSI.search(text)
            if match:
                yield "ansi", f"in {where}: \"{_shown(_line_with(text, match.start()))}\""
            for phrase in forbidden_phrases(text):
                yield "forbidden-phrase", f"in {where}: {phrase}"
            if where == "text/html" and 'class="dataframe"' in text:
                for value in _TABLE_CELL.findall(text):
                    value = html.unescape(re.sub(r"<[^>]+>", "", value)).strip()
                    if len(value) in _CUT_LENGTHS and value.endswith("..."):
                        yield "table-cut", f"\"{value}\" — set pd.options.display.max_colwidth"
        yield from _figure_problems(output, has_image)
        for where, text in _output_texts(output):
            if where == "text/plain" or where.startswith("stream"):
                for line in text.split("\n"):
                    shown = line.rsplit("\r", 1)[-1]  # what a terminal-style \r update leaves
                    meter = _PROGRESS_METER.search(shown)
                    if meter and int(meter.group(1)) < 100:
                        yield "progress-incomplete", f"\"{_shown(shown.strip())}\" — use helpers.display.progress"
                        break
        plain = _plain_only(output)
        for text in [t for t in (plain, _text(output.get("text", "")) if kind == "stream" else None) if t]:
            match = _HTML_TAG.search(text)
            if match:
                yield "html-as-text", f"\"{_shown(_line_with(text, match.start()))}\" — display(HTML(...)) " \
                    "renders it"
        if kind == "stream":
            match = _NATIVE_LOG.search(ANSI.sub("", _text(output.get("text", ""))))
            if match:
                text = ANSI.sub("", _text(output.get("text", "")))
                yield "native-log", f"\"{_shown(_line_with(text, match.start()), 120)}\" — silence it, or say " \
                    "what it means"
        if kind == "execute_result" and plain is not None:
            value = plain.strip()
            if _BARE_VALUE.fullmatch(value) or _DEFAULT_REPR.fullmatch(value):
                yield "bare-result", f"the cell's value {_shown(value)} is displayed — end the cell with `;` " \
                    "or a statement, or print what it means"
        if kind == "stream" and not legacy:
            for match in DEPRECATION.finditer(_text(output.get("text", ""))):
                yield "deprecation", f"outside a legacy lesson: {_shown(match.group(0), 160)}"


def check_outputs(nb: Any, *, legacy: bool = False) -> list[Problem]:
    """Problems in the outputs of an executed notebook (``legacy`` lessons may show deprecations)."""
    problems: list[Problem] = []
    for index, cell in enumerate(_cells(nb)):
        if cell.get("cell_type") != "code":
            continue
        for rule, detail in _cell_output_problems(cell, legacy=legacy):
            problem = Problem(rule, index, detail, _snippet(cell))
            if problem not in problems:
                problems.append(problem)
    return problems


def check_sources(nb: Any) -> list[Problem]:
    """Forbidden phrases in a notebook's own markdown and code."""
    problems = []
    for index, cell in enumerate(_cells(nb)):
        if "injected-parameters" in (cell.get("metadata") or {}).get("tags", []):
            continue
        for phrase in forbidden_phrases(_text(cell.get("source", ""))):
            problems.append(Problem("forbidden-phrase", index, f"in the {cell.get('cell_type')} source: {phrase}",
                                    _snippet(cell)))
    return problems


def is_legacy(nb: Any) -> bool:
    """Whether the notebook's metadata marks it a legacy lesson (``inference_suite.legacy``)."""
    return bool(suite_metadata(nb).get("legacy", False))


def check_notebook(nb: Any, *, legacy: bool | None = None, written: list[str] | None = None) -> list[Problem]:
    """Every rule over one executed notebook.

    ``legacy`` defaults to the notebook's metadata; ``written`` is what :func:`written_files` found.
    """
    legacy = is_legacy(nb) if legacy is None else legacy
    problems = check_sources(nb) + check_outputs(nb, legacy=legacy)
    if written:
        shown = ", ".join(written[:10]) + (f" and {len(written) - 10} more" if len(written) > 10 else "")
        problems.append(Problem("files-outside-outputs", None,
                                f"{len(written)} file(s) written outside outputs/: {shown} — write under "
                                "helpers.paths.output_dir(...)"))
    return problems


def format_report(name: str, problems: list[Problem]) -> str:
    """A readable list of a notebook's problems, one per line."""
    if not problems:
        return f"{name}: no problems"
    lines = [f"{name}: {len(problems)} problem(s) in the executed outputs"]
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)


Snapshot = dict[str, tuple[int, int]]


def _tracked(root: Path) -> set[str]:
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {p for p in listing.decode(errors="replace").split("\0") if p}


def snapshot(root: Path = REPO_ROOT, skip: set[str] | None = None) -> Snapshot:
    """Size and modification time of every file under ``root`` that git does not track.

    Skips ``outputs/``, the virtual environments, caches and :data:`SKIP_DIRS`; also the folders
    named by ``INFERENCE_SUITE_OUTPUT``/``INFERENCE_SUITE_CACHE`` when they lie inside ``root``.
    """
    root = Path(root).resolve()
    skip = set(SKIP_DIRS if skip is None else skip)
    skip_paths = set()
    for variable in ("INFERENCE_SUITE_OUTPUT", "INFERENCE_SUITE_CACHE"):
        if os.environ.get(variable):
            skip_paths.add(Path(os.environ[variable]).expanduser().resolve())
    tracked = _tracked(root)
    found: Snapshot = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")
                   and (here / d).resolve() not in skip_paths]
        for name in files:
            path = here / name
            relative = path.relative_to(root).as_posix()
            if relative in tracked:
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            found[relative] = (stat.st_size, stat.st_mtime_ns)
    return found


def written_files(before: Snapshot, after: Snapshot) -> list[str]:
    """Files that appeared or changed between two snapshots, sorted."""
    return sorted(path for path, stamp in after.items() if before.get(path) != stamp)


# --- In the kernel: report figures that were created and never displayed -------------------------
# A Figure made with ``matplotlib.figure.Figure`` (not pyplot) and kept in a variable leaves no
# trace in the outputs when nobody displays it. The test harness and the main job load this module
# as an IPython extension into the notebook's kernel (``%load_ext helpers.course.output_checks`` /
# ``--ext helpers.course.output_checks``); after each cell it prints :data:`UNSHOWN_FIGURE_MARKER` for a
# figure bound to a variable in that cell that never went through IPython's display machinery.


class _FigureWatch:
    def __init__(self, shell: Any) -> None:
        import weakref

        self.shell = shell
        self.seen: weakref.WeakSet[Any] = weakref.WeakSet()
        self.displayed: weakref.WeakSet[Any] = weakref.WeakSet()
        formatter = shell.display_formatter
        original = formatter.format

        def format_and_remember(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if self._is_figure(obj):
                self.displayed.add(obj)
            return original(obj, *args, **kwargs)

        formatter.format = format_and_remember

    @staticmethod
    def _is_figure(obj: Any) -> bool:
        import sys

        module = sys.modules.get("matplotlib.figure")
        return module is not None and isinstance(obj, module.Figure)

    def _figures(self) -> Iterator[tuple[str, Any]]:
        for name, value in list(self.shell.user_ns.items()):
            if name.startswith("_"):
                continue
            values = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) \
                else [value]
            for item in list(values)[:50]:
                if self._is_figure(item):
                    yield name, item

    def post_run_cell(self, result: Any) -> None:
        import sys

        for name, figure in self._figures():
            if figure in self.seen:
                continue
            self.seen.add(figure)
            if figure not in self.displayed:
                print(f"{UNSHOWN_FIGURE_MARKER}: `{name}` (display it, e.g. end the cell with `{name}`)",
                      file=sys.stderr)


def load_ipython_extension(shell: Any) -> None:
    """IPython extension entry point: watch for figures that are never displayed."""
    if getattr(shell, "_inference_suite_figure_watch", None) is None:
        watch = _FigureWatch(shell)
        shell._inference_suite_figure_watch = watch
        shell.events.register("post_run_cell", watch.post_run_cell)
