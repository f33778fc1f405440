"""Build a small static site of the executed notebooks: one HTML page each plus an index.

``make site`` (``python -m helpers.course.site``) renders what the main job wrote to
``outputs/run-<env>/executed/`` for every environment that has been run, into ``outputs/site/``.
The index lists each notebook with what it teaches, the time a learner needs, the environment it
ran in and its status.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path

from helpers.course.notebook_info import read_info
from helpers.paths import output_root


def render_notebook(executed: Path, target: Path) -> Path:
    """Render one executed notebook to a standalone HTML page."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    return target


def _statuses(run_dir: Path) -> dict[str, dict]:
    try:
        data = json.loads((run_dir / "summary.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {entry["notebook"]: entry for entry in data.get("notebooks", [])}


def build(runs_root: Path | None = None, site_dir: Path | None = None) -> Path:
    """Render every ``run-<env>/executed/*.ipynb`` under ``runs_root``; return the index path."""
    runs_root = runs_root or output_root()
    site_dir = site_dir or output_root() / "site"
    rows = []
    for run_dir in sorted(runs_root.glob("run-*")):
        env = run_dir.name.removeprefix("run-")
        statuses = _statuses(run_dir)
        for executed in sorted((run_dir / "executed").glob("*.ipynb")):
            page = render_notebook(executed, site_dir / env / f"{executed.stem}.html")
            info = read_info(executed)
            entry = statuses.get(executed.name, {})
            rows.append(
                (info, env, page.relative_to(site_dir), entry.get("status", "unknown"),
                 entry.get("seconds"))
            )
    if not rows:
        raise FileNotFoundError(
            f"no executed notebooks under {runs_root}/run-*/executed — run `make run` first"
        )
    lines = []
    for info, env, page, status, seconds in rows:
        mark = {"passed": "✅", "failed": "❌"}.get(status, "•")
        ran = f"{seconds:.0f} s" if isinstance(seconds, (int, float)) else "-"
        lines.append(
            f"<tr><td><a href='{html.escape(str(page))}'>{html.escape(info.title)}</a></td>"
            f"<td>{html.escape(info.teaches)}</td><td>{info.minutes or '-'} min</td>"
            f"<td>{html.escape(env)}</td><td>{mark} {html.escape(status)} ({ran})</td></tr>"
        )
    index = site_dir / "index.html"
    site_dir.mkdir(parents=True, exist_ok=True)
    index.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>PyTorch inference, measured</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto}"
        "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;"
        "padding:6px 8px;text-align:left;vertical-align:top}</style></head><body>"
        "<h1>PyTorch inference, measured — executed notebooks</h1>"
        "<table><tr><th>notebook</th><th>what it teaches</th><th>learner time</th>"
        "<th>environment</th><th>status (run time)</th></tr>"
        + "".join(lines)
        + "</table></body></html>",
        encoding="utf-8",
    )
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, help="folder holding run-<env>/ (default: outputs/)")
    parser.add_argument("--out", type=Path, help="site folder (default: outputs/site)")
    args = parser.parse_args(argv)
    try:
        index = build(args.runs, args.out)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"site: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
