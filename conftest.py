"""Test-session rules shared by tests/ and the notebooks executed by nbval.

- ``@pytest.mark.envs("openvino")`` runs a test only in the named environments; elsewhere it is
  skipped with a reason that names where it runs (``make test`` runs every environment).
- A notebook runs only in the environments its metadata lists (``inference_suite.environments``).
- Notebooks run in the test profile: the harness appends ``profile = "test"`` to each notebook's
  ``parameters`` cell, as ``papermill -p profile test`` does (``--notebook-profile full`` for the
  full profile).
- After a notebook's last cell, one more item (``NN_x.ipynb::output checks``) writes the executed
  notebook to ``outputs/test-<env>/executed/`` and fails, listing every problem, when the outputs
  are not clean (:mod:`helpers.course.output_checks`: errors, ANSI codes, bare results, figures never
  shown, HTML as text, cut tables, wording about how the suite was built, deprecation warnings
  outside legacy lessons, files written outside ``outputs/``).
- The cpu environment runs every unit test. The gpu and openvino environments run the tests of
  what differs there (environment report, runners, the series runner); the rest is identical
  code on identical packages and is skipped there with a reason, to keep ``make test`` short.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

try:
    from nbval.plugin import IPyNbCell
except ImportError:  # nbval is in every suite environment; this keeps plain pytest usable without it
    IPyNbCell = None


# Kernels nbval starts inherit this: progress bars save their final state (nobody watches them).
os.environ.setdefault("INFERENCE_SUITE_BATCH", "1")


def _current_env() -> str:
    from helpers.envreport import environment_name

    return environment_name()


def _notebook_envs(path: Path) -> list[str]:
    from helpers.course.notebook_info import read_info

    return read_info(path).environments


# Unit-test modules that exercise what differs between environments (ONNX Runtime package,
# execution providers). Everything else runs in the cpu environment.
ENV_SPECIFIC_MODULES = {
    "test_envreport.py", "test_runners.py", "test_runners_trust.py", "test_runtime_ep_threads.py",
    "test_runtime_registry.py", "test_series.py",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--notebook-profile", default="test", choices=["test", "full"],
        help="profile injected into each notebook's parameters cell (default: test)",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return (f"inference-suite environment: {_current_env()}; "
            f"notebook profile: {config.getoption('--notebook-profile')}")


def _inject_parameters(item: pytest.Item, profile: str) -> None:
    """Like papermill's injected cell: the parameters cell's defaults, then the override."""
    cell = getattr(item, "cell", None)
    if cell is not None and "parameters" in cell.get("metadata", {}).get("tags", []):
        cell.source = f'{cell.source}\nprofile = "{profile}"  # injected by the test harness'


_CHECKS = pytest.StashKey[dict]()  # notebook nodeid -> its NotebookOutputChecks item


class NotebookProblems(Exception):
    """The executed notebook's outputs are not clean; the message lists every problem."""


class NotebookOutputChecks(pytest.Item):
    """Runs after a notebook's last cell: assembles the executed notebook and checks its outputs."""

    def __init__(self, *, cells: list[pytest.Item], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cells = cells
        self.before: dict[str, tuple[int, int]] | None = None  # files before the first cell ran
        self.obj = _NoGlobals()  # _pytest.skipping evaluates string conditions in obj's globals

    def executed_notebook(self) -> Any:
        """The notebook as nbval ran it: each cell's outputs and an execution count."""
        import nbformat

        original = self.parent.nb
        nb = copy.deepcopy(original)
        count = 0
        for item in self.cells:
            if item.test_outputs is None:
                continue
            index = next(i for i, cell in enumerate(original.cells) if cell is item.cell)
            count += 1
            nb.cells[index].outputs = [nbformat.from_dict(dict(o)) for o in item.test_outputs]
            nb.cells[index].execution_count = count
        return nb

    def runtest(self) -> None:
        import nbformat

        from helpers.course import output_checks
        from helpers.paths import output_root

        if all(item.test_outputs is None for item in self.cells):
            pytest.skip("no cell of this notebook ran")
        nb = self.executed_notebook()
        target = output_root() / f"test-{_current_env()}" / "executed" / self.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written = []
        if self.before is not None:
            written = output_checks.written_files(self.before, output_checks.snapshot(self.config.rootpath))
        problems = output_checks.check_notebook(nb, written=written)
        if problems:
            raise NotebookProblems(f"{output_checks.format_report(self.path.name, problems)}\n"
                                   f"executed copy: {target}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, NotebookProblems):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        # A line number (0, as nbval's cells give): pytest needs one to report a skip from a mark.
        return self.path, 0, f"{self.path.name}::{self.name}"


class _NoGlobals:
    __globals__: dict[str, Any] = {}


def _add_output_checks(items: list[pytest.Item]) -> dict[str, NotebookOutputChecks]:
    """One NotebookOutputChecks right after each notebook's last cell item; keyed by notebook nodeid."""
    if IPyNbCell is None:
        return {}
    cells: dict[pytest.Collector, list[pytest.Item]] = {}
    for item in items:
        if isinstance(item, IPyNbCell):
            cells.setdefault(item.parent, []).append(item)
    checks = {}
    for notebook, its_cells in cells.items():
        check = NotebookOutputChecks.from_parent(notebook, name="output checks", cells=its_cells)
        items.insert(items.index(its_cells[-1]) + 1, check)
        checks[notebook.nodeid] = check
    return checks


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):  # noqa: ANN201 - a hook wrapper is a generator
    """Before a notebook's first cell: note the repo's files; once its kernel runs: watch figures."""
    checks = item.config.stash.get(_CHECKS, {})
    check = checks.get(item.parent.nodeid) if IPyNbCell is not None and isinstance(item, IPyNbCell) else None
    first = check is not None and check.before is None
    if first:
        from helpers.course import output_checks

        check.before = output_checks.snapshot(item.config.rootpath)
    outcome = yield
    if first and outcome.excinfo is None and getattr(item.parent, "kernel", None) is not None:
        kernel = item.parent.kernel
        msg_id = kernel.kc.execute("%load_ext helpers.course.output_checks", silent=True, store_history=False)
        kernel.await_reply(msg_id, timeout=60)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    env = _current_env()
    profile = config.getoption("--notebook-profile")
    config.stash[_CHECKS] = _add_output_checks(items)
    notebook_envs: dict[Path, list[str]] = {}
    for item in items:
        _inject_parameters(item, profile)
        marker = item.get_closest_marker("envs")
        if marker is not None and env not in marker.args:
            where = " or ".join(marker.args)
            item.add_marker(pytest.mark.skip(
                reason=f"runs in the {where} environment (this is '{env}'); make test runs it there"
            ))
        path = Path(str(item.fspath))
        if env != "cpu" and path.suffix == ".py" and path.name not in ENV_SPECIFIC_MODULES:
            item.add_marker(pytest.mark.skip(
                reason=f"environment-independent; runs in the cpu environment (this is '{env}')"
            ))
        if path.suffix == ".ipynb":
            if path not in notebook_envs:
                notebook_envs[path] = _notebook_envs(path)
            allowed = notebook_envs[path]
            if env not in allowed:
                item.add_marker(pytest.mark.skip(
                    reason=f"notebook runs in {', '.join(allowed) or 'no'} environment(s), not '{env}'"
                ))
