"""Tests for helpers.hardware: fingerprint, measured peaks, FLOP counting (real torch/ORT)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from helpers import hardware


def test_fingerprint_has_machine_and_versions() -> None:
    info = hardware.fingerprint()
    for key in (
        "cpu_model",
        "cores_logical",
        "cores_physical",
        "cpu_flags",
        "load_average",
        "load_high",
        "memory_gib",
        "python",
        "packages",
        "onnxruntime_dist",
        "gpu",
        "torch_threads",
        "timestamp",
    ):
        assert key in info, key
    assert info["cores_logical"] >= 1
    assert "torch" in info["packages"] and "numpy" in info["packages"]
    assert set(info["cpu_flags"]) <= set(hardware._INTERESTING_FLAGS)
    if info["load_average"] is not None:
        assert len(info["load_average"]) == 3
    json.dumps(info)  # plain data: can be stored next to results


def test_fingerprint_is_a_fresh_copy() -> None:
    a = hardware.fingerprint()
    a["packages"]["torch"] = "tampered"
    assert hardware.fingerprint()["packages"]["torch"] != "tampered"


def test_gemm_peak_positive_finite_cached_and_restores_threads() -> None:
    before = torch.get_num_threads()
    peak = hardware.measure_gemm_peak(threads=1, seconds=0.2, size=256)
    assert math.isfinite(peak) and peak > 0
    assert torch.get_num_threads() == before
    # cached per arguments: a second call returns the same measurement
    assert hardware.measure_gemm_peak(threads=1, seconds=0.2, size=256) == peak


def test_gemm_probe_details_explain_the_peak() -> None:
    peak = hardware.measure_gemm_peak(threads=1, seconds=0.2, size=256)
    details = hardware.gemm_probe_details(threads=1, seconds=0.2, size=256)
    assert list(details.columns) == ["backend", "size", "gflops"]
    assert set(details["size"]) == {256} and "torch" in set(details["backend"])
    assert details["gflops"].max() == peak


def test_gemm_peak_int8() -> None:
    peak = hardware.measure_gemm_peak("int8", threads=1, seconds=0.2, size=256)
    assert math.isfinite(peak) and peak > 0


def test_gemm_peak_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="dtype"):
        hardware.measure_gemm_peak("int4")
    with pytest.raises(ValueError, match="seconds"):
        hardware.measure_gemm_peak(seconds=0)


def test_memory_bandwidth_positive_finite() -> None:
    bandwidth = hardware.measure_memory_bandwidth(seconds=0.2, megabytes=32, threads=1)
    assert math.isfinite(bandwidth) and bandwidth > 0


def test_count_flops_linear_and_conv() -> None:
    linear = torch.nn.Linear(100, 10)
    assert hardware.count_flops(linear, (torch.randn(3, 100),)) == 2 * 3 * 100 * 10
    conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # every output element: 3*3*3 multiply-adds; 8 channels x 16 x 16 outputs
    assert hardware.count_flops(conv, torch.randn(1, 3, 16, 16)) == 2 * 8 * 16 * 16 * 27


def test_count_flops_keyword_inputs_and_mode_restored() -> None:
    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.a(x) + y

    model = Two().train()
    flops = hardware.count_flops(model, {"x": torch.randn(2, 4), "y": torch.randn(2, 4)})
    assert flops == 2 * 2 * 4 * 4
    assert model.training
