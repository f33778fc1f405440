"""OpenVINO's own runtime (``import openvino as ov``), compiled for a device."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.runners.base import Runner, TensorSpec, base_description, report_fallback
from helpers.runners.spec import RuntimeSpec, module_available

if TYPE_CHECKING:
    import openvino as ov
    import torch

__all__ = ["RUNTIMES", "openvino_runner", "ov_dtype_name", "ov_port_name"]


# --------------------------------------------------------------------------------------------
# OpenVINO (native API)
# --------------------------------------------------------------------------------------------


def ov_dtype_name(element_type: ov.Type) -> str:
    """The numpy dtype name of an OpenVINO element type (``"float32"``); its own name if numpy has none."""
    try:
        return np.dtype(element_type.to_dtype()).name
    except Exception:  # pragma: no cover - exotic element types
        return str(element_type)


def ov_port_name(port: ov.Output | ov.ConstOutput) -> str | None:
    """A compiled model's input/output port name, or None when the port has no name."""
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
        core: ov.Core,
        compiled: ov.CompiledModel,
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
                input_names[i] if input_names else (ov_port_name(p) or f"input_{i}"),
                tuple(None if d.is_dynamic else d.get_length() for d in p.get_partial_shape()),
                ov_dtype_name(p.get_element_type()),
            )
            for i, p in enumerate(in_ports)
        ]
        self.output_names = [
            output_names[i] if output_names else (ov_port_name(p) or f"output_{i}")
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
        return base_description(
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
    model_path_or_module: str | Path | ov.Model | torch.nn.Module | torch.export.ExportedProgram,
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
        report_fallback(
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
# The runtime record (collected by helpers.runners.runtimes)
# --------------------------------------------------------------------------------------------
def _make_openvino(
    artifact: str | Path | ov.Model,
    *,
    name: str,
    threads: int | None = None,
    strict: bool = False,
    precision: str | None = None,
    **_: object,
) -> Runner:
    return openvino_runner(
        artifact, device="CPU", threads=threads, name=name, precision=precision, strict=strict
    )


#: Native OpenVINO on the CPU (latency mode; the throughput runner is a mode of the same runtime,
#: see :mod:`helpers.runners.openvino_throughput`).
RUNTIMES: tuple[RuntimeSpec, ...] = (
    RuntimeSpec(
        key="openvino",
        label="OpenVINO (native)",
        needs="OpenVINO (openvino)",
        artifact="onnx",
        available=lambda: module_available("openvino"),
        make=_make_openvino,
        reduced_precision=True,
    ),
)
