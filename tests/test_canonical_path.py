"""The canonical path end to end, offline: lessons run with ``model_source="canonical"`` against
labelled random stand-ins planted under the canonical names (:mod:`helpers.models.planted`).

A learner with internet gets torchvision's ResNet-50 ``IMAGENET1K_V2`` checkpoint in the torch hub
cache and BERT SQuAD / ``gpt2`` in the Hugging Face cache. CI cannot download them, so without this
test the code that loads them (torchvision's weights API, ``from_pretrained`` from the hub cache)
would run only on learners' machines. Here the caches hold seeded random weights in the same
formats; the notebook runs its canonical path with papermill in the test profile and its banner
must say the weights are random ("planted for a test"), never that they are the published ones.
"""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager

import helpers
from helpers import envreport, kernels, paths
from helpers.course import notebook_info, output_checks
from helpers.models import planted

pytestmark = pytest.mark.envs("cpu")

ROOT = Path(helpers.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def canonical_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty torch hub / Hugging Face cache; each test plants the model it needs."""
    return tmp_path_factory.mktemp("canonical")


def _kernel() -> str:
    name = kernels.kernel_name(envreport.environment_name())
    if name not in KernelSpecManager().find_kernel_specs():
        pytest.skip(f"kernel {name} is not registered (run `make setup`)")
    return name


def _text(nb: nbformat.NotebookNode) -> str:
    """Everything the executed notebook showed, as plain text (HTML banners unescaped)."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            data = out.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(html.unescape(re.sub(r"<br>", "\n", re.sub(r"<(?!br>)[^>]+>", "", data.get("text/html", "")))))
    return "\n".join(parts)


def _run(notebook: str, parameters: dict[str, str], root: Path, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> tuple[nbformat.NotebookNode, str, float]:
    """Execute ``notebook`` with papermill (the test profile plus ``parameters``) in this
    environment's kernel, the hub caches pointing at the planted copies, offline."""
    import papermill as pm

    kernel = _kernel()
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(paths.cache_dir()))  # tiny builds, exports: reused
    monkeypatch.setenv("INFERENCE_SUITE_OUTPUT", str(tmp_path / "outputs"))
    monkeypatch.setenv("INFERENCE_SUITE_BATCH", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout's helpers
    monkeypatch.delenv("INFERENCE_SUITE_CANONICAL_DIR", raising=False)
    for name, value in planted.environment(root).items():  # HF_HUB_OFFLINE=1: nothing downloaded
        monkeypatch.setenv(name, value)
    executed = tmp_path / notebook
    started = time.monotonic()
    try:
        pm.execute_notebook(
            str(notebook_info.NOTEBOOKS / notebook), str(executed),
            parameters={"profile": "test", **parameters}, kernel_name=kernel,
            cwd=str(notebook_info.NOTEBOOKS), progress_bar=False,
        )
    except pm.PapermillExecutionError as exc:
        pytest.fail(f"{notebook} on the canonical path failed in cell {exc.exec_count}: {exc.ename}: "
                    f"{exc.evalue}\nexecuted copy: {executed}")
    seconds = time.monotonic() - started
    nb = nbformat.read(executed, as_version=4)
    problems = output_checks.check_notebook(nb)
    assert not problems, output_checks.format_report(notebook, problems)
    return nb, _text(nb), seconds


def test_resnet50_lesson_runs_on_the_canonical_path(canonical_root, tmp_path, monkeypatch):
    """Notebook 04 with model_source="canonical": torchvision's weights API reads the planted
    ``resnet50-11ad3fa6.pth`` from ``$TORCH_HOME/hub/checkpoints``; every runtime's parity holds.
    Fewer photos and timed calls than the test profile's (its offline run covers those)."""
    planted.plant(canonical_root, tasks=("image-classification",))
    parameters = {"model_source": "canonical", "n_photos": 16, "bench_runs": 3, "bench_seconds": 0.2}
    nb, shown, seconds = _run("04_resnet50_across_runtimes.ipynb", parameters, canonical_root, tmp_path, monkeypatch)
    # The banner names the canonical model, where it came from, and that its weights are random.
    assert "image-classification: torchvision resnet50 IMAGENET1K_V2" in shown
    assert "Source: canonical — random weights planted for a test" in shown
    assert "found in the torch hub cache" in shown and "resnet50-11ad3fa6.pth" in shown
    assert "real pretrained weights" not in shown
    # The label assertions are for real weights; the notebook said why it skipped them.
    assert "Random weights" in shown and "The labels mean nothing" in shown
    # The parity cells ran (not skipped) and reported their agreement; their asserts passed.
    assert re.search(r"asked for CPU, runs on \['CPUExecutionProvider'\]: max \|diff\| \S+, top-1 agreement", shown)
    assert re.search(r"OpenVINO f32 on .*top-1 agreement", shown)
    print(f"notebook 04 on the canonical path: {seconds:.0f} s")


def test_bert_qa_lesson_runs_on_the_canonical_path(canonical_root, tmp_path, monkeypatch):
    """Notebook 06 with qa_source="canonical": ``from_pretrained`` reads the planted BERT SQuAD
    snapshot from the Hugging Face cache (offline); every runtime gives PyTorch's answers."""
    planted.plant(canonical_root, tasks=("question-answering",))
    nb, shown, seconds = _run("06_bert_question_answering.ipynb", {"qa_source": "canonical"},
                              canonical_root, tmp_path, monkeypatch)
    assert f"question-answering: {planted.QA_REPO}" in shown
    assert "Source: canonical — random weights planted for a test" in shown
    assert "found in the Hugging Face cache" in shown and "real pretrained weights" not in shown
    assert re.search(r"ONNX Runtime vs PyTorch: max \|start logit difference\|", shown)
    assert "Random weights: exact match is not scored against a floor" in shown
    print(f"notebook 06 on the canonical path: {seconds:.0f} s")


def test_gpt2_lesson_runs_on_the_canonical_path(canonical_root, tmp_path, monkeypatch):
    """Notebook 07 with model_source="canonical": ``from_pretrained`` reads the planted ``gpt2``
    snapshot from the Hugging Face cache (offline); the ONNX greedy loop matches transformers."""
    planted.plant(canonical_root, tasks=("text-generation",))
    nb, shown, seconds = _run("07_gpt2_generation.ipynb", {"model_source": "canonical"},
                              canonical_root, tmp_path, monkeypatch)
    assert f"text-generation: {planted.GPT2_REPO}" in shown
    assert "Source: canonical — random weights planted for a test" in shown
    assert "found in the Hugging Face cache" in shown and "real pretrained weights" not in shown
    print(f"notebook 07 on the canonical path: {seconds:.0f} s")
