"""The main job: discovery, papermill execution with parameters, and the summary."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager

from helpers import envreport, kernels
from helpers.course import notebook_info, output_checks, series


def kernel_for_this_env() -> str:
    name = kernels.kernel_name(envreport.environment_name())
    if name not in KernelSpecManager().find_kernel_specs():
        pytest.skip(f"kernel {name} is not registered (run `make setup`)")
    return name


def synthetic(tmp_path: Path, stem: str, params: str, *sources: str, legacy: bool = False) -> series.NotebookInfo:
    """A one-off notebook for the main job: a ``parameters`` cell (``params``), then one cell per source."""
    kernel_for_this_env()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(kernels.STANDARD_KERNELSPEC)
    parameters = nbformat.v4.new_code_cell(params)
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, *(nbformat.v4.new_code_cell(source) for source in sources)]
    path = tmp_path / f"{stem}.ipynb"
    nbformat.write(nb, path)
    return series.NotebookInfo(path=path, title=stem.split("_", 1)[1], environments=["cpu"], minutes=1,
                               teaches="-", legacy=legacy)


def test_discover_filters_by_environment_and_number() -> None:
    everything = series.discover()
    assert everything and everything[0].stem.startswith("00_")
    assert [i.stem for i in series.discover(only=["00"])] == ["00_environment_check"]
    for env in ("cpu", "gpu", "openvino"):
        assert all(env in i.environments for i in series.discover(env))
    assert all(i.title and i.teaches for i in everything)


def test_notebook_00_runs_with_injected_parameters(tmp_path: Path) -> None:
    kernel_for_this_env()
    env = envreport.environment_name()
    info = series.discover(only=["00"])[0]
    run = series.execute(info, env, "test", tmp_path)
    assert run.status == "passed", run.error
    executed = nbformat.read(run.executed, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and 'profile = "test"' in injected[0].source
    assert run.results["environment"]["value"] == env


def test_a_failing_notebook_is_reported_not_raised(tmp_path: Path) -> None:
    info = synthetic(tmp_path, "99_broken", "profile = 'full'", "assert profile == 'full', 'profile was ' + profile")
    run = series.execute(info, envreport.environment_name(), "test", tmp_path / "out")
    assert run.status == "failed"
    assert "AssertionError" in run.error and "profile was test" in run.error
    summary = series.write_summary([run], "cpu", "test", tmp_path / "out")
    text = summary.read_text()
    assert "❌ failed" in text and "99_broken.ipynb" in text
    assert f"python {platform.python_version()}, torch {metadata.version('torch')}" in text  # what ran, named
    data = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert data["notebooks"][0]["status"] == "failed"


@pytest.mark.parametrize("before", [None, "1", "0"])
def test_execute_sets_batch_mode_for_the_kernel_and_leaves_the_callers_environment_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: str | None) -> None:
    """The kernel runs with INFERENCE_SUITE_BATCH=1 (bars save their final state); afterwards the
    caller's value is back, so notebooks that nbval runs later in the same process keep it."""
    from helpers.display import BATCH_ENV

    if before is None:
        monkeypatch.delenv(BATCH_ENV, raising=False)
    else:
        monkeypatch.setenv(BATCH_ENV, before)
    info = synthetic(tmp_path, "98_batch", "profile = 'full'",
                     f"import os\nassert os.environ.get({BATCH_ENV!r}) == '1', os.environ.get({BATCH_ENV!r})")
    run = series.execute(info, envreport.environment_name(), "test", tmp_path / "out")
    assert run.status == "passed", run.error
    assert os.environ.get(BATCH_ENV) == before


@pytest.mark.parametrize("legacy", [False, True])
def test_deprecation_warnings_fail_only_outside_legacy_lessons(tmp_path: Path, legacy: bool) -> None:
    info = synthetic(tmp_path, "98_warns", "profile = 'full'",
                     "import warnings\nwarnings.warn('old_api() is deprecated', FutureWarning)", legacy=legacy)
    run = series.execute(info, envreport.environment_name(), "test", tmp_path / "out")
    assert run.deprecations == ["FutureWarning: old_api() is deprecated"]
    assert run.status == ("passed" if legacy else "failed")
    if not legacy:
        assert "outside a legacy lesson" in run.error


def test_papermill_profile_parameter_alone_changes_derived_settings(tmp_path: Path) -> None:
    """The parameters cell holds literals; settings derived in the next cell follow `-p profile`."""
    info = synthetic(tmp_path, "97_derived", 'profile = "full"\nruns = None',
                     "from helpers.course.settings import by_profile\n"
                     "runs = by_profile(runs, profile, test=1, full=100)",
                     "assert (profile, runs) == ('test', 1), (profile, runs)")
    run = series.execute(info, envreport.environment_name(), "test", tmp_path / "out")
    assert run.status == "passed", run.error


def test_every_parameters_cell_is_literal_only() -> None:
    """papermill can only override what the parameters cell assigns as a literal."""
    import ast

    for info in series.discover():
        nb = nbformat.read(info.path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        for node in ast.parse(cell.source).body:
            assert isinstance(node, ast.Assign), f"{info.stem}: only assignments in the parameters cell"
            ast.literal_eval(node.value)  # raises ValueError on anything but a literal


def test_output_problems_fail_a_notebook_and_are_listed_in_the_summary(tmp_path: Path) -> None:
    """The main job runs the same output checks as make test, with the figure watcher in the kernel."""
    info = synthetic(tmp_path, "96_noisy", "profile = 'full'", "profile == 'test'",
                     "from matplotlib.figure import Figure\nlost = Figure()\nlost.add_subplot().plot([1, 2]);",
                     "print('\\x1b[31mred\\x1b[0m')")
    run = series.execute(info, envreport.environment_name(), "test", tmp_path / "out")
    assert run.status == "failed" and "problem(s) in the executed outputs" in run.error
    found = "\n".join(run.problems)
    assert "[bare-result]" in found and "[ansi]" in found
    assert "[figure-not-shown]" in found and "`lost`" in found
    text = series.write_summary([run], "cpu", "test", tmp_path / "out").read_text()
    assert "## Problems in the executed outputs" in text and "[figure-not-shown]" in text


def test_papermill_cli_alone_runs_a_real_notebook_in_the_test_profile(tmp_path: Path) -> None:
    """`papermill notebooks/00_... out.ipynb -p profile test -k inference-<env>`: no harness, no variables."""
    kernel = kernel_for_this_env()
    papermill = Path(sys.executable).with_name("papermill")
    out = tmp_path / "out.ipynb"
    variables = {k: v for k, v in os.environ.items() if not k.startswith("INFERENCE_SUITE_")}
    proc = subprocess.run(
        [str(papermill), str(notebook_info.NOTEBOOKS / "00_environment_check.ipynb"), str(out), "-p", "profile", "test",
         "-k", kernel, "--cwd", str(notebook_info.NOTEBOOKS)],
        capture_output=True, text=True, env=variables, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "unknown parameter" not in proc.stderr, proc.stderr  # papermill found `profile` to override
    executed = nbformat.read(out, as_version=4)
    [injected] = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert 'profile = "test"' in injected.source
    assert not [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]


@pytest.mark.parametrize("info", series.discover(), ids=lambda i: i.stem)
def test_papermill_reads_every_parameter(info: series.NotebookInfo, caplog: pytest.LogCaptureFixture) -> None:
    """papermill infers each notebook's parameters (``--help-notebook``) without "Unable to parse" warnings."""
    import papermill

    with caplog.at_level(logging.WARNING, logger="papermill"):
        parameters = papermill.inspect_notebook(str(info.path))
    assert "profile" in parameters
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_summary_problem_lines_keep_the_table_intact(tmp_path: Path) -> None:
    run = series.NotebookRun(notebook="95_x.ipynb", title="x", status="failed", seconds=1.0, executed="-",
                             error="1 problem(s); first: a | b", problems=["cell 1: [ansi] a | b"])
    text = series.write_summary([run], "cpu", "test", tmp_path).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| 95_x.ipynb"))
    assert row.count(" | ") == 3, row
    assert output_checks.RULES["ansi"] and "- cell 1: [ansi] a &#124; b" in text


def test_summary_reads_as_text_not_raw_dicts(tmp_path: Path) -> None:
    """Nested results (a limits table, per-runtime figures) become readable text, never a dict repr."""
    limits = {p: 100.0 + i for i, p in enumerate(["fp32", "bf16", "int8", "int4", "fp16", "fp8", "tf32"])}
    probe = {"fp32 GEMM": {"value": 322.456, "spread": 0.0123}}
    run = series.NotebookRun(
        notebook="94_x.ipynb", title="x", status="passed", seconds=12.0, executed="-",
        results={"limits": {"value": limits, "unit": "GFLOP/s"}, "probe": {"value": probe, "unit": ""},
                 "p50": {"value": {"ORT": 41.234567, "OpenVINO": [1.5, 2.25]}, "unit": "ms"},
                 "kept quality": {"value": True, "unit": ""}},
    )
    (tmp_path / "setup.json").write_text(json.dumps(
        {"steps": [{"name": "environment cpu", "status": "ok", "seconds": 81.2},
                   {"name": "models", "status": "ok", "seconds": 212.6}]}))
    text = series.write_summary([run], "cpu", "full", tmp_path).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| 94_x.ipynb"))
    assert "{" not in row and "'" not in row, row
    assert "fp32: 100, bf16: 101," in row and "… 1 more GFLOP/s" in row
    assert "fp32 GEMM: (value: 322, spread: 0.0123)" in row
    assert "ORT: 41.2, OpenVINO: (1.5, 2.25) ms" in row and "yes" in row
    assert "## Set-up" in text and "| models | ok | 213 |" in text and "Set-up took 294 s" in text
    assert "Executing the notebooks took 12 s" in text
    assert text.index("## Set-up") < text.index("## Notebooks")


def test_the_series_kernel_manager_asks_for_transport_encryption() -> None:
    """ipykernel's spec declares CurveZMQ support; the series' manager asks for it (the kernel would
    otherwise log "running over TCP without encryption" once per notebook)."""
    import zmq

    manager = series.encrypted_kernel_manager()()
    assert manager.transport_encryption == ("auto" if zmq.has("curve") else "disabled")
