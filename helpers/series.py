"""The main job: execute the notebook series with papermill and write a summary.

``make run`` calls ``python -m helpers.series --env cpu --profile full`` inside the environment.
For every notebook that declares the environment in its metadata it writes the executed copy,
its recorded key results (see :mod:`helpers.results`) and finally ``summary.md`` and
``summary.json`` with status, time and key results per notebook. Every executed notebook goes
through the output checks of :mod:`helpers.output_checks` (the same ones ``make test`` runs); a
notebook with problems fails and the summary lists them. Exit code 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from helpers import output_checks
from helpers.kernels import kernel_name
from helpers.paths import REPO_ROOT, output_root
from helpers.results import ENV_VAR, load

NOTEBOOKS = REPO_ROOT / "notebooks"


@dataclass
class NotebookInfo:
    """A notebook of the series and what its metadata says about it."""

    path: Path
    title: str
    environments: list[str]
    minutes: int | None
    teaches: str
    legacy: bool = False  # a legacy lesson may show deprecation warnings (TorchScript, old exporter)
    prerequisites: list[str] = field(default_factory=list)  # notebook numbers to do first, e.g. ["01"]
    short_title: str = ""  # the name in the README's series map and in "NN — Title" references

    @property
    def stem(self) -> str:
        return self.path.stem


def read_info(path: Path) -> NotebookInfo:
    """Title (first markdown heading) and the ``inference_suite`` metadata of a notebook."""
    nb = json.loads(Path(path).read_text())
    meta = nb.get("metadata", {}).get("inference_suite", {})
    title = path.stem
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", ""))
            for line in source.splitlines():
                if line.startswith("# "):
                    title = line[2:].strip()
                    break
            break
    return NotebookInfo(
        path=Path(path),
        title=title,
        environments=list(meta.get("environments", [])),
        minutes=meta.get("minutes"),
        teaches=meta.get("teaches", ""),
        legacy=bool(meta.get("legacy", False)),
        prerequisites=[str(p) for p in meta.get("prerequisites", [])],
        short_title=str(meta.get("short_title", "")),
    )


def discover(env: str | None = None, only: list[str] | None = None) -> list[NotebookInfo]:
    """The series in order; filtered to one environment and/or notebook number prefixes."""
    infos = [read_info(p) for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]
    if env:
        infos = [i for i in infos if env in i.environments]
    if only:
        infos = [i for i in infos if any(i.stem.startswith(prefix) for prefix in only)]
    return infos


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


def execute(info: NotebookInfo, env: str, profile: str, out_dir: Path) -> NotebookRun:
    """Run one notebook with papermill in the environment's kernel; never raises on cell errors."""
    import papermill as pm

    executed = out_dir / "executed" / info.path.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results" / f"{info.stem}.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.unlink(missing_ok=True)
    os.environ[ENV_VAR] = str(results_path)
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
        )
    except pm.PapermillExecutionError as exc:
        status, error = "failed", f"cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # noqa: BLE001 - a broken kernel must not stop the series
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        os.environ.pop(ENV_VAR, None)
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


def _format_value(entry: dict[str, Any]) -> str:
    value, unit = entry.get("value"), entry.get("unit", "")
    if isinstance(value, float):
        value = f"{value:.3g}"
    elif isinstance(value, dict):
        value = ", ".join(
            f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}" for k, v in value.items()
        )
    return f"{value} {unit}".strip()


def write_summary(runs: list[NotebookRun], env: str, profile: str, out_dir: Path) -> Path:
    """Write summary.json and summary.md; return the markdown path."""
    from helpers.hardware import cpu_info, package_versions

    meta = {"environment": env, "profile": profile, "cpu": cpu_info()["model"],
            "cores": cpu_info()["logical_cores"], "packages": package_versions(),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    (out_dir / "summary.json").write_text(
        json.dumps({"meta": meta, "notebooks": [asdict(r) for r in runs]}, indent=2, default=str)
    )
    passed = sum(r.status == "passed" for r in runs)
    lines = [
        f"# Notebook series — environment `{env}`, profile `{profile}`",
        "",
        f"{passed} of {len(runs)} notebooks passed on {meta['cpu']} ({meta['cores']} cores), "
        f"{meta['finished']}.",
        "",
        "| notebook | status | time (s) | key results |",
        "|---|---|---|---|",
    ]
    for r in runs:
        key_results = "<br>".join(f"**{k}**: {_format_value(v)}" for k, v in r.results.items())
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
