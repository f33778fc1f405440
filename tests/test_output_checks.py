"""The executed-output checks: each rule fires on a small synthetic notebook and stays quiet on clean output."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helpers import envreport
from helpers.course import output_checks
from helpers.course.output_checks import (
    check_notebook,
    check_outputs,
    check_sources,
    forbidden_phrases,
)

ROOT = Path(__file__).resolve().parents[1]
PNG = "iVBORw0KGgo="
FRAME_HTML = ('<table border="1" class="dataframe"><thead><tr><th>runner</th><th>note</th></tr></thead>'
              "<tbody><tr><td>ORT</td><td>{}</td></tr></tbody></table>")


def notebook(*cells: nbformat.NotebookNode, legacy: bool = False) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells))
    nb.metadata["inference_suite"] = {"environments": ["cpu"], "minutes": 1, "teaches": "-", "legacy": legacy}
    return nb


def code(*outputs: nbformat.NotebookNode, source: str = "x = 1") -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    cell.outputs = list(outputs)
    return cell


def stream(text: str, name: str = "stdout") -> nbformat.NotebookNode:
    return new_output("stream", name=name, text=text)


def result(data: dict, count: int = 1) -> nbformat.NotebookNode:
    return new_output("execute_result", data=data, execution_count=count)


def display(data: dict) -> nbformat.NotebookNode:
    return new_output("display_data", data=data)


def rules(nb: nbformat.NotebookNode, **kwargs: object) -> list[str]:
    return [p.rule for p in check_notebook(nb, **kwargs)]


def test_clean_notebook_has_no_problems() -> None:
    shown_figure = display({"image/png": PNG, "text/plain": "<Figure size 640x480 with 1 Axes>"})
    banner = display({"text/html": '<div style="border-left:6px solid">ok</div>',
                      "text/plain": "<IPython.core.display.HTML object>"})
    widget = display({"application/vnd.jupyter.widget-view+json": {"model_id": "a", "version_major": 2},
                      "text/plain": "VBox(children=(HTML(value='<div style=\"color:red\">x</div>'),))"})
    nb = notebook(
        new_markdown_cell("# 99 — Clean\n\nA random seed makes sampling repeatable; the goal of this section is "
                          "speed. Seeded sampling below."),
        code(stream("hello\nloss 0.1\n"), result({"text/plain": "42"}),
             source="torch.manual_seed(0)  # a fixed seed\nprint('hello')"),
        code(shown_figure, result({"image/png": PNG, "text/plain": "<Axes: title={'center': 'p50'}>"})),
        code(banner, widget, display({"text/html": FRAME_HTML.format("short note"), "text/plain": "..."}),
             display({"text/html": FRAME_HTML.format("x" * 76 + "..."), "text/plain": "..."})),
        code(stream("std::vector<int> and a < b > c\n", name="stderr"), result({"text/plain": "(True, False)"})),
        code(stream("(pid) is the process id; E1201 is an error code\nRay shut down in 4.8 s\n")),
        code(result({"text/plain": "np.float64(0.5)"}), source="np.float64(0.5)"),
        code(stream("a:   0%|  | 0/4\ra:  50%|█ | 2/4\ra: 100%|██| 4/4 [00:01<00:00]\n", name="stderr"),
             display({"text/plain": "classify photos: 100%|██████████| 97/97 [00:03<00:00, 30.1img/s]"}),
             stream("accuracy 85%|top-1 of 97 photos; 12.5%|of the limit\n")),
    )
    assert check_notebook(nb) == []


@pytest.mark.parametrize(
    ("rule", "cell"),
    [
        ("error", code(new_output("error", ename="ValueError", evalue="bad shape", traceback=["\x1b[31mboom"]))),
        ("ansi", code(stream("\x1b[1;31m2026-01-01 [W:onnxruntime:] warning\x1b[m\n", name="stderr"))),
        ("ansi", code(display({"text/plain": "\x1b[33mcoloured\x1b[0m"}))),
        ("bare-result", code(result({"text/plain": "False"}))),
        ("bare-result", code(result({"text/plain": "True"}))),
        ("bare-result", code(result({"text/plain": "np.True_"}))),
        ("bare-result", code(result({"text/plain": "<helpers.runners.OrtRunner object at 0x7f3a2c1b2d90>"}))),
        ("bare-result", code(display({"image/png": PNG, "text/plain": "<Figure size 640x480 with 1 Axes>"}),
                             result({"text/plain": "[<matplotlib.lines.Line2D at 0x7f3a2c1b2d90>]"}))),
        ("figure-not-shown", code(result({"text/plain": "<Figure size 750x400 with 1 Axes>"}))),
        ("figure-not-shown", code(display({"text/plain": "<Figure size 750x400 with 1 Axes>"}),
                                  display({"image/png": PNG, "text/plain": "<Figure size 640x480 with 1 Axes>"}))),
        ("figure-not-shown", code(result({"text/plain": "<Axes: xlabel='latency (ms)'>"}))),
        ("figure-not-shown", code(stream("<Figure size 640x480 with 0 Axes>\n"))),
        ("figure-not-shown", code(stream("UserWarning: FigureCanvasAgg is non-interactive, and thus cannot be "
                                         "shown\n", name="stderr"))),
        ("figure-not-shown", code(stream(f"{output_checks.UNSHOWN_FIGURE_MARKER}: `fig`\n", name="stderr"))),
        ("html-as-text", code(stream('<div style="font-size:2em">cat 93%</div>\n'))),
        ("html-as-text", code(result({"text/plain": "'<table><tr><td>1</td></tr></table>'"}))),
        ("native-log", code(stream("\x1b[33m(raylet)\x1b[0m Task ServeController.graceful_shutdown failed.\n"))),
        ("native-log", code(stream("(ServeReplica:default:Classifier pid=4242) INFO batch of 4\n", name="stderr"))),
        ("native-log", code(stream("[2026-12-01 10:00:00,123 E 1234 5678] core_worker.cc:512: lost\n",
                                   name="stderr"))),
        ("native-log", code(stream("E1201 10:00:00.123456  1234 session.cc:42] failed\n", name="stderr"))),
        ("table-cut", code(display({"text/html": FRAME_HTML.format("x" * 47 + "..."), "text/plain": "..."}))),
        ("progress-incomplete", code(display({
            "application/vnd.jupyter.widget-view+json": {"model_id": "b", "version_major": 2},
            "text/plain": "classify photos:   0%|          | 0/97 [00:00<?, ?img/s]"}))),
        ("progress-incomplete", code(stream("fine-tuning:  23%|██▎       | 14/60 [00:03<00:09]\n",
                                            name="stderr"))),
        ("progress-incomplete", code(stream("a:   0%|  | 0/4\ra:  50%|█ | 2/4\n", name="stderr"))),
        ("table-cut", code(display({"text/html": FRAME_HTML.format("x" * 46 + "..."), "text/plain": "..."}))),
        ("forbidden-phrase", code(stream("see the suite's FACTS for the measured numbers\n"))),
        ("forbidden-phrase", code(display({"text/html": "<b>Goal: 2x speed-up not reached</b>",
                                           "text/plain": "<IPython.core.display.HTML object>"}))),
        ("forbidden-phrase", code(stream("we have not verified this on AMX\n"))),
        ("forbidden-phrase", new_markdown_cell("The seed answer this notebook starts from uses `generate`.")),
        ("forbidden-phrase", new_markdown_cell("Measured numbers: ../shared/FACTS.md")),
        ("forbidden-phrase", new_markdown_cell("This meets the development target.")),
        ("forbidden-phrase", code(source="# the seed says to use opset 17\nopset = 17")),
        ("deprecation", code(stream("x.py:3: FutureWarning: old_api() is deprecated\n", name="stderr"))),
    ],
)
def test_each_rule_fires(rule: str, cell: nbformat.NotebookNode) -> None:
    found = rules(notebook(cell))
    assert rule in found, found


def test_table_cut_matches_what_this_pandas_does() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"note": ["a long explanation " * 10, "short"]})
    cut = notebook(code(display({"text/html": frame._repr_html_(), "text/plain": "..."})))
    assert rules(cut) == ["table-cut"]
    with pd.option_context("display.max_colwidth", 300):
        assert rules(notebook(code(display({"text/html": frame._repr_html_(), "text/plain": "..."})))) == []


def test_problems_name_the_cell_and_what_was_seen() -> None:
    nb = notebook(new_markdown_cell("# 99 — x"), code(result({"text/plain": "False"}),
                                                       source="\nexercises.check('04.1', None)"))
    [problem] = check_outputs(nb)
    assert (problem.cell, problem.snippet) == (1, "exercises.check('04.1', None)")
    assert "False" in str(problem) and str(problem).startswith("cell 1 «exercises.check")
    report = output_checks.format_report("99_x.ipynb", [problem])
    assert "99_x.ipynb: 1 problem(s)" in report and "[bare-result]" in report


def test_same_problem_twice_in_a_cell_is_listed_once() -> None:
    nb = notebook(code(stream("\x1b[31ma\x1b[0m\n"), stream("\x1b[31ma\x1b[0m\n")))
    assert rules(nb) == ["ansi"]


def test_deprecations_are_allowed_in_legacy_lessons_only() -> None:
    warning = code(stream("x.py:3: DeprecationWarning: torch.jit.trace is deprecated\n", name="stderr"))
    assert rules(notebook(warning)) == ["deprecation"]
    assert rules(notebook(warning, legacy=True)) == []
    assert output_checks.deprecation_warnings(notebook(warning)) == [
        "DeprecationWarning: torch.jit.trace is deprecated"]


def test_forbidden_phrases_are_targeted() -> None:
    allowed = ["torch.manual_seed(0)", "a random seed", "seeded top-k sampling", "seed=1234", "the seed is fixed",
               "our goal here is a fast loop", "see onnxruntime issue #12345", "shared memory", "facts about INT8"]
    assert [text for text in allowed if forbidden_phrases(text)] == []
    forbidden = ["the seeds/ folder", "see /work/shared/FACTS.md", "Goal (3x) not reached",
                 "we haven't verified it", "the seed notebook", "see issue 15", "run `issues show 15`"]
    assert [text for text in forbidden if not forbidden_phrases(text)] == []


def test_sources_are_checked_but_not_the_injected_parameters() -> None:
    injected = new_code_cell('profile = "test"  # FACTS')
    injected.metadata["tags"] = ["injected-parameters"]
    assert check_sources(notebook(injected)) == []
    assert [p.rule for p in check_sources(notebook(new_markdown_cell("see FACTS")))] == ["forbidden-phrase"]


def test_files_written_outside_outputs(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("a")
    for folder in ("outputs", ".venvs/cpu", "notebooks/__pycache__", "notebooks"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    before = output_checks.snapshot(tmp_path)
    (tmp_path / "outputs" / "model.onnx").write_text("fine")
    (tmp_path / ".venvs" / "cpu" / "x.py").write_text("fine")
    (tmp_path / "notebooks" / "__pycache__" / "m.pyc").write_text("fine")
    (tmp_path / "notebooks" / "sym_shape_infer_temp.onnx").write_text("left behind")
    os.utime(tmp_path / "kept.txt", ns=(1, 1))  # an existing untracked file rewritten
    written = output_checks.written_files(before, output_checks.snapshot(tmp_path))
    assert written == ["kept.txt", "notebooks/sym_shape_infer_temp.onnx"]
    problems = check_notebook(notebook(), written=written)
    assert [p.rule for p in problems] == ["files-outside-outputs"] and problems[0].cell is None
    assert "sym_shape_infer_temp.onnx" in problems[0].detail
    assert check_notebook(notebook(), written=[]) == []


def test_tracked_files_are_not_compared(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "tracked.py").write_text("a")
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked.py"], check=True)
    (tmp_path / "untracked.txt").write_text("b")
    assert set(output_checks.snapshot(tmp_path)) == {"untracked.txt"}


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    output_checks.load_ipython_extension(ip)
    yield ip
    InteractiveShell.clear_instance()


def run_cell(shell, source: str) -> str:
    err = io.StringIO()
    with redirect_stderr(err):
        shell.run_cell(source)
    return err.getvalue()


def test_kernel_extension_reports_a_figure_never_displayed(shell) -> None:
    pytest.importorskip("matplotlib")
    run_cell(shell, "from matplotlib.figure import Figure\nfrom IPython.display import display")
    lost = run_cell(shell, "fig = Figure()\nfig.add_subplot().plot([1, 2])")
    assert output_checks.UNSHOWN_FIGURE_MARKER in lost and "`fig`" in lost
    assert run_cell(shell, "fig") == ""  # reported once, in the cell that made it
    assert run_cell(shell, "shown = Figure()\ndisplay(shown)") == ""
    assert run_cell(shell, "figures = [Figure()]\ndisplay(figures[0])") == ""
    assert output_checks.UNSHOWN_FIGURE_MARKER in run_cell(shell, "pair = (Figure(), 1)")
    assert run_cell(shell, "x = 1") == ""


def run_harness(folder: Path, *arguments: str) -> tuple[subprocess.CompletedProcess, str]:
    """pytest with the suite's conftest and nbval on notebooks in ``folder`` (outputs to ``folder/out``)."""
    variables = dict(os.environ, INFERENCE_SUITE_OUTPUT=str(folder / "out"), PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", "--rootdir", str(folder), *arguments],
        cwd=folder, env=variables, capture_output=True, text=True, timeout=300,
    )
    return proc, proc.stdout + proc.stderr


def test_harness_adds_an_output_check_item_per_notebook(tmp_path: Path) -> None:
    """nbval runs a synthetic notebook; the extra item writes the executed copy and lists the problems."""
    env = envreport.environment_name()
    params = new_code_cell('profile = "full"')
    params.metadata["tags"] = ["parameters"]
    nb = notebook(params, new_code_cell("profile == 'test'"),
                  new_code_cell("from matplotlib.figure import Figure\nfig = Figure()\nfig.add_subplot()"),
                  new_code_cell("print('fine')"),
                  new_code_cell("from pathlib import Path\n_ = Path('stray.onnx').write_text('x')"))
    nb.metadata["inference_suite"]["environments"] = [env]
    nbformat.write(nb, tmp_path / "99_dirty.ipynb")
    clean = notebook(params, new_code_cell("print(profile)"))
    clean.metadata["inference_suite"]["environments"] = [env]
    nbformat.write(clean, tmp_path / "98_clean.ipynb")
    proc, report = run_harness(tmp_path, "98_clean.ipynb", "99_dirty.ipynb", "-q", "-rA")
    assert proc.returncode == 1, report
    assert "PASSED 98_clean.ipynb::output checks" in report, report
    assert "FAILED 99_dirty.ipynb::output checks" in report, report
    assert "[bare-result] the cell's value True" in report
    assert "[figure-not-shown]" in report and "`fig`" in report
    assert "[files-outside-outputs] 1 file(s) written outside outputs/: stray.onnx" in report
    executed = json.loads((tmp_path / "out" / f"test-{env}" / "executed" / "99_dirty.ipynb").read_text())
    assert 'profile = "test"' in "".join(executed["cells"][0]["source"])
    assert "".join(executed["cells"][3]["outputs"][0]["text"]) == "fine\n"
    assert [c["execution_count"] for c in executed["cells"]] == [1, 2, 3, 4, 5]


def test_harness_skips_the_output_check_of_a_notebook_for_another_environment(tmp_path: Path) -> None:
    """A notebook whose metadata lists only other environments: every item, the output check too, is
    skipped with the reason (pytest once stopped with an INTERNALERROR on that skip)."""
    env = envreport.environment_name()
    other = next(e for e in ("gpu", "openvino", "cpu") if e != env)
    params = new_code_cell('profile = "full"')
    params.metadata["tags"] = ["parameters"]
    nb = notebook(params, new_code_cell("raise SystemExit('must not run')"))
    nb.metadata["inference_suite"]["environments"] = [other]
    nbformat.write(nb, tmp_path / "97_elsewhere.ipynb")
    proc, report = run_harness(tmp_path, "97_elsewhere.ipynb", "-v", "-rs")
    assert proc.returncode == 0 and "INTERNALERROR" not in report, report
    assert "::output checks SKIPPED" in report, report
    assert f"notebook runs in {other} environment(s), not '{env}'" in report, report
    assert "3 skipped" in report, report
    assert not (tmp_path / "out" / f"test-{env}" / "executed" / "97_elsewhere.ipynb").exists()
