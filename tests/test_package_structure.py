"""The helpers package keeps its shape: imports run one way (no cycle).

The import graph is built from the source with ``ast`` — every ``import`` and ``from ... import``,
also those inside functions (a lazy import hides a cycle from Python, not from a reader) — and
must have no cycle. A package's ``__init__`` may import its own submodules; a submodule importing
its package's ``__init__`` back would be a cycle. Imports by name count too: a module that calls
``importlib.import_module`` depends on every ``helpers`` module named by a string in it (the
literal argument, or the names it keeps in a constant such as ``RUNTIME_MODULES``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "helpers"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The most specific known module that ``name`` (a dotted path) refers to."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _calls_import_module(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        for node in ast.walk(tree)
    )


def _named_modules(tree: ast.AST, modules: dict[str, Path]) -> set[str]:
    """The ``helpers`` modules named by a string constant in ``tree`` (``"helpers.qa.finetune"``)."""
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules
        and node.value.startswith("helpers.")
    }


def import_graph() -> dict[str, set[str]]:
    """``{module: {helpers modules it imports}}`` for every module of the package."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        if _calls_import_module(tree):
            graph[name] |= _named_modules(tree, modules) - {name}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{alias.name}" for alias in node.names]
            for target in targets:
                if not target.startswith("helpers."):
                    continue
                resolved = _resolve(target, modules)
                if resolved and resolved not in (name, "helpers"):
                    graph[name].add(resolved)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    assert "helpers.runners" in graph["helpers.envreport"]
    assert "helpers.hardware" in graph["helpers.runners.runtimes"]
    assert "helpers.runners.base" in graph["helpers.runners"]  # a package imports its parts


def test_the_graph_sees_imports_by_name() -> None:
    graph = import_graph()
    assert "helpers.runners.ort" in graph["helpers.runners.runtimes"]  # RUNTIME_MODULES
    assert "helpers.models.question_answering" in graph["helpers.catalog"]  # TASK_MODULES
    assert "helpers.qa.finetune" in graph["helpers.models.question_answering"]  # FINETUNE
    tree = ast.parse('import importlib\nNAMES = ("helpers.paths", "helpers.nope", "paths")\n'
                     'mods = [importlib.import_module(n) for n in NAMES]\n')
    modules = _modules()
    assert _calls_import_module(tree) and _named_modules(tree, modules) == {"helpers.paths"}
    assert not _calls_import_module(ast.parse('X = "helpers.paths"'))


def test_no_import_cycle_in_helpers() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in helpers: " + " -> ".join(cycle or [])



# --------------------------------------------------------------------------------------------
# Size, packaging and the map of modules
# --------------------------------------------------------------------------------------------

#: The most lines a module of helpers/ (and a file of tests/) may have — every line, blank ones
#: included, as ``wc -l`` and an editor count them (the number a reader meets). Beyond it a module
#: usually does two jobs: split it.
MAX_MODULE_LINES = 700


def module_lengths() -> dict[str, int]:
    """``{path relative to the repo: number of lines}`` for every module of the package."""
    return {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_is_longer_than_the_limit() -> None:
    lengths = module_lengths()
    assert "helpers/runners/base.py" in lengths and all(n > 0 for n in lengths.values())
    too_long = {path: n for path, n in lengths.items() if n > MAX_MODULE_LINES}
    assert too_long == {}, f"modules over {MAX_MODULE_LINES} lines (split them by job): {too_long}"


def lengths_of_test_files() -> dict[str, int]:
    """``{path relative to the repo: number of lines}`` for every Python file in tests/ (the same
    count as :func:`module_lengths`)."""
    tests = sorted((ROOT / "tests").glob("*.py"))
    return {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in tests}


def test_no_test_file_is_longer_than_the_limit() -> None:
    """The cap covers tests/ too: a test file past it usually tests two concepts."""
    lengths = lengths_of_test_files()
    assert "tests/test_package_structure.py" in lengths and all(n > 0 for n in lengths.values())
    too_long = {path: n for path, n in lengths.items() if n > MAX_MODULE_LINES}
    assert too_long == {}, (
        f"test files over {MAX_MODULE_LINES} lines: {too_long}; split each by concept into "
        "tests/test_<module>.py and tests/test_<module>_<concept>.py (what both need in a shared module "
        "of tests/, as tests/fakes.py)"
    )


def subpackages() -> set[str]:
    """Every package of ``helpers`` (folders with an ``__init__.py``), dotted."""
    return {_module_name(p) for p in PACKAGE.rglob("__init__.py")}


def test_a_wheel_holds_every_subpackage(tmp_path: Path) -> None:
    """A non-editable build (what ``pip install .`` makes) contains every package and ``py.typed``."""
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = {name.rpartition("/")[0].replace("/", ".") for name in names if name.endswith("/__init__.py")}
    assert {"helpers.runners", "helpers.benchmark", "helpers.course.exercises"} <= subpackages()
    assert packaged == subpackages(), f"missing from the wheel: {sorted(subpackages() - packaged)}"
    modules = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")}
    assert modules <= names and "helpers/py.typed" in names


def documented_modules() -> list[str]:
    """The modules the package docstring's map lists (``name`` or ``name/`` for a subpackage)."""
    import helpers

    return re.findall(r"^- ``([a-z_0-9]+/?)``", helpers.__doc__ or "", flags=re.M)


def test_the_package_docstring_maps_every_module() -> None:
    listed = documented_modules()
    assert len(listed) == len(set(listed)), f"listed twice: {sorted({m for m in listed if listed.count(m) > 1})}"
    present = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    present |= {f"{p.parent.name}/" for p in PACKAGE.glob("*/__init__.py")}
    assert "runners/" in present and "paths" in present
    assert set(listed) == present, (f"not in helpers/__init__.py's map: {sorted(present - set(listed))}; "
                                    f"listed but absent: {sorted(set(listed) - present)}")


#: The top level is the toolbox a learner meets in the notebooks; everything else sits in a
#: package by concept (``course/`` for the machinery around the notebooks). A new top-level module
#: needs a reason: most belong inside one of the packages.
#: 23: the capstone's ``model_report/`` (issue 27) is one concept — any model to every runtime,
#: measured and reported — that belongs to no existing package; nothing else fits there.
MAX_TOP_LEVEL_ENTRIES = 23


def test_the_top_level_stays_small() -> None:
    entries = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    entries |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert {"runners", "catalog", "course"} <= entries
    assert len(entries) <= MAX_TOP_LEVEL_ENTRIES, (
        f"helpers/ has {len(entries)} top-level modules and packages (at most "
        f"{MAX_TOP_LEVEL_ENTRIES}): group new modules into a package by concept: {sorted(entries)}"
    )
