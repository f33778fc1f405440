"""A real browser: headless Chromium driven by Playwright, on the rendered site and on JupyterLab.

Needs Debian's ``chromium`` package at ``/usr/bin/chromium`` (set-up step:
``apt-get update && apt-get install -y chromium``, as root) and the pinned ``playwright`` Python
package. Playwright's own browser download (``playwright install``) is never used: the tests
launch the system Chromium with ``executable_path``. Without it they skip, saying so.

1. The static site (``helpers.course.site``) built from a small executed notebook, served on
   127.0.0.1: the index lists the notebook, the link opens its rendered page.
2. JupyterLab, started from this virtual environment with a random token on a free port of
   127.0.0.1, on a temporary folder holding a copy of notebook 17 (test profile, two runtimes):
   *Run → Run All Cells* from the menu, then the classifier widget must show a prediction (a
   class label and a latency in ms), and choosing another photo in the widget's drop-down must
   update it (a round trip browser → kernel → browser). Screenshots go to
   ``outputs/artifacts/``.

Everything is bounded by timeouts, and JupyterLab, its kernel and Chromium are shut down (and
checked to be gone) at the end.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from fakes import fake_run

from helpers.paths import output_dir

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium floods a closed network with refused connections.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

pytestmark = [
    pytest.mark.envs("cpu"),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's Chromium at /usr/bin/chromium "
        "(as root: apt-get update && apt-get install -y chromium)",
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)}


def _alive(pids: set[int]) -> list[str]:
    import psutil

    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {proc.name()}")
    return alive


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A headless Chromium context with a fresh profile; closed and checked gone afterwards."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (requirements/cpu.txt)"
    )
    before = _descendants()
    pw = sync_api.sync_playwright().start()
    try:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
            timeout=60_000,
        )
    except Exception:
        pw.stop()
        raise
    spawned = _descendants() - before
    try:
        yield context
    finally:
        context.close()
        pw.stop()
        deadline = time.monotonic() + 15
        while _alive(spawned) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _alive(spawned)
        assert not left, f"browser processes left behind: {left}"


def _artifact(name: str) -> Path:
    return output_dir("artifacts") / name


# --------------------------------------------------------------------------------------------
# 1. The rendered site
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _serve(folder: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.mark.timeout(120)
def test_rendered_site_in_a_browser(browser, tmp_path: Path) -> None:
    from helpers.course import site

    fake_run(tmp_path / "runs")
    site.build(tmp_path / "runs", tmp_path / "site")
    page = browser.new_page()
    try:
        with _serve(tmp_path / "site") as url:
            page.goto(f"{url}/index.html", timeout=30_000)
            assert "PyTorch inference, measured" in page.title()
            link = page.get_by_role("link", name="00 — Check your environment")
            row = page.locator("tr", has=link)
            assert "passed" in row.inner_text() and "12 s" in row.inner_text()
            link.click()
            page.wait_for_load_state("domcontentloaded", timeout=30_000)
            assert page.url.endswith("/cpu/00_environment_check.html")
            page.get_by_text("hello from the kernel").wait_for(timeout=30_000)
            heading = page.get_by_role("heading", name="00 — Check your environment").first
            assert heading.is_visible()
            page.screenshot(path=str(_artifact("site_notebook_00.png")), full_page=False)
    finally:
        page.close()


# --------------------------------------------------------------------------------------------
# 2. JupyterLab: run notebook 17, see the widget predict
# --------------------------------------------------------------------------------------------
def _demo_notebook(folder: Path) -> Path:
    """Notebook 17 in test settings: two runtimes, the venv's own kernel."""
    nb = nbformat.read(ROOT / "notebooks" / "17_classroom_demo.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source += '\nprofile = "test"\nmodel_source = "tiny"\nruntimes = ["pytorch", "onnxruntime"]\nrepeats = 2'
    # "python3" is ipykernel's native kernel: the Python that runs JupyterLab, i.e. this venv.
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    path = folder / "classroom_demo.ipynb"
    nbformat.write(nb, path)
    return path


@contextlib.contextmanager
def _jupyter_lab(root: Path, state: Path) -> Iterator[tuple[str, str, subprocess.Popen]]:
    import httpx
    import psutil

    token, port = secrets.token_hex(16), _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "IPYTHONDIR": str(state / "ipython"),
        "INFERENCE_SUITE_RESULTS": str(state / "results.json"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        f"--IdentityProvider.token={token}", f"--port={port}", "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
        "--KernelSpecManager.ensure_native_kernel=True",
        f"--LabApp.user_settings_dir={state / 'settings'}",
        f"--LabApp.workspaces_dir={state / 'workspaces'}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    # no "official Jupyter news?" toast over the page (it would try the network, too)
    notification = state / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    log = (state / "jupyter.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited: {(state / 'jupyter.log').read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (
                    httpx.get(f"{base}/api/status", params={"token": token}, timeout=2).status_code
                    == 200
                ):
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("jupyter lab did not answer within 90 s")
            time.sleep(0.5)
        yield base, token, proc
    finally:
        children = set()
        with contextlib.suppress(psutil.NoSuchProcess):
            children = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        with contextlib.suppress(httpx.HTTPError):  # stops kernels, then the server
            httpx.post(f"{base}/api/shutdown", params={"token": token}, timeout=10)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
        deadline = time.monotonic() + 15
        while _alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _alive(children)
        for pid in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        assert not left, f"kernel processes left behind by jupyter lab: {left}"


def _kernels_idle(base: str, token: str) -> bool:
    import httpx

    kernels = httpx.get(f"{base}/api/kernels", params={"token": token}, timeout=5).json()
    return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)


@pytest.mark.timeout(300)
def test_jupyterlab_runs_the_classroom_demo(browser, tmp_path: Path) -> None:
    root, state = tmp_path / "lab", tmp_path / "state"
    root.mkdir()
    state.mkdir()
    notebook = _demo_notebook(root)
    page = browser.new_page()
    page.set_default_timeout(60_000)
    try:
        with _jupyter_lab(root, state) as (base, token, _proc):
            page.goto(f"{base}/lab/tree/{notebook.name}?token={token}", timeout=90_000)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
            # wait for the kernel (the toolbar shows its name once it is connected)
            page.locator(".jp-NotebookPanel-toolbar").get_by_text("Python 3 (ipykernel)").wait_for(
                timeout=90_000
            )
            deadline = time.monotonic() + 90
            while not _kernels_idle(base, token):
                assert time.monotonic() < deadline, "the kernel did not start"
                time.sleep(0.5)

            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()

            demo = page.locator(".suite-classifier-demo")
            predictions = demo.locator("table.suite-predictions")
            predictions.wait_for(timeout=180_000)  # the widget rendered and predicted
            # Run All is done when every code cell shows an execution count ("[3]:", not "[*]:")
            page.wait_for_function(
                "() => { const p = [...document.querySelectorAll("
                "'.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());"
                " return p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t)); }",
                timeout=180_000,
            )
            deadline = time.monotonic() + 60
            while not _kernels_idle(base, token):
                assert time.monotonic() < deadline, "the kernel stayed busy after Run All"
                time.sleep(0.5)
            # JupyterLab skips rendering cells outside the viewport (inner_text would be empty there):
            # bring the widget into view, and read the DOM's text, which does not depend on layout.
            demo.scroll_into_view_if_needed()
            text = predictions.text_content() or ""
            assert " ms" in text and "PyTorch eager" in text and "ONNX Runtime" in text, text
            caption = predictions.locator("caption").text_content() or ""
            assert caption.startswith("chelsea"), caption  # the notebook's last demo.run
            errors = page.locator(
                '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
            )
            tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t]
            assert not tracebacks, tracebacks[:2]
            assert "Not available in this kernel" in (demo.text_content() or "")
            page.screenshot(path=str(_artifact("jupyterlab_classroom_demo.png")), full_page=False)

            # a round trip through the widget: pick another photo, the kernel classifies it
            demo.locator(".widget-dropdown select").select_option("coffee")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.suite-classifier-demo table.suite-predictions caption')]"
                ".some(c => c.textContent.startsWith('coffee'))",
                timeout=60_000,
            )
            assert " ms" in (predictions.text_content() or "")
            demo.screenshot(path=str(_artifact("jupyterlab_classroom_demo_widget.png")))
    finally:
        page.close()
    assert _artifact("jupyterlab_classroom_demo.png").stat().st_size > 10_000
    shutil.rmtree(root, ignore_errors=True)
