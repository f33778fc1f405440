"""ONNX export with the current (dynamo) exporter, and a look inside the resulting graph.

:func:`export_onnx` wraps ``torch.onnx.export(..., dynamo=True)`` — the default exporter since
torch 2.9, built on ``torch.export`` and ``onnxscript`` — with the choices a tutorial wants made
explicitly and checked:

- **One file or two.** By default the exporter writes ``model.onnx`` plus ``model.onnx.data``
  (weights as *external data*). ``single_file=True`` (our default) asks for one self-contained
  ``.onnx`` (``external_data=False``), which is easier to copy around; protobuf limits a single
  file to 2 GB, so very large models need ``single_file=False``.
- **Dynamic dimensions** are declared with ``dynamic_shapes`` in ``torch.export`` style
  (``torch.export.Dim("batch")``, ``Dim.AUTO``/``Dim.DYNAMIC``, or a plain string such as
  ``"batch"`` which names the ONNX dimension). ``dynamic_axes`` — the legacy way — is not used
  because it emits a deprecation warning.
- **Example sizes of 1 are rejected for dynamic dimensions.** ``torch.export`` treats a size of
  1 specially (broadcasting makes it indistinguishable from "any size" in many operators), so an
  example with batch 1 typically gets the dimension *specialised* to the constant 1 — or the
  export fails with a constraint error. Export with an example batch ≥ 2 (and sequence length
  ≥ 2): the graph then works for every size, including 1.
- The result is validated with ``onnx.checker.check_model`` (given the *path*, so models with
  external data and models over 2 GB are checked too), and every dimension declared dynamic is
  checked to really be symbolic in the saved graph.
- The progress messages the exporter prints by default (``[torch.onnx] Obtain model graph...``)
  are turned off (``verbose=False``); pass ``verbose=True`` to see them.
- ``legacy=True`` uses the TorchScript-based exporter (``dynamo=False``), deprecated upstream
  and taught only as the legacy path: it emits a ``DeprecationWarning``.

:func:`onnx_summary`, :func:`op_histogram`, :func:`file_size_mib` and :func:`input_specs_from_onnx`
read a saved model (without loading external weights) to show its inputs/outputs, which
operators it uses (also what quantization inserted) and its size.

:func:`error_line` and :func:`quiet_failed_export` keep a failing export (or a runtime's refusal)
readable in a notebook: the first useful line of the message, and the partial graph that torch
prints once per nested export call kept out of the output.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from helpers.runners import TensorSpec

__all__ = [
    "DynamicShapeError",
    "error_line",
    "export_onnx",
    "file_size_mib",
    "input_specs_from_onnx",
    "onnx_summary",
    "op_histogram",
    "quiet_failed_export",
]


class DynamicShapeError(ValueError):
    """A dimension declared dynamic cannot be exported as dynamic with the given example."""


# ----------------------------------------------------------------------------------------------
# dynamic shapes helpers
# ----------------------------------------------------------------------------------------------


def _is_dynamic(spec: Any) -> bool:
    """Whether one per-axis entry of ``dynamic_shapes`` asks for a dynamic dimension."""
    if spec is None or isinstance(spec, int):
        return False
    if isinstance(spec, str):
        return True
    from torch.export import Dim

    if isinstance(spec, Dim):
        return True
    hint_type = getattr(spec, "type", None)
    if hint_type is not None and type(spec).__name__ == "_DimHint":
        return getattr(hint_type, "name", "") != "STATIC"
    return False


def _is_auto(spec: Any) -> bool:
    """``Dim.AUTO`` means "let torch.export decide": a size-1 example then just specialises."""
    return type(spec).__name__ == "_DimHint" and getattr(spec.type, "name", "") == "AUTO"


def _axis_name(spec: Any, input_name: str, axis: int) -> str:
    if isinstance(spec, str):
        return spec
    name = getattr(spec, "__name__", None)
    return name if isinstance(name, str) else f"{input_name}_dim{axis}"


def _axes_of(spec: Any) -> dict[int, Any] | None:
    """Per-axis mapping if ``spec`` describes one tensor (dict of int, or list/tuple of axes)."""
    if isinstance(spec, Mapping) and all(isinstance(k, int) for k in spec):
        return dict(spec)
    if isinstance(spec, (list, tuple)) and all(
        e is None or isinstance(e, (int, str)) or _is_dynamic(e) for e in spec
    ):
        return dict(enumerate(spec))
    return None


def _walk(value: Any, spec: Any, where: str) -> Iterator[tuple[str, Any, dict[int, Any]]]:
    """Pair tensors in ``value`` with per-axis specs from ``spec`` (same nesting)."""
    import torch

    if spec is None:
        return
    if isinstance(value, torch.Tensor):
        axes = _axes_of(spec)
        if axes is not None:
            yield where, value, axes
        return
    if isinstance(value, Mapping) and isinstance(spec, Mapping):
        for key, sub in spec.items():
            if key in value:
                yield from _walk(value[key], sub, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)) and isinstance(spec, (list, tuple)):
        for i, (v, s) in enumerate(zip(value, spec, strict=False)):
            yield from _walk(v, s, f"{where}[{i}]")


def _forward_parameters(model: Any) -> list[str]:
    try:
        params = inspect.signature(model.forward).parameters
    except (AttributeError, TypeError, ValueError):
        return []
    return [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


# (label for messages, ONNX input name if known, example tensor, {axis: spec})
_Pair = tuple[str, str | None, Any, dict[int, Any]]


def _normalise_dynamic_shapes(
    model: Any,
    args: tuple,
    kwargs: dict[str, Any],
    dynamic_shapes: Any,
    input_names: Sequence[str],
) -> tuple[Any, list[_Pair]]:
    """Return ``dynamic_shapes`` as torch.export wants it, plus the tensors it applies to.

    Accepted besides torch.export's own forms: a dict keyed by ``input_names`` (the ONNX input
    names) for positional example inputs — converted to a tuple in input order.
    """
    import torch

    if dynamic_shapes is None:
        return None, []
    params = _forward_parameters(model)
    if (
        isinstance(dynamic_shapes, Mapping)
        and args
        and not kwargs
        and not set(dynamic_shapes) <= set(params)
        and set(dynamic_shapes) <= set(input_names)
    ):
        order = list(input_names)[: len(args)]
        dynamic_shapes = tuple(dynamic_shapes.get(name) for name in order)

    # Top-level (key, value, spec) with the key's position among the graph's inputs.
    if isinstance(dynamic_shapes, Mapping):
        try:
            bound = dict(inspect.signature(model.forward).bind_partial(*args, **kwargs).arguments)
        except (AttributeError, TypeError, ValueError):
            bound = dict(kwargs)
        top = [(k, bound[k], dynamic_shapes.get(k)) for k in bound]
    else:
        flat = list(args) + list(kwargs.values())
        top = [(str(i), v, s) for i, (v, s) in enumerate(zip(flat, dynamic_shapes, strict=False))]
    all_flat = all(isinstance(v, torch.Tensor) for _, v, _ in top)

    pairs: list[_Pair] = []
    for position, (key, value, spec) in enumerate(top):
        onnx_name = input_names[position] if all_flat and position < len(input_names) else None
        label = repr(onnx_name) if onnx_name else repr(key)
        for where, tensor, axes in _walk(value, spec, label):
            pairs.append((where, onnx_name if where == label else None, tensor, axes))
    return dynamic_shapes, pairs


def _check_examples(pairs: list[_Pair]) -> None:
    for label, _name, tensor, axes in pairs:
        for axis, spec in axes.items():
            if not _is_dynamic(spec):
                continue
            if axis >= tensor.dim() or axis < -tensor.dim():
                raise DynamicShapeError(
                    f"dynamic_shapes declares axis {axis} of input {label} as dynamic, but the "
                    f"example has only {tensor.dim()} dimensions (shape {tuple(tensor.shape)})"
                )
            size = tensor.shape[axis]
            if size < 2 and _is_auto(spec):
                warnings.warn(
                    f"input {label} axis {axis} is Dim.AUTO with example size {size}: "
                    f"torch.export will specialise it to the constant {size}. Use an example of "
                    "size >= 2 if this axis should stay dynamic.",
                    UserWarning,
                    stacklevel=3,
                )
            elif size < 2:
                raise DynamicShapeError(
                    f"input {label} axis {axis} is declared dynamic "
                    f"({_axis_name(spec, str(label), axis)!r}) but the example has size {size} "
                    f"there (shape {tuple(tensor.shape)}). torch.export specialises dimensions of "
                    "size 0 or 1 to constants, so the exported graph would accept only that "
                    "size (or the export fails). Export with an example of size >= 2 on every "
                    "dynamic axis (e.g. batch 2, sequence length >= 2); the exported model then "
                    "runs with any size, including 1."
                )


def _legacy_dynamic_axes(
    dynamic_shapes: Any, input_names: Sequence[str]
) -> dict[str, dict[int, str]] | None:
    """Translate flat ``dynamic_shapes`` to the legacy exporter's ``dynamic_axes``."""
    if dynamic_shapes is None:
        return None
    if isinstance(dynamic_shapes, Mapping):
        items = [(n, s) for n, s in dynamic_shapes.items() if n in input_names]
    else:
        items = list(zip(input_names, dynamic_shapes, strict=False))
    axes: dict[str, dict[int, str]] = {}
    for name, spec in items:
        per_axis = _axes_of(spec) if spec is not None else None
        if not per_axis:
            continue
        dyn = {a: _axis_name(s, name, a) for a, s in per_axis.items() if _is_dynamic(s)}
        if dyn:
            axes[name] = dyn
    return axes or None


# ----------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------


def export_onnx(
    model: Any,
    example_inputs: tuple | dict | Any,
    path: str | Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: Any = None,
    opset: int | None = None,
    single_file: bool = True,
    optimize: bool = True,
    legacy: bool = False,
    verbose: bool = False,
) -> Path:
    """Export ``model`` to ONNX at ``path`` with the dynamo exporter, check it, return the path.

    - ``example_inputs``: a tuple of positional inputs (a single tensor is accepted too) or a
      dict of keyword inputs for ``model.forward``. Tensors become graph inputs, named in order
      by ``input_names``; outputs are named by ``output_names``.
    - ``dynamic_shapes``: ``torch.export`` style — a tuple with one entry per positional input,
      or a dict keyed by ``forward``'s parameter names (a dict keyed by ``input_names`` is
      accepted too). Each entry maps axes to ``torch.export.Dim("batch")``, ``Dim.AUTO`` /
      ``Dim.DYNAMIC`` or a string that names the ONNX dimension, e.g.
      ``{"pixel_values": {0: "batch"}}``. Every dynamic axis needs an example size ≥ 2,
      otherwise :class:`DynamicShapeError` (a ``ValueError``) explains why (size-1
      specialisation). After export, each declared dynamic axis is checked to be symbolic in
      the saved graph (a ``UserWarning`` names any that came out fixed).
    - ``opset``: the ai.onnx opset (``None``: the exporter's recommended default).
    - ``single_file``: one self-contained ``.onnx`` (``external_data=False``); ``False`` writes
      weights to ``<path>.data`` next to it (needed above 2 GB). Stale files from an earlier
      export at the same path are removed first.
    - ``optimize``: let the exporter run its graph optimisations (constant folding, redundant
      node elimination); ``False`` keeps the graph as translated.
    - ``legacy``: use the deprecated TorchScript-based exporter (``dynamo=False``) — for the
      legacy lesson only; emits a ``DeprecationWarning``. ``dynamic_shapes`` is translated to
      its ``dynamic_axes``.
    - ``verbose``: show the exporter's progress messages.

    The model is put in eval mode. The saved file is validated with
    ``onnx.checker.check_model(path)``.
    """
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data_file = path.with_name(path.name + ".data")
    for stale in (path, data_file):
        if stale.exists():
            stale.unlink()

    if isinstance(example_inputs, Mapping):
        args: tuple = ()
        kwargs: dict[str, Any] = dict(example_inputs)
    elif isinstance(example_inputs, tuple):
        args, kwargs = example_inputs, {}
    elif isinstance(example_inputs, list):
        args, kwargs = tuple(example_inputs), {}
    else:
        args, kwargs = (example_inputs,), {}

    if hasattr(model, "eval"):
        model.eval()
    shapes, pairs = _normalise_dynamic_shapes(model, args, kwargs, dynamic_shapes, input_names)
    _check_examples(pairs)

    if legacy:
        warnings.warn(
            "export_onnx(legacy=True) uses the TorchScript-based ONNX exporter (dynamo=False), "
            "which PyTorch has deprecated; use the default dynamo exporter for new work.",
            DeprecationWarning,
            stacklevel=2,
        )
        legacy_args = args if not kwargs else (*args, kwargs)
        torch.onnx.export(
            model,
            legacy_args,
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            opset_version=opset,
            dynamo=False,
            dynamic_axes=_legacy_dynamic_axes(shapes, input_names),
            do_constant_folding=optimize,
            verbose=verbose,
        )
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.onnx.export(
                model,
                args,
                str(path),
                kwargs=kwargs or None,
                input_names=list(input_names),
                output_names=list(output_names),
                opset_version=opset,
                dynamo=True,
                external_data=not single_file,
                dynamic_shapes=shapes,
                optimize=optimize,
                verbose=verbose,
            )
        _reemit(caught)

    onnx.checker.check_model(str(path))
    if single_file and data_file.exists():
        warnings.warn(
            f"{path.name}: the exporter wrote external weights to {data_file.name} although "
            "single_file=True (models over 2 GB cannot be a single protobuf); keep both files "
            "together.",
            UserWarning,
            stacklevel=2,
        )
    _check_dynamic_dims(path, pairs)
    return path


_SAME_AXIS = re.compile(
    r"# The axis name: (?P<a>.+) will not be used, since it shares the same shape constraints "
    r"with another axis: (?P<b>.+)\.$"
)


def _reemit(caught: list[warnings.WarningMessage]) -> None:
    """Pass the exporter's warnings on, minus pure noise.

    Dropped: "The axis name: batch will not be used, since it shares the same shape constraints
    with another axis: batch" — emitted whenever two inputs share a dimension *name* (e.g.
    ``input_ids`` and ``attention_mask`` both ``{0: "batch", 1: "seq"}``), which is exactly
    what was asked for. The message is kept when the two names differ.
    """
    for w in caught:
        match = _SAME_AXIS.match(str(w.message))
        if match and match["a"] == match["b"]:
            continue
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _check_dynamic_dims(
    path: Path,
    pairs: list[_Pair],
) -> None:
    """Warn when an axis declared dynamic came out as a fixed size in the saved graph."""
    if not pairs:
        return
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph_inputs = {i.name: i for i in model.graph.input}
    for _label, name, _tensor, axes in pairs:
        if name is None or name not in graph_inputs:
            continue
        dims = graph_inputs[name].type.tensor_type.shape.dim
        fixed = [
            (axis, dims[axis].dim_value)
            for axis, spec in axes.items()
            if _is_dynamic(spec)
            and -len(dims) <= axis < len(dims)
            and dims[axis].HasField("dim_value")
        ]
        for axis, value in fixed:
            warnings.warn(
                f"{path.name}: input {name!r} axis {axis} was declared dynamic but the exported "
                f"graph fixes it to {value}; the model will reject other sizes.",
                UserWarning,
                stacklevel=3,
            )


# ----------------------------------------------------------------------------------------------
# failures a learner reads
# ----------------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Loggers that add noise (not information) when an export fails on data-dependent control flow.
_FAILED_EXPORT_LOGGERS = ("torch.fx.experimental.symbolic_shapes",)


def error_line(error: BaseException, *, max_chars: int = 200) -> str:
    """``"Type: first non-empty line"`` of an error's message, without terminal colour codes.

    Many messages start with a blank line (TorchScript's) or run to pages (the ONNX exporter's
    report); the first line that says something is what a reader needs. Lines longer than
    ``max_chars`` are cut with an ellipsis; an empty message gives just the type's name.
    """
    text = _ANSI.sub("", str(error))
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if len(line) > max_chars:
        line = line[: max_chars - 1] + "…"
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


@contextlib.contextmanager
def quiet_failed_export() -> Iterator[io.StringIO]:
    """Keep what a failing ``torch.export`` prints out of the output; yield where it went.

    When an export fails, torch prints the partial graph it captured to stderr once per nested
    export call (twice for ``torch.export.export``, more through ``torch.onnx.export``) and logs
    "Unable to find user code corresponding to {u0}". Inside this block both go into the
    yielded buffer instead; the error still raises, and it carries the graph once, as
    ``error.partial_fx_graph``. Logger levels and ``sys.stderr`` are restored on exit.
    """
    buffer = io.StringIO()
    loggers = [logging.getLogger(name) for name in _FAILED_EXPORT_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(buffer):
            yield buffer
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# ----------------------------------------------------------------------------------------------
# inspection
# ----------------------------------------------------------------------------------------------


def _load_graph_only(path: str | Path) -> Any:
    import onnx

    return onnx.load(str(path), load_external_data=False)


def _dims(value_info: Any) -> tuple[int | str | None, ...]:
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return ()
    out: list[int | str | None] = []
    for d in tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return tuple(out)


def _dtype_name(value_info: Any) -> str:
    from onnx import helper

    elem = value_info.type.tensor_type.elem_type
    try:
        return helper.tensor_dtype_to_np_dtype(elem).name
    except Exception:  # e.g. a sequence/map type or an exotic element type
        return helper.tensor_dtype_to_string(elem) if elem else "unknown"


def _graph_inputs(model: Any) -> list[Any]:
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def onnx_summary(path: str | Path) -> pd.DataFrame:
    """Inputs and outputs of an ONNX model: one row each with ``kind, name, dtype, shape``.

    ``shape`` is a tuple whose entries are ints (fixed) or strings (symbolic, e.g.
    ``"batch"``); ``None`` means unknown. External weights are not loaded. ``frame.attrs``
    holds ``opset`` (ai.onnx version), ``ir_version``, ``producer``, ``nodes`` (number of nodes
    in the main graph), ``initializers`` and ``file_mib`` (:func:`file_size_mib`).
    """
    model = _load_graph_only(path)
    rows = [
        {"kind": "input", "name": i.name, "dtype": _dtype_name(i), "shape": _dims(i)}
        for i in _graph_inputs(model)
    ] + [
        {"kind": "output", "name": o.name, "dtype": _dtype_name(o), "shape": _dims(o)}
        for o in model.graph.output
    ]
    frame = pd.DataFrame(rows, columns=["kind", "name", "dtype", "shape"])
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    frame.attrs.update(
        {
            "opset": opset,
            "ir_version": model.ir_version,
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "nodes": len(model.graph.node),
            "initializers": len(model.graph.initializer),
            "file_mib": round(file_size_mib(path), 3),
        }
    )
    return frame


def file_size_mib(path: str | Path) -> float:
    """Size of an ONNX model in MiB (2**20 bytes): the ``.onnx`` file plus an external
    ``.onnx.data`` file next to it, if there is one."""
    path = Path(path)
    size = path.stat().st_size
    data_file = path.with_name(path.name + ".data")
    if data_file.exists():
        size += data_file.stat().st_size
    return size / 2**20


def _iter_nodes(graph: Any) -> Iterator[Any]:
    """All nodes of ``graph``, including those of nested subgraphs (If/Loop/Scan bodies)."""
    from onnx import AttributeProto

    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from _iter_nodes(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _iter_nodes(sub)


def op_histogram(path: str | Path) -> pd.Series:
    """How many nodes of each operator type the model has, most frequent first.

    Counts the main graph and nested subgraphs (If/Loop bodies). Operators from a non-default
    domain are prefixed with it, e.g. ``"com.microsoft:FusedMatMul"``. Ties are sorted by name.
    """
    model = _load_graph_only(path)
    counts = Counter(
        f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        for n in _iter_nodes(model.graph)
    )
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    series = pd.Series(
        [c for _, c in ordered], index=[k for k, _ in ordered], name="count", dtype="int64"
    )
    series.index.name = "op_type"
    return series


def input_specs_from_onnx(path: str | Path) -> list[TensorSpec]:
    """The model's graph inputs as :class:`helpers.runners.TensorSpec` (name, shape, dtype).

    Shapes use ints for fixed dimensions and strings for symbolic ones (``"batch"``); weights
    listed as inputs (legacy ``keep_initializers_as_inputs``) are left out.
    """
    from helpers.runners import TensorSpec

    model = _load_graph_only(path)
    return [
        TensorSpec(name=i.name, shape=_dims(i), dtype=_dtype_name(i)) for i in _graph_inputs(model)
    ]
