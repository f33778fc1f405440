"""The universal, hashed locks (requirements/lock/) and the environments `make setup` builds.

Each environment's lock (and models.txt, the model packages installed without dependencies) is
written by `make lock` with uv's universal resolver: every distribution at an exact version, with
its hashes and the environment markers that say where it applies, for CPython 3.11-3.13 on every
platform. Checked here: the locks' form, that they follow requirements/, that every claimed
platform and Python gets exactly one version of each package, that uv really resolves each lock
for each platform it claims (and fails where it does not claim one), and that an environment made
by `make setup` equals its lock.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from suite_script import applicable, marker_environment, suite

ENVIRONMENTS = suite.ENVIRONMENTS
LOCKS = (*ENVIRONMENTS, "models")
ORT_PACKAGES = suite.ORT_PACKAGES


def entries(env: str) -> list:
    return suite.read_lock(suite.lock_path(env))


def versions(env: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for entry in entries(env):
        found.setdefault(entry.name, set()).add(entry.version)
    return found


def claims(env: str) -> list[tuple[str, tuple[int, int]]]:
    """(platform, Python) pairs an environment's lock is made for."""
    return [(where, python) for where in suite.ENV_PLATFORMS[env] for python in suite.SUPPORTED_PYTHONS]


# --- the lock files ------------------------------------------------------------------------------


@pytest.mark.parametrize("env", LOCKS)
def test_lock_says_how_it_was_made_and_pins_every_entry_with_hashes(env: str) -> None:
    text = suite.lock_path(env).read_text()
    assert "make lock" in text and re.search(r"^# inputs: \w+$", text, flags=re.M), "header"
    assert all(p in text for p in suite.PLATFORMS if p in suite.ENV_PLATFORMS.get(env, suite.PLATFORMS))
    found = entries(env)
    assert found, "empty lock"
    without_hash = [e.name for e in found if "--hash=sha256:" not in e.text]
    assert not without_hash, f"entries without hashes: {without_hash}"
    names = [e.name for e in found]
    assert names == sorted(names), "sorted by name"
    assert "inference-suite-helpers" not in names, "the editable helpers package is not locked"
    if env != "models":
        assert {"pip", "setuptools"} <= set(names), "the venv's own pip and setuptools are locked too"


@pytest.mark.parametrize("env", LOCKS)
def test_lock_is_compiled_from_the_current_requirements(env: str) -> None:
    assert suite.recorded_digest(env) == suite.inputs_digest(env), (
        f"requirements/ changed since lock/{suite.lock_path(env).name} was written: run `make lock`"
    )


def test_a_changed_requirement_asks_for_make_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tmp_path / "cpu.txt"
    changed.write_text(suite.environment_files("cpu")[-1].read_text().replace("onnxruntime==", "onnxruntime>="))
    real = suite.lock_inputs
    monkeypatch.setattr(suite, "lock_inputs", lambda env: [*real(env)[:-2], changed, real(env)[-1]]
                        if env == "cpu" else real(env))
    with pytest.raises(SystemExit, match="run `make lock`"):
        suite.check_lock_is_current("cpu")


@pytest.mark.parametrize("env", LOCKS)
def test_lock_holds_every_requirement_at_its_pin(env: str) -> None:
    locked = versions(env)
    if env == "models":
        wanted = suite.parse_pins((suite.REQUIREMENTS / "models.txt").read_text())
    else:
        wanted = {**suite.requirement_pins(env),
                  **suite.parse_pins((suite.REQUIREMENTS / "venv.txt").read_text())}
    wrong = {n: (v, locked.get(n)) for n, v in wanted.items() if v not in locked.get(n, set())}
    assert not wrong, f"requirements/ and lock/{env}.txt disagree (pin, locked): {wrong}; run `make lock`"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_lock_holds_exactly_one_onnxruntime_package(env: str) -> None:
    flavours = set(ORT_PACKAGES.values()) & set(versions(env))
    assert flavours == {ORT_PACKAGES[env]}, flavours


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(ENVIRONMENTS, 2)))
def test_locks_agree_on_every_shared_package(a: str, b: str) -> None:
    first, second = versions(a), versions(b)
    differ = {n: (first[n], second[n]) for n in set(first) & set(second) if first[n] != second[n]}
    assert not differ, f"{a} and {b} lock different versions of {differ}"


def test_gpu_and_openvino_are_smaller_than_cpu() -> None:
    """They hold the core and their ONNX Runtime package; cpu holds everything."""
    for env in ("gpu", "openvino"):
        assert len(versions(env)) < len(versions("cpu"))
        assert not {"ray", "playwright", "gguf", "accelerate"} & set(versions(env)), env


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_claimed_platform_and_python_gets_one_version_of_each_package(env: str) -> None:
    """The markers pick exactly one version per package for every platform and Python claimed."""
    for where, python in claims(env):
        chosen = applicable(entries(env), marker_environment(where, python))
        ambiguous = {n: v for n, v in chosen.items() if len(v) > 1}
        assert not ambiguous, f"{env} on {where}, Python {python}: several versions of {ambiguous}"
        assert {"torch", ORT_PACKAGES[env], "pip"} <= set(chosen), (env, where, python)
    if env == "cpu":
        windows = applicable(entries(env), marker_environment("windows-x86_64", (3, 12)))
        linux = applicable(entries(env), marker_environment("linux-x86_64", (3, 12)))
        assert "onnxruntime-extensions" not in windows and "onnxruntime-extensions" in linux, (
            "onnxruntime-extensions has no Windows wheels: its marker leaves it out there only")


def test_a_changed_lock_makes_the_environment_stale() -> None:
    """The set-up fingerprint covers the lock (and the torch build), so editing it redoes set-up."""
    assert suite.setup_fingerprint("gpu") != suite.setup_fingerprint("openvino")
    assert suite.setup_fingerprint("cpu") != suite.setup_fingerprint("cpu", "cpu")


# --- uv resolves each lock for each platform it claims --------------------------------------------


_OFFLINE = ("network connectivity is disabled", "network was disabled", "offline")
_NO_NETWORK = ("dns error", "failed to fetch", "error sending request", "connection refused",
               "network is unreachable", "timed out")


def resolve(env: str, where: str, python: tuple[int, int]) -> subprocess.CompletedProcess:
    """uv's resolution of a lock for one platform: from uv's cache when it can, else from PyPI."""
    uv = suite.uv_executable()
    no_deps = env == "models"
    result = suite.resolve_for_platform(uv, suite.lock_path(env), where, python, no_deps, offline=True)
    if result.returncode != 0 and any(w in result.stderr.lower() for w in _OFFLINE):
        result = suite.resolve_for_platform(uv, suite.lock_path(env), where, python, no_deps)
    if result.returncode != 0 and any(w in result.stderr.lower() for w in _NO_NETWORK):
        pytest.skip(f"PyPI is unreachable, so the locks cannot be resolved here: {result.stderr[-300:]}")
    return result


def resolved(output: str) -> dict[str, str]:
    return suite.parse_pins(output)


@pytest.mark.parametrize("env", LOCKS)
def test_each_lock_resolves_for_every_platform_and_python_it_claims(env: str) -> None:
    """`uv pip compile <lock> --python-platform ...` succeeds for each claimed platform and Python
    (a locked wheel missing there fails it) and installs exactly the entries the markers select
    there (a dependency missing from the lock would be added by uv)."""
    pairs = claims("cpu" if env == "models" else env)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda pair: resolve(env, *pair), pairs))
    for (where, python), result in zip(pairs, results, strict=True):
        label = f"lock/{env}.txt on {where}, Python {suite.version_text(python)}"
        assert result.returncode == 0, f"{label} does not resolve: {result.stderr[-1500:]}"
        expected = {n: v[0] for n, v in applicable(entries(env), marker_environment(where, python)).items()}
        got = resolved(result.stdout)
        assert got == expected, (
            f"{label}: uv installs {sorted(set(got.items()) ^ set(expected.items()))} differently "
            "from what the lock's markers select")


@pytest.mark.parametrize(("env", "where"), [("gpu", "macos-arm64"), ("openvino", "macos-arm64"),
                                            ("openvino", "linux-aarch64")])
def test_unclaimed_platforms_really_have_no_wheels(env: str, where: str) -> None:
    """The platform table is honest: where an environment claims no support, its ONNX Runtime
    package really has no wheel (and `make test` says so instead of failing)."""
    assert where not in suite.ENV_PLATFORMS[env]
    result = resolve(env, where, (3, 12))
    assert result.returncode != 0 and ORT_PACKAGES[env] in result.stderr, result.stderr[-1500:]
    assert ORT_PACKAGES[env] in suite.unavailable_reason(env, where)


# --- the environments made by `make setup` -----------------------------------------------------


def set_up_environment(env: str) -> Path:
    """The environment's python when `make setup` made it from the tree's current lock."""
    python = suite.venv_python(env)
    if not python.exists():
        pytest.skip(f"the {env} environment is not set up here (make setup ENVS={env})")
    if not suite.stamp_is_current(env):
        pytest.skip(f".venvs/{env} was set up from other locks than the tree's: "
                    f"`make setup ENVS={env}` brings it to the lock")
    return python


_INSTALLED = """
import importlib.metadata as m, json, platform, sys
print(json.dumps({"python": list(sys.version_info[:3]), "machine": platform.machine(),
                  "installed": {d.metadata["Name"]: d.version for d in m.distributions()}}))
"""


def lock_for_environment(env: str, python: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(what the locks select for that interpreter, what it has), the editable helpers left out."""
    facts = json.loads(subprocess.run([str(python), "-c", _INSTALLED], capture_output=True, text=True,
                                      check=True).stdout)
    where = suite.this_platform()
    version = tuple(facts["python"])
    environment = marker_environment(where, version[:2], version[2])
    wanted = {n: v[0] for lock in (env, "models")
              for n, v in applicable(entries(lock), environment).items()}
    have = {suite.canonical(n): v for n, v in facts["installed"].items()}
    have.pop("inference-suite-helpers", None)
    if suite.read_stamp(env).get("torch") == "cpu":  # TORCH=cpu: the CPU build replaces CUDA torch
        wanted = {n: v for n, v in wanted.items() if not suite.CUDA_ONLY.match(n)}
        have = {n: v.split("+")[0] if n in suite.TORCH_BUILDS else v for n, v in have.items()}
    return wanted, have


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_equals_its_lock(env: str) -> None:
    """Every distribution of the environment is the one its locks select for its interpreter and
    platform, and nothing else is installed (the environment this test runs in is compared too)."""
    python = set_up_environment(env)
    wanted, have = lock_for_environment(env, python)
    differences = sorted(set(wanted.items()) ^ set(have.items()))
    assert not differences, f".venvs/{env} differs from its lock (name, version): {differences}"


def test_the_running_interpreter_is_one_of_the_set_up_environments() -> None:
    here = Path(sys.prefix).resolve()
    envs = [e for e in ENVIRONMENTS if (suite.VENVS / e).resolve() == here]
    if not envs:
        pytest.skip(f"running in {here}, not in one of the suite's .venvs/")
    set_up_environment(envs[0])
    wanted, have = lock_for_environment(envs[0], Path(sys.executable))
    assert wanted == have


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
