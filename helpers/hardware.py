"""What machine and software stack this is: facts read once, never measured.

- **CPU**: model, cores and instruction-set flags, parsed once per process from
  ``/proc/cpuinfo`` (Linux, WSL) or ``sysctl`` (macOS) (:func:`cpu_info`), and what they mean
  for inference kernels (:func:`cpu_features`: AVX2, AVX-512, VNNI, AMX-BF16, AMX-INT8;
  :func:`has_vnni`). Where neither exists (Windows), the flags are reported as unknown (``None``),
  never as absent.
- **GPU**: whether an NVIDIA GPU is really visible to this process (:func:`gpu_present`,
  :func:`gpu_name`) — a CUDA build of a library is not a GPU.
- **Software**: versions of the packages the suite teaches with (:func:`package_versions`) and
  which ONNX Runtime *distribution* provides ``import onnxruntime`` (:func:`ort_distribution`):
  ``onnxruntime``, ``onnxruntime-gpu`` and ``onnxruntime-openvino`` all install the same module.
- :func:`fingerprint`: all of it plus load average and memory, attached to every measurement so
  a number can always be traced back to where it was taken.

Measurements of what the machine can do (GEMM peak, memory bandwidth, FLOP counts) are in
:mod:`helpers.benchmark`; the report a learner reads is :mod:`helpers.envreport`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata as metadata
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Any

__all__ = [
    "CPU_FLAGS",
    "ORT_DISTRIBUTIONS",
    "PACKAGES",
    "cpu_features",
    "cpu_info",
    "fingerprint",
    "gpu_name",
    "gpu_present",
    "has_vnni",
    "ort_distribution",
    "ort_distributions",
    "package_version",
    "package_versions",
]

#: Instruction-set flags (as ``/proc/cpuinfo`` spells them) that decide which kernels the
#: runtimes can use: AVX2/FMA (every x86 server since 2013), AVX-512, VNNI (int8 dot products),
#: AVX512_BF16 and AMX (bf16 / int8 matrix tiles).
CPU_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
_VNNI_FLAGS = {"avx512_vnni", "avx_vnni", "avx512vnni", "vnni", "amx_int8"}

#: Distributions whose versions describe the software stack (read from package metadata,
#: without importing them). ONNX Runtime is reported as its distribution, see below.
PACKAGES = (
    "torch",
    "torchvision",
    "transformers",
    "tokenizers",
    "onnx",
    "onnxscript",
    "openvino",
    "numpy",
    "jupyterlab",
    "papermill",
    "nbval",
)
#: The packages that install the ``onnxruntime`` module (only one may be installed).
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")


# --------------------------------------------------------------------------------------------
# CPU
# --------------------------------------------------------------------------------------------
def cpu_info() -> dict[str, Any]:
    """CPU model, logical/physical cores and instruction-set flags (parsed once per process).

    Keys: ``model``, ``logical_cores``, ``physical_cores``, ``flags`` (``{flag: bool}`` for
    :data:`CPU_FLAGS`; ``{flag: None}`` when this system does not expose its flags),
    ``all_flags`` (every flag, sorted), ``flags_source`` (``"/proc/cpuinfo"``, ``"sysctl"`` or
    None: unknown) and ``machine``. On ARM Linux the ``Features`` line stands in for ``flags``.
    Each call returns a fresh copy.
    """
    info = _parsed_cpu_info()
    return {**info, "flags": dict(info["flags"]), "all_flags": list(info["all_flags"])}


def _from_proc_cpuinfo(path: str) -> tuple[str | None, set[str]] | None:
    """(model name, flags) from a Linux ``/proc/cpuinfo``; None when there is no such file."""
    model: str | None = None
    flags: set[str] = set()
    try:
        with open(path) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        return None
    return model, flags


def _sysctl(*names: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", *names], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _from_sysctl() -> tuple[str | None, set[str]] | None:
    """(brand string, flags) on macOS: Intel's ``machdep.cpu`` feature lists, or Apple silicon's
    ``hw.optional`` entries that are 1 (``arm.feat_bf16``, ``arm.feat_i8mm``, ``neon``, ...)."""
    listing = _sysctl("hw.optional")
    if listing is None:
        return None
    model = (_sysctl("-n", "machdep.cpu.brand_string") or "").strip() or None
    flags = {key.removeprefix("hw.optional.").lower() for key, _, value in
             (line.partition(":") for line in listing.splitlines()) if value.strip() == "1"}
    intel = _sysctl("-n", "machdep.cpu.features", "machdep.cpu.leaf7_features") or ""
    return model, flags | {f.lower().replace(".", "_") for f in intel.split()}


def _read_cpu_info(cpuinfo: str = "/proc/cpuinfo", system: str = sys.platform) -> dict[str, Any]:
    found = _from_proc_cpuinfo(cpuinfo)
    source = "/proc/cpuinfo" if found is not None else None
    if found is None and system == "darwin":
        found = _from_sysctl()
        source = "sysctl" if found is not None else None
    model, flags = found or (None, set())
    processor = platform.processor()
    if not model:
        model = processor if processor not in ("", "x86_64", "i386", "arm") else "unknown"
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil is pinned in every environment
        physical = None
    return {
        "model": model,
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "flags": {flag: (flag in flags) if source else None for flag in CPU_FLAGS},
        "all_flags": sorted(flags),
        "flags_source": source,
        "machine": platform.machine(),
    }


@functools.cache
def _parsed_cpu_info() -> dict[str, Any]:
    return _read_cpu_info()


def has_vnni(flags: Iterable[str] | None = None) -> bool:
    """True when the CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8).

    ``flags`` defaults to this machine's (:func:`cpu_info`); False also when they are unknown.
    """
    found = set(_parsed_cpu_info()["all_flags"]) if flags is None else {f.lower() for f in flags}
    return bool(found & _VNNI_FLAGS)


def cpu_features(flags: Iterable[str] | None = None) -> dict[str, bool | None]:
    """What the flags mean for inference kernels: ``AVX2``, ``AVX-512``, ``VNNI``, ``AMX-BF16``,
    ``AMX-INT8`` (each True or False). ``flags`` defaults to this machine's; each is None when
    this system does not expose them (``cpu_info()["flags_source"]`` is None)."""
    names = ("AVX2", "AVX-512", "VNNI", "AMX-BF16", "AMX-INT8")
    if flags is None and _parsed_cpu_info()["flags_source"] is None:
        return dict.fromkeys(names)
    found = set(_parsed_cpu_info()["all_flags"]) if flags is None else {f.lower() for f in flags}
    return {
        "AVX2": "avx2" in found,
        "AVX-512": "avx512f" in found,
        "VNNI": has_vnni(found),
        "AMX-BF16": "amx_bf16" in found,
        "AMX-INT8": "amx_int8" in found,
    }


# --------------------------------------------------------------------------------------------
# GPU
# --------------------------------------------------------------------------------------------
@functools.cache
def gpu_present() -> bool:
    """True when an NVIDIA GPU is visible to this process (driver and device), not just a CUDA build."""
    with contextlib.suppress(Exception):  # a broken CUDA install counts as "no GPU"
        import torch

        if torch.cuda.is_available():
            return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def _gpu_names() -> list[str]:
    if not gpu_present():
        return []
    try:
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - visible to nvidia-smi but not to torch: only a label
        return ["NVIDIA GPU"]


def gpu_name() -> str | None:
    """The GPU's name (several joined with ", "), or None when no GPU is visible."""
    return ", ".join(_gpu_names()) or None


# --------------------------------------------------------------------------------------------
# Software
# --------------------------------------------------------------------------------------------
def package_version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def ort_distributions() -> dict[str, str]:
    """Every installed ONNX Runtime distribution and its version (more than one is a broken env)."""
    found = {name: package_version(name) for name in ORT_DISTRIBUTIONS}
    return {name: version for name, version in found.items() if version}


def ort_distribution() -> str:
    """Which package provides ``import onnxruntime``, e.g. ``"onnxruntime-openvino 1.24.1"``.

    When ``onnxruntime`` is already imported and several distributions are installed, the one
    whose version matches the imported module is named; ``"not installed"`` when there is none.
    """
    found = ort_distributions()
    if not found:
        return "not installed"
    ort = sys.modules.get("onnxruntime")
    version = getattr(ort, "__version__", None)
    matching = [name for name, v in found.items() if v == version]
    return ", ".join(f"{name} {found[name]}" for name in (matching or found))


def package_versions() -> dict[str, str | None]:
    """Python and the packages the suite teaches with (None when absent); ONNX Runtime as its
    distribution (:func:`ort_distribution`)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    versions.update({name: package_version(name) for name in PACKAGES})
    versions["onnxruntime"] = ort_distribution()
    return versions


# --------------------------------------------------------------------------------------------
# The fingerprint of every measurement
# --------------------------------------------------------------------------------------------
def _memory_gib() -> dict[str, float | None]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return {"total": round(vm.total / 2**30, 1), "available": round(vm.available / 2**30, 1)}
    except Exception:
        return {"total": None, "available": None}


@functools.cache
def _static_fingerprint() -> dict[str, Any]:
    """The parts of the fingerprint that do not change while the process runs."""
    cpu = cpu_info()
    installed = {name: package_version(name) for name in PACKAGES}
    packages = {name: v for name, v in installed.items() if v is not None}
    packages.update(ort_distributions())
    return {
        "cpu_model": cpu["model"],
        "cores_logical": cpu["logical_cores"],
        "cores_physical": cpu["physical_cores"],
        "cpu_flags": [flag for flag in CPU_FLAGS if cpu["flags"][flag]],
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "onnxruntime_dist": ort_distribution(),
        "packages": packages,
        "gpu": gpu_name(),
    }


def fingerprint() -> dict[str, Any]:
    """Describe this machine and the software stack, for attaching to every measurement.

    Keys: ``cpu_model``, ``cores_logical``, ``cores_physical``, ``cpu_flags`` (the
    :data:`CPU_FLAGS` present), ``machine``, ``os``, ``python``, ``onnxruntime_dist`` (which ONNX
    Runtime *package* is installed — they all install the same ``onnxruntime`` module),
    ``packages`` (name → version), ``gpu`` (GPU names or ``None``), ``memory_gib`` (total /
    available), ``load_average`` (1, 5 and 15 minutes), ``load_high``, ``torch_threads``,
    ``omp_num_threads`` and ``timestamp`` (UTC, ISO 8601).

    **Load average** is the number of runnable processes averaged over the last 1/5/15 minutes.
    On a machine with ``N`` cores, a 1-minute load near or above ``N`` means other work
    competed for the cores while we measured: latencies are then inflated and noisy, so compare
    runtimes only within one run (as ratios) and re-measure on a quiet machine before quoting
    absolute numbers. ``load_high`` is ``True`` in that case.

    The static part is computed once per process; load, memory and thread settings are fresh on
    every call.
    """
    info = dict(_static_fingerprint())
    info["packages"] = dict(info["packages"])
    info["cpu_flags"] = list(info["cpu_flags"])
    try:
        load = tuple(round(x, 2) for x in os.getloadavg())
    except (OSError, AttributeError):  # not available on Windows
        load = None
    info["load_average"] = load
    cores = info["cores_logical"] or 1
    info["load_high"] = bool(load is not None and load[0] >= 0.9 * cores)
    info["memory_gib"] = _memory_gib()
    torch_threads = None
    if "torch" in sys.modules:
        torch_threads = sys.modules["torch"].get_num_threads()
    info["torch_threads"] = torch_threads
    info["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    info["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return info
