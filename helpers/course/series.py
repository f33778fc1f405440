"""The main job: execute the notebook series with papermill and write a summary.

``make run`` calls ``python -m helpers.course.series --env cpu --profile full`` inside the environment.
For every notebook that declares the environment in its metadata it writes the executed copy,
its recorded key results (see :mod:`helpers.course.results`) and finally ``summary.md`` and
``summary.json`` with status, time and key results per notebook. Every executed notebook goes
through the output checks of :mod:`helpers.course.output_checks` (the same ones ``make test`` runs); a
notebook with problems fails and the summary lists them. Exit code 1 if any failed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from helpers.course import output_checks
from helpers.course.notebook_info import NotebookInfo, discover
from helpers.course.results import ENV_VAR, load
from helpers.display import BATCH_ENV
from helpers.kernels import kernel_name
from helpers.paths import output_root


@dataclass
class NotebookRun:
    """Outcome of one executed notebook."""

    notebook: str
    title: str
    status: str  # "passed" | "failed"
    seconds: float
    executed: str
    error: str = ""
    results: dict[str, Any] = field(default_factory=dict)
    deprecations: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what the output checks found


@functools.cache
def encrypted_kernel_manager() -> type:
    """jupyter_client's AsyncKernelManager that asks for CurveZMQ transport encryption when the kernel's
    spec declares it (ipykernel's does) and pyzmq has it: the kernel then talks over encrypted sockets
    and does not log its "running over TCP without encryption" warning once per notebook."""
    import zmq
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class EncryptedKernelManager(AsyncKernelManager):
        @default("transport_encryption")
        def _encrypt_when_possible(self) -> str:
            return "auto" if zmq.has("curve") else "disabled"

    return EncryptedKernelManager


def execute(info: NotebookInfo, env: str, profile: str, out_dir: Path) -> NotebookRun:
    """Run one notebook with papermill in the environment's kernel; never raises on cell errors."""
    import papermill as pm

    executed = out_dir / "executed" / info.path.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results" / f"{info.stem}.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.unlink(missing_ok=True)
    # The kernel inherits these: results go to this run's file, and progress bars save their final
    # state (nobody watches the kernel). Restored afterwards: the caller's environment is left as it was.
    saved = {name: os.environ.get(name) for name in (ENV_VAR, BATCH_ENV)}
    os.environ[ENV_VAR] = str(results_path)
    os.environ[BATCH_ENV] = "1"
    before = output_checks.snapshot()
    started = time.monotonic()
    status, error = "passed", ""
    try:
        pm.execute_notebook(
            str(info.path),
            str(executed),
            parameters={"profile": profile},
            kernel_name=kernel_name(env),
            cwd=str(info.path.parent),
            progress_bar=False,
            extra_arguments=[f"--ext={output_checks.__name__}"],  # reports figures never displayed
            kernel_manager_class=encrypted_kernel_manager(),
        )
    except pm.PapermillExecutionError as exc:
        status, error = "failed", f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # noqa: BLE001 - a broken kernel must not stop the series
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    seconds = round(time.monotonic() - started, 1)
    written = output_checks.written_files(before, output_checks.snapshot())
    deprecations, problems = [], []
    if executed.exists():
        import nbformat

        nb = nbformat.read(executed, as_version=4)
        deprecations = output_checks.deprecation_warnings(nb)
        problems = [str(p) for p in output_checks.check_notebook(nb, legacy=info.legacy, written=written)]
    if problems and status == "passed":
        status = "failed"
        error = f"{len(problems)} problem(s) in the executed outputs; first: {problems[0]}"
    return NotebookRun(
        notebook=info.path.name,
        title=info.title,
        status=status,
        seconds=seconds,
        executed=str(executed),
        error=error,
        results=load(results_path),
        deprecations=deprecations,
        problems=problems,
    )


#: At most this many items of a list or mapping are shown in a summary cell; the rest are counted.
SUMMARY_ITEMS = 6
#: A summary cell is cut after this many characters (the whole value is in ``results/<nb>.json``).
SUMMARY_CHARS = 240


def _plain(value: Any, depth: int = 0) -> str:
    """A recorded value as text a person reads: numbers to 3 significant digits, mappings as
    ``key: value`` pairs, nested ones in parentheses, long lists and mappings shortened."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        items = [f"{k}: {_plain(v, depth + 1)}" for k, v in list(value.items())[:SUMMARY_ITEMS]]
        more = len(value) - SUMMARY_ITEMS
    elif isinstance(value, (list, tuple)):
        items = [_plain(v, depth + 1) for v in list(value)[:SUMMARY_ITEMS]]
        more = len(value) - SUMMARY_ITEMS
    else:
        return str(value)
    text = ", ".join(items) + (f", … {more} more" if more > 0 else "")
    return f"({text})" if depth else text


def _format_value(entry: dict[str, Any]) -> str:
    text = f"{_plain(entry.get('value'))} {entry.get('unit', '')}".strip()
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1].rstrip() + "…"


def _setup_lines(out_dir: Path) -> list[str]:
    """The set-up steps ``make run`` timed before the notebooks (``setup.json``), as a table."""
    try:
        steps = json.loads((out_dir / "setup.json").read_text()).get("steps", [])
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return []
    if not steps:
        return []
    lines = ["## Set-up", "", "| step | status | time (s) |", "|---|---|---|"]
    for step in steps:
        lines.append(f"| {step.get('name', '?')} | {step.get('status', '?')} | "
                     f"{float(step.get('seconds', 0)):.0f} |")
    total = sum(float(step.get("seconds", 0)) for step in steps)
    return [*lines, "", f"Set-up took {total:.0f} s in all, before any notebook ran.", ""]


def write_summary(runs: list[NotebookRun], env: str, profile: str, out_dir: Path) -> Path:
    """Write summary.json and summary.md; return the markdown path."""
    from helpers.hardware import cpu_info, fingerprint, package_versions

    meta = {"environment": env, "profile": profile, "cpu": cpu_info()["model"],
            "cores": cpu_info()["logical_cores"], "packages": package_versions(),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    (out_dir / "summary.json").write_text(
        json.dumps({"meta": meta, "notebooks": [asdict(r) for r in runs]}, indent=2, default=str)
    )
    passed = sum(r.status == "passed" for r in runs)
    stack = fingerprint()  # installed packages only; ONNX Runtime under its distribution's own name
    installed = {"python": stack["python"], **stack["packages"]}
    notebook_seconds = sum(r.seconds for r in runs)
    lines = [
        f"# Notebook series — environment `{env}`, profile `{profile}`",
        "",
        f"{passed} of {len(runs)} notebooks passed on {meta['cpu']} ({meta['cores']} cores), "
        f"{meta['finished']}.",
        "",
        "Versions: " + ", ".join(f"{name} {version}" for name, version in installed.items()) + ".",
        "",
        *_setup_lines(out_dir),
        "## Notebooks",
        "",
        f"Executing the notebooks took {notebook_seconds:.0f} s in all.",
        "",
        "| notebook | status | time (s) | key results |",
        "|---|---|---|---|",
    ]
    for r in runs:
        key_results = "<br>".join(
            f"**{k}**: {_format_value(v)}".replace("|", "&#124;") for k, v in r.results.items()
        )
        status = "✅ passed" if r.status == "passed" else f"❌ failed — {r.error}".replace("|", "&#124;")
        if r.deprecations and not any("[deprecation]" in p for p in r.problems):
            status += f" ({len(r.deprecations)} deprecation warnings: legacy lesson)"
        lines.append(f"| {r.notebook} | {status} | {r.seconds:.0f} | {key_results or '-'} |")
    with_problems = [r for r in runs if r.problems]
    if with_problems:
        lines += ["", "## Problems in the executed outputs", ""]
        for r in with_problems:
            lines.append(f"**{r.notebook}** ({len(r.problems)}):")
            lines += [f"- {p.replace('|', '&#124;')}" for p in r.problems]
            lines.append("")
    lines += ["", "Executed notebooks are in `executed/`; per-notebook results in `results/`."]
    path = out_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", required=True, choices=["cpu", "gpu", "openvino"])
    parser.add_argument("--profile", default="full", choices=["full", "test"])
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--output", help="default: outputs/run-<env>")
    args = parser.parse_args(argv)
    out_dir = Path(args.output) if args.output else output_root() / f"run-{args.env}"
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = discover(args.env, args.only)
    if not notebooks:
        print(f"no notebooks for environment {args.env!r} (filter: {args.only})", file=sys.stderr)
        return 1
    from tqdm.auto import tqdm

    runs = []
    bar = tqdm(notebooks, desc=f"notebooks ({args.env}, {args.profile})", unit="nb")
    for info in bar:
        bar.set_postfix_str(info.stem)
        run = execute(info, args.env, args.profile, out_dir)
        tqdm.write(f"{'PASS' if run.status == 'passed' else 'FAIL'} {run.notebook} "
                   f"({run.seconds:.0f} s) {run.error}")
        runs.append(run)
    summary = write_summary(runs, args.env, args.profile, out_dir)
    print(summary.read_text())
    print(f"summary: {summary}")
    return 0 if all(r.status == "passed" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
