"""The environment report tells the truth about this environment."""

from __future__ import annotations

import os
from importlib import metadata

from helpers import envreport, hardware

#: Written out by hand (not read from envreport): which environment each ONNX Runtime package
#: makes, the execution provider only that package lists, and the ones it must not list.
_BY_PACKAGE = {
    "onnxruntime": ("cpu", None, {"CUDAExecutionProvider", "OpenVINOExecutionProvider"}),
    "onnxruntime-gpu": ("gpu", "CUDAExecutionProvider", {"OpenVINOExecutionProvider"}),
    "onnxruntime-openvino": ("openvino", "OpenVINOExecutionProvider", {"CUDAExecutionProvider"}),
}


def test_environment_is_detected_from_the_installed_ort_package() -> None:
    import onnxruntime

    # the package that provides `import onnxruntime`, read from the installed metadata directly
    packages = metadata.packages_distributions().get("onnxruntime", [])
    assert len(packages) == 1, packages  # two ORT packages overwrite each other's files
    package = packages[0]
    assert metadata.version(package) == onnxruntime.__version__, package
    expected, own_provider, foreign = _BY_PACKAGE[package]
    env = envreport.environment_name()
    assert env == expected, hardware.ort_distribution()
    if os.environ.get("INFERENCE_SUITE_ENV"):  # set by `make test` for each environment
        assert env == os.environ["INFERENCE_SUITE_ENV"]
    listed = envreport.listed_providers()
    assert listed == onnxruntime.get_available_providers()
    assert "CPUExecutionProvider" in listed
    assert own_provider is None or own_provider in listed, listed
    assert not foreign & set(listed), listed


def test_cpu_provider_really_runs() -> None:
    usable = envreport.usable_providers()
    assert "CPUExecutionProvider" in usable
    assert set(usable) <= set(envreport.listed_providers())


def test_listed_cuda_without_gpu_is_not_usable() -> None:
    listed, usable = envreport.listed_providers(), envreport.usable_providers()
    if "CUDAExecutionProvider" in listed and not hardware.gpu_present():
        assert "CUDAExecutionProvider" not in usable
        report = envreport.report()
        assert any("silently use the CPU" in line for line in report.advice)
    if envreport.environment_name() == "gpu":
        assert "CUDAExecutionProvider" in listed


def test_openvino_ep_only_in_openvino_environment() -> None:
    listed = envreport.listed_providers()
    if envreport.environment_name() == "openvino":
        assert "OpenVINOExecutionProvider" in envreport.usable_providers()
    else:
        assert "OpenVINOExecutionProvider" not in listed


def test_report_renders_as_text_and_table() -> None:
    report = envreport.report()
    text = str(report)
    assert "torch" in text and "providers that really run here" in text
    frame = report.to_frame()
    assert ("hardware", "CPU") in frame.index
    assert report.cpu["logical_cores"] >= 1
    assert not report.problems, report.problems
    assert "<table" in report._repr_html_()


def test_native_openvino_has_a_cpu_device() -> None:
    assert "CPU" in envreport.openvino_devices()


def test_runtime_matrix_runs_every_available_runtime() -> None:
    matrix = envreport.runtime_matrix()
    for runtime in ("PyTorch eager", "torch.export", "ONNX Runtime — CPU EP", "OpenVINO (native)"):
        assert matrix.loc[runtime, "works here"], matrix.loc[runtime].to_dict()
    cuda = matrix.loc["ONNX Runtime — CUDA EP"]
    assert bool(cuda["works here"]) == hardware.gpu_present() or not cuda["installed"]
    ov_ep = matrix.loc["ONNX Runtime — OpenVINO EP"]
    assert bool(ov_ep["works here"]) == (envreport.environment_name() == "openvino")
