#!/usr/bin/env python3
"""Task runner for the suite: set up environments, run the notebook series, run the tests.

Standard library only, so it runs with the machine's own Python before any environment exists.

    python3 scripts/suite.py setup [--env cpu|gpu|openvino|all]
    python3 scripts/suite.py run   [--env cpu] [--profile full|test] [--only 04 05]
    python3 scripts/suite.py test  [--env all] [-- extra pytest args, or paths to test instead]
    python3 scripts/suite.py lab   [--env cpu]
    python3 scripts/suite.py kernels [--env all]   register the kernels (venv + your user)
    python3 scripts/suite.py lock  [--env all]     regenerate requirements/lock/*.txt

`make run`, `make test`, `make setup`, `make lab`, `make kernels` and `make lock` call these.

Environments are made from the universal, hashed locks in requirements/lock/ (one per environment,
plus models.txt): `uv pip sync` makes `.venvs/<env>` equal to the lock for this interpreter and
platform (uv from PATH, else bootstrapped with pip into .venvs/.tools at the version in
requirements/uv.txt); INSTALLER=pip builds a fresh venv with `pip install --require-hashes`
instead. PYTHON_ENV=<prefix> uses an existing environment (a conda env, a venv) instead of
.venvs/; TORCH=cpu installs PyTorch's CPU-only build on Linux (see `torch_cpu_plan`).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ("cpu", "gpu", "openvino")
VENVS = ROOT / ".venvs"
REQUIREMENTS = ROOT / "requirements"
LOCKS = REQUIREMENTS / "lock"
MODELS_LOCK = LOCKS / "models.txt"
STAMP = ".suite-setup-stamp"
# Bump when set-up changes what it does to an environment, so existing ones are redone.
SETUP_VERSION = "3"
# uv, measured several times faster than pip for a fresh set-up, with environments sharing files
# through its cache; see choose_installer(). INSTALLER=pip|uv forces one.
DEFAULT_INSTALLER = "uv"
TOOLS = VENVS / ".tools"

# The CPython versions the locks are resolved and tested for.
SUPPORTED_PYTHONS = ((3, 11), (3, 12), (3, 13))
# Where wheels exist, as uv's --python-platform names them (macOS: see MACOS_TARGET).
PLATFORMS = {
    "linux-x86_64": "x86_64-manylinux_2_28",
    "linux-aarch64": "aarch64-manylinux_2_35",  # openvino's aarch64 wheels need glibc 2.35
    "macos-arm64": "aarch64-apple-darwin",
    "windows-x86_64": "x86_64-pc-windows-msvc",
}
MACOS_TARGET = "14.0"  # onnxruntime's macOS wheels are macosx_14_0_arm64
# The ONNX Runtime package that decides where an environment installs, and where it has wheels.
ORT_PACKAGES = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu", "openvino": "onnxruntime-openvino"}
ENV_PLATFORMS = {
    "cpu": ("linux-x86_64", "linux-aarch64", "macos-arm64", "windows-x86_64"),
    "gpu": ("linux-x86_64", "linux-aarch64", "windows-x86_64"),
    "openvino": ("linux-x86_64", "windows-x86_64"),
}
# TORCH=cpu: PyTorch's CPU-only build from PyTorch's own index (a mirror can be named instead).
TORCH_CPU_INDEX = os.environ.get("TORCH_CPU_INDEX", "https://download.pytorch.org/whl/cpu")
TORCH_CPU_ENVIRONMENTS = ("cpu", "openvino")
# The distributions only PyPI's CUDA build of torch needs; the CPU build replaces torch and
# torchvision and needs none of them (a test checks the lock's "via" annotations say so).
CUDA_ONLY = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")
TORCH_BUILDS = ("torch", "torchvision")
# The options every lock is compiled with (part of the inputs digest in each lock's header).
LOCK_OPTIONS = ("--universal", "--python-version", "3.11",
                "--generate-hashes", "--custom-compile-command", "make lock")


def say(message: str) -> None:
    print(f"[suite] {message}", flush=True)


def _load_kernels():
    """helpers/kernels.py by its path: the one definition of the kernel names (stdlib only)."""
    spec = importlib.util.spec_from_file_location("suite_kernels", ROOT / "helpers" / "kernels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kernels = _load_kernels()


def kernel_name(env: str) -> str:
    return kernels.kernel_name(env)


def venv_python(env: str) -> Path:
    return VENVS / env / "bin" / "python"


def canonical(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)


SUPPORTED_TEXT = ", ".join(version_text(v) for v in SUPPORTED_PYTHONS[:-1]) + \
    f" and {version_text(SUPPORTED_PYTHONS[-1])}"


def check_python(version: tuple[int, ...] | None = None, executable: str | Path | None = None) -> None:
    """Stop early, with the reason and the fix, on a Python the locks are not resolved for."""
    version = tuple(version or sys.version_info[:3])
    if tuple(version[:2]) in SUPPORTED_PYTHONS:
        return
    newest = version_text(SUPPORTED_PYTHONS[-1])
    raise SystemExit(
        f"[suite] Python {version_text(version)} ({executable or sys.executable}) is not supported: "
        f"the locks (requirements/lock/) pin wheels for CPython {SUPPORTED_TEXT} (torch, "
        f"onnxruntime-openvino, ...). Run the set-up with one of those, e.g. "
        f"`make setup PYTHON=python{newest}`. No such Python here? uv installs one: "
        f"`uv python install {newest}`, then `make setup PYTHON=\"$(uv python find {newest})\"`."
    )


def this_platform() -> str | None:
    """This machine as one of PLATFORMS' names, or None when no lock has wheels for it."""
    system = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform)
    machine = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}.get(
        platform.machine().lower())
    if system is None or machine is None:
        return None
    if machine == "arm64":
        machine = "arm64" if system == "macos" else "aarch64"
    name = f"{system}-{machine}"
    return name if name in PLATFORMS else None


def unavailable_reason(env: str, where: str | None = "here") -> str | None:
    """Why ``env`` cannot be installed on this platform (None when it can)."""
    name = this_platform() if where == "here" else where
    if name in ENV_PLATFORMS[env]:
        return None
    machine = name or f"{platform.system()} {platform.machine()}"
    return (f"the {env} environment has no wheels for {machine}: {ORT_PACKAGES[env]} is published "
            f"for {', '.join(ENV_PLATFORMS[env])} only")


# --- requirements and locks --------------------------------------------------------------------


def environment_files(env: str) -> list[Path]:
    """The requirement files that make up an environment, as pyproject.toml's optional
    dependencies list them (`pip install '.[cpu]'` reads the same files)."""
    import tomllib  # Python >= 3.11; imported here so an older Python gets check_python's message

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["tool"]["setuptools"]["dynamic"]["optional-dependencies"]
    if env not in extras:
        raise SystemExit(f"[suite] pyproject.toml has no optional dependencies for {env!r}")
    return [ROOT / f for f in extras[env]["file"]]


def lock_inputs(env: str) -> list[Path]:
    """What a lock is compiled from: the environment's files and what every venv holds."""
    if env == "models":
        return [REQUIREMENTS / "models.txt"]
    return [*environment_files(env), REQUIREMENTS / "venv.txt"]


_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;]+)\s*(?:;\s*(.+))?")


def parse_pins(text: str) -> dict[str, str]:
    """``name==version`` lines (extras, markers and comments dropped) -> {canonical name: version}."""
    pins = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _PIN.fullmatch(line)
        if not match:
            raise SystemExit(f"[suite] not an exact pin: {line!r}")
        pins[canonical(match.group(1))] = match.group(3)
    return pins


def requirement_pins(env: str) -> dict[str, str]:
    """The top-level pins of an environment (its requirement files)."""
    pins: dict[str, str] = {}
    for path in environment_files(env):
        pins.update(parse_pins(path.read_text()))
    return pins


def model_packages() -> set[str]:
    """Names in requirements/models.txt (installed with --no-deps on purpose)."""
    return set(parse_pins((REQUIREMENTS / "models.txt").read_text()))


def lock_path(env: str) -> Path:
    return MODELS_LOCK if env == "models" else LOCKS / f"{env}.txt"


class LockEntry(NamedTuple):
    """One distribution of a lock: name, version, environment marker ("" = everywhere), and
    the entry's text as written (requirement line and hashes)."""

    name: str
    version: str
    marker: str
    text: str


def read_lock(path: Path) -> list[LockEntry]:
    """The entries of a lock file written by `uv pip compile --generate-hashes`."""
    if not path.is_file():
        raise SystemExit(f"[suite] {path.relative_to(ROOT)} is missing: run `make lock`")
    entries: list[LockEntry] = []
    block: list[str] = []

    def close() -> None:
        if not block:
            return
        first = block[0].rstrip("\\").strip()
        match = _PIN.fullmatch(first)
        if not match:
            raise SystemExit(f"[suite] {path.name}: not an exact pin: {first!r}")
        entries.append(LockEntry(canonical(match.group(1)), match.group(3),
                                 (match.group(4) or "").strip(), "\n".join(block)))
        block.clear()

    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():  # --hash continuation of the current entry
            block.append(line)
            continue
        close()
        block.append(line)
    close()
    return entries


def inputs_digest(env: str) -> str:
    """What a lock was compiled from: its input files' requirement lines and the options."""
    digest = hashlib.sha256(" ".join(LOCK_OPTIONS).encode())
    for path in lock_inputs(env):
        lines = sorted({raw.split("#", 1)[0].strip() for raw in path.read_text().splitlines()} - {""})
        digest.update(f"{path.name}:{lines}".encode())
    return digest.hexdigest()[:16]


def recorded_digest(env: str) -> str | None:
    match = re.search(r"^# inputs: (\w+)$", lock_path(env).read_text(), flags=re.M)
    return match.group(1) if match else None


def check_lock_is_current(env: str) -> None:
    for name in (env, "models"):
        read_lock(lock_path(name))  # fails early, with the fix, when it is missing
        if recorded_digest(name) != inputs_digest(name):
            raise SystemExit(
                f"[suite] {lock_path(name).relative_to(ROOT)} was compiled from other requirements "
                f"than requirements/ holds now: run `make lock` (or undo the change)"
            )


def setup_fingerprint(env: str, torch: str = "", python: tuple[int, ...] | None = None) -> str:
    """What a set-up of .venvs/<env> depends on: the Python it is made with (default: this one), the
    set-up's own version, the torch build, the locks and pyproject.toml."""
    python = tuple(python or sys.version_info[:3])
    digest = hashlib.sha256(f"{version_text(python)}|{SETUP_VERSION}|torch={torch}".encode())
    for path in (lock_path(env), MODELS_LOCK, ROOT / "pyproject.toml"):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_stamp(env: str) -> dict[str, str]:
    """What the last set-up of .venvs/<env> recorded: fingerprint, installer, torch build."""
    stamp = VENVS / env / STAMP
    if not stamp.is_file():
        return {}
    words = stamp.read_text().split()
    return {"fingerprint": words[0] if words else "",
            **dict(w.split("=", 1) for w in words[1:] if "=" in w)}


def stamp_is_current(env: str, torch: str | None = None, python: tuple[int, ...] | None = None) -> bool:
    """True when .venvs/<env> was set up, by this set-up, from the tree's locks (and with the
    given torch build and Python; None accepts the ones it was set up with)."""
    recorded = read_stamp(env)
    if not recorded or not venv_python(env).exists():
        return False
    torch = recorded.get("torch", "") if torch is None else torch
    python = python or venv_version(venv_python(env))
    return python is not None and recorded["fingerprint"] == setup_fingerprint(env, torch, python)


def run_checked(cmd: list[str | Path], **kwargs) -> None:
    printable = " ".join(str(c) for c in cmd)
    say(f"$ {printable}")
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"[suite] command failed with exit code {result.returncode}: {printable}")


def broken_requirements(check_output: str) -> list[str]:
    """Lines of `uv pip check` / `pip check` output about real conflicts: the dependencies that
    the model packages declare but do not need (they are installed with --no-deps) are left out."""
    ignored = model_packages()
    problems = []
    for line in check_output.splitlines():
        match = re.match(r"The package `([^`]+)`", line) or re.match(r"([A-Za-z0-9][\w.-]*) \S+ (?:requires|has)", line)
        if match and canonical(match.group(1)) not in ignored:
            problems.append(line.strip())
    return problems


# --- installers: uv (default) or pip -------------------------------------------------------------


def index_options_from_pip_config(text: str) -> list[str]:
    """uv options for the indexes in `pip config list` output (uv does not read pip's config)."""
    options: dict[str, list[str]] = {"index-url": [], "extra-index-url": [], "find-links": []}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if sep and name in options:
            for item in value.strip().strip("'\"").split():
                if item not in options[name]:
                    options[name].append(item)
    args = [f"--{name}={item}" for name, items in options.items() for item in items]
    # pip picks the best version across all its indexes; uv does so only when asked.
    return [*args, "--index-strategy", "unsafe-best-match"] if args else args


def pip_index_options() -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    return index_options_from_pip_config(result.stdout)


class Installer:
    """Makes an environment equal to its locks: ``uv`` (sync in place) or ``pip`` (a fresh venv)."""

    def __init__(self, name: str, uv: str | None = None) -> None:
        self.name = name
        self.uv = uv if name == "uv" else None
        self._index = pip_index_options() if self.uv else []

    def create(self, venv: Path, python: str | Path = sys.executable) -> None:
        if self.uv:
            run_checked([self.uv, "venv", "--quiet", "--python", python, venv])
        else:
            run_checked([python, "-m", "venv", venv])

    def install(self, python: Path, *args: str | Path) -> None:
        if self.uv:
            # Compiled like pip does, so imports do not recompile (PYTHONDONTWRITEBYTECODE).
            run_checked([self.uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", python,
                         *self._index, *args])
        else:
            run_checked([python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet", *args])

    def sync(self, python: Path, *locks: Path) -> None:
        """Exactly the locks' distributions for this interpreter and platform, hashes checked.

        uv removes what the locks do not list; pip cannot, so it is only given a fresh venv.
        """
        if self.uv:
            run_checked([self.uv, "pip", "sync", "--quiet", "--compile-bytecode", "--require-hashes",
                         "--python", python, *self._index, *locks])
        else:
            files = [arg for lock in locks for arg in ("-r", lock)]
            run_checked([python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet",
                         "--require-hashes", "--no-deps", *files])

    def check(self, python: Path) -> list[str]:
        """Dependency conflicts in the environment (the model packages' declarations left out)."""
        cmd = ([self.uv, "pip", "check", "--python", str(python)] if self.uv
               else [str(python), "-m", "pip", "check"])
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        return broken_requirements(result.stdout + result.stderr)


def bootstrap_uv() -> str | None:
    """uv at the pinned version in .venvs/.tools (pip installs it from PyPI in seconds)."""
    uv = TOOLS / "bin" / "uv"
    pins = parse_pins((REQUIREMENTS / "uv.txt").read_text())
    if uv.exists():
        return str(uv)
    say(f"installing uv {pins['uv']} into {TOOLS.relative_to(ROOT)} (once)")
    try:
        run_checked([sys.executable, "-m", "venv", TOOLS])
        run_checked([TOOLS / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "install",
                     "--quiet", f"uv=={pins['uv']}"])
    except SystemExit as failure:
        say(f"could not install uv ({failure}); using pip")
        shutil.rmtree(TOOLS, ignore_errors=True)
        return None
    return str(uv) if uv.exists() else None


def choose_installer(requested: str | None = None) -> Installer:
    """INSTALLER=pip|uv, else uv (on PATH, or bootstrapped) and pip when uv cannot be had."""
    wanted = (requested or os.environ.get("INSTALLER") or "auto").strip().lower()
    if wanted not in {"auto", "pip", "uv"}:
        raise SystemExit(f"[suite] INSTALLER={wanted!r}: choose auto, pip or uv")
    if wanted == "pip" or (wanted == "auto" and DEFAULT_INSTALLER == "pip"):
        return Installer("pip")
    uv = shutil.which("uv") or bootstrap_uv()
    if uv is None:
        if wanted == "uv":
            raise SystemExit("[suite] INSTALLER=uv but uv is neither on PATH nor installable")
        return Installer("pip")
    return Installer("uv", uv)


def uv_executable() -> str:
    installer = choose_installer("uv")
    assert installer.uv is not None
    return installer.uv


# --- CPU-only PyTorch (TORCH=cpu) ------------------------------------------------------------------


def torch_choice(env: str) -> str:
    """"cpu" when TORCH=cpu asks for PyTorch's CPU-only build and it makes a difference here."""
    wanted = os.environ.get("TORCH", "").strip().lower()
    if wanted in ("", "default", "pypi"):
        return ""
    if wanted != "cpu":
        raise SystemExit(f"[suite] TORCH={wanted!r}: leave it empty (the lock's torch) or use TORCH=cpu")
    if env not in TORCH_CPU_ENVIRONMENTS:
        raise SystemExit(f"[suite] TORCH=cpu is for the {' and '.join(TORCH_CPU_ENVIRONMENTS)} "
                         f"environments; the {env} environment needs PyTorch's CUDA build")
    if sys.platform != "linux":
        say("TORCH=cpu: PyPI's torch is already the CPU-only build here; using the lock as it is")
        return ""
    return "cpu"


def torch_cpu_plan(entries: list[LockEntry]) -> tuple[list[LockEntry], list[str]]:
    """(the lock without PyTorch's CUDA build and what only it needs, the CPU build's pins)."""
    kept = [e for e in entries if e.name not in TORCH_BUILDS and not CUDA_ONLY.match(e.name)]
    versions = {e.name: e.version for e in entries if e.name in TORCH_BUILDS}
    return kept, [f"{name}=={versions[name]}" for name in TORCH_BUILDS if name in versions]


def install_torch_cpu(env: str, python: Path, installer: Installer, workdir: Path) -> None:
    kept, pins = torch_cpu_plan(read_lock(lock_path(env)))
    reduced = workdir / f"{env}-without-cuda-torch.txt"
    reduced.write_text("\n".join(e.text for e in kept) + "\n")
    installer.sync(python, reduced, MODELS_LOCK)
    say(f"TORCH=cpu: installing {' '.join(pins)} (CPU-only build) from {TORCH_CPU_INDEX}")
    installer.install(python, "--no-deps", "--index-url", TORCH_CPU_INDEX, *pins)


# --- set-up ----------------------------------------------------------------------------------


def venv_version(python: Path) -> tuple[int, ...] | None:
    """The (major, minor, micro) of an environment's interpreter; None when it does not run."""
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return tuple(int(v) for v in out.stdout.split()) if out.returncode == 0 else None


def base_interpreter(python: Path) -> str | None:
    """The interpreter a venv was made from (its ``sys._base_executable``); None when it does not run."""
    try:
        out = subprocess.run([str(python), "-c", "import sys; print(sys._base_executable)"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def target_python(env: str) -> tuple[tuple[int, ...], str | Path]:
    """(version, interpreter) .venvs/<env> is to be made with. PYTHON= given (PYTHON_CHOSEN, set by
    the Makefile) or no usable venv: the interpreter running this script. Otherwise the existing
    venv keeps the supported Python it was made with, so a plain `make test` after
    `make setup PYTHON=python3.13` does not rebuild it with the default python3."""
    here = (tuple(sys.version_info[:3]), sys.executable)
    if os.environ.get("PYTHON_CHOSEN") or not venv_python(env).exists():
        return here
    version = venv_version(venv_python(env))
    base = base_interpreter(venv_python(env))
    if version is None or base is None or tuple(version[:2]) not in SUPPORTED_PYTHONS:
        return here
    if tuple(version[:2]) != here[0][:2]:
        say(f"keeping {(VENVS / env).relative_to(ROOT)}'s Python {version_text(version)} (the one it was made "
            f"with); `make setup PYTHON=...` makes it with another")
    return tuple(version), base


def check_available(env: str) -> None:
    if env not in ENVIRONMENTS:
        raise SystemExit(f"[suite] unknown environment {env!r}; choose from {', '.join(ENVIRONMENTS)}")
    reason = unavailable_reason(env)
    if reason:
        raise SystemExit(f"[suite] {reason}")


def setup(env: str, installer: Installer | None = None) -> Path:
    """Make .venvs/<env> equal to its lock (or use PYTHON_ENV); quick no-op when nothing changed."""
    if os.environ.get("PYTHON_ENV"):
        return adopt(env, installer)
    check_available(env)
    check_python()
    check_lock_is_current(env)
    torch = torch_choice(env)
    venv = VENVS / env
    python_version, interpreter = target_python(env)
    if stamp_is_current(env, torch, python_version):
        say(f"environment '{env}' is up to date ({venv.relative_to(ROOT)})")
        ensure_user_kernel(env)
        return venv_python(env)
    installer = installer or choose_installer()
    started = time.monotonic()
    version = venv_version(venv_python(env)) if venv.exists() else None
    if venv.exists() and (version is None or tuple(version[:2]) != tuple(python_version[:2])):
        say(f"{venv.relative_to(ROOT)} was made by another Python ({version}); recreating it")
        shutil.rmtree(venv)
    elif venv.exists() and installer.uv is None:
        say(f"pip cannot remove what the lock does not list: recreating {venv.relative_to(ROOT)}")
        shutil.rmtree(venv)
    action = "updating" if venv.exists() else "setting up (first time: a few minutes)"
    say(f"{action} environment '{env}' in {venv.relative_to(ROOT)} with {installer.name}, Python "
        f"{version_text(python_version)}, from {lock_path(env).relative_to(ROOT)}"
        + (" with PyTorch's CPU-only build" if torch else ""))
    if not venv_python(env).exists():
        installer.create(venv, interpreter)
    python = venv_python(env)
    if torch == "cpu":
        install_torch_cpu(env, python, installer, venv)
    else:
        installer.sync(python, lock_path(env), MODELS_LOCK)
    # Built with the environment's own (locked) setuptools, not a fresh download of the latest.
    installer.install(python, "--no-deps", "--no-build-isolation", "-e", ROOT)
    problems = installer.check(python)
    if problems:
        raise SystemExit("[suite] dependency conflicts:\n" + "\n".join(problems))
    register_kernel(env)
    fingerprint = setup_fingerprint(env, torch, python_version)
    (venv / STAMP).write_text(f"{fingerprint} installer={installer.name} torch={torch}\n")
    say(f"environment '{env}' equals its lock ({len(read_lock(lock_path(env)))} locked distributions "
        f"for all platforms); ready in {time.monotonic() - started:.0f} s; kernel '{kernel_name(env)}'")
    return python


# --- an existing environment: PYTHON_ENV=<prefix> ------------------------------------------------


def external_python() -> Path:
    """The interpreter of PYTHON_ENV (an environment's prefix, e.g. $CONDA_PREFIX, or a python)."""
    given = Path(os.environ["PYTHON_ENV"]).expanduser()
    for candidate in (given, given / "bin" / "python", given / "python.exe"):
        if candidate.is_file():
            return candidate.absolute()
    raise SystemExit(f"[suite] PYTHON_ENV={given}: no bin/python there (give an environment's prefix, "
                     "e.g. PYTHON_ENV=$CONDA_PREFIX)")


def probe(python: Path, code: str) -> dict:
    """Run a snippet in another interpreter (from notebooks/, as a kernel would) and read its JSON."""
    out = subprocess.run([str(python), "-c", code], cwd=ROOT / "notebooks", capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"[suite] {python} could not run a check: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


_EXTERNAL_PROBE = """
import importlib.metadata as m, importlib.util as u, json, sys
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
ort = %r
print(json.dumps({
    "version": list(sys.version_info[:3]),
    "ort": {name: version(name) for name in ort if version(name)},
    "missing": [mod for mod in ("helpers", "ipykernel", "papermill", "nbval", "pytest")
                if u.find_spec(mod) is None],
    "setuptools": u.find_spec("setuptools") is not None,
}))
"""


def external_environment(requested: str | None) -> tuple[str, Path, dict]:
    """(environment name, interpreter, probe) of PYTHON_ENV; the name follows its ONNX Runtime
    package, and must be the requested one when one was asked for."""
    python = external_python()
    facts = probe(python, _EXTERNAL_PROBE % (tuple(ORT_PACKAGES.values()),))
    check_python(tuple(facts["version"]), python)
    found = [env for env, dist in ORT_PACKAGES.items() if dist in facts["ort"]]
    if len(found) != 1:
        what = "no ONNX Runtime package" if not found else f"several ONNX Runtime packages ({found})"
        raise SystemExit(f"[suite] PYTHON_ENV={python}: {what}; install one environment's packages, "
                         f"e.g. `{python} -m pip install -e '.[cpu]'`")
    env = found[0]
    if requested and requested not in ("all", env):
        raise SystemExit(f"[suite] PYTHON_ENV holds {ORT_PACKAGES[env]}, i.e. the '{env}' environment, "
                         f"not '{requested}': pass ENV={env} / ENVS={env}")
    return env, python, facts


def external_kernel_dir() -> Path:
    return ROOT / "outputs" / "jupyter"


def write_external_kernel(env: str, python: Path, version: tuple[int, ...]) -> None:
    """The kernel `make run`/`make test` name, pointing at PYTHON_ENV's interpreter. It lives in
    outputs/jupyter (on JUPYTER_PATH for the suite's own commands only), not in your environment."""
    folder = external_kernel_dir() / "kernels" / kernel_name(env)
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": kernels.display_name(env, version), "language": "python"}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")


def adopt(requested: str, installer: Installer | None = None, *, complete: bool = False) -> Path:
    """Use PYTHON_ENV as the environment: nothing in it is changed, except by `make setup`
    (complete=True), which adds what pip's hashed install of the lock cannot: the model packages
    (no dependencies) and the editable helpers package, then registers the kernel for the user."""
    env, python, facts = external_environment(requested)
    if complete:
        installer = installer or choose_installer()
        check_lock_is_current(env)
        say(f"completing {python} as the '{env}' environment: model packages and helpers")
        installer.install(python, "--no-deps", "--require-hashes", "-r", MODELS_LOCK)
        # The environment's own setuptools builds helpers when it has one (offline); else pip's or
        # uv's isolated build fetches one.
        isolation = ["--no-build-isolation"] if facts["setuptools"] else []
        installer.install(python, "--no-deps", *isolation, "-e", ROOT)
        problems = installer.check(python)
        if problems:
            say("dependency conflicts in PYTHON_ENV (left as they are):\n  " + "\n  ".join(problems))
        run_checked([python, "-m", "ipykernel", "install", "--user", "--name", kernel_name(env),
                     "--display-name", kernels.display_name(env, tuple(facts["version"]))],
                    stdout=subprocess.DEVNULL)
        facts = probe(python, _EXTERNAL_PROBE % (tuple(ORT_PACKAGES.values()),))
    if facts["missing"]:
        raise SystemExit(
            f"[suite] PYTHON_ENV={python} lacks {', '.join(facts['missing'])}: from the repository "
            f"root run `{python} -m pip install -e '.[{env}]'` (or `make setup PYTHON_ENV=...`)"
        )
    write_external_kernel(env, python, tuple(facts["version"]))
    say(f"using the existing environment {python} (Python {version_text(tuple(facts['version']))}, "
        f"'{env}'); it is used as it is, not compared with {lock_path(env).relative_to(ROOT)}")
    return python


# --- kernels ---------------------------------------------------------------------------------


def kernel_display_name(env: str) -> str:
    """'Python X.Y (inference: env)' with the version of the environment's own interpreter."""
    return kernels.display_name(env, venv_version(venv_python(env)) or sys.version_info[:3])


def user_kernel_file(env: str) -> Path | None:
    """kernel.json of the user-level kernel ~/.local/share/jupyter (JUPYTER_DATA_DIR) would hold."""
    out = subprocess.run(
        [str(venv_python(env)), "-c", "from jupyter_core.paths import jupyter_data_dir as d; print(d())"],
        capture_output=True, text=True,
    )
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return Path(out.stdout.strip()) / "kernels" / kernel_name(env) / "kernel.json"


def register_kernel(env: str) -> None:
    """Register the environment's kernel inside the venv and for the user, so every Jupyter front
    end (VS Code, a system JupyterLab, `jupyter kernelspec list`) finds it."""
    python = venv_python(env)
    display = kernel_display_name(env)
    for scope in ("--sys-prefix", "--user"):
        run_checked(
            [python, "-m", "ipykernel", "install", scope, "--name", kernel_name(env),
             "--display-name", display],
            stdout=subprocess.DEVNULL,
        )
    say(f"kernel '{kernel_name(env)}' ({display}) registered for this environment and your user")


def ensure_user_kernel(env: str) -> None:
    """After an up-to-date check: add the user-level kernel if it is missing or points at an
    interpreter that no longer exists; leave one that points at another checkout (and say so)."""
    path = user_kernel_file(env)
    if path is None:
        return
    target = None
    if path.is_file():
        try:
            target = Path(json.loads(path.read_text())["argv"][0])
        except (ValueError, KeyError, IndexError):
            target = None
    if target is not None and target.exists():
        if target.resolve() != venv_python(env).resolve() and target != venv_python(env):
            say(f"your user's kernel '{kernel_name(env)}' runs {target}; `make kernels` points it "
                "at this checkout")
        return
    register_kernel(env)


def cmd_kernels(args: argparse.Namespace) -> int:
    for env in selected_envs(args.env):
        if venv_python(env).exists():
            register_kernel(env)
        else:
            say(f"environment '{env}' is not set up: `make setup ENVS={env}` creates it and its kernel")
    return 0


# --- locks -----------------------------------------------------------------------------------


LOCK_HEADER = """\
# Lock for the '{env}' {what}: every distribution at an exact version, with its hashes and
# the environment markers that say where it applies, for CPython {pythons} on any platform
# (resolved against PyPI by uv). Wheels exist for: {platforms}.
# `make setup` makes an environment equal to it (uv pip sync). Do not edit by hand: change
# requirements/ and run `make lock`.
# inputs: {digest}
"""


def write_lock(env: str, uv: str) -> None:
    """Compile one lock with uv's universal resolver (existing pins are kept where they still fit)."""
    started = time.monotonic()
    path = lock_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd: list[str | Path] = [uv, "pip", "compile", "--quiet", *LOCK_OPTIONS,
                             *(p.relative_to(ROOT) for p in lock_inputs(env)), "-o", path.relative_to(ROOT)]
    if env == "models":
        cmd.append("--no-deps")  # data packages: their declared dependencies are not needed
    elif env != "cpu":
        cmd += ["-c", lock_path("cpu").relative_to(ROOT)]  # shared packages agree with the cpu lock
    run_checked(cmd)
    text = path.read_text()
    body = text[text.index("\n", text.index("make lock")) + 1:] if "make lock" in text else text
    platforms = ENV_PLATFORMS.get(env, PLATFORMS)
    header = LOCK_HEADER.format(
        env=env, what="model packages (installed without dependencies)" if env == "models" else "environment",
        pythons=SUPPORTED_TEXT, platforms=", ".join(platforms), digest=inputs_digest(env))
    path.write_text(header + body)
    say(f"wrote {path.relative_to(ROOT)}: {len(read_lock(path))} entries in {time.monotonic() - started:.0f} s")


def resolve_for_platform(uv: str, lock: Path, where: str, python: tuple[int, int],
                         no_deps: bool = False, offline: bool = False) -> subprocess.CompletedProcess:
    """`uv pip compile` of a lock for one platform and Python: fails when a locked distribution has
    no wheel (or sdist) there; its output lists what that platform installs. Against PyPI (the
    index the locks come from), or uv's cache alone with ``offline``."""
    variables = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": MACOS_TARGET}
    cmd = [uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", str(lock),
           "--python-platform", PLATFORMS[where], "--python-version", version_text(python)]
    cmd += (["--no-deps"] if no_deps else []) + (["--offline"] if offline else [])
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=variables, timeout=600)


def check_lock_platforms(env: str, uv: str) -> list[str]:
    """Every platform and Python the environment claims: the lock must resolve there."""
    failures = []
    for where in ENV_PLATFORMS["cpu" if env == "models" else env]:
        for python in SUPPORTED_PYTHONS:
            result = resolve_for_platform(uv, lock_path(env), where, python, no_deps=env == "models")
            if result.returncode != 0:
                failures.append(f"{env} on {where}, Python {version_text(python)}: "
                                f"{result.stderr.strip()[-800:]}")
    return failures


def cmd_lock(args: argparse.Namespace) -> int:
    """cpu first (the others are constrained by it), then gpu and openvino, and the model packages;
    then each lock is resolved for every platform and Python it claims."""
    check_python()
    envs = selected_envs(args.env)
    uv = uv_executable()
    for env in [e for e in ENVIRONMENTS if e in envs] + ["models"]:
        write_lock(env, uv)
    failures = [line for env in [*envs, "models"] for line in check_lock_platforms(env, uv)]
    if failures:
        raise SystemExit("[suite] a lock does not resolve where it should:\n" + "\n".join(failures))
    say("every lock resolves for each platform and Python it claims")
    return 0


def selected_envs(value: str) -> list[str]:
    names = list(ENVIRONMENTS) if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in ENVIRONMENTS]
    if unknown:
        raise SystemExit(f"[suite] unknown environment(s) {unknown}; choose from {', '.join(ENVIRONMENTS)} or all")
    return names


def child_env(env: str, python: Path) -> dict[str, str]:
    variables = dict(os.environ)
    variables["INFERENCE_SUITE_ENV"] = env
    variables["PATH"] = f"{python.parent}{os.pathsep}{variables.get('PATH', '')}"
    if os.environ.get("PYTHON_ENV"):
        jupyter_paths = [str(external_kernel_dir())]
    else:
        # This checkout's kernels (registered inside each venv) come first, before your user's
        # kernels of the same name, which may point at another checkout.
        jupyter_paths = [str(VENVS / e / "share" / "jupyter") for e in ENVIRONMENTS if (VENVS / e).exists()]
    variables["JUPYTER_PATH"] = os.pathsep.join(jupyter_paths)
    return variables


def cmd_setup(args: argparse.Namespace) -> int:
    if os.environ.get("PYTHON_ENV"):
        adopt(args.env, complete=True)
        return 0
    installer = choose_installer()
    for env in selected_envs(args.env):
        reason = unavailable_reason(env)
        if reason and args.env == "all":
            say(f"skipping: {reason}")
            continue
        setup(env, installer)
    return 0


def build_models(python: Path, env: str, profile: str, json_path: Path | None = None) -> int:
    """Make the one-time artifacts the notebooks need (python -m helpers.models.build), so no
    lesson waits on a fine-tune or a conversion; a failed build is reported, and the notebook that
    needs it builds it itself with a banner."""
    say(f"one-time builds for the {profile} profile (quick when cached)")
    cmd = [str(python), "-m", "helpers.models.build", "--profile", profile]
    if json_path is not None:
        cmd += ["--json", str(json_path)]
    code = subprocess.run(cmd, cwd=ROOT, env=child_env(env, python)).returncode
    if code != 0:
        say(f"a one-time build failed (exit {code}); the notebooks that need it will build it themselves")
    return code


def cmd_models(args: argparse.Namespace) -> int:
    env = selected_envs(args.env)[0]
    return build_models(setup(env), env, args.profile)


def cmd_run(args: argparse.Namespace) -> int:
    env = selected_envs(args.env)
    if len(env) != 1:
        raise SystemExit("[suite] run executes the series in one environment; pass --env cpu|gpu|openvino")
    start = time.perf_counter()
    python = setup(env[0])
    environment_seconds = time.perf_counter() - start
    out_dir = Path(args.output) if args.output else Path(
        os.environ.get("INFERENCE_SUITE_OUTPUT", ROOT / "outputs")) / f"run-{env[0]}"
    build_json = out_dir / "builds.json"
    build_json.unlink(missing_ok=True)
    build_status = build_models(python, env[0], args.profile, build_json)
    steps = [{"name": f"environment '{env[0]}'", "status": "ready",
              "seconds": round(environment_seconds, 1)}]
    try:
        steps += json.loads(build_json.read_text())["steps"]
    except (OSError, ValueError, KeyError):
        steps.append({"name": "one-time builds", "status": f"FAILED (exit {build_status})", "seconds": 0})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "setup.json").write_text(json.dumps({"steps": steps}, indent=1))
    cmd = [python, "-m", "helpers.course.series", "--env", env[0], "--profile", args.profile]
    if args.only:
        cmd += ["--only", *args.only]
    if args.output:
        cmd += ["--output", args.output]
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=child_env(env[0], python)).returncode


SUMMARY_LINE = re.compile(r"^=+ (?P<body>.*?) in [\d.]+s")


def pytest_command(env: str, python: Path, extra: list[str]) -> list[str | Path]:
    """pytest over the unit tests and the notebooks (or the paths among ``extra``), each notebook
    in the environment's kernel."""
    targets = [] if any((ROOT / a.split("::")[0]).exists() for a in extra) else ["tests", "notebooks"]
    return [python, "-m", "pytest", *targets, "--nbval-lax", "--nbval-kernel-name", kernel_name(env),
            "-p", "no:cacheprovider", *extra]


def cmd_test(args: argparse.Namespace) -> int:
    if os.environ.get("PYTHON_ENV"):
        env, _, _ = external_environment(args.env)
        runs = [env]
    else:
        runs = []
        for env in selected_envs(args.env):
            reason = unavailable_reason(env)
            if reason:
                say(f"skipping environment '{env}': {reason}")
            else:
                runs.append(env)
        if not runs:
            say("no requested environment can be installed on this platform: nothing was tested")
            return 1
    installer = None if os.environ.get("PYTHON_ENV") else choose_installer()
    pythons = {env: setup(env, installer) for env in runs}
    if not any((ROOT / a.split("::")[0]).exists() for a in args.pytest_args):  # the whole suite
        build_models(pythons[runs[0]], runs[0], "test")
    totals = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failed_envs = []
    for env in runs:
        say(f"running tests in environment '{env}' ({pythons[env]})")
        proc = subprocess.Popen(
            [str(c) for c in pytest_command(env, pythons[env], args.pytest_args)], cwd=ROOT,
            env=child_env(env, pythons[env]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1,
        )
        last_summary = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            if SUMMARY_LINE.match(line.strip()):
                last_summary = line
        code = proc.wait()
        for count, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", last_summary):
            totals["errors" if word.startswith("error") else word] += int(count)
        if code != 0:
            failed_envs.append(f"{env} (exit {code})")
    say("environments tested: " + ", ".join(runs))
    if failed_envs:
        say("FAILED in: " + ", ".join(failed_envs))
    failed = totals["failed"] + totals["errors"]
    print(f"all: {totals['passed']} passed, {failed} failed, {totals['skipped']} skipped", flush=True)
    return 1 if failed_envs else 0


def cmd_lab(args: argparse.Namespace) -> int:
    envs = selected_envs(args.env)
    python = setup(envs[0])
    for env in envs[1:]:
        setup(env)
    jupyter = python.parent / "jupyter"
    say("starting JupyterLab; pick the kernel 'Python 3.x (inference: ...)' for each notebook")
    return subprocess.run([str(jupyter), "lab", "notebooks", *lab_options(python)], cwd=ROOT,
                          env=child_env(envs[0], python)).returncode


def lab_options(python: Path) -> list[str]:
    """Kernels talk to JupyterLab over CurveZMQ-encrypted sockets where pyzmq can (ipykernel's spec
    declares support; unencrypted, each kernel logs a warning in the terminal)."""
    out = subprocess.run([str(python), "-c", "import zmq; print(zmq.has('curve'))"],
                         capture_output=True, text=True, timeout=60)
    return ["--KernelManager.transport_encryption=auto"] if out.stdout.strip() == "True" else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup", help="create/update the virtual environment(s) and Jupyter kernels")
    p.add_argument("--env", default="all")
    p.set_defaults(func=cmd_setup)
    p = sub.add_parser("models", help="build the one-time artifacts the notebooks need (make run does)")
    p.add_argument("--env", default="cpu")
    p.add_argument("--profile", default="all", choices=["full", "test", "all"])
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("run", help="execute the notebook series with papermill and write a summary")
    p.add_argument("--env", default="cpu")
    p.add_argument("--profile", default="full", choices=["full", "test"])
    p.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. 00 04")
    p.add_argument("--output", help="output folder (default outputs/run-<env>)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("test", help="unit tests and every notebook in the test profile, per environment")
    p.add_argument("--env", default="all")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("lab", help="open JupyterLab with every environment's kernel")
    p.add_argument("--env", default="cpu")
    p.set_defaults(func=cmd_lab)
    p = sub.add_parser("kernels", help="register the environments' kernels (venv and your user)")
    p.add_argument("--env", default="all")
    p.set_defaults(func=cmd_kernels)
    p = sub.add_parser("lock", help="regenerate requirements/lock/*.txt with uv's universal resolver")
    p.add_argument("--env", default="all")
    p.set_defaults(func=cmd_lock)
    args = parser.parse_args(argv)
    if getattr(args, "pytest_args", None) and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
