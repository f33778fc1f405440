"""ONNX Runtime: an ``InferenceSession`` with explicit, recorded settings and checked providers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.hardware import ort_distribution
from helpers.runners.base import (
    ProviderUnavailableError,
    Runner,
    TensorSpec,
    base_description,
    default_threads,
    report_fallback,
)
from helpers.runners.spec import RuntimeSpec, module_available

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["ORT_DTYPES", "RUNTIMES", "ort_providers_for", "ort_runner"]


# --------------------------------------------------------------------------------------------
# ONNX Runtime
# --------------------------------------------------------------------------------------------

ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(bfloat16)": "bfloat16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}

_GRAPH_LEVELS = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}

_PROVIDER_TARGETS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "gpu": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "openvino": ["OpenVINOExecutionProvider", "CPUExecutionProvider"],
}

_SHORT_PROVIDER = {
    "CPUExecutionProvider": "CPU",
    "CUDAExecutionProvider": "CUDA",
    "TensorrtExecutionProvider": "TensorRT",
    "OpenVINOExecutionProvider": "OpenVINO",
}

_QUANT_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "MatMulInteger",
    "ConvInteger",
    "DynamicQuantizeLinear",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "QAttention",
}


def ort_providers_for(target: str) -> list[str]:
    """The provider list to request for a target, best first, with the CPU as explicit fallback.

    ``"cpu"`` -> ``["CPUExecutionProvider"]``; ``"cuda"`` (alias ``"gpu"``) -> CUDA, CPU;
    ``"tensorrt"`` -> TensorRT, CUDA, CPU; ``"openvino"`` -> OpenVINO, CPU. Whether the first one
    really runs is checked by :func:`ort_runner` after the session is created.
    """
    key = target.lower().strip()
    if key not in _PROVIDER_TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {sorted(_PROVIDER_TARGETS)}")
    return list(_PROVIDER_TARGETS[key])


def _onnx_precision(path: Path) -> str:
    """``int8`` when the graph holds quantisation ops, else the dtype of the first float input."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # onnx missing or unreadable: precision is best effort
        return "float32"
    ops = {node.op_type for node in model.graph.node}
    if ops & _QUANT_OPS:
        return "int8"
    for value in model.graph.input:
        elem = value.type.tensor_type.elem_type
        if elem in (onnx.TensorProto.FLOAT16,):
            return "float16"
        if elem == onnx.TensorProto.BFLOAT16:
            return "bfloat16"
    return "float32"


def _dims(shape: Sequence[int | str | None]) -> tuple[int | str | None, ...]:
    out: list[int | str | None] = []
    for dim in shape:
        if (isinstance(dim, int) and dim >= 0) or (isinstance(dim, str) and dim):
            out.append(dim)
        else:
            out.append(None)
    return tuple(out)


class _OrtRunner(Runner):
    runtime = "onnxruntime"

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        *,
        name: str,
        path: Path,
        requested: list[str],
        intra: int,
        inter: int,
        level: str,
        fallback: str | None,
        optimized_model_path: str | None,
        provider_options: dict[str, dict[str, Any]],
    ) -> None:
        self.session = session
        self.name = name
        self.artifact = str(path)
        self.providers_requested = requested
        self.providers_actual = list(session.get_providers())
        self.intra, self.inter, self.level = intra, inter, level
        self.fallback = fallback
        self.optimized_model_path = optimized_model_path
        self.provider_options = provider_options
        self.inputs = [
            TensorSpec(i.name, _dims(i.shape), ORT_DTYPES.get(i.type, i.type))
            for i in session.get_inputs()
        ]
        self.output_names = [o.name for o in session.get_outputs()]
        self.precision = _onnx_precision(path)

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {spec.name: inputs[spec.name] for spec in self.inputs}
        values = self.session.run(self.output_names, feed)
        return dict(zip(self.output_names, values, strict=True))

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        first = self.providers_actual[0] if self.providers_actual else "?"
        device = _SHORT_PROVIDER.get(first, first).lower()
        options = self.provider_options.get(first, {})
        if first == "OpenVINOExecutionProvider":
            device = f"openvino:{options.get('device_type', 'CPU')}"
        return base_description(
            self,
            version=ort.__version__,
            distribution=ort_distribution(),
            device=device,
            providers_requested=self.providers_requested,
            providers_actual=self.providers_actual,
            provider_options=self.provider_options or None,
            threads={"intra_op": self.intra, "inter_op": self.inter},
            graph_optimization_level=self.level,
            artifact=self.artifact,
            optimized_model_path=self.optimized_model_path,
            fallback=self.fallback,
        )


def ort_runner(
    onnx_path: str | os.PathLike[str],
    *,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    name: str | None = None,
    threads: int | None = None,
    inter_op_threads: int = 1,
    graph_optimization_level: str = "all",
    strict: bool = False,
    provider_options: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]] | None = None,
    optimized_model_path: str | Path | None = None,
) -> Runner:
    """An ONNX Runtime ``InferenceSession`` with explicit, recorded settings.

    - ``providers``: execution providers in order of preference (see :func:`ort_providers_for`).
      A provider missing from ``onnxruntime.get_available_providers()`` is dropped *before* the
      session is created; after creation the providers the session really uses
      (``session.get_providers()``) are compared with the request — ``onnxruntime-gpu`` on a
      machine without a GPU lists CUDA as available and then silently runs on the CPU. Either
      kind of fallback warns with :class:`ProviderFallbackWarning` naming what really runs and
      shows a banner; ``strict=True`` raises :class:`ProviderUnavailableError` instead.
    - ``threads``: intra-op threads (default: physical cores, :func:`default_threads`) and
      ``inter_op_threads`` (default 1; sequential execution) are set explicitly.
    - ``graph_optimization_level``: ``"all" | "extended" | "basic" | "disabled"``.
    - ``provider_options``: a dict ``{provider: {option: value}}`` (or a list aligned with
      ``providers``), e.g. ``{"OpenVINOExecutionProvider": {"device_type": "CPU"}}``.
    - ``optimized_model_path``: write the graph after ORT's optimisations there
      (``SessionOptions.optimized_model_filepath``), to inspect what the optimiser did.

    Inputs and outputs are read from the session.
    """
    import onnxruntime as ort

    path = Path(onnx_path)
    if not path.exists():
        raise FileNotFoundError(f"no ONNX file at {path}")
    if isinstance(providers, str):
        providers = [providers]
    requested = list(providers)
    if not requested:
        raise ValueError("providers must name at least one execution provider")
    if isinstance(provider_options, Mapping):
        options = {str(k): dict(v) for k, v in provider_options.items()}
    elif provider_options is not None:
        options = {p: dict(o) for p, o in zip(requested, provider_options, strict=True)}
    else:
        options = {}
    if graph_optimization_level not in _GRAPH_LEVELS:
        raise ValueError(
            f"graph_optimization_level must be one of {list(_GRAPH_LEVELS)}, got {graph_optimization_level!r}"
        )

    # 1. Providers this build of ONNX Runtime does not have at all.
    available = ort.get_available_providers()
    missing = [p for p in requested if p not in available]
    usable = [p for p in requested if p in available]
    if not usable:
        usable = ["CPUExecutionProvider"]
    fallback_note: str | None = None
    if missing:
        fallback_note = (
            f"{', '.join(missing)} not available in this ONNX Runtime build "
            f"({ort_distribution()}; available: {', '.join(available)})"
        )
        report_fallback(
            f"Requested {missing} but this ONNX Runtime build does not have "
            f"{'it' if len(missing) == 1 else 'them'} ({ort_distribution()}; available: "
            f"{available}). The session will run on {usable}.",
            strict=strict,
            title=f"ONNX Runtime: {', '.join(_SHORT_PROVIDER.get(p, p) for p in missing)} unavailable",
        )

    # 2. Session with explicit settings.
    intra = threads if threads is not None else default_threads()
    so = ort.SessionOptions()
    so.intra_op_num_threads = intra
    so.inter_op_num_threads = inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, _GRAPH_LEVELS[graph_optimization_level]
    )
    if optimized_model_path is not None:
        Path(optimized_model_path).parent.mkdir(parents=True, exist_ok=True)
        so.optimized_model_filepath = str(optimized_model_path)
    provider_list = [(p, options.get(p, {})) for p in usable]
    try:
        session = ort.InferenceSession(str(path), sess_options=so, providers=provider_list)
    except Exception as error:
        if usable == ["CPUExecutionProvider"]:
            raise
        # A provider that is listed but cannot start (no driver, no device) can throw here.
        if strict:
            raise ProviderUnavailableError(
                f"creating the session with {usable} failed: {error}"
            ) from error
        try:
            session = ort.InferenceSession(
                str(path), sess_options=so, providers=["CPUExecutionProvider"]
            )
        except Exception:
            raise error from None
        fallback_note = f"session creation with {usable} failed ({error}); fell back to CPU"
        report_fallback(
            f"Creating the session with {usable} failed ({type(error).__name__}: {error}); "
            f"running on ['CPUExecutionProvider'] instead.",
            strict=False,
            title="ONNX Runtime fell back to the CPU",
        )

    # 3. Requested vs actual providers (the silent fallback of onnxruntime-gpu).
    actual = list(session.get_providers())
    not_running = [p for p in usable if p not in actual]
    if not_running:
        note = f"{', '.join(not_running)} requested but the session runs on {', '.join(actual)}"
        fallback_note = f"{fallback_note}; {note}" if fallback_note else note
        report_fallback(
            f"Requested {not_running} but the session actually runs on {actual} "
            f"(session.get_providers()). ONNX Runtime fell back without raising — results and "
            f"timings are for {actual[0] if actual else 'nothing'}.",
            strict=strict,
            title=f"ONNX Runtime is running on {_SHORT_PROVIDER.get(actual[0], actual[0]) if actual else '?'}",
        )

    if name is None:
        first = actual[0] if actual else "?"
        name = f"ORT {_SHORT_PROVIDER.get(first, first)}"
        if fallback_note:
            lost = [p for p in requested if p not in actual and p != "CPUExecutionProvider"]
            if lost:
                name += f" (fallback from {', '.join(_SHORT_PROVIDER.get(p, p) for p in lost)})"
    return _OrtRunner(
        session,
        name=name,
        path=path,
        requested=requested,
        intra=intra,
        inter=inter_op_threads,
        level=graph_optimization_level,
        fallback=fallback_note,
        optimized_model_path=str(optimized_model_path) if optimized_model_path else None,
        provider_options={p: options.get(p, {}) for p in usable if options.get(p)},
    )


# --------------------------------------------------------------------------------------------
# The runtime records (collected by helpers.runners.runtimes)
# --------------------------------------------------------------------------------------------
def _listed_providers() -> list[str]:
    """The execution providers this ONNX Runtime build lists; none when it is missing or broken."""
    if not module_available("onnxruntime"):
        return []
    try:
        import onnxruntime as ort

        return list(ort.get_available_providers())
    except Exception:  # a broken install (two ORT packages over each other) counts as absent
        return []


def _ort_spec(
    key: str,
    label: str,
    needs: str,
    target: str,
    *,
    needs_gpu: bool = False,
    provider_options: Mapping[str, str] | None = None,
    fp32_options: Mapping[str, str] | None = None,
    threads_option: str | None = None,
) -> RuntimeSpec:
    """A runtime that is ONNX Runtime on the first provider of ``ort_providers_for(target)``.

    ``provider_options`` go to that provider always; ``fp32_options`` when ``precision=`` asks
    for true fp32 (e.g. no TF32 matmuls on the CUDA EP); ``threads_option`` names the provider
    option that takes ``threads=`` (an EP with its own thread pool).
    """
    provider = ort_providers_for(target)[0]

    def make(
        artifact: str | Path,
        *,
        name: str,
        threads: int | None = None,
        strict: bool = False,
        precision: str | None = None,
        **_: object,
    ) -> Runner:
        options = dict(provider_options or {})
        if precision is not None:
            options.update(fp32_options or {})
        if threads is not None and threads_option is not None:
            options[threads_option] = str(threads)
        return ort_runner(
            artifact,
            providers=ort_providers_for(target),
            name=name,
            threads=threads,
            strict=strict,
            provider_options={provider: options} if options else None,
        )

    return RuntimeSpec(
        key=key,
        label=label,
        needs=needs,
        artifact="onnx",
        available=lambda: provider in _listed_providers(),
        make=make,
        needs_gpu=needs_gpu,
        execution_provider=provider,
    )


#: ONNX Runtime's runtimes (one per execution provider), in display order.
RUNTIMES: tuple[RuntimeSpec, ...] = (
    _ort_spec("onnxruntime", "ONNX Runtime — CPU EP", "ONNX Runtime (onnxruntime)", "cpu"),
    _ort_spec(
        "onnxruntime-cuda",
        "ONNX Runtime — CUDA EP",
        "the gpu environment (onnxruntime-gpu) and a GPU",
        "cuda",
        needs_gpu=True,
        fp32_options={"use_tf32": "0"},
    ),
    _ort_spec(
        "onnxruntime-openvino",
        "ONNX Runtime — OpenVINO EP",
        "the openvino environment (onnxruntime-openvino)",
        "openvino",
        provider_options={"device_type": "CPU"},
        threads_option="num_of_threads",  # the EP runs OpenVINO's own threads: give it the count too
    ),
)
