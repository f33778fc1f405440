"""Tests for helpers.benchmark.limits: measured peaks and FLOP counting (real torch/ORT)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch

from helpers import benchmark
from helpers.benchmark import limits as limits_module
from helpers.hardware import cpu_features, cpu_info

#: No x86 core ships above ~6.2 GHz (boost); the ceiling every bound below is computed with.
MAX_GHZ = 6.5
#: Per core and cycle, the most a CPU's vector units can do (hand-computed from the ISA):
#: fp32 FLOPs = 2 FMA ports x lanes x 2 (multiply + add): SSE 2x4x2, AVX2 2x8x2, AVX-512 2x16x2;
#: int8 ops = 2 x multiply-adds: AVX2 vpmaddubsw / AVX-VNNI 2 ports x 32 = 64 MACs, AVX512-VNNI
#: 2 ports x 64 = 128 MACs, AMX-INT8 1024 MACs per cycle (TMUL).
_FP32_PER_CYCLE = {"SSE": 16, "AVX2": 32, "AVX-512": 64}
_INT8_PER_CYCLE = {"SSE": 32, "AVX2": 128, "AVX-512 VNNI": 256, "AMX-INT8": 2048}
#: Bytes one core can load per cycle: at most 2 x 64-byte loads (AVX-512).
_BYTES_PER_CYCLE = 128


def _theoretical_peak(precision: str, flags: list[str] | None, cores: int, ghz: float) -> float:
    """cores x GHz x operations per cycle for the CPU's widest ISA (GFLOP/s or GOP/s); unknown
    flags (None) get the widest ISA, so the bound still holds."""
    feats = cpu_features(flags) if flags is not None else {}
    if precision == "float32":
        isa = "AVX-512" if feats.get("AVX-512", True) else "AVX2" if feats["AVX2"] else "SSE"
        per_cycle = _FP32_PER_CYCLE[isa]
    else:
        if feats.get("AMX-INT8", True):
            isa = "AMX-INT8"
        elif feats["AVX-512"] and feats["VNNI"]:
            isa = "AVX-512 VNNI"
        else:
            isa = "AVX2" if feats["AVX2"] else "SSE"
        per_cycle = _INT8_PER_CYCLE[isa]
    return cores * ghz * per_cycle


def _this_cpus_flags() -> list[str] | None:
    if None in cpu_features().values():
        return None
    return cpu_info()["all_flags"]


@pytest.mark.parametrize(
    ("flags", "cores", "ghz", "fp32", "int8"),
    [
        (["sse2"], 1, 2.0, 1 * 2.0 * 16, 1 * 2.0 * 32),
        (["avx2", "fma"], 4, 3.0, 384.0, 1536.0),  # 4 x 3.0 x 32, 4 x 3.0 x 128
        (["avx2", "avx_vnni"], 2, 4.0, 256.0, 1024.0),  # AVX-VNNI: 256-bit, as AVX2's 128
        (["avx2", "avx512f", "avx512_vnni"], 2, 2.5, 320.0, 1280.0),  # 2 x 2.5 x 64, 2 x 2.5 x 256
        (["avx2", "avx512f", "amx_int8", "amx_tile"], 1, 2.0, 128.0, 4096.0),
        (None, 1, 1.0, 64.0, 2048.0),  # flags unknown: the widest ISA
    ],
)
def test_theoretical_peak_of_a_described_cpu(
    flags: list[str] | None, cores: int, ghz: float, fp32: float, int8: float
) -> None:
    assert _theoretical_peak("float32", flags, cores, ghz) == pytest.approx(fp32)
    assert _theoretical_peak("int8", flags, cores, ghz) == pytest.approx(int8)
    assert int8 >= 2 * fp32  # on every ISA the int8 ceiling is at least twice the fp32 one


def test_gemm_peak_positive_finite_cached_and_restores_threads() -> None:
    before = torch.get_num_threads()
    peak = benchmark.measure_gemm_peak(threads=1, seconds=0.2, size=256)
    assert math.isfinite(peak) and peak > 0
    # one thread can never beat one core's vector units at the fastest clock any CPU reaches
    assert peak <= _theoretical_peak("float32", _this_cpus_flags(), 1, MAX_GHZ), peak
    assert torch.get_num_threads() == before
    # cached per arguments: a second call returns the same measurement
    assert benchmark.measure_gemm_peak(threads=1, seconds=0.2, size=256) == peak


def test_gemm_peak_int8() -> None:
    peak = benchmark.measure_gemm_peak("int8", threads=1, seconds=0.2, size=256)
    assert math.isfinite(peak) and peak > 0
    assert peak <= _theoretical_peak("int8", _this_cpus_flags(), 1, MAX_GHZ), peak


def test_gemm_peak_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="dtype"):
        benchmark.measure_gemm_peak("int4")
    with pytest.raises(ValueError, match="seconds"):
        benchmark.measure_gemm_peak(seconds=0)


def test_memory_bandwidth_positive_finite() -> None:
    bandwidth = benchmark.measure_memory_bandwidth(seconds=0.2, megabytes=32, threads=1)
    assert math.isfinite(bandwidth) and bandwidth > 0
    assert bandwidth <= _BYTES_PER_CYCLE * MAX_GHZ, bandwidth  # one core's loads, even from cache


def test_gemm_probe_rates_are_two_n_cubed_over_the_best_time(monkeypatch) -> None:
    """Fake libraries with known best times: each rate is 2·n³ / ns, the peak the highest, and
    every (library, size) gets an equal share of the seconds."""
    times = {("a", 100): 1_000_000, ("a", 200): 2_000_000, ("b", 100): 400_000, ("b", 200): 4_000_000}
    shares: list[float] = []

    def backend(name: str) -> Any:
        def best_ns(dtype: str, n: int, threads: int, seconds: float) -> float:
            shares.append(seconds)
            return times[(name, n)]
        return best_ns

    monkeypatch.setattr(limits_module, "_probes", lambda dtype: [("a", backend("a")), ("b", backend("b"))])
    peak, details = limits_module._gemm_probe("float32", 1, 0.4, (100, 200))
    # 2·100³ = 2e6 FLOP in 1 ms = 2 GFLOP/s; 2·200³ = 1.6e7 in 2 ms = 8; 2e6 in 0.4 ms = 5; 1.6e7 in 4 ms = 4
    assert details == (("a", 100, 2.0), ("a", 200, 8.0), ("b", 100, 5.0), ("b", 200, 4.0))
    assert peak == 8.0
    assert shares == [0.1] * 4  # 0.4 s over 2 libraries x 2 sizes


def test_measured_rates_follow_the_timer(monkeypatch) -> None:
    """The real probes (ONNX Runtime and torch sessions built) with a best time fixed at 1 ms:
    a 128³ GEMM is 2·128³ = 4 194 304 operations -> 4.194304 GFLOP/s (GOP/s for int8); 3 MiB
    read in 1 ms is 3 145 728 bytes / 1e6 ns = 3.145728 GB/s."""
    monkeypatch.setattr(limits_module, "best_of", lambda fn, seconds, **kwargs: 1_000_000.0)
    seconds = 0.0123  # arguments no other test uses: the cached probes of other tests stay real
    assert benchmark.measure_gemm_peak("float32", threads=1, seconds=seconds, size=128) == pytest.approx(4.194304)
    assert benchmark.measure_gemm_peak("int8", threads=1, seconds=seconds, size=128) == pytest.approx(4.194304)
    bandwidth = benchmark.measure_memory_bandwidth(seconds=seconds, megabytes=3, threads=1)
    assert bandwidth == pytest.approx(3.145728)


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


# ----------------------------------------------------------------------------------------------
# Robust limits: the probe logic (fake probes, so these can fail on the logic alone)
# ----------------------------------------------------------------------------------------------
def _sequence(*values: float) -> Any:
    it = iter(values)
    return lambda: next(it)


def test_repeat_until_stable_stops_when_two_readings_agree() -> None:
    # 100 then 50 (a disturbed run) disagree; 97 agrees with 100 within 10 %: three readings
    readings = benchmark.repeat_until_stable(_sequence(100, 50, 97, 1), tolerance=0.10)
    assert readings == (100, 50, 97)
    # the first two agree already: exactly two readings
    assert benchmark.repeat_until_stable(_sequence(100, 95, 1), tolerance=0.10) == (100, 95)


def test_repeat_until_stable_gives_up_after_max_repeats() -> None:
    readings = benchmark.repeat_until_stable(_sequence(100, 50, 25, 12, 6), max_repeats=4)
    assert readings == (100, 50, 25, 12)
    probe = benchmark.Probe("float32", "GFLOP/s", readings, 0.10)
    assert not probe.stable and probe.value == 100 and probe.spread == pytest.approx(0.88)


def test_repeat_until_stable_rejects_bad_probes_and_settings() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        benchmark.repeat_until_stable(_sequence(0.0, 1.0))
    with pytest.raises(ValueError, match="tolerance"):
        benchmark.repeat_until_stable(_sequence(1.0, 1.0), tolerance=0)
    with pytest.raises(ValueError, match="min_repeats"):
        benchmark.repeat_until_stable(_sequence(1.0), min_repeats=1)


def test_probe_spread_and_stability() -> None:
    probe = benchmark.Probe("int8", "GOP/s", (180.0, 200.0, 150.0), 0.10)
    assert probe.value == 200.0
    assert probe.spread == pytest.approx(0.25)
    assert probe.stable  # 200 and 180 are within 10 %
    assert probe.summary()["readings"] == [180.0, 200.0, 150.0]
    assert not benchmark.Probe("int8", "GOP/s", (200.0, 150.0), 0.10).stable


def test_machine_busy_compares_load_with_cores() -> None:
    assert benchmark.machine_busy(1.5, 2) is None
    assert benchmark.machine_busy(2.0, 2) is None  # this process alone can load every core
    message = benchmark.machine_busy(7.5, 2)
    assert message is not None and "7.5" in message and "2 logical core" in message
    assert benchmark.machine_busy(3.0, 2, factor=2.0) is None


def test_limit_key_selects_the_precision_of_a_runner() -> None:
    assert benchmark.limit_key("f32") == benchmark.limit_key("fp32") == "float32"
    assert benchmark.limit_key(torch.bfloat16) == benchmark.limit_key("bf16") == "bfloat16"
    assert benchmark.limit_key("int8 static QDQ") == benchmark.limit_key("uint8") == "int8"
    assert benchmark.limit_key(None) == "float32"
    with pytest.raises(ValueError, match="no limit"):
        benchmark.limit_key("int4-ish")


@pytest.mark.parametrize(
    ("flags", "bf16_native", "bf16_path", "int8_path", "saturates"),
    [
        (["avx2", "fma"], False, "software", "vpmaddubsw", True),
        (["avx2", "avx512f", "avx512_vnni"], False, "software", "VNNI", False),
        (["avx2", "avx512f", "avx512_bf16", "avx512_vnni"], True, "AVX512-BF16", "VNNI", False),
        (["avx2", "avx512f", "amx_bf16", "amx_int8", "amx_tile"], True, "AMX-BF16", "AMX-INT8", False),
    ],
)
def test_precision_hardware_follows_the_cpu_flags(
    flags: list[str], bf16_native: bool, bf16_path: str, int8_path: str, saturates: bool
) -> None:
    bf16 = benchmark.precision_hardware("bfloat16", flags)
    int8 = benchmark.precision_hardware("int8", flags)
    assert bf16["native"] is bf16_native and bf16_path in bf16["path"]
    assert int8_path in int8["path"] and int8["saturates"] is saturates
    assert "FMA" in benchmark.precision_hardware("float32", flags)["path"]


def test_measure_limits_records_readings_and_reaches_fingerprints() -> None:
    limits = benchmark.measure_limits(
        1, precisions=("float32", "int8"), seconds=0.05, megabytes=16, warn=False
    )
    assert set(limits.probes) == {"float32", "int8", "memory"}
    for probe in limits.probes.values():
        assert 2 <= len(probe.readings) <= 5 and all(r > 0 for r in probe.readings)
    assert limits.peak("fp32") == limits.probes["float32"].value
    assert limits.bandwidth == limits.probes["memory"].value
    with pytest.raises(KeyError, match="bfloat16"):
        limits.peak("bf16")
    assert set(limits.kernels("int8")) == {"onnxruntime u8 x s8", "onnxruntime u8 x u8"}
    frame = limits.frame()
    assert list(frame.index) == ["float32 GEMM peak", "int8 GEMM peak", "memory read"]
    assert benchmark.last_limits(1) is limits
    summary = json.loads(json.dumps(limits.summary()))
    assert summary["int8"]["readings"] and "spread" in summary["memory"]
    result = benchmark.benchmark(lambda: None, warmup=0, runs=2, progress=False)
    assert result.fingerprint["limits"]["float32"]["value"] == round(limits.peak("float32"), 2)


@pytest.mark.parametrize(
    ("flags", "bf16_bound"),
    [
        (["avx2", "fma"], "float32"),
        (["avx2", "avx512f", "avx512_vnni"], "float32"),  # OpenVINO may accept bf16 here: software
        (["avx2", "avx512f", "avx512_bf16"], "bfloat16"),
        (["avx2", "avx512f", "amx_bf16", "amx_int8", "amx_tile"], "bfloat16"),
    ],
)
def test_bounding_precision_is_the_arithmetic_that_really_runs(flags: list[str], bf16_bound: str) -> None:
    assert benchmark.bounding_precision("bf16", flags) == bf16_bound
    assert benchmark.bounding_precision(torch.bfloat16, flags) == bf16_bound
    assert benchmark.bounding_precision("f16", flags) == "float32"  # no AVX512-FP16 in these flags
    assert benchmark.bounding_precision("float16", ["avx512f", "avx512_fp16"]) == "float16"
    assert benchmark.bounding_precision("int8 static", flags) == "int8"
    assert benchmark.bounding_precision("f32", flags) == "float32"


def test_count_flops_counts_the_cpus_fused_attention() -> None:
    """scaled_dot_product_attention on a CPU: Q·Kᵀ and the weighted sum of V, 2·2·L²·d each head."""

    class Attention(torch.nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    batch, heads, length, dim = 1, 2, 16, 8
    q, k, v = (torch.randn(batch, heads, length, dim) for _ in range(3))
    assert benchmark.count_flops(Attention(), (q, k, v)) == 2 * 2 * batch * heads * length * length * dim
