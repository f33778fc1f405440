"""Tests for helpers.benchmark.limits: measured peaks and FLOP counting (real torch/ORT)."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import benchmark


def test_gemm_peak_positive_finite_cached_and_restores_threads() -> None:
    before = torch.get_num_threads()
    peak = benchmark.measure_gemm_peak(threads=1, seconds=0.2, size=256)
    assert math.isfinite(peak) and peak > 0
    assert torch.get_num_threads() == before
    # cached per arguments: a second call returns the same measurement
    assert benchmark.measure_gemm_peak(threads=1, seconds=0.2, size=256) == peak


def test_gemm_peak_int8() -> None:
    peak = benchmark.measure_gemm_peak("int8", threads=1, seconds=0.2, size=256)
    assert math.isfinite(peak) and peak > 0


def test_gemm_peak_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="dtype"):
        benchmark.measure_gemm_peak("int4")
    with pytest.raises(ValueError, match="seconds"):
        benchmark.measure_gemm_peak(seconds=0)


def test_memory_bandwidth_positive_finite() -> None:
    bandwidth = benchmark.measure_memory_bandwidth(seconds=0.2, megabytes=32, threads=1)
    assert math.isfinite(bandwidth) and bandwidth > 0


def test_count_flops_linear_and_conv() -> None:
    linear = torch.nn.Linear(100, 10)
    assert benchmark.count_flops(linear, (torch.randn(3, 100),)) == 2 * 3 * 100 * 10
    conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # every output element: 3*3*3 multiply-adds; 8 channels x 16 x 16 outputs
    assert benchmark.count_flops(conv, torch.randn(1, 3, 16, 16)) == 2 * 8 * 16 * 16 * 27


def test_count_flops_keyword_inputs_and_mode_restored() -> None:
    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.a(x) + y

    model = Two().train()
    flops = benchmark.count_flops(model, {"x": torch.randn(2, 4), "y": torch.randn(2, 4)})
    assert flops == 2 * 2 * 4 * 4
    assert model.training
