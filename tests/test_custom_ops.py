"""A custom PyTorch operator end to end: the export failure, two translations, three runtimes.

The operator here (``suite_tests::scaled_swish``, ``x * sigmoid(beta * x)``) is defined by the
test; notebook 16 defines its own the same way.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from helpers import export, parity
from helpers.under_the_hood import custom_ops

onnxscript = pytest.importorskip("onnxscript")
ortx = pytest.importorskip("onnxruntime_extensions")


@torch.library.custom_op("suite_tests::scaled_swish", mutates_args=())
def scaled_swish(x: torch.Tensor, beta: float) -> torch.Tensor:
    return x * torch.sigmoid(beta * x)


@scaled_swish.register_fake
def _(x: torch.Tensor, beta: float) -> torch.Tensor:
    return torch.empty_like(x)


class SwishMLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first, self.second = torch.nn.Linear(6, 8), torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(scaled_swish(self.first(x), 1.7))


def swish_numpy(x: np.ndarray, beta: float) -> np.ndarray:
    return (x / (1.0 + np.exp(-beta * x))).astype(x.dtype)


def standard_ops(x, beta: float):
    from onnxscript import opset20 as op

    return op.Mul(x, op.Sigmoid(op.Mul(op.CastLike(beta, x), x)))


def custom_node(x, beta: float):
    custom_ops.register_schema("ScaledSwish", custom_ops.EXTENSIONS_DOMAIN,
                               attributes={"beta": "float"})
    contrib = onnxscript.values.Opset(custom_ops.EXTENSIONS_DOMAIN, 1)
    return contrib.ScaledSwish(x, beta=beta)


@ortx.onnx_op(op_type="ScaledSwish", inputs=[ortx.PyCustomOpDef.dt_float],
              outputs=[ortx.PyCustomOpDef.dt_float], attrs={"beta": ortx.PyCustomOpDef.dt_float})
def scaled_swish_ortx(x, **attrs):
    return swish_numpy(x, attrs["beta"])


class ScaledSwish(OpRun):  # onnx.reference matches the class name to the op type
    """onnx.reference implementation of the custom node."""

    op_domain = custom_ops.EXTENSIONS_DOMAIN

    def _run(self, x, beta=None):
        return (swish_numpy(x, beta),)


@pytest.fixture(scope="module")
def model_and_input():
    model = SwishMLP().eval()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model(x).numpy()
    return model, x, expected


def _export(model, x, path, table=None):
    torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False,
                      input_names=["x"], output_names=["y"], custom_translation_table=table)
    return path


def test_exporter_refuses_and_the_summary_names_the_operator(model_and_input, tmp_path):
    model, x, _ = model_and_input
    with pytest.raises(torch.onnx.OnnxExporterError) as caught:
        _export(model, x, tmp_path / "plain.onnx")
    summary = custom_ops.exporter_error_summary(caught.value)
    assert "suite_tests.scaled_swish" in summary and "No ONNX function found" in summary
    assert "\x1b[" not in summary and "Next steps" not in summary


def test_summary_of_other_errors_and_length_limit():
    text = custom_ops.exporter_error_summary(ValueError("x" * 2000), max_chars=50)
    assert text.startswith("ValueError: xxx") and len(text) == 50


def test_standard_ops_translation_runs_everywhere(model_and_input, tmp_path):
    model, x, expected = model_and_input
    table = {torch.ops.suite_tests.scaled_swish.default: standard_ops}
    path = _export(model, x, tmp_path / "standard.onnx", table)
    assert custom_ops.custom_domain_nodes(path).empty
    assert {"Sigmoid", "Mul"} <= set(export.op_histogram(path).index)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = {"ORT": session.run(None, {"x": x.numpy()})[0],
           "onnx.reference": ReferenceEvaluator(str(path)).run(None, {"x": x.numpy()})[0]}
    for name, value in got.items():
        report = parity.compare_outputs({"y": expected}, {"y": value}, runtime="onnxruntime")
        assert report["y"]["allclose"], (name, report)


def test_custom_domain_node_runs_on_ort_extensions_and_reference(model_and_input, tmp_path):
    model, x, expected = model_and_input
    table = {torch.ops.suite_tests.scaled_swish.default: custom_node}
    path = _export(model, x, tmp_path / "custom.onnx", table)
    onnx.checker.check_model(str(path))
    nodes = custom_ops.custom_domain_nodes(path)
    assert list(nodes.op_type) == ["ScaledSwish"]
    assert nodes.domain.iloc[0] == custom_ops.EXTENSIONS_DOMAIN
    assert nodes.attributes.iloc[0]["beta"] == pytest.approx(1.7)
    assert nodes.attrs["opsets"] == {custom_ops.EXTENSIONS_DOMAIN: 1}

    with pytest.raises(Exception, match="ScaledSwish"):  # no library registered: a clear refusal
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    options = ort.SessionOptions()
    options.register_custom_ops_library(custom_ops.extensions_library())
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    with pytest.raises(NotImplementedError, match="ScaledSwish"):
        ReferenceEvaluator(str(path))
    reference = ReferenceEvaluator(str(path), new_ops=[ScaledSwish])
    got = {"ORT + onnxruntime-extensions": session.run(None, {"x": x.numpy()})[0],
           "onnx.reference": reference.run(None, {"x": x.numpy()})[0]}
    for name, value in got.items():
        report = parity.compare_outputs({"y": expected}, {"y": value}, runtime="onnxruntime")
        assert report["y"]["allclose"], (name, report)


def test_register_schema_is_idempotent_and_checks_its_arguments():
    first = custom_ops.register_schema("Twice", "suite.tests", attributes={"k": "int"})
    second = custom_ops.register_schema("Twice", "suite.tests", attributes={"k": "int"})
    assert first.name == second.name == "Twice" and onnx.defs.has("Twice", "suite.tests")
    with pytest.raises(ValueError, match="own domain"):
        custom_ops.register_schema("Relu2", "")
    with pytest.raises(ValueError, match="type must be one of"):
        custom_ops.register_schema("Odd", "suite.tests", attributes={"k": "complex"})
