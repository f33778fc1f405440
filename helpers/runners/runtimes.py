"""Which runtimes run here, and one factory that configures a runner for any of them.

The keys are those of :func:`available_runtimes`: ``pytorch``, ``pytorch-cuda``,
``torchscript``, ``torch.export``, ``aoti``, ``onnxruntime``, ``onnxruntime-cuda``,
``onnxruntime-openvino``, ``openvino``. :func:`for_runtime` turns a key and an artifact into a
runner set up the way the suite compares runtimes (same thread count, explicit providers,
strict GPU requests), so the environment report, notebook 04 and the classroom widgets build
their runners in one place.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
from collections.abc import Sequence
from typing import Any

from helpers.hardware import gpu_present
from helpers.runners.base import Runner, TensorSpec
from helpers.runners.openvino import openvino_runner
from helpers.runners.ort import ort_providers_for, ort_runner
from helpers.runners.torch_family import (
    aoti_runner,
    exported_program_runner,
    torch_runner,
    torchscript_runner,
)

__all__ = [
    "ONNX_RUNTIMES",
    "RUNTIME_LABELS",
    "RUNTIME_NEEDS",
    "TORCH_RUNTIMES",
    "available_runtimes",
    "for_runtime",
]

#: A readable name for every runtime key (the default runner name).
RUNTIME_LABELS: dict[str, str] = {
    "pytorch": "PyTorch eager",
    "pytorch-cuda": "PyTorch eager (CUDA)",
    "torchscript": "TorchScript (legacy)",
    "torch.export": "torch.export",
    "aoti": "AOTInductor",
    "onnxruntime": "ONNX Runtime — CPU EP",
    "onnxruntime-cuda": "ONNX Runtime — CUDA EP",
    "onnxruntime-openvino": "ONNX Runtime — OpenVINO EP",
    "openvino": "OpenVINO (native)",
}
#: What each runtime needs, for saying why it is missing in this kernel.
RUNTIME_NEEDS: dict[str, str] = {
    "pytorch": "PyTorch (torch)",
    "pytorch-cuda": "an NVIDIA GPU visible to PyTorch",
    "torchscript": "torch.jit",
    "torch.export": "torch.export",
    "aoti": "a C++ compiler (g++) for AOTInductor",
    "onnxruntime": "ONNX Runtime (onnxruntime)",
    "onnxruntime-cuda": "the gpu environment (onnxruntime-gpu) and a GPU",
    "onnxruntime-openvino": "the openvino environment (onnxruntime-openvino)",
    "openvino": "OpenVINO (openvino)",
}
#: Keys whose artifact is a PyTorch module, program or package (they need a signature).
TORCH_RUNTIMES = ("pytorch", "pytorch-cuda", "torchscript", "torch.export", "aoti")
#: Keys whose artifact is an ONNX file (OpenVINO also reads its IR ``.xml``).
ONNX_RUNTIMES = ("onnxruntime", "onnxruntime-cuda", "onnxruntime-openvino", "openvino")
_GPU_OR_EP = {"pytorch-cuda", "onnxruntime-cuda", "onnxruntime-openvino"}
_FP32 = {"float32", "fp32", "f32"}


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_runtimes() -> dict[str, bool]:
    """Which runners can run in this environment.

    Keys: ``pytorch``, ``pytorch-cuda``, ``torchscript``, ``torch.export``, ``aoti`` (needs a C++
    compiler), ``onnxruntime``, ``onnxruntime-cuda`` (CUDA EP listed *and* a GPU present — the
    list alone lies), ``onnxruntime-openvino`` (OpenVINO EP), ``openvino`` (native runtime).
    """
    import torch

    result = {
        "pytorch": True,
        "pytorch-cuda": bool(torch.cuda.is_available()),
        "torchscript": hasattr(torch.jit, "load"),
        "torch.export": hasattr(torch, "export") and hasattr(torch.export, "load"),
        "aoti": _has_module("torch._inductor")
        and any(shutil.which(cc) for cc in ("g++", "c++", "clang++")),
        "onnxruntime": False,
        "onnxruntime-cuda": False,
        "onnxruntime-openvino": False,
        "openvino": _has_module("openvino"),
    }
    if _has_module("onnxruntime"):
        try:
            import onnxruntime as ort

            providers = ort.get_available_providers()
        except Exception:  # a broken install (two ORT packages over each other) counts as absent
            providers = []
        result["onnxruntime"] = "CPUExecutionProvider" in providers
        result["onnxruntime-cuda"] = "CUDAExecutionProvider" in providers and gpu_present()
        result["onnxruntime-openvino"] = "OpenVINOExecutionProvider" in providers
    return result


def for_runtime(
    key: str,
    artifact: Any,
    threads: int | None = None,
    *,
    inputs: Sequence[TensorSpec] | None = None,
    output_names: Sequence[str] | None = None,
    name: str | None = None,
    precision: str | None = None,
    strict: bool | None = None,
    trusted: bool = False,
) -> Runner:
    """A runner for runtime ``key`` (see :func:`available_runtimes`), set up for comparisons.

    - ``artifact``: an ``nn.Module`` for ``pytorch`` / ``pytorch-cuda`` (the CUDA runner gets a
      copy, so the module stays on the CPU); a TorchScript file or ``ScriptModule`` for
      ``torchscript``; a ``.pt2`` or ``ExportedProgram`` for ``torch.export``; an AOTInductor
      package for ``aoti``; an ONNX file for the ONNX Runtime keys and ``openvino``.
    - ``inputs`` / ``output_names``: the signature; required by the PyTorch family (ONNX-based
      runners read it from the file).
    - ``threads``: intra-op threads for every runtime (ONNX Runtime inter-op stays 1; OpenVINO's
      ``INFERENCE_NUM_THREADS``); ``None`` leaves each runtime's default.
    - ``precision``: ``None`` keeps each runtime's default; ``"float32"`` asks for true fp32
      where a runtime would choose less by default — OpenVINO's bf16 on CPUs that have it
      (``INFERENCE_PRECISION_HINT=f32``) and TF32 matmuls on the CUDA EP (``use_tf32=0``).
      OpenVINO also takes ``"bf16"`` / ``"f16"``.
    - ``strict``: defaults to True for GPUs and execution providers (a request that would fall
      back to the CPU raises :class:`ProviderUnavailableError` instead of measuring the CPU under
      another name) and False for CPU runtimes.
    - ``name``: defaults to :data:`RUNTIME_LABELS` ``[key]``.
    - ``trusted``: vouch for a ``.pt2`` / AOTInductor file from outside the suite's folders
      (see :func:`exported_program_runner` and :func:`aoti_runner`: such files can run code).
    """
    if key not in RUNTIME_LABELS:
        raise ValueError(f"unknown runtime {key!r}; choose one of {', '.join(RUNTIME_LABELS)}")
    if precision is not None and precision.lower() not in _FP32 and key != "openvino":
        raise ValueError(
            f"precision={precision!r}: only OpenVINO takes a reduced precision; the other "
            "runtimes run the artifact's own precision (None or 'float32')"
        )
    name = name or RUNTIME_LABELS[key]
    strict = key in _GPU_OR_EP if strict is None else strict
    if key in TORCH_RUNTIMES:
        if inputs is None or output_names is None:
            raise ValueError(f"{key} runs a PyTorch artifact: pass inputs= and output_names=")
        signature = (list(inputs), list(output_names))
        if key in ("pytorch", "pytorch-cuda"):
            device = "cuda" if key == "pytorch-cuda" else "cpu"
            model = copy.deepcopy(artifact) if device == "cuda" else artifact
            return torch_runner(
                model, *signature, name=name, device=device, threads=threads, strict=strict
            )
        if key == "torchscript":
            return torchscript_runner(artifact, *signature, name=name, threads=threads)
        make = exported_program_runner if key == "torch.export" else aoti_runner
        return make(artifact, *signature, name=name, threads=threads, trusted=trusted)
    if artifact is None:
        raise ValueError(f"{name} runs an ONNX file: pass its path as the artifact")
    if key == "openvino":
        return openvino_runner(
            artifact, device="CPU", threads=threads, name=name, precision=precision, strict=strict
        )
    options: dict[str, dict[str, str]] = {}
    if key == "onnxruntime-cuda" and precision is not None:
        options["CUDAExecutionProvider"] = {"use_tf32": "0"}
    if key == "onnxruntime-openvino":  # the EP runs OpenVINO's own threads: give it the count too
        options["OpenVINOExecutionProvider"] = {"device_type": "CPU"}
        if threads is not None:
            options["OpenVINOExecutionProvider"]["num_of_threads"] = str(threads)
    target = {"onnxruntime": "cpu", "onnxruntime-cuda": "cuda", "onnxruntime-openvino": "openvino"}
    return ort_runner(
        artifact,
        providers=ort_providers_for(target[key]),
        name=name,
        threads=threads,
        strict=strict,
        provider_options=options or None,
    )
