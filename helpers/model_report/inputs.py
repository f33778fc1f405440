"""What the report is given: a ``module.py:function`` returning ``(model, example_inputs)`` or an ONNX
file, loaded and checked before any compute, with one-line errors for bad input."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helpers.runners.base import TensorSpec

__all__ = ["ModelInput", "ReportInputError", "load_callable", "load_input", "from_model", "from_onnx"]


class ReportInputError(ValueError):
    """Bad input to the report (a missing file, no model, inputs that do not fit): one line."""


@dataclass
class ModelInput:
    """A model ready for the report: its name, the PyTorch module (None for an ONNX file), named
    example inputs as numpy arrays, the signature and the output names.

    ``call_style`` says how the module takes its inputs: ``"args"`` (positional, in order) or
    ``"kwargs"`` (a dict of named tensors). ``dynamic`` maps each input name to its dynamic axes
    ``{axis: dim name}``.
    """

    name: str
    module: Any
    inputs: dict[str, np.ndarray]
    output_names: list[str]
    dynamic: dict[str, dict[int, str]]
    call_style: str = "args"
    onnx_path: Path | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def specs(self) -> list[TensorSpec]:
        """The signature: fixed dims from the example, dynamic ones by name."""
        return [
            TensorSpec(name, tuple(self.dynamic.get(name, {}).get(axis, size)
                                   for axis, size in enumerate(value.shape)), value.dtype.name)
            for name, value in self.inputs.items()
        ]

    def torch_inputs(self, arrays: Mapping[str, np.ndarray] | None = None) -> tuple | dict:
        """The inputs as the module takes them (a tuple of tensors or a dict)."""
        import torch

        tensors = {n: torch.from_numpy(np.ascontiguousarray(a)) for n, a in (arrays or self.inputs).items()}
        return tensors if self.call_style == "kwargs" else tuple(tensors.values())

    def named(self, value: Any, what: str = "an input set") -> dict[str, np.ndarray]:
        """One input set in any form the example took (a tensor, a tuple of tensors, a dict of named
        tensors or arrays) as named numpy arrays, checked against the example's names, ranks and
        dtypes: a :class:`ReportInputError` saying what differs, before any runtime sees it."""
        import torch

        names = list(self.inputs)
        if isinstance(value, (torch.Tensor, np.ndarray)):
            value = (value,)
        if isinstance(value, Mapping):
            unknown, missing = sorted(set(map(str, value)) - set(names)), [n for n in names if n not in value]
            if unknown or missing:
                raise ReportInputError(f"{what}: inputs {sorted(map(str, value))}, the model takes {names}; "
                                       "name them as the model does (or pass a tuple in forward's order)")
            arrays = {n: _to_array(value[n], f"{what} {n!r}") for n in names}
        elif isinstance(value, (tuple, list)) and len(value) == len(names):
            arrays = {n: _to_array(v, f"{what} {n!r}") for n, v in zip(names, value, strict=True)}
        else:
            raise ReportInputError(f"{what}: expected {len(names)} tensor(s) ({', '.join(names)}), got "
                                   f"{type(value).__name__}")
        for n, array in arrays.items():
            example = self.inputs[n]
            if array.ndim != example.ndim or array.dtype != example.dtype:
                raise ReportInputError(f"{what} {n!r}: {array.dtype.name}{list(array.shape)}, the example is "
                                       f"{example.dtype.name}{list(example.shape)} (same rank and dtype needed)")
        return arrays


def load_callable(spec: str) -> Callable[[], Any]:
    """The function named by ``"path/to/module.py:function"`` (imported from the file)."""
    path_text, sep, func_name = spec.rpartition(":")
    if not sep or not path_text or not func_name.isidentifier():
        raise ReportInputError(f"{spec!r} is neither an ONNX file nor 'path/to/module.py:function'")
    path = Path(path_text)
    if not path.is_file():
        raise ReportInputError(f"no such file: {path}")
    module_name = f"_model_report_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ReportInputError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as error:
        raise ReportInputError(f"importing {path} failed: {type(error).__name__}: {error}") from error
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ReportInputError(f"{path} has no function {func_name!r}")
    return func


def _names_for(module: Any, count: int) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if count == 0:
        return params
    return params[:count] if len(params) >= count else [f"input_{i}" for i in range(count)]


def _to_array(value: Any, what: str) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise ReportInputError(f"{what} is a {type(value).__name__}; the example inputs must be tensors")


def _output_names(result: Any) -> list[str]:
    import torch

    if isinstance(result, torch.Tensor):
        return ["output"]
    if isinstance(result, Mapping):
        return [str(k) for k, v in result.items() if v is not None]
    if isinstance(result, (tuple, list)):
        return [f"output_{i}" for i in range(len(result))]
    raise ReportInputError(f"the model returned a {type(result).__name__}; it must return tensors "
                           "(a tensor, a tuple of tensors or a dict of named tensors)")


def parse_dynamic(entries: Sequence[str], names: Sequence[str]) -> dict[str, dict[int, str]]:
    """``["x:0", "tokens:1=seq"]`` → ``{"x": {0: "batch"}, "tokens": {1: "seq"}}``; axis 0 is
    named ``batch``; ``"none"`` alone means every shape is fixed."""
    if list(entries) == ["none"]:
        return {}
    dynamic: dict[str, dict[int, str]] = {}
    for entry in entries:
        target, _, rest = entry.partition(":")
        axis_text, _, dim_name = rest.partition("=")
        if not axis_text.isdigit():
            raise ReportInputError(f"--dynamic {entry!r}: write input:axis or input:axis=name (e.g. x:0)")
        axis = int(axis_text)
        targets = list(names) if target in ("*", "") else [target]
        for t in targets:
            if t not in names:
                raise ReportInputError(f"--dynamic {entry!r}: no input named {t!r}; inputs: {', '.join(names)}")
            dynamic.setdefault(t, {})[axis] = dim_name or ("batch" if axis == 0 else f"{t}_dim{axis}")
    return dynamic


def from_model(model: Any, example_inputs: Any, *, name: str = "model",
               dynamic: Sequence[str] = ("*:0",), source: str = "") -> ModelInput:
    """Check a ``(model, example_inputs)`` pair and run the model once on the inputs (cheap): a
    clear :class:`ReportInputError` when it is not a module or the inputs do not fit it."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ReportInputError(f"{source or 'the function'} returned a {type(model).__name__} as the model; "
                               "return (model, example_inputs) with an nn.Module")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if isinstance(example_inputs, Mapping):
        params = _names_for(model, 0) + _names_for(model, 64)
        order = sorted(example_inputs, key=lambda k: params.index(k) if k in params else len(params))
        arrays = {str(k): _to_array(example_inputs[k], f"input {k!r}") for k in order}  # forward's order
        style = "kwargs"
    elif isinstance(example_inputs, (tuple, list)) and example_inputs:
        names = _names_for(model, len(example_inputs))
        arrays = {n: _to_array(v, f"input {n!r}") for n, v in zip(names, example_inputs, strict=True)}
        style = "args"
    else:
        raise ReportInputError("example inputs must be a tensor, a tuple of tensors or a dict of named tensors, "
                               f"got {type(example_inputs).__name__}")
    model.eval()
    item = ModelInput(name, model, arrays, [], {}, style, source=source)
    try:
        with torch.inference_mode():
            example = item.torch_inputs()
            result = model(**example) if isinstance(example, dict) else model(*example)
    except Exception as error:
        first = (str(error).strip().splitlines() or [""])[0][:160]
        raise ReportInputError(f"the example inputs do not fit the model: {type(error).__name__}: {first}") from None
    item.output_names = _output_names(result)
    item.dynamic = parse_dynamic(list(dynamic), list(arrays))
    return item


def from_onnx(path: Path) -> ModelInput:
    """An ONNX file, checked to be one; example inputs are generated from its signature (dynamic
    dimensions get size 1; integer inputs small values)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
        if not proto.graph.node:
            raise ValueError("the graph has no nodes")
    except Exception as error:
        raise ReportInputError(f"{path} is not an ONNX file ({type(error).__name__})") from None
    from helpers.export import input_specs_from_onnx

    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    dynamic: dict[str, dict[int, str]] = {}
    for spec in input_specs_from_onnx(path):
        shape = tuple(d if isinstance(d, int) else 1 for d in spec.shape)
        dynamic[spec.name] = {i: (d or f"dim{i}") for i, d in enumerate(spec.shape) if not isinstance(d, int)}
        dtype = np.dtype(spec.dtype)
        arrays[spec.name] = (rng.integers(0, 2, shape).astype(dtype) if dtype.kind in "biu"
                             else rng.standard_normal(shape).astype(dtype))
    outputs = [o.name for o in proto.graph.output]
    return ModelInput(path.stem, None, arrays, outputs, dynamic, onnx_path=path, source=str(path))


def load_input(spec: str, *, dynamic: Sequence[str] = ("*:0",)) -> ModelInput:
    """``spec`` is an ``.onnx`` file or ``path/to/module.py:function``; checked before any compute."""
    if spec.endswith(".onnx"):
        path = Path(spec)
        if not path.is_file():
            raise ReportInputError(f"no such file: {path}")
        return from_onnx(path)
    func = load_callable(spec)
    try:
        made = func()
    except Exception as error:
        raise ReportInputError(f"{spec} raised {type(error).__name__}: {error}") from error
    if not isinstance(made, tuple) or len(made) != 2:
        raise ReportInputError(f"{spec} returned {type(made).__name__}; it must return (model, example_inputs)")
    return from_model(made[0], made[1], name=spec.rpartition(":")[2], dynamic=dynamic, source=spec)
