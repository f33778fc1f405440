"""The environment report's provider explanations: every listed provider is explained, and the
provider that really computed the probe's node is read from ONNX Runtime's own profile."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from helpers import envreport


@pytest.fixture(scope="module")
def report() -> envreport.EnvReport:
    return envreport.report()


def test_every_listed_provider_is_explained(report) -> None:
    table = envreport.provider_table(report)
    assert list(table.index) == report.ort_listed_providers
    assert list(table.columns) == ["kept by a session", "probe node ran on", "what it is"]
    assert "not described here" not in " ".join(table["what it is"])
    assert "not described here" in envreport.explain_provider("MadeUpExecutionProvider")


def test_the_cpu_provider_computes_the_probe(report) -> None:
    assert envreport.probe_node_providers("CPUExecutionProvider") == ["CPUExecutionProvider"]
    table = envreport.provider_table(report)
    assert table.loc["CPUExecutionProvider", "probe node ran on"] == "CPUExecutionProvider"
    assert table.loc["CPUExecutionProvider", "kept by a session"]


def test_azure_is_explained_and_computes_nothing_locally(report) -> None:
    assert "not local compute" in envreport.explain_provider("AzureExecutionProvider")
    if "AzureExecutionProvider" in report.ort_listed_providers:  # e.g. the cpu environment
        table = envreport.provider_table(report)
        assert table.loc["AzureExecutionProvider", "kept by a session"]
        ran_on = envreport.probe_node_providers("AzureExecutionProvider")
        assert ran_on and "AzureExecutionProvider" not in ran_on


def test_the_probe_file_is_relu(tmp_path) -> None:
    path = envreport.write_probe_model(tmp_path / "probe.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], dtype=np.float32)
    assert np.array_equal(session.run(None, {"x": x})[0], np.maximum(x, 0))
