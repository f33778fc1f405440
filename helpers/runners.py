"""One small interface over every runtime the suite teaches.

A *runner* is made from a model artifact, takes **named numpy inputs** and returns **named numpy
outputs**, and can describe itself (runtime, version, device or execution providers actually in
use, threads). Application code that talks to a runner does not change when the runner does::

    runner = ort_runner("model.onnx")                # or torch_runner(...), openvino_runner(...)
    outputs = runner({"input": batch})               # dict[str, np.ndarray]
    runner.describe()                                # what really ran, and how

Factories (one per runtime):

===========================  =================  ==========================================
factory                      ``runtime``        artifact
===========================  =================  ==========================================
:func:`torch_runner`         ``pytorch``        an ``nn.Module`` (eager, ``inference_mode``)
:func:`torchscript_runner`   ``torchscript``    a TorchScript file (legacy, deprecated upstream)
:func:`exported_program_runner` ``torch.export`` a ``.pt2`` from ``torch.export.save``
:func:`aoti_runner`          ``aoti``           an AOTInductor package (``.pt2``)
:func:`ort_runner`           ``onnxruntime``    an ONNX file + execution providers
:func:`openvino_runner`      ``openvino``       an ONNX / OpenVINO IR file or an ``nn.Module``
===========================  =================  ==========================================

Every ``run`` validates its inputs first (:func:`validate_inputs`): missing or extra names, wrong
rank, wrong fixed dimensions, wrong dtype and non-numpy values (torch tensors, lists) raise
:class:`InputError` with the expected signature in the message, instead of an opaque error deep
inside a runtime.

Fallbacks are never silent: when an execution provider or device that was asked for is not the
one that runs, the runner warns with :class:`ProviderFallbackWarning` (naming what really runs)
and shows a banner; ``strict=True`` raises :class:`ProviderUnavailableError` instead.
"""

from __future__ import annotations

import abc
import contextlib
import importlib.metadata as metadata
import importlib.util
import os
import shutil
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers.display import banner

__all__ = [
    "TensorSpec",
    "InputError",
    "ProviderFallbackWarning",
    "ProviderUnavailableError",
    "Runner",
    "validate_inputs",
    "format_signature",
    "torch_runner",
    "torchscript_runner",
    "exported_program_runner",
    "aoti_runner",
    "ort_runner",
    "openvino_runner",
    "available_runtimes",
    "ort_providers_for",
    "default_threads",
]


# --------------------------------------------------------------------------------------------
# Signatures and input validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one model input.

    ``shape`` holds an ``int`` for a fixed dimension and a ``str`` (symbolic, e.g. ``"batch"``) or
    ``None`` (unnamed) for a dynamic one. ``dtype`` is a numpy dtype name (``"float32"``).
    """

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str

    def __str__(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


class InputError(ValueError):
    """Inputs do not match the runner's signature; the message names the expected signature."""


class ProviderFallbackWarning(UserWarning):
    """An execution provider or device that was asked for is not the one that runs."""


class ProviderUnavailableError(RuntimeError):
    """Raised instead of :class:`ProviderFallbackWarning` when a runner is created with ``strict=True``."""


def format_signature(specs: Sequence[TensorSpec]) -> str:
    """``"input_ids: int64[batch, seq], attention_mask: int64[batch, seq]"``."""
    return ", ".join(str(spec) for spec in specs)


def _describe_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype.name}[{', '.join(str(d) for d in value.shape)}]"
    module = type(value).__module__
    if module.startswith("torch"):
        shape = getattr(value, "shape", None)
        dims = ", ".join(str(d) for d in shape) if shape is not None else "?"
        return f"torch.Tensor {getattr(value, 'dtype', '?')}[{dims}]"
    return type(value).__name__


def _describe_inputs(inputs: Mapping[str, Any]) -> str:
    return (
        ", ".join(f"{name}: {_describe_value(value)}" for name, value in inputs.items())
        or "nothing"
    )


def validate_inputs(specs: Sequence[TensorSpec], inputs: Mapping[str, np.ndarray]) -> None:
    """Check named numpy inputs against a signature; raise :class:`InputError` on any mismatch.

    Checked: the inputs are a mapping; no input is missing or extra; every value is a numpy array
    (a torch tensor gets a hint to call ``.numpy()``); dtypes match exactly (``float64`` where
    ``float32`` is expected is an error, with an ``.astype`` hint — ONNX Runtime would refuse it);
    ranks match; fixed dimensions match; a symbolic dimension (e.g. ``"batch"``) has the same size
    in every input that uses it.
    """
    expected = f"expected inputs: {_sig(specs)}"
    if not isinstance(inputs, Mapping):
        raise InputError(
            f"inputs must be a dict of name -> numpy array, got {_describe_value(inputs)}. "
            f"{expected}"
        )
    got = f"got: {_describe_inputs(inputs)}"
    names = [spec.name for spec in specs]
    missing = [n for n in names if n not in inputs]
    extra = [n for n in inputs if n not in names]
    problems: list[str] = []
    if missing:
        problems.append(f"missing input(s) {missing}")
    if extra:
        problems.append(f"unexpected input(s) {extra}")
    if problems:
        raise InputError(f"{'; '.join(problems)}. {expected}; {got}")

    symbols: dict[str, tuple[str, int]] = {}
    for spec in specs:
        value = inputs[spec.name]
        if not isinstance(value, np.ndarray):
            if type(value).__module__.startswith("torch"):
                hint = (
                    f"input {spec.name!r} is a torch tensor; runners take numpy arrays "
                    f"(call .numpy(), or .detach().cpu().numpy() for tensors that need grad or "
                    f"live on a GPU)"
                )
            else:
                hint = (
                    f"input {spec.name!r} is a {type(value).__name__}, not a numpy array "
                    f"(use np.asarray(value, dtype=np.{spec.dtype}))"
                )
            raise InputError(f"{hint}. {expected}; {got}")
        if value.dtype.name != spec.dtype:
            raise InputError(
                f"input {spec.name!r} has dtype {value.dtype.name} but the model expects "
                f"{spec.dtype} (convert with .astype(np.{spec.dtype})). {expected}; {got}"
            )
        if len(value.shape) != len(spec.shape):
            raise InputError(
                f"input {spec.name!r} has rank {value.ndim} (shape {tuple(value.shape)}) but the "
                f"model expects rank {len(spec.shape)}. {expected}; {got}"
            )
        for axis, (dim, size) in enumerate(zip(spec.shape, value.shape, strict=True)):
            if isinstance(dim, int) and dim >= 0 and dim != size:
                raise InputError(
                    f"input {spec.name!r} has size {size} on axis {axis} but the model fixes it "
                    f"to {dim}. {expected}; {got}"
                )
            if isinstance(dim, str) and dim:
                seen = symbols.setdefault(dim, (spec.name, size))
                if seen[1] != size:
                    raise InputError(
                        f"dimension {dim!r} is {seen[1]} in input {seen[0]!r} but {size} in input "
                        f"{spec.name!r}; inputs sharing a dimension must agree. {expected}; {got}"
                    )


def _sig(specs: Sequence[TensorSpec]) -> str:
    return "; ".join(str(spec) for spec in specs)


# --------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------


class Runner(abc.ABC):
    """A model that maps named numpy inputs to named numpy outputs.

    Subclasses set ``name``, ``runtime``, ``inputs`` and ``output_names`` and implement
    :meth:`_run` and :meth:`describe`. Call a runner like a function (``runner(inputs)``) or with
    :meth:`run`; both validate the inputs first.
    """

    name: str
    runtime: str
    inputs: list[TensorSpec]
    output_names: list[str]
    #: Numeric precision of the computation, used to pick parity tolerances
    #: (``"float32"``, ``"float16"``, ``"bfloat16"``, ``"int8"``); best effort.
    precision: str = "float32"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate ``inputs`` against :attr:`inputs`, run the model, return named outputs."""
        validate_inputs(self.inputs, inputs)
        return self._run(inputs)

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Same as :meth:`run`."""
        return self.run(inputs)

    @abc.abstractmethod
    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run validated inputs."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What runs, as a flat dict (shown in notebooks, stored with benchmark results).

        Always present: ``name``, ``runtime``, ``version``, ``device`` (what really runs, e.g.
        ``"cpu"``, ``"cuda"``, ``"openvino:CPU"``, ``"CPU"``), ``providers_requested`` and
        ``providers_actual`` (ORT execution providers / OpenVINO devices; ``None`` for PyTorch),
        ``threads`` (``{"intra_op": n, "inter_op": m}``; OpenVINO: ``{"intra_op": n, "streams": s}``),
        ``artifact`` (file path or class name), ``precision``, ``inputs`` (signature) and
        ``outputs``. Runtimes add their own keys (``legacy``, ``fallback``,
        ``graph_optimization_level``, ``performance_hint``, ...).
        """

    def signature(self) -> str:
        """The expected inputs, e.g. ``"input_ids: int64[batch, seq], attention_mask: ..."``."""
        return format_signature(self.inputs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.runtime}): {self.signature()} -> {self.output_names}>"


def _base_description(runner: Runner, **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": runner.name,
        "runtime": runner.runtime,
        "version": None,
        "device": None,
        "providers_requested": None,
        "providers_actual": None,
        "threads": None,
        "artifact": None,
        "precision": runner.precision,
        "inputs": runner.signature(),
        "outputs": ", ".join(runner.output_names),
    }
    info.update(extra)
    return info


def _fallback(message: str, *, strict: bool, title: str) -> None:
    """Raise (strict) or warn + banner: a fallback must never be silent."""
    if strict:
        raise ProviderUnavailableError(message)
    warnings.warn(message, ProviderFallbackWarning, stacklevel=3)
    banner(title, message, kind="warning")


def default_threads() -> int:
    """Physical cores (psutil), else logical cores: the default intra-op thread count."""
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil is pinned in every environment
        physical = None
    count = physical or os.cpu_count() or 1
    with contextlib.suppress(AttributeError):  # respect taskset/cgroup affinity where known
        count = min(count, len(os.sched_getaffinity(0)))
    return max(1, count)


# --------------------------------------------------------------------------------------------
# PyTorch family: eager, TorchScript, torch.export, AOTInductor
# --------------------------------------------------------------------------------------------


def _torch_precision(module: Any) -> str:
    try:
        param = next(iter(module.parameters()))
    except (StopIteration, AttributeError, TypeError):
        return "float32"
    return str(param.dtype).replace("torch.", "")


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        flat: list[Any] = []
        for item in value:
            flat.extend(_flatten(item))
        return flat
    return [value]


def _to_numpy(value: Any, name: str) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16
            value = value.float()
        return value.cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (int, float, bool, np.number)):
        return np.asarray(value)
    raise TypeError(f"output {name!r} is a {type(value).__name__}, not a tensor")


def _map_outputs(result: Any, output_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Map a tensor, tuple/list, dict or transformers ModelOutput to ``output_names``."""
    names = list(output_names)
    if isinstance(result, Mapping):  # dict, transformers ModelOutput (an OrderedDict)
        if all(n in result for n in names):
            return {n: _to_numpy(result[n], n) for n in names}
        values = _flatten([v for v in result.values() if v is not None])
    else:
        values = _flatten(result)
    if len(values) < len(names):
        raise ValueError(
            f"the model returned {len(values)} output(s) but output_names lists {len(names)}: {names}"
        )
    if len(values) > len(names) and not isinstance(result, Mapping):
        raise ValueError(
            f"the model returned {len(values)} outputs but output_names lists only {len(names)}: "
            f"{names}; name every output"
        )
    return {n: _to_numpy(v, n) for n, v in zip(names, values, strict=False)}


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    import torch

    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _TorchFamilyRunner(Runner):
    """Shared plumbing: numpy -> tensors on ``device``, ``inference_mode``, outputs -> numpy."""

    legacy = False

    def __init__(
        self,
        fn: Any,
        inputs: Sequence[TensorSpec],
        output_names: Sequence[str],
        *,
        name: str,
        runtime: str,
        device: str = "cpu",
        threads: int | None = None,
        artifact: str | None = None,
        precision: str = "float32",
        note: str = "",
    ) -> None:
        self._fn = fn
        self.inputs = list(inputs)
        self.output_names = list(output_names)
        self.name = name
        self.runtime = runtime
        self.device = device
        self.threads = threads
        self.artifact = artifact
        self.precision = precision
        self.note = note

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = []
        for spec in self.inputs:
            array = inputs[spec.name]
            if not array.flags.writeable or not array.flags.c_contiguous:
                array = np.array(array, order="C", copy=True)
            args.append(torch.from_numpy(array).to(self.device))
        with _torch_threads(self.threads), torch.inference_mode():
            result = self._fn(*args)
        return _map_outputs(result, self.output_names)

    def describe(self) -> dict[str, Any]:
        import torch

        info = _base_description(
            self,
            version=torch.__version__,
            device=self.device,
            providers_requested=None,
            providers_actual=None,
            threads={
                "intra_op": self.threads if self.threads is not None else torch.get_num_threads(),
                "inter_op": torch.get_num_interop_threads(),
            },
            artifact=self.artifact,
            legacy=self.legacy,
        )
        if self.device.startswith("cuda") and torch.cuda.is_available():
            info["device_name"] = torch.cuda.get_device_name(torch.device(self.device))
        if self.note:
            info["note"] = self.note
        return info


class _TorchScriptRunner(_TorchFamilyRunner):
    legacy = True


def _resolve_torch_device(device: str, *, strict: bool) -> str:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        _fallback(
            f"PyTorch device {device!r} was requested but no CUDA GPU is usable here "
            f"(torch {torch.__version__}); running on 'cpu' instead.",
            strict=strict,
            title="Running on CPU, not CUDA",
        )
        return "cpu"
    return device


def torch_runner(
    model: Any,
    inputs: Sequence[TensorSpec],
    output_names: Sequence[str],
    *,
    name: str = "PyTorch eager",
    device: str = "cpu",
    threads: int | None = None,
    strict: bool = False,
) -> Runner:
    """PyTorch eager: ``model.eval()``, called under ``torch.inference_mode()``.

    The model is called with positional arguments in the order of ``inputs``. Its output may be a
    tensor, a (nested) tuple/list, a dict or a transformers ``ModelOutput``; it is mapped to
    ``output_names`` (by key when the keys match, else in order). ``threads`` sets
    ``torch.set_num_threads`` for each call and restores the previous value afterwards.
    ``device="cuda"`` without a usable GPU warns and runs on the CPU (``strict=True`` raises).
    """
    device = _resolve_torch_device(device, strict=strict)
    model.eval()
    model.to(device)
    return _TorchFamilyRunner(
        model,
        inputs,
        output_names,
        name=name,
        runtime="pytorch",
        device=device,
        threads=threads,
        artifact=type(model).__name__,
        precision=_torch_precision(model),
    )


def torchscript_runner(
    path: str | Path | Any,
    inputs: Sequence[TensorSpec],
    output_names: Sequence[str],
    *,
    name: str = "TorchScript (legacy)",
    threads: int | None = None,
    device: str = "cpu",
) -> Runner:
    """A TorchScript file (from ``torch.jit.trace``/``script`` + ``.save``) — **legacy**.

    ``torch.jit.load`` emits a FutureWarning in current PyTorch: TorchScript is deprecated in
    favour of ``torch.export``. The warning is left visible on purpose, and ``describe()`` says
    ``legacy: True``. An already loaded ``ScriptModule`` is accepted too.
    """
    import torch

    device = _resolve_torch_device(device, strict=False)
    if isinstance(path, (str, Path)):
        module = torch.jit.load(str(path), map_location=device)
        artifact = str(path)
    else:
        module, artifact = path, type(path).__name__
    module.eval()
    return _TorchScriptRunner(
        module,
        inputs,
        output_names,
        name=name,
        runtime="torchscript",
        device=device,
        threads=threads,
        artifact=artifact,
        precision=_torch_precision(module),
        note="TorchScript is deprecated upstream (torch.jit.* emit FutureWarning); "
        "use torch.export / AOTInductor for new work.",
    )


def exported_program_runner(
    path_or_program: str | Path | Any,
    inputs: Sequence[TensorSpec],
    output_names: Sequence[str],
    *,
    name: str = "torch.export",
    threads: int | None = None,
    device: str = "cpu",
) -> Runner:
    """A ``torch.export`` program: a ``.pt2`` from ``torch.export.save`` or an ``ExportedProgram``.

    Runs ``program.module()`` (a ``GraphModule``; it is already in inference form, so ``.eval()`` is
    neither needed nor supported) under ``torch.inference_mode()``.
    """
    import torch

    if isinstance(path_or_program, (str, Path)):
        program = torch.export.load(str(path_or_program))
        artifact = str(path_or_program)
    else:
        program, artifact = path_or_program, type(path_or_program).__name__
    module = program.module()
    if device != "cpu":
        device = _resolve_torch_device(device, strict=False)
        module.to(device)
    return _TorchFamilyRunner(
        module,
        inputs,
        output_names,
        name=name,
        runtime="torch.export",
        device=device,
        threads=threads,
        artifact=artifact,
        precision=_torch_precision(module),
    )


def aoti_runner(
    package_path: str | Path,
    inputs: Sequence[TensorSpec],
    output_names: Sequence[str],
    *,
    name: str = "AOTInductor",
    threads: int | None = None,
    device: str = "cpu",
) -> Runner:
    """An AOTInductor package (``torch._inductor.aoti_compile_and_package``), loaded with
    ``torch._inductor.aoti_load_package``: ahead-of-time compiled C++ kernels, no Python graph.

    ``device`` must be the device the package was compiled for.
    """
    import torch
    import torch._inductor

    compiled = torch._inductor.aoti_load_package(str(package_path))
    return _TorchFamilyRunner(
        compiled,
        inputs,
        output_names,
        name=name,
        runtime="aoti",
        device=device,
        threads=threads,
        artifact=str(package_path),
    )


# --------------------------------------------------------------------------------------------
# ONNX Runtime
# --------------------------------------------------------------------------------------------

_ORT_DTYPES = {
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


def _ort_distribution() -> str:
    """The package behind ``import onnxruntime`` (the one whose version matches), e.g.
    ``"onnxruntime-openvino 1.24.1"``."""
    found: dict[str, str] = {}
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    try:
        import onnxruntime as ort

        matching = [d for d, v in found.items() if v == ort.__version__]
    except ImportError:
        matching = []
    chosen = matching or list(found)
    return ", ".join(f"{d} {found[d]}" for d in chosen) or "unknown"


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


def _dims(shape: Sequence[Any]) -> tuple[int | str | None, ...]:
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
        session: Any,
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
            TensorSpec(i.name, _dims(i.shape), _ORT_DTYPES.get(i.type, i.type))
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
        return _base_description(
            self,
            version=ort.__version__,
            distribution=_ort_distribution(),
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
    onnx_path: str | Path,
    *,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    name: str | None = None,
    intra_op_threads: int | None = None,
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
    - ``intra_op_threads`` (default: physical cores, :func:`default_threads`) and
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
            f"({_ort_distribution()}; available: {', '.join(available)})"
        )
        _fallback(
            f"Requested {missing} but this ONNX Runtime build does not have "
            f"{'it' if len(missing) == 1 else 'them'} ({_ort_distribution()}; available: "
            f"{available}). The session will run on {usable}.",
            strict=strict,
            title=f"ONNX Runtime: {', '.join(_SHORT_PROVIDER.get(p, p) for p in missing)} unavailable",
        )

    # 2. Session with explicit settings.
    intra = intra_op_threads if intra_op_threads is not None else default_threads()
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
        _fallback(
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
        _fallback(
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
# OpenVINO (native API)
# --------------------------------------------------------------------------------------------


def _ov_dtype(element_type: Any) -> str:
    try:
        return np.dtype(element_type.to_dtype()).name
    except Exception:  # pragma: no cover - exotic element types
        return str(element_type)


def _ov_port_name(port: Any) -> str | None:
    names = port.get_names()
    if not names:
        return None
    return port.get_any_name()


def _ov_example_args(example_input: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import torch

    def to_tensor(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return torch.from_numpy(np.array(value, copy=True))
        return value

    if isinstance(example_input, Mapping):
        return (), {k: to_tensor(v) for k, v in example_input.items()}
    if isinstance(example_input, (tuple, list)):
        return tuple(to_tensor(v) for v in example_input), {}
    return (to_tensor(example_input),), {}


_OV_PRECISIONS = {
    "f32": "f32",
    "fp32": "f32",
    "float32": "f32",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "f16": "f16",
    "fp16": "f16",
    "float16": "f16",
}


class _OpenVinoRunner(Runner):
    runtime = "openvino"

    def __init__(
        self,
        core: Any,
        compiled: Any,
        *,
        name: str | None,
        device: str,
        hint: str,
        threads: int | None,
        artifact: str,
        input_names: Sequence[str] | None,
        output_names: Sequence[str] | None,
        fallback: str | None,
        cache_dir: str | None,
    ) -> None:
        self.core = core
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self._lock = threading.Lock()  # one InferRequest: serialise calls from several threads
        self.name = name or f"OpenVINO {device}"
        self.device_requested = device
        self.hint = hint
        self.threads_requested = threads
        self.artifact = artifact
        self.fallback = fallback
        self.cache_dir = cache_dir
        in_ports = list(compiled.inputs)
        out_ports = list(compiled.outputs)
        if input_names is not None and len(input_names) != len(in_ports):
            raise ValueError(
                f"input_names lists {len(input_names)} names; the model has {len(in_ports)} inputs"
            )
        if output_names is not None and len(output_names) != len(out_ports):
            raise ValueError(
                f"output_names lists {len(output_names)} names; the model has {len(out_ports)} outputs"
            )
        self.inputs = [
            TensorSpec(
                input_names[i] if input_names else (_ov_port_name(p) or f"input_{i}"),
                tuple(None if d.is_dynamic else d.get_length() for d in p.get_partial_shape()),
                _ov_dtype(p.get_element_type()),
            )
            for i, p in enumerate(in_ports)
        ]
        self.output_names = [
            output_names[i] if output_names else (_ov_port_name(p) or f"output_{i}")
            for i, p in enumerate(out_ports)
        ]
        self.precision = "float32"
        with contextlib.suppress(Exception):
            hint_type = compiled.get_property("INFERENCE_PRECISION_HINT")
            type_name = getattr(hint_type, "get_type_name", lambda: str(hint_type))()
            self.precision = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}.get(
                type_name, "float32"
            )

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {i: inputs[spec.name] for i, spec in enumerate(self.inputs)}
        with self._lock:
            result = self.request.infer(feed, share_outputs=False)
        return {name: np.asarray(result[i]) for i, name in enumerate(self.output_names)}

    def _property(self, key: str) -> Any:
        try:
            value = self.compiled.get_property(key)
        except Exception:
            return None
        if isinstance(value, (int, float, str, bool)) or value is None:
            return value
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return str(value)

    def describe(self) -> dict[str, Any]:
        import openvino as ov

        actual = self._property("EXECUTION_DEVICES")
        device_name = None
        with contextlib.suppress(Exception):
            first = (actual or [self.device_requested])[0]
            device_name = self.core.get_property(first.split(".")[0], "FULL_DEVICE_NAME")
        return _base_description(
            self,
            version=ov.get_version(),
            device=", ".join(actual) if actual else self.device_requested,
            device_requested=self.device_requested,
            device_name=device_name,
            providers_requested=[self.device_requested],
            providers_actual=actual,
            # INFERENCE_NUM_THREADS as compiled (what runs, not what was asked) and the streams
            threads={
                "intra_op": self._property("INFERENCE_NUM_THREADS"),
                "streams": self._property("NUM_STREAMS"),
            },
            performance_hint=self._property("PERFORMANCE_HINT") or self.hint,
            optimal_infer_requests=self._property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"),
            artifact=self.artifact,
            cache_dir=self.cache_dir,
            fallback=self.fallback,
        )


def openvino_runner(
    model_path_or_module: str | Path | Any,
    *,
    device: str = "CPU",
    hint: str = "LATENCY",
    threads: int | None = None,
    name: str | None = None,
    example_input: Any = None,
    cache_dir: str | Path | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    precision: str | None = None,
    strict: bool = False,
) -> Runner:
    """OpenVINO's own runtime (``import openvino as ov``), compiled for ``device``.

    ``model_path_or_module``: an ``.onnx`` or ``.xml`` (IR) path (``core.read_model``), an
    ``ov.Model``, a ``torch.export.ExportedProgram``, or an ``nn.Module``. A module is first
    captured with ``torch.export.export(module, example_input)`` and converted with
    ``ov.convert_model`` (which keeps the batch and spatial dimensions dynamic); if export fails,
    ``ov.convert_model(module, example_input=...)`` is used (it traces with TorchScript, which
    warns). Converted modules have no meaningful tensor names: pass ``input_names`` and
    ``output_names`` so the runner is interchangeable with the others.

    ``hint`` is OpenVINO's ``PERFORMANCE_HINT`` (``"LATENCY"`` or ``"THROUGHPUT"``); ``threads``
    sets ``INFERENCE_NUM_THREADS``; ``cache_dir`` enables the compiled-model cache. A device that
    is not in ``core.available_devices`` warns with :class:`ProviderFallbackWarning` and compiles
    for ``"CPU"`` (``strict=True`` raises). ``describe()`` reports ``EXECUTION_DEVICES``, the
    device(s) actually used.

    ``precision`` sets ``INFERENCE_PRECISION_HINT`` (``"f32"``, ``"bf16"``, ``"f16"``; numpy-style
    names such as ``"float32"`` work too). ``None`` keeps OpenVINO's default, which is **bf16 on
    CPUs with native bf16 support** (AVX512_BF16 / AMX) even for an fp32 model: differences to
    PyTorch are then ~1e-3 instead of ~1e-6. The precision that is really used is in
    ``describe()["precision"]``, in the runner's ``precision`` attribute (parity tolerances follow
    it) and, when it is not fp32, in the default name (``"OpenVINO CPU (bf16)"``).
    """
    import openvino as ov

    core = ov.Core()
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(cache_dir)})

    if isinstance(model_path_or_module, (str, Path)):
        path = Path(model_path_or_module)
        if not path.exists():
            raise FileNotFoundError(f"no model file at {path}")
        model = core.read_model(str(path))
        artifact = str(path)
    elif isinstance(model_path_or_module, ov.Model):
        model, artifact = model_path_or_module, "ov.Model"
    else:
        import torch

        source = model_path_or_module
        artifact = type(source).__name__
        if isinstance(source, torch.export.ExportedProgram):
            model = ov.convert_model(source)
        else:
            if example_input is None:
                raise ValueError("converting an nn.Module to OpenVINO needs example_input")
            source.eval()
            args, kwargs = _ov_example_args(example_input)
            try:
                program = torch.export.export(source, args, kwargs)
            except Exception as error:  # some models only convert through TorchScript tracing
                warnings.warn(
                    f"torch.export failed ({type(error).__name__}); converting with "
                    f"ov.convert_model's TorchScript tracing instead",
                    UserWarning,
                    stacklevel=2,
                )
                model = ov.convert_model(source, example_input=example_input)
            else:
                model = ov.convert_model(program)

    available = list(core.available_devices)
    fallback_note: str | None = None
    base = device.split(":")[0].split(".")[0].upper()
    virtual = {"AUTO", "MULTI", "HETERO", "BATCH"}
    if base not in virtual and not any(d.split(".")[0] == base for d in available):
        fallback_note = f"{device} not available (devices: {available}); compiled for CPU"
        _fallback(
            f"OpenVINO device {device!r} was requested but this machine has {available}; "
            f"compiling for 'CPU' instead.",
            strict=strict,
            title=f"OpenVINO: {device} unavailable, running on CPU",
        )
        device = "CPU"

    config: dict[str, Any] = {"PERFORMANCE_HINT": hint.upper()}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if precision is not None:
        key = precision.lower()
        if key not in _OV_PRECISIONS:
            raise ValueError(
                f"precision must be one of {sorted(_OV_PRECISIONS)}, got {precision!r}"
            )
        config["INFERENCE_PRECISION_HINT"] = _OV_PRECISIONS[key]
    compiled = core.compile_model(model, device, config)
    runner = _OpenVinoRunner(
        core,
        compiled,
        name=name,
        device=device,
        hint=hint.upper(),
        threads=threads,
        artifact=artifact,
        input_names=input_names,
        output_names=output_names,
        fallback=fallback_note,
        cache_dir=str(cache_dir) if cache_dir is not None else None,
    )
    if name is None:
        short = {"bfloat16": "bf16", "float16": "fp16"}.get(runner.precision)
        runner.name = f"OpenVINO {device}" + (f" ({short})" if short else "")
    return runner


# --------------------------------------------------------------------------------------------
# What can run here
# --------------------------------------------------------------------------------------------


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _gpu_present() -> bool:
    try:
        from helpers.envreport import gpu_present

        return bool(gpu_present())
    except ImportError:  # pragma: no cover - envreport ships with the suite
        import torch

        return torch.cuda.is_available()


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
        result["onnxruntime-cuda"] = "CUDAExecutionProvider" in providers and _gpu_present()
        result["onnxruntime-openvino"] = "OpenVINOExecutionProvider" in providers
    return result
