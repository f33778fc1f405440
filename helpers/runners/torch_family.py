"""The PyTorch family of runners: eager, TorchScript (legacy), torch.export and AOTInductor."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers.runners.base import (
    Runner,
    TensorSpec,
    base_description,
    report_fallback,
)

__all__ = [
    "aoti_runner",
    "exported_program_runner",
    "torch_runner",
    "torch_threads",
    "torchscript_runner",
]


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
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(threads)``; the previous count is restored.

    ``None`` leaves the setting alone. Yields the thread count in force inside the block.
    """
    import torch

    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(int(threads))
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
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
        with torch_threads(self.threads), torch.inference_mode():
            result = self._fn(*args)
        return _map_outputs(result, self.output_names)

    def describe(self) -> dict[str, Any]:
        import torch

        info = base_description(
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
        report_fallback(
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
