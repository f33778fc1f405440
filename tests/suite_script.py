"""scripts/suite.py (the set-up's own reading of requirements/ and the locks) for the tests, and
what a lock entry means on a given platform and Python."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from packaging.markers import Marker

ROOT = Path(__file__).resolve().parents[1]


def _load_suite():
    spec = importlib.util.spec_from_file_location("suite", ROOT / "scripts" / "suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


suite = _load_suite()

# PEP 508 marker values of the platforms the locks claim (scripts/suite.py PLATFORMS).
_MARKERS = {
    "linux-x86_64": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                     "os_name": "posix"},
    "linux-aarch64": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64",
                      "os_name": "posix"},
    "macos-arm64": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64",
                    "os_name": "posix"},
    "windows-x86_64": {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64",
                       "os_name": "nt"},
}


def marker_environment(where: str, python: tuple[int, int], micro: int = 0) -> dict[str, str]:
    """The marker environment of CPython ``python`` on one of the locks' platforms (micro 0, as
    uv reads ``--python-version 3.12``)."""
    version = f"{python[0]}.{python[1]}"
    return {**_MARKERS[where], "python_version": version, "python_full_version": f"{version}.{micro}",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "implementation_version": f"{version}.{micro}", "platform_release": "", "platform_version": ""}


def applicable(entries: list, environment: dict[str, str]) -> dict[str, list[str]]:
    """{name: [versions]} of the lock entries whose marker holds in ``environment``."""
    found: dict[str, list[str]] = {}
    for entry in entries:
        if not entry.marker or Marker(entry.marker).evaluate({**environment, "extra": ""}):
            found.setdefault(entry.name, []).append(entry.version)
    return found
