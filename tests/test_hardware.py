"""Tests for helpers.hardware: CPU facts, packages, ONNX Runtime distribution, fingerprint."""

from __future__ import annotations

import json

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
