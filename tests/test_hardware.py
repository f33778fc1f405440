"""Tests for helpers.hardware: CPU facts, packages, ONNX Runtime distribution, fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    assert set(info["cpu_flags"]) <= set(hardware.CPU_FLAGS)
    if info["load_average"] is not None:
        assert len(info["load_average"]) == 3
    json.dumps(info)  # plain data: can be stored next to results


def test_fingerprint_is_a_fresh_copy() -> None:
    a = hardware.fingerprint()
    a["packages"]["torch"] = "tampered"
    assert hardware.fingerprint()["packages"]["torch"] != "tampered"


def test_cpu_info_is_parsed_once_and_copied() -> None:
    info = hardware.cpu_info()
    assert info["logical_cores"] >= 1 and set(info["flags"]) == set(hardware.CPU_FLAGS)
    info["flags"]["avx2"] = "tampered"
    assert hardware.cpu_info()["flags"]["avx2"] != "tampered"


def test_cpu_features_follow_the_flags() -> None:
    avx2_only = hardware.cpu_features({"avx2", "fma"})
    assert avx2_only == {"AVX2": True, "AVX-512": False, "VNNI": False, "AMX-BF16": False,
                         "AMX-INT8": False}
    xeon = hardware.cpu_features({"avx2", "avx512f", "avx512_vnni", "amx_bf16", "amx_int8"})
    assert all(xeon.values())
    assert hardware.has_vnni({"AVX_VNNI"}) and not hardware.has_vnni({"avx2"})
    here = hardware.cpu_features()
    assert here["AVX2"] == ("avx2" in hardware.cpu_info()["all_flags"])


def test_ort_distribution_names_the_installed_package() -> None:
    import onnxruntime

    found = hardware.ort_distributions()
    assert found, "no ONNX Runtime distribution installed"
    named = hardware.ort_distribution()
    assert onnxruntime.__version__ in named and any(name in named for name in found)
    versions = hardware.package_versions()
    assert versions["onnxruntime"] == named and versions["python"]
    assert set(hardware.PACKAGES) <= set(versions)


def test_without_proc_cpuinfo_the_flags_are_unknown_not_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows (no /proc/cpuinfo, no sysctl): the model falls back to what Python knows, and
    the flags are unknown (None) everywhere they are reported, never claimed absent."""
    info = hardware._read_cpu_info(str(tmp_path / "no-cpuinfo"), "win32")
    assert info["flags_source"] is None and set(info["flags"].values()) == {None}
    assert info["model"] and info["logical_cores"] >= 1 and info["all_flags"] == []
    monkeypatch.setattr(hardware, "_parsed_cpu_info", lambda: info)
    assert set(hardware.cpu_features().values()) == {None}
    assert not hardware.has_vnni()
    assert hardware.cpu_features({"avx2"})["AVX2"] is True, "explicit flags are still read"
    from helpers.benchmark import precision_hardware

    assert precision_hardware("int8")["native"] is None
    assert "unknown" in precision_hardware("bf16")["path"]


def test_macos_flags_come_from_sysctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        ("hw.optional",): "hw.optional.arm.FEAT_BF16: 1\nhw.optional.arm.FEAT_SME: 0\nhw.optional.neon: 1\n",
        ("-n", "machdep.cpu.brand_string"): "Apple M2\n",
        ("-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"): None,
    }
    monkeypatch.setattr(hardware, "_sysctl", lambda *names: answers[names])
    info = hardware._read_cpu_info(str(tmp_path / "no-cpuinfo"), "darwin")
    assert info["model"] == "Apple M2" and info["flags_source"] == "sysctl"
    assert {"arm.feat_bf16", "neon"} <= set(info["all_flags"]) and "arm.feat_sme" not in info["all_flags"]
    assert info["flags"]["avx2"] is False, "known flags: an Apple CPU has no AVX2"
    answers[("-n", "machdep.cpu.features", "machdep.cpu.leaf7_features")] = (
        "FPU SSE4.2 AVX1.0\nAVX2 AVX512F AVX512VNNI\n")
    intel = hardware._read_cpu_info(str(tmp_path / "no-cpuinfo"), "darwin")
    assert hardware.cpu_features(intel["all_flags"]) == {
        "AVX2": True, "AVX-512": True, "VNNI": True, "AMX-BF16": False, "AMX-INT8": False}
