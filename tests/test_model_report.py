"""The capstone's report (helpers.model_report): small local models through every runtime asked for,
failures explained, ONNX files given directly, the JSON schema, exit codes and bad-input errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from helpers import runners
from helpers.export import input_specs_from_onnx
from helpers.model_report import ModelReport, ReportInputError, from_model, load_input, model_report
from helpers.model_report.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = {"runs": 5, "time_budget": 0.2, "limits": False, "progress": False}
ORT_AND_TORCH = ["pytorch", "torch.export", "onnxruntime"]


class SmallCNN(nn.Module):
    """One image in, logits out."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, 5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(image))


class TwoInputs(nn.Module):
    """Two named inputs, a dict of two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(6, 3)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict[str, torch.Tensor]:
        x, y = self.a(left), self.b(right)
        return {"sum": x + y, "product": x * y}


class DataDependent(nn.Module):
    """Branches on a tensor's value: torch.export (and so the ONNX export) cannot capture it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x - 1


def _encoder() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False).eval(), torch.randn(2, 5, 16)


@pytest.fixture(scope="module")
def cnn_report() -> ModelReport:
    torch.manual_seed(0)
    return model_report(SmallCNN(), torch.randn(1, 3, 16, 16), name="small-cnn",
                        runtimes=[*ORT_AND_TORCH, "openvino"], batch_sizes=[1, 2], **FAST)


def test_single_input_cnn_runs_every_runtime_asked_with_parity(cnn_report: ModelReport) -> None:
    ran = {r.runtime for r in cnn_report.rows if r.status == "ok"}
    expected = {k for k in [*ORT_AND_TORCH, "openvino"] if runners.available_runtimes()[k]}
    assert ran == expected
    assert cnn_report.passed
    assert all(r.parity_ok and r.quality == 1.0 for r in cnn_report.rows if r.status == "ok")
    assert all(set(r.latency) == {1, 2} and r.latency[2]["p50"] for r in cnn_report.rows if r.status == "ok")
    rec = cnn_report.recommendation
    assert rec["runtime"] in ran and rec["code"].strip()
    assert ("InferenceSession" in rec["code"]) or ("compile_model" in rec["code"]) or ("torch" in rec["code"])
    assert cnn_report.flops[2] == 2 * cnn_report.flops[1] > 0
    assert "## Parity and quality" in cnn_report.markdown() and "<table" in cnn_report.html()


def test_repr_is_one_line_with_the_verdict_and_recommendation(cnn_report: ModelReport) -> None:
    text = repr(cnn_report)
    rec = cnn_report.recommendation
    assert "\n" not in text and len(text) < 300, text
    assert f"{len(cnn_report.rows)} runtime x precision rows" in text and "PASSED" in text
    assert f"recommended: {rec['runtime']} {rec['precision']}" in text


def test_two_named_inputs_and_a_dict_output() -> None:
    torch.manual_seed(0)
    report = model_report(TwoInputs(), {"left": torch.randn(2, 4), "right": torch.randn(2, 6)},
                          runtimes=ORT_AND_TORCH, **FAST)
    ok = [r for r in report.rows if r.status == "ok"]
    assert {r.runtime for r in ok} == set(ORT_AND_TORCH)
    assert report.passed and all(r.parity_ok for r in ok)
    onnx_row = next(r for r in ok if r.runtime == "onnxruntime")
    assert [s.name for s in input_specs_from_onnx(onnx_row.artifact)] == ["left", "right"]


def test_transformer_encoder_keeps_its_sequence_length_dynamic() -> None:
    model, example = _encoder()
    report = model_report(model, example, name="encoder", dynamic=["*:0", "src:1=seq"],
                          runtimes=["pytorch", "onnxruntime"], **FAST)
    assert report.passed, report.markdown()
    onnx_row = next(r for r in report.rows if r.runtime == "onnxruntime")
    (spec,) = input_specs_from_onnx(onnx_row.artifact)
    assert isinstance(spec.shape[0], str) and isinstance(spec.shape[1], str), spec
    session = runners.for_runtime("onnxruntime", onnx_row.artifact)
    longer = np.random.default_rng(0).standard_normal((3, 9, 16)).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(longer)).numpy()
    np.testing.assert_allclose(session.run({"src": longer})["output"], expected, rtol=1e-3, atol=1e-4)


def test_a_failing_export_is_explained_and_the_rest_still_runs() -> None:
    report = model_report(DataDependent(), torch.ones(2, 3), runtimes=ORT_AND_TORCH, **FAST)
    rows = {r.runtime: r for r in report.rows}
    assert rows["pytorch"].status == "ok" and rows["pytorch"].parity_ok
    assert rows["torch.export"].status == "failed" and rows["onnxruntime"].status == "failed"
    assert "torch.cond" in rows["torch.export"].fix
    failures = report.failures()
    assert failures and all(f["error"] and f["explanation"] and f["fix"] for f in failures)
    assert len({f["error"] for f in failures}) == len(failures), "each failure once"
    stopped = ", ".join(f["stopped"] for f in failures)
    assert "torch.export fp32" in stopped and "ONNX Runtime" in stopped, failures
    assert "What failed" in report.markdown()
    assert report.recommendation["runtime"] == "pytorch"


@pytest.fixture(scope="module")
def onnx_file(cnn_report: ModelReport) -> Path:
    return Path(next(r.artifact for r in cnn_report.rows if r.runtime == "onnxruntime"))


def test_an_onnx_file_given_directly_runs_only_the_onnx_runtimes(onnx_file: Path) -> None:
    report = model_report(load_input(str(onnx_file)), **FAST)
    assert report.facts["reference"].startswith("ONNX Runtime")
    kinds = {runners.runtime_spec(r.runtime).artifact for r in report.rows}
    assert kinds == {"onnx"}
    assert "onnxruntime" in report.ran and report.passed
    assert report.flops == {}  # no PyTorch module: FLOPs are not counted, % of limit is n/a


def test_the_json_report_schema(cnn_report: ModelReport, tmp_path: Path) -> None:
    files = cnn_report.save(tmp_path)
    data = json.loads(Path(files["json"]).read_text())
    assert data["schema"] == 1 and data["passed"] is True
    assert {"model", "machine", "settings", "rows", "recommendation", "flops", "artifacts"} <= set(data)
    row = data["rows"][0]
    assert {"runtime", "label", "precision", "status", "max_abs", "parity_ok", "quality", "latency",
            "passed", "size_mib", "error", "explanation", "fix"} <= set(row)
    assert {"p50", "p90", "p99", "items_per_s", "pct_of_limit"} <= set(row["latency"]["1"])
    assert Path(files["plot"]).stat().st_size > 0 and Path(files["markdown"]).read_text().startswith("# ")


# -- exit codes ---------------------------------------------------------------------------------
class WrongRunner(runners.Runner):
    """ONNX Runtime's answers plus one: a runtime that returns wrong numbers."""

    runtime = "wrong-numbers"

    def __init__(self, path: Any, name: str) -> None:
        self._inner = runners.for_runtime("onnxruntime", path)
        self.name, self.inputs, self.output_names = name, self._inner.inputs, self._inner.output_names

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v + 1.0 for k, v in self._inner.run(inputs).items()}

    def describe(self) -> dict[str, Any]:
        return runners.base.base_description(self, version="0", device="cpu", threads={}, artifact="")


@pytest.fixture
def wrong_runtime() -> Iterator[str]:
    spec = runners.RuntimeSpec(key="wrong-numbers", label="Wrong numbers", needs="nothing", artifact="onnx",
                               available=lambda: True, make=lambda artifact, *, name, **_: WrongRunner(artifact, name))
    runners.register(spec)
    try:
        yield spec.key
    finally:
        runners.unregister(spec.key)


def test_exit_code_is_non_zero_when_parity_fails(onnx_file: Path, wrong_runtime: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(onnx_file), "--runtimes", f"onnxruntime,{wrong_runtime}", "--no-limits", "--runs", "3",
            "--time-budget", "0.1", "--quiet", "--json", "--output", str(tmp_path)]
    assert main(argv) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is False
    row = next(r for r in data["rows"] if r["runtime"] == wrong_runtime)
    assert row["parity_ok"] is False and row["max_abs"] == pytest.approx(1.0, abs=1e-5)
    assert data["recommendation"]["runtime"] == "onnxruntime"


# -- bad input: one line, before any compute ---------------------------------------------------
def _write(tmp_path: Path, body: str) -> str:
    path = tmp_path / "user_model.py"
    path.write_text("import torch\nfrom torch import nn\n\n" + body)
    return str(path)


@pytest.mark.parametrize(("make", "message"), [
    (lambda t: str(t / "missing.py") + ":build", "no such file"),
    (lambda t: str(t / "missing.onnx"), "no such file"),
    (lambda t: _write(t, "def build():\n    return 'not a model', torch.ones(1)\n") + ":build",
     "returned a str as the model"),
    (lambda t: _write(t, "def build():\n    return nn.Linear(4, 2)\n") + ":build",
     "must return (model, example_inputs)"),
    (lambda t: _write(t, "def build():\n    return nn.Linear(4, 2), torch.ones(1, 7)\n") + ":build",
     "the example inputs do not fit the model"),
    (lambda t: _write(t, "X = 1\n") + ":build", "has no function 'build'"),
])
def test_bad_input_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any,
                                     message: str) -> None:
    assert main([make(tmp_path), "--quiet", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_text("this is not a protobuf")
    with pytest.raises(ReportInputError, match="is not an ONNX file"):
        load_input(str(fake))


def test_help_and_console_script() -> None:
    done = subprocess.run([sys.executable, "-m", "helpers.model_report", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--precisions" in done.stdout and "--batch-sizes" in done.stdout
    text = (ROOT / "pyproject.toml").read_text()
    assert 'inference-report = "helpers.model_report.cli:main"' in text


def test_eval_inputs_take_the_examples_form_and_bad_ones_are_named_before_any_compute() -> None:
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    item = from_model(model, torch.ones(2, 4))
    (name,) = item.inputs
    batch = torch.randn(5, 4)
    for form in (batch, (batch,), {name: batch}, {name: batch.numpy()}):
        named = item.named(form)
        assert list(named) == [name] and named[name].shape == (5, 4)
    with pytest.raises(ReportInputError, match="the model takes"):
        item.named({"pixels": batch}, "eval_inputs[0]")
    with pytest.raises(ReportInputError, match=r"eval_inputs\[1\].*float64\[5, 4\].*float32\[2, 4\]"):
        model_report(model, torch.ones(2, 4), eval_inputs=[batch, batch.double()], **FAST)
    with pytest.raises(ReportInputError, match="expected 1 tensor"):
        item.named((batch, batch))


def test_the_progress_bar_counts_the_runtime_precision_pairs_that_run(capfd: pytest.CaptureFixture[str]) -> None:
    model_report(nn.Linear(4, 2).eval(), torch.ones(2, 4), runtimes=["pytorch", "onnxruntime"],
                 **{**FAST, "progress": True})
    err = capfd.readouterr().err
    assert "model report: 100%" in err and "2/2" in err, err
