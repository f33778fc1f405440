"""Test-session rules shared by tests/ and the notebooks executed by nbval.

- ``@pytest.mark.envs("openvino")`` runs a test only in the named environments; elsewhere it is
  skipped with a reason that names where it runs (``make test`` runs every environment).
- A notebook runs only in the environments its metadata lists (``inference_suite.environments``).
- Notebooks run in the test profile: the harness appends ``profile = "test"`` to each notebook's
  ``parameters`` cell, as ``papermill -p profile test`` does (``--notebook-profile full`` for the
  full profile).
- The cpu environment runs every unit test. The gpu and openvino environments run the tests of
  what differs there (environment report, runners, the series runner); the rest is identical
  code on identical packages and is skipped there with a reason, to keep ``make test`` short.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _current_env() -> str:
    from helpers.envreport import environment_name

    return environment_name()


def _notebook_envs(path: Path) -> list[str]:
    meta = json.loads(path.read_text()).get("metadata", {}).get("inference_suite", {})
    return list(meta.get("environments", []))


# Unit-test modules that exercise what differs between environments (ONNX Runtime package,
# execution providers). Everything else runs in the cpu environment.
ENV_SPECIFIC_MODULES = {"test_envreport.py", "test_runners.py", "test_series.py"}


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    env = _current_env()
    profile = config.getoption("--notebook-profile")
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
