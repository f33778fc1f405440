"""for_runtime gives ONNX Runtime's OpenVINO EP the thread count too (it runs OpenVINO's threads,
not ONNX Runtime's intra-op pool), so a recorded thread count is the one that ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import runners
from helpers.models.tiny import tiny_classifier_onnx


@pytest.mark.envs("openvino")
def test_openvino_ep_gets_the_thread_count(tmp_path: Path) -> None:
    path = tiny_classifier_onnx(tmp_path / "toy.onnx", num_classes=3)
    info = runners.for_runtime("onnxruntime-openvino", path, 1).describe()
    assert info["providers_actual"][0] == "OpenVINOExecutionProvider"
    assert info["provider_options"]["OpenVINOExecutionProvider"]["num_of_threads"] == "1"
    assert info["threads"]["intra_op"] == 1
    unset = runners.for_runtime("onnxruntime-openvino", path).describe()["provider_options"]
    assert "num_of_threads" not in unset["OpenVINOExecutionProvider"]
