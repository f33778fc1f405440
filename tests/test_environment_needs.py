"""Each environment installs what its notebooks, the helpers they use and its tests import.

The needs are read from the tree as it is when the test runs, so a notebook that moves into an
environment (or a new import) cannot miss a package there:

- the notebooks whose metadata (``inference_suite.environments``) lists the environment,
- the ``helpers`` modules they import, followed through every helpers module those import,
- the test modules that run in the environment (``conftest.py``: the gpu and openvino environments
  run ``ENV_SPECIFIC_MODULES``; cpu runs them all), with the local modules they import.

Every third-party module imported there (imports in ``try: ... except ImportError`` are optional;
``pytest.importorskip``, ``importlib.import_module("x")``, ``find_spec("x")`` and wrappers named
``*require("x", ...)`` count, since a skipped test would hide the gap; a module that calls
``import_module`` also needs every ``helpers`` module named by a string in it, such as the
registries' ``RUNTIME_MODULES`` / ``TASK_MODULES``) must come from a
distribution in the environment's lock, ``requirements/lock/<env>.txt``. In the other direction,
everything the gpu and openvino environments list in their requirements must be used there.
The module-to-distribution map is the running environment's (the cpu environment holds every
distribution any environment installs; this module runs there).
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import re
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from suite_script import suite

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ("cpu", "gpu", "openvino")
ORT_PACKAGES = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu", "openvino": "onnxruntime-openvino"}
# Needed in every environment without being imported by name: the test command, the kernel and
# the front end.
HARNESS = {
    "pytest": "the test command",
    "pytest-timeout": "pyproject.toml sets pytest's `timeout` option",
    "nbval": "the test command executes the notebooks with --nbval-lax",
    "ipykernel": "the environment's Jupyter kernel",
    "jupyterlab": "the front end (`make lab ENV=<env>`)",
}
# Imported by a library on our behalf rather than by name in the tree.
IMPLICIT = {
    "onnxscript": "torch.onnx.export's dynamo exporter (helpers.export) imports it",
    "ipywidgets": "tqdm.auto draws the notebooks' progress bars with it (else a TqdmWarning)",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- reading the tree -----------------------------------------------------------------------------


def notebook_environments(path: Path) -> list[str]:
    meta = json.loads(path.read_text()).get("metadata", {}).get("inference_suite", {})
    return list(meta.get("environments", []))


def notebook_code(path: Path) -> list[str]:
    """Each code cell's source without IPython magics and shell escapes (not Python syntax)."""
    cells = json.loads(path.read_text())["cells"]
    sources = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        text = "".join(cell["source"])
        lines = [line for line in text.splitlines() if not line.lstrip().startswith(("%", "!"))]
        sources.append("\n".join(lines))
    return sources


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = []
    if isinstance(handler.type, ast.Name):
        names = [handler.type.id]
    elif isinstance(handler.type, ast.Tuple):
        names = [e.id for e in handler.type.elts if isinstance(e, ast.Name)]
    return bool({"ImportError", "ModuleNotFoundError"} & set(names))


class _Imports(ast.NodeVisitor):
    """Absolute module names a source imports, optional ones (guarded by ImportError) left out."""

    def __init__(self, at_import: bool = False) -> None:
        self.modules: set[str] = set()
        self._optional = 0
        # Only what runs when the module is imported: no function bodies, no importorskip (a
        # module that skips itself at collection is not an error).
        self._at_import = at_import

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if not self._at_import:
            self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Try(self, node: ast.Try) -> None:
        guarded = any(_catches_import_error(h) for h in node.handlers)
        self._optional += guarded
        for child in node.body:
            self.visit(child)
        self._optional -= guarded
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    def _add(self, name: str) -> None:
        if not self._optional:
            self.modules.add(name)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            return
        self._add(node.module)
        for alias in node.names:  # `from helpers import runners` imports helpers.runners
            self._add(f"{node.module}.{alias.name}")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        named = name in {"importorskip", "import_module", "find_spec"} or name.endswith("require")
        if self._at_import and name == "importorskip":
            named = False
        if (named and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            self._add(node.args[0].value)
        self.generic_visit(node)


def _named_helpers_modules(tree: ast.AST) -> set[str]:
    """In a module that calls ``import_module``: the helpers modules named by its string constants
    (``RUNTIME_MODULES``, ``TASK_MODULES``, ``FINETUNE`` ...), imported by name at run time."""
    calls = any(isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(n.func, "id", None))
                == "import_module" for n in ast.walk(tree))
    if not calls:
        return set()
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and re.fullmatch(r"helpers(\.[a-z_0-9]+)+", n.value)}


def imports_of(source: str, where: str, at_import: bool = False) -> set[str]:
    try:
        tree = ast.parse(source, filename=where)
    except SyntaxError as exc:
        raise AssertionError(f"{where}: cannot parse: {exc}") from exc
    finder = _Imports(at_import)
    finder.visit(tree)
    return finder.modules | _named_helpers_modules(tree)


def env_specific_test_modules() -> set[str]:
    """ENV_SPECIFIC_MODULES from conftest.py (read, not imported: pytest owns that module)."""
    tree = ast.parse((ROOT / "conftest.py").read_text())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "ENV_SPECIFIC_MODULES" for t in node.targets)):
            return set(ast.literal_eval(node.value))
    raise AssertionError("conftest.py no longer defines ENV_SPECIFIC_MODULES")


def local_file(module: str, importer: Path) -> Path | None:
    """The repository file behind a local module (helpers.*, tests' own modules), else None."""
    parts = module.split(".")
    if parts[0] == "helpers" or (parts[0] == "tests" and len(parts) > 1):
        base = ROOT.joinpath(*parts)
    elif importer.parent == ROOT / "tests" and (ROOT / "tests" / f"{parts[0]}.py").exists():
        base = ROOT / "tests" / parts[0]
    elif parts[0] == "conftest":
        return ROOT / "conftest.py"
    else:
        return None
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return ROOT / "helpers" / "__init__.py" if parts[0] == "helpers" else None


def is_local(module: str) -> bool:
    top = module.split(".")[0]
    return (top in {"helpers", "tests", "conftest"}
            or (ROOT / "tests" / f"{top}.py").exists())


def starting_points(env: str) -> list[tuple[Path, bool]]:
    """(file, only what runs at import) for what runs in ``env``.

    Outside cpu, pytest still imports every test module to collect it before conftest.py skips
    the ones that are not environment-specific, so their module-level imports are needs too."""
    notebooks = [p for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
                 if env in notebook_environments(p)]
    tests = sorted((ROOT / "tests").glob("test_*.py"))
    collected_only: list[Path] = []
    if env != "cpu":
        specific = env_specific_test_modules()
        collected_only = [p for p in tests if p.name not in specific]
        tests = [p for p in tests if p.name in specific]
    return ([(p, False) for p in [*notebooks, ROOT / "conftest.py", *tests]]
            + [(p, True) for p in collected_only])


def third_party_imports(env: str) -> dict[str, set[str]]:
    """Top-level third-party module -> the files (relative paths) that import it in ``env``."""
    needed: dict[str, set[str]] = defaultdict(set)
    pending = starting_points(env)
    seen: set[tuple[Path, bool]] = set()
    while pending:
        path, at_import = pending.pop()
        if (path, at_import) in seen or (path, False) in seen:
            continue
        seen.add((path, at_import))
        where = str(path.relative_to(ROOT)) + (" (at collection)" if at_import else "")
        if path.suffix == ".ipynb":
            modules = set().union(*(imports_of(src, where) for src in notebook_code(path)))
        else:
            modules = imports_of(path.read_text(), where, at_import)
        for module in modules:
            if is_local(module):
                target = local_file(module, path)
                if target is not None:
                    pending.append((target, at_import))
                continue
            top = module.split(".")[0]
            if top not in sys.stdlib_module_names and top != "__future__":
                needed[top].add(where)
    return dict(needed)


# --- the environments' packages ---------------------------------------------------------------


def lock_names(env: str) -> set[str]:
    """Every distribution the environment's lock (with the model packages' lock) names."""
    return {e.name for lock in (env, "models") for e in suite.read_lock(suite.lock_path(lock))}


def top_level_requirements(env: str) -> set[str]:
    return {canonical(name) for name in suite.requirement_pins(env)}


@cache
def module_distributions() -> dict[str, list[str]]:
    return {m: [canonical(d) for d in dists] for m, dists in metadata.packages_distributions().items()}


def distributions_for(module: str, env: str) -> list[str]:
    dists = module_distributions().get(module, [])
    # The three ONNX Runtime packages provide the same `onnxruntime` module.
    return [ORT_PACKAGES[env] if d in ORT_PACKAGES.values() else d for d in dists]


def dependency_closure(names: set[str]) -> set[str]:
    """``names`` and everything their installed metadata requires (no extras, this platform)."""
    marker_env = {**default_environment(), "extra": ""}
    closure, pending = set(), list(names)
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate(marker_env):
                pending.append(canonical(req.name))
    return closure


def needed_distributions(env: str) -> dict[str, set[str]]:
    """Distribution -> what needs it in ``env`` (files that import it, or a reason)."""
    needs: dict[str, set[str]] = defaultdict(set)
    for module, files in third_party_imports(env).items():
        for dist in distributions_for(module, env):
            needs[dist] |= {f"{f} (imports {module})" for f in files}
    for name, why in {**HARNESS, **IMPLICIT}.items():
        needs[name].add(why)
    needs[ORT_PACKAGES[env]].add("the environment's ONNX Runtime package")
    return dict(needs)


# --- tests --------------------------------------------------------------------------------------


def test_collection_reads_only_what_runs_at_import() -> None:
    source = (
        "import fastapi\npytest.importorskip('openvino')\n"
        "def f():\n    import ray\n"
    )
    assert imports_of(source, "<example>", at_import=True) == {"fastapi"}


def test_the_reader_finds_imports_and_skips_optional_ones() -> None:
    source = (
        "import numpy as np\nfrom helpers import runners\nimport os.path\n"
        "try:\n    import tensorrt\nexcept ImportError:\n    tensorrt = None\n"
        "def f():\n    import ray.serve\n    pytest.importorskip('openvino')\n"
        "    _require('countryinfo', 'countryinfo')\n    find_spec(name)\n"
    )
    found = imports_of(source, "<example>")
    assert {"numpy", "helpers", "helpers.runners", "os.path", "ray.serve", "openvino",
            "countryinfo"} <= found
    assert "tensorrt" not in found
    by_name = 'MODULES = ("helpers.qa.finetune", "cpu")\nmods = [importlib.import_module(m) for m in MODULES]\n'
    assert imports_of(by_name, "<example>") == {"helpers.qa.finetune"}
    assert imports_of('NAME = "helpers.qa.finetune"\n', "<example>") == set()


def test_conftest_tells_which_tests_run_outside_cpu() -> None:
    specific = env_specific_test_modules()
    assert specific and all((ROOT / "tests" / name).is_file() for name in specific), specific


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_import_comes_from_the_environments_lock(env: str) -> None:
    locked = lock_names(env)
    unknown, missing = [], []
    for module, files in sorted(third_party_imports(env).items()):
        dists = distributions_for(module, env)
        if not dists:
            unknown.append(f"{module} (imported by {', '.join(sorted(files))})")
        elif not set(dists) & locked:
            missing.append(f"{'/'.join(dists)} for `import {module}` in {', '.join(sorted(files))}")
    assert not unknown, (
        "no installed distribution provides these modules (add the package to requirements/ and "
        "run `make lock`): " + "; ".join(unknown)
    )
    assert not missing, (
        f"the {env} environment runs code that imports packages its lock does not install "
        f"(add them to requirements/{env}.txt or base.txt and run `make lock`): " + "; ".join(missing)
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_harness_is_locked_everywhere(env: str) -> None:
    missing = set(HARNESS) - lock_names(env)
    assert not missing, f"{env} lacks what the test command needs: {sorted(missing)}"


@pytest.mark.parametrize("env", ["gpu", "openvino"])
def test_gpu_and_openvino_install_only_what_they_use(env: str) -> None:
    """Each requirement of these environments is used there: imported, needed by the harness,
    or pinned because something used depends on it."""
    needs = needed_distributions(env)
    used = dependency_closure(set(needs) - set(ORT_PACKAGES.values()))
    unused = sorted(set(top_level_requirements(env)) - used - {ORT_PACKAGES[env]})
    assert not unused, (
        f"requirements/{env}.txt (with base.txt) installs {unused}, which nothing that runs in the "
        f"{env} environment uses: move them to cpu.txt"
    )


def test_cpu_runs_every_notebook() -> None:
    """cpu is the superset environment: every notebook (and every test module) runs there."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert "cpu" in notebook_environments(path), f"{path.name} does not run in cpu"
