"""The full locks (requirements/lock/<env>.txt) and the environments `make setup` builds from them.

A lock lists every distribution of an environment at an exact version (`make lock` writes it from a
clean resolve). The set-up installs with the lock as constraints and removes what it does not
list, so an environment made by `make setup` equals its lock: checked here for every environment
that was set up from the tree's current requirements and lock (others are skipped, with the fix).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ("cpu", "gpu", "openvino")
ORT_PACKAGES = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu", "openvino": "onnxruntime-openvino"}


def _load_suite():
    spec = importlib.util.spec_from_file_location("suite", ROOT / "scripts" / "suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


suite = _load_suite()


def lock(env: str) -> dict[str, str]:
    return suite.read_lock(env)


# --- the lock files ------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_lock_is_exact_sorted_and_says_where_it_comes_from(env: str) -> None:
    text = suite.lock_path(env).read_text()
    assert "make lock" in text and "# platform: " in text, "header: how it was made, for which platform"
    pins = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert pins, "empty lock"
    assert all("==" in line and " @ " not in line for line in pins), "exact versions only"
    names = [suite.canonical(line.split("==")[0]) for line in pins]
    assert names == sorted(names) and len(set(names)) == len(names), "sorted, each name once"
    assert "inference-suite-helpers" not in names, "the editable helpers package is not locked"
    assert {"pip", "setuptools"} <= set(names), "the installer and setuptools are locked too"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_lock_holds_every_requirement_at_its_pin(env: str) -> None:
    locked = lock(env)
    wanted = {**suite.requirement_pins(env), **suite.parse_pins(
        (suite.REQUIREMENTS / "models.txt").read_text())}
    wrong = {n: (v, locked.get(n)) for n, v in wanted.items() if locked.get(n) != v}
    assert not wrong, (
        f"requirements/ and lock/{env}.txt disagree (pin, locked): {wrong}; run `make lock`"
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_lock_holds_exactly_one_onnxruntime_package(env: str) -> None:
    flavours = set(ORT_PACKAGES.values()) & set(lock(env))
    assert flavours == {ORT_PACKAGES[env]}, flavours


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(ENVIRONMENTS, 2)))
def test_locks_agree_on_every_shared_package(a: str, b: str) -> None:
    first, second = lock(a), lock(b)
    differ = {n: (first[n], second[n]) for n in set(first) & set(second) if first[n] != second[n]}
    assert not differ, f"{a} and {b} lock different versions of {differ}"


def test_gpu_and_openvino_are_smaller_than_cpu() -> None:
    """They hold the core and their ONNX Runtime package; cpu holds everything."""
    for env in ("gpu", "openvino"):
        assert len(lock(env)) < len(lock("cpu"))
        assert not {"ray", "playwright", "gguf", "accelerate"} & set(lock(env)), env


def test_a_changed_lock_makes_the_environment_stale() -> None:
    """The set-up fingerprint covers the lock, so editing it triggers a new set-up."""
    assert suite.lock_path("gpu") in suite.requirement_files("gpu")
    assert suite.setup_fingerprint("gpu") != suite.setup_fingerprint("openvino")


# --- the set-up's own pieces --------------------------------------------------------------------


def test_parse_pins_reads_extras_and_comments_and_refuses_ranges() -> None:
    pins = suite.parse_pins("# note\nray[serve,data]==2.60.0  # why\nPyYAML==6.0.3\n-r base.txt\n")
    assert pins == {"ray": "2.60.0", "pyyaml": "6.0.3"}
    with pytest.raises(SystemExit, match="not an exact pin"):
        suite.parse_pins("numpy>=2\n")


def test_set_up_refuses_an_unsupported_python_and_says_why() -> None:
    suite.check_python((3, 11, 9), "/usr/bin/python3.11")  # supported: no error
    with pytest.raises(SystemExit) as info:
        suite.check_python((3, 12, 1), "/usr/bin/python3.12")
    message = str(info.value)
    assert "3.12.1" in message and "3.11 only" in message and "wheels" in message
    assert "PYTHON=python3.11" in message


def test_installer_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """INSTALLER=pip gives pip; uv is pinned for its bootstrap; an unknown name is refused."""
    assert suite.choose_installer("pip").name == "pip"
    assert set(suite.parse_pins((suite.REQUIREMENTS / "uv.txt").read_text())) == {"uv"}
    with pytest.raises(SystemExit, match="choose auto, pip or uv"):
        suite.choose_installer("conda")
    monkeypatch.setattr(suite.shutil, "which", lambda name: None)
    monkeypatch.setattr(suite, "bootstrap_uv", lambda: None)
    assert suite.choose_installer("auto").name == "pip", "falls back to pip without uv"
    with pytest.raises(SystemExit, match="INSTALLER=uv"):
        suite.choose_installer("uv")


def test_uv_gets_the_indexes_pip_is_configured_with() -> None:
    text = (
        ":env:.find-links='/opt/wheels'\n"
        "global.extra-index-url='file:///a/simple file:///b/simple'\n"
        "global.find-links='/opt/wheels'\n"
        "global.cert='/etc/ssl/certs/ca.crt'\n"
    )
    options = suite.index_options_from_pip_config(text)
    assert options[:3] == ["--extra-index-url=file:///a/simple", "--extra-index-url=file:///b/simple",
                           "--find-links=/opt/wheels"]
    assert options[-2:] == ["--index-strategy", "unsafe-best-match"]
    assert suite.index_options_from_pip_config("") == []


def test_lock_differences_name_missing_extra_and_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite, "read_lock", lambda env: {"a": "1", "b": "2", "c": "3"})
    monkeypatch.setattr(suite, "installed", lambda python: {"a": "1", "b": "9", "d": "4"})
    assert suite.lock_differences("cpu", Path("python")) == [
        "missing c==3", "extra d==4", "b: 9 installed, 2 locked",
    ]


# --- the environments made by `make setup` -----------------------------------------------------


def set_up_environment(env: str) -> Path:
    """The environment's python when `make setup` made it from the tree's current lock."""
    python = suite.venv_python(env)
    if not python.exists():
        pytest.skip(f"the {env} environment is not set up here (make setup ENVS={env})")
    if not suite.locked_for_this_platform(env):
        pytest.skip(f"lock/{env}.txt was resolved for another platform than {suite.lock_platform()}")
    if not suite.stamp_is_current(env):
        pytest.skip(f".venvs/{env} was set up from other requirements or locks than the tree's: "
                    f"`make setup ENVS={env}` brings it to the lock")
    return python


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_equals_its_lock(env: str) -> None:
    """`pip freeze --all` of the environment is the lock, distribution by distribution. The
    environment this test runs in is compared too (its own interpreter is one of these)."""
    python = set_up_environment(env)
    differences = suite.lock_differences(env, python)
    assert not differences, f".venvs/{env} differs from its lock: {differences}"


def test_the_running_interpreter_is_one_of_the_set_up_environments() -> None:
    here = Path(sys.prefix).resolve()
    envs = [e for e in ENVIRONMENTS if (suite.VENVS / e).resolve() == here]
    if not envs:
        pytest.skip(f"running in {here}, not in one of the suite's .venvs/")
    set_up_environment(envs[0])
    assert not suite.lock_differences(envs[0], Path(sys.executable))


def test_plain_jupyter_sees_every_kernel() -> None:
    """Kernels are registered for the user too: `jupyter kernelspec list` with no JUPYTER_PATH,
    run from any one environment, lists the kernels of all of them."""
    ready = [e for e in ENVIRONMENTS if suite.venv_python(e).exists() and suite.stamp_is_current(e)]
    if not ready:
        pytest.skip("no environment set up from the tree's locks here (make setup)")
    variables = {k: v for k, v in os.environ.items() if k != "JUPYTER_PATH"}
    for env in ready:
        out = subprocess.run(
            [str(suite.VENVS / env / "bin" / "jupyter"), "kernelspec", "list", "--json"],
            capture_output=True, text=True, env=variables, check=True,
        )
        specs = json.loads(out.stdout)["kernelspecs"]
        for other in ready:
            name = suite.kernel_name(other)
            assert name in specs, f"`jupyter kernelspec list` in {env} does not list {name}"
            spec = specs[name]["spec"]
            assert Path(spec["argv"][0]).exists(), f"{name} runs a missing {spec['argv'][0]}"
            assert spec["display_name"] == suite.kernel_display_name(other)


def test_kernel_display_name_carries_the_interpreters_version() -> None:
    ready = [e for e in ENVIRONMENTS if suite.venv_python(e).exists()]
    if not ready:
        pytest.skip("no environment set up here")
    out = subprocess.run([str(suite.venv_python(ready[0])), "-c",
                          "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    assert suite.kernel_display_name(ready[0]) == f"Python {out.stdout.strip()} (inference: {ready[0]})"


def test_starlette_test_client_uses_httpx2_without_warnings() -> None:
    """With httpx2 pinned, importing the test client warns nothing (else: httpx is deprecated)."""
    pytest.importorskip("fastapi")
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c",
         "import fastapi.testclient, starlette.testclient as t; print(t.httpx.__name__)"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "httpx2"
