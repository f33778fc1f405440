"""Export an ONNX model as a Triton Inference Server model repository, and validate it offline.

Triton ships only as a container image (the PyPI ``tritonserver`` package is a placeholder), so
this suite cannot run the server. What it can do — and what a deployment needs from the model
side — is produce the *model repository* Triton loads::

    <repository>/
      <model_name>/
        config.pbtxt          # the model configuration (protobuf text format)
        labels.txt            # optional: class names, one a line (label_filename)
        1/                    # version 1
          model.onnx

:func:`export_model_repository` writes it from an ONNX file: inputs and outputs (names, dtypes,
dims without the batch dimension) are read from the ONNX graph, ``max_batch_size`` > 0 with
``dynamic_batching`` lets Triton merge concurrent requests into batches (preferred sizes, a
maximum queue delay), ``instance_group`` sets how many copies of the model run on the CPU,
``optimization { execution_accelerators { cpu_execution_accelerator [{ name: "openvino" }] } }``
asks the ONNX Runtime backend for its OpenVINO execution provider, and ``model_warmup`` makes
Triton run a few requests before it reports the model ready.

The file is read and written with **Triton's own schema**: the ``ModelConfig`` protobuf message
from ``tritonclient`` (``tritonclient/grpc/model_config_pb2.py``, loaded by file path so that
neither grpc nor the rest of the client is imported) and ``google.protobuf.text_format``. Every
field Triton knows is accepted; unknown fields, wrong types and syntax errors raise
:class:`ConfigError` with ``line:column``. :func:`validate_repository` then checks the config
against the ONNX model (names, dtypes, dims, batch dimension, batching, warm-up, accelerators,
label file).

:func:`triton_ready` and :func:`triton_infer` are the client side, over the KServe v2 protocol
that Triton speaks (:mod:`helpers.serving.kserve`); :func:`triton_ready` answers quickly when no server
is reachable.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from helpers.serving import kserve

__all__ = [
    "ConfigError",
    "ONNX_TO_TRITON",
    "export_model_repository",
    "model_config_pb2",
    "parse_config",
    "parse_config_message",
    "render_config",
    "triton_infer",
    "triton_ready",
    "validate_repository",
]


class ConfigError(ValueError):
    """``config.pbtxt`` is malformed or does not match the model; the message says where and why."""


#: ONNX/NumPy dtype name → Triton ``DataType`` (the v2 datatype with ``TYPE_`` in front).
ONNX_TO_TRITON = {
    **{numpy: f"TYPE_{v2}" for v2, numpy in kserve.DATATYPES.items()},
    "bfloat16": "TYPE_BF16",
    "object": "TYPE_STRING",
    "string": "TYPE_STRING",
}
#: Execution accelerators the ONNX Runtime backend understands, per device kind.
ORT_ACCELERATORS = {"cpu": {"openvino"}, "gpu": {"tensorrt", "cuda"}}
_PB2_NAME = "helpers._triton_model_config_pb2"


@cache
def model_config_pb2() -> ModuleType:
    """Triton's ``model_config_pb2`` module (the ``ModelConfig`` message and its parts).

    Loaded from ``tritonclient/grpc/model_config_pb2.py`` by file path: importing
    ``tritonclient.grpc`` would import grpc and the whole gRPC client, which the schema does not
    need (it needs only ``protobuf``). Raises :class:`ConfigError` if tritonclient is missing.
    """
    loaded = sys.modules.get("tritonclient.grpc.model_config_pb2")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("tritonclient")  # locates the package, imports nothing
    if spec is None or spec.origin is None:
        raise ConfigError("Triton's model-config schema comes with tritonclient: pip install tritonclient")
    path = Path(spec.origin).parent / "grpc" / "model_config_pb2.py"
    if not path.is_file():
        raise ConfigError(f"tritonclient is installed but has no {path.name} ({path})")
    module_spec = importlib.util.spec_from_file_location(_PB2_NAME, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    sys.modules[_PB2_NAME] = module
    return module


def _looks_like_path(source: Any) -> bool:
    if isinstance(source, os.PathLike):
        return True
    return isinstance(source, str) and "\n" not in source and source.endswith(".pbtxt")


def parse_config_message(source: str | os.PathLike[str]) -> Any:
    """Parse a ``config.pbtxt`` (a path or its text) into Triton's ``ModelConfig`` message.

    Raises :class:`ConfigError` ``"<file>:<line>:<column>: <problem>"`` for syntax errors,
    unknown fields, wrong value types, unknown enum values and non-repeated fields given twice.
    """
    from google.protobuf import text_format

    if _looks_like_path(source):
        where = str(source)
        text = Path(source).read_text(encoding="utf-8")
    else:
        where, text = "<config>", str(source)
    message = model_config_pb2().ModelConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        problem = re.sub(r"^\d+:\d+ : ", "", str(error))
        line, column = error.GetLine(), error.GetColumn()
        position = f"{line}:{column}" if line else "?"
        raise ConfigError(f"{where}:{position}: {problem}") from None
    return message


def _to_python(message: Any) -> dict[str, Any]:
    """The fields that are set, as plain Python: enums as names, maps as dicts, ints as ints."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        out[field.name] = _field_value(field, value)
    return out


def _field_value(field: Any, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {k: _scalar(value_field, v) for k, v in value.items()}
    if field.is_repeated:
        return [_scalar(field, v) for v in value]
    return _scalar(field, value)


def _scalar(field: Any, value: Any) -> Any:
    if field.message_type is not None:
        return _to_python(value)
    if field.enum_type is not None:
        return field.enum_type.values_by_number[int(value)].name
    return value


def parse_config(source: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a ``config.pbtxt`` (a path or its text) into a dict of the fields that are set.

    Same parser and errors as :func:`parse_config_message` (Triton's schema); values are plain
    Python: ``{"name": "m", "max_batch_size": 8, "input": [{"name": ..., "data_type":
    "TYPE_FP32", "dims": [3, -1, -1]}], ...}``. Fields at their default (0, ``""``, the first
    enum value) are left out, as protobuf does.
    """
    return _to_python(parse_config_message(source))


def _dims(shape: Sequence[Any]) -> list[int]:
    return [int(d) if isinstance(d, int) and d >= 0 else -1 for d in shape]


def render_config(
    name: str,
    inputs: Sequence[tuple[str, str, Sequence[int]]],
    outputs: Sequence[tuple[str, str, Sequence[int]]],
    *,
    max_batch_size: int = 8,
    preferred_batch_sizes: Sequence[int] = (4, 8),
    max_queue_delay_us: int = 500,
    instance_count: int = 1,
    kind: str = "KIND_CPU",
    openvino_accelerator: bool = False,
    accelerator_parameters: Mapping[str, str] | None = None,
    warmup_dims: Mapping[str, Sequence[int]] | None = None,
    label_filename: str | None = None,
) -> str:
    """The text of a ``config.pbtxt`` for an ONNX model (ONNX Runtime backend).

    ``inputs``/``outputs`` are ``(name, triton_data_type, dims_without_batch)``; -1 marks a
    dynamic dimension. ``max_batch_size`` 0 turns batching off (dims then include the batch).
    ``openvino_accelerator`` adds the ``optimization`` block that runs the model with ONNX
    Runtime's OpenVINO execution provider (``accelerator_parameters`` become its parameters).
    ``warmup_dims`` (input name → concrete dims without the batch) adds a ``model_warmup`` of
    one random batch of 1. ``label_filename`` names the class-label file of the first output.
    Written with ``text_format`` from a ``ModelConfig`` message, so the text is exactly what
    Triton's parser reads.
    """
    from google.protobuf import text_format

    pb2 = model_config_pb2()
    config = pb2.ModelConfig(name=name, backend="onnxruntime", max_batch_size=max_batch_size)
    types = {tname: dtype for tname, dtype, _ in inputs}
    for tname, dtype, dims in inputs:
        config.input.add(name=tname, data_type=pb2.DataType.Value(dtype), dims=list(dims))
    for i, (tname, dtype, dims) in enumerate(outputs):
        out = config.output.add(name=tname, data_type=pb2.DataType.Value(dtype), dims=list(dims))
        if label_filename and i == 0:
            out.label_filename = label_filename
    config.instance_group.add(count=instance_count, kind=pb2.ModelInstanceGroup.Kind.Value(kind))
    if max_batch_size > 0:
        config.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes)
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    if openvino_accelerator:
        accelerator = config.optimization.execution_accelerators.cpu_execution_accelerator.add(
            name="openvino")
        accelerator.parameters.update(dict(accelerator_parameters or {}))
    if warmup_dims:
        warmup = config.model_warmup.add(name="random batch of 1", batch_size=1, count=1)
        for tname, dims in warmup_dims.items():
            entry = warmup.inputs[tname]
            entry.data_type = pb2.DataType.Value(types[tname])
            entry.dims.extend(int(d) for d in dims)
            entry.random_data = True
    config.version_policy.latest.num_versions = 1
    header = "# Triton model configuration written by helpers.serving.triton.export_model_repository\n"
    return header + text_format.MessageToString(config, as_utf8=True, use_short_repeated_primitives=True)


def _onnx_io(onnx_path: Path) -> tuple[list[tuple[str, str, list[Any]]], list[tuple[str, str, list[Any]]]]:
    """(inputs, outputs) of an ONNX file as (name, numpy dtype name, shape with str/None dims)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    init_names = {i.name for i in model.graph.initializer}

    def describe(value_info: Any) -> tuple[str, str, list[Any]]:
        tensor = value_info.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        shape: list[Any] = []
        for d in tensor.shape.dim:
            if d.HasField("dim_value"):
                shape.append(int(d.dim_value))
            else:
                shape.append(d.dim_param or None)
        return value_info.name, dtype, shape

    inputs = [describe(v) for v in model.graph.input if v.name not in init_names]
    outputs = [describe(v) for v in model.graph.output]
    return inputs, outputs


def export_model_repository(
    onnx_path: str | os.PathLike[str],
    repository: str | os.PathLike[str],
    model_name: str,
    *,
    version: int = 1,
    max_batch_size: int = 8,
    preferred_batch_sizes: Sequence[int] = (4, 8),
    max_queue_delay_us: int = 500,
    instance_count: int = 1,
    kind: str = "KIND_CPU",
    openvino_accelerator: bool = False,
    warmup: bool = False,
    warmup_dims: Mapping[str, Sequence[int]] | None = None,
    labels: Sequence[str] | None = None,
    labels_filename: str = "labels.txt",
) -> Path:
    """Write ``<repository>/<model_name>/{config.pbtxt, <version>/model.onnx}``; return the model folder.

    The ONNX file is copied (it must be self-contained: no external ``.data`` file). With
    ``max_batch_size`` > 0 the first dimension of every input and output must be dynamic (the
    batch) and is left out of ``dims``; Triton adds it. ``openvino_accelerator`` adds the
    OpenVINO execution-accelerator block; ``warmup`` a ``model_warmup`` with one random batch
    of 1 (inputs with dynamic dims need ``warmup_dims``, e.g. ``{"pixel_values": [3, 224,
    224]}``); ``labels`` writes ``labels_filename`` (one label a line, UTF-8) and points the
    first output's ``label_filename`` at it. The result is validated with
    :func:`validate_repository` before returning (raises :class:`ConfigError`).
    """
    onnx_path = Path(onnx_path)
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", model_name):
        raise ValueError(f"model_name {model_name!r}: use letters, digits, '_', '-', '.' only")
    if any(s < 1 or s > max_batch_size for s in preferred_batch_sizes) and max_batch_size > 0:
        raise ValueError(
            f"preferred_batch_sizes {list(preferred_batch_sizes)} must lie in 1..max_batch_size ({max_batch_size})"
        )
    if labels is not None and ("/" in labels_filename or labels_filename in ("", ".", "..")):
        raise ValueError(f"labels_filename {labels_filename!r} must be a plain file name")
    inputs, outputs = _onnx_io(onnx_path)

    def convert(items: list[tuple[str, str, list[Any]]]) -> list[tuple[str, str, list[int]]]:
        out = []
        for tname, dtype, shape in items:
            if dtype not in ONNX_TO_TRITON:
                raise ConfigError(f"{tname}: dtype {dtype} has no Triton equivalent")
            if max_batch_size > 0:
                if not shape or isinstance(shape[0], int):
                    raise ConfigError(
                        f"{tname}: max_batch_size > 0 needs a dynamic first (batch) dimension, "
                        f"but the ONNX shape is {shape}; export with a dynamic batch axis"
                    )
                shape = shape[1:]
            out.append((tname, ONNX_TO_TRITON[dtype], _dims(shape)))
        return out

    triton_inputs = convert(inputs)
    if warmup:
        given = dict(warmup_dims or {})
        for tname, _, dims in triton_inputs:
            if tname not in given:
                if any(d < 0 for d in dims):
                    raise ValueError(f"warm-up needs concrete dims for input {tname!r} (its dims are "
                                     f"{dims}): pass warmup_dims={{{tname!r}: [...]}}")
                given[tname] = dims
        warmup_dims = given
    else:
        warmup_dims = None
    model_dir = Path(repository) / model_name
    version_dir = model_dir / str(int(version))
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, version_dir / "model.onnx")
    if labels is not None:
        (model_dir / labels_filename).write_text("\n".join(labels) + "\n", encoding="utf-8")
    (model_dir / "config.pbtxt").write_text(
        render_config(
            model_name, triton_inputs, convert(outputs),
            max_batch_size=max_batch_size, preferred_batch_sizes=preferred_batch_sizes,
            max_queue_delay_us=max_queue_delay_us, instance_count=instance_count, kind=kind,
            openvino_accelerator=openvino_accelerator, warmup_dims=warmup_dims,
            label_filename=labels_filename if labels is not None else None,
        ),
        encoding="utf-8",
    )
    report = validate_repository(Path(repository), model_name)
    failed = report[~report["ok"]]
    if len(failed):
        raise ConfigError("; ".join(f"{r.check}: {r.detail}" for r in failed.itertuples()))
    return model_dir


def _dims_match(declared: Sequence[int], expected: Sequence[int]) -> bool:
    return len(declared) == len(expected) and all(
        e == -1 or d == e for d, e in zip(declared, expected, strict=True))


def validate_repository(repository: str | os.PathLike[str], model_name: str) -> pd.DataFrame:
    """Check a Triton model folder offline; one row per check: ``check``, ``ok``, ``detail``.

    Checks: ``config.pbtxt`` parses with Triton's schema (:func:`parse_config`); its ``name``
    matches the folder; the backend is ONNX Runtime; a numeric version folder holds
    ``model.onnx`` that passes ``onnx.checker``; every config input/output exists in the ONNX
    graph with the same dtype and dims (batch dimension dynamic and left out when
    ``max_batch_size`` > 0); preferred batch sizes lie in ``1..max_batch_size``; instance counts
    are positive; execution accelerators are ones the ONNX Runtime backend knows; every warm-up
    covers each input with its dtype, concrete compatible dims, a data source and a batch size
    the model accepts; a ``label_filename`` exists (one label per class).
    A syntax error is reported as a failed ``parse`` row (and nothing else is checked).
    """
    import onnx

    model_dir = Path(repository) / model_name
    rows: list[dict[str, Any]] = []

    def add(check: str, ok: bool, detail: str = "") -> None:
        rows.append({"check": check, "ok": bool(ok), "detail": detail})

    config_path = model_dir / "config.pbtxt"
    try:
        config = parse_config(config_path)
        add("parse config.pbtxt", True, f"{len(config)} top-level fields (Triton's ModelConfig schema)")
    except (ConfigError, OSError) as error:
        add("parse config.pbtxt", False, str(error))
        return pd.DataFrame(rows)
    add("name matches folder", config.get("name") == model_name,
        f"name {config.get('name')!r}, folder {model_name!r}")
    backend = config.get("backend") or config.get("platform")
    add("ONNX Runtime backend", backend in ("onnxruntime", "onnxruntime_onnx"), f"{backend!r}")
    versions = sorted(p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
    filename = config.get("default_model_filename", "model.onnx")
    add("version folder with model", bool(versions) and (versions[-1] / filename).is_file(),
        ", ".join(str(v.relative_to(model_dir) / filename) for v in versions) or "no numeric version folder")
    if not versions or not (versions[-1] / filename).is_file():
        return pd.DataFrame(rows)
    onnx_file = versions[-1] / filename
    try:
        onnx.checker.check_model(str(onnx_file))
        add("onnx.checker", True, onnx_file.name)
    except Exception as error:  # onnx raises several exception types
        add("onnx.checker", False, str(error)[:200])
    mbs = int(config.get("max_batch_size", 0))
    add("max_batch_size >= 0", mbs >= 0, str(mbs))
    graph_in, graph_out = _onnx_io(onnx_file)
    for role, declared, graph in (("input", config.get("input", []), graph_in),
                                  ("output", config.get("output", []), graph_out)):
        by_name = {n: (d, s) for n, d, s in graph}
        add(f"{role}s declared", len(declared) == len(graph),
            f"config {[t.get('name') for t in declared]}, ONNX {list(by_name)}")
        for tensor in declared:
            tname = tensor.get("name", "?")
            if tname not in by_name:
                add(f"{role} {tname}", False, f"not in the ONNX graph ({list(by_name)})")
                continue
            dtype, shape = by_name[tname]
            want_type = ONNX_TO_TRITON.get(dtype)
            add(f"{role} {tname} dtype", tensor.get("data_type") == want_type,
                f"config {tensor.get('data_type', 'TYPE_INVALID')}, ONNX {dtype} → {want_type}")
            dims = list(tensor.get("dims", []))
            if mbs > 0:
                batch_ok = bool(shape) and not isinstance(shape[0], int)
                add(f"{role} {tname} batch dim dynamic", batch_ok, f"ONNX shape {shape}")
                shape = shape[1:]
            expect = _dims(shape)
            add(f"{role} {tname} dims", _dims_match(dims, expect),
                f"config {dims}, ONNX (without batch) {expect}")
            if tensor.get("label_filename"):
                _check_labels(add, model_dir, tensor["label_filename"], dims)
    batching = config.get("dynamic_batching")
    if batching is not None:
        sizes = batching.get("preferred_batch_size", [])
        add("dynamic batching needs max_batch_size > 0", mbs > 0, f"max_batch_size {mbs}")
        add("preferred batch sizes in range", all(1 <= s <= mbs for s in sizes),
            f"{sizes} within 1..{mbs}")
    for group in config.get("instance_group", []):
        add("instance count > 0", group.get("count", 0) > 0,
            f"{group.get('count', 0)} × {group.get('kind', 'KIND_AUTO')}")
    accelerators = config.get("optimization", {}).get("execution_accelerators", {})
    for device in ("cpu", "gpu"):
        for accelerator in accelerators.get(f"{device}_execution_accelerator", []):
            known = ORT_ACCELERATORS[device]
            add(f"{device} accelerator {accelerator.get('name', '')!r}", accelerator.get("name") in known,
                f"the onnxruntime backend knows {sorted(known)} on {device.upper()}")
    inputs = {t.get("name"): t for t in config.get("input", [])}
    for warm in config.get("model_warmup", []):
        _check_warmup(add, warm, inputs, mbs)
    return pd.DataFrame(rows)


def _check_labels(add: Any, model_dir: Path, filename: str, dims: Sequence[int]) -> None:
    path = model_dir / filename
    if not path.is_file():
        add(f"label file {filename}", False, f"{path.name} is not in the model folder")
        return
    count = len([line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()])
    classes = dims[-1] if dims else -1
    add(f"label file {filename}", classes < 0 or count == classes,
        f"{count} labels for {classes if classes >= 0 else 'a dynamic number of'} classes")


def _check_warmup(add: Any, warm: Mapping[str, Any], inputs: Mapping[str, Any], mbs: int) -> None:
    label = f"warm-up {warm.get('name', '')!r}"
    batch = warm.get("batch_size", 0)
    add(f"{label} batch size", 1 <= batch <= max(mbs, 1), f"{batch} within 1..{max(mbs, 1)}")
    given = warm.get("inputs", {})
    add(f"{label} covers every input", set(given) == set(inputs),
        f"warm-up {sorted(given)}, model {sorted(inputs)}")
    for tname, entry in given.items():
        declared = inputs.get(tname)
        if declared is None:
            continue
        dims = list(entry.get("dims", []))
        ok = (entry.get("data_type") == declared.get("data_type")
              and all(d > 0 for d in dims) and _dims_match(dims, list(declared.get("dims", []))))
        source = next((k for k in ("zero_data", "random_data", "input_data_file") if entry.get(k)), None)
        add(f"{label} input {tname}", ok and source is not None,
            f"{entry.get('data_type')} {dims} from {source or 'no data source'}; model "
            f"{declared.get('data_type')} {list(declared.get('dims', []))}")


# --------------------------------------------------------------------------------------------
# Client (HTTP/REST, KServe v2 protocol)
# --------------------------------------------------------------------------------------------
def triton_ready(url: str, *, timeout_s: float = 0.5) -> tuple[bool, str]:
    """``(True, ...)`` if a Triton server at ``url`` answers ``GET /v2/health/ready`` with 200.

    Uses a short timeout so a notebook does not hang when no server is reachable; the second
    item says what happened (e.g. ``"connection refused"``). Same as
    :func:`helpers.serving.kserve.server_ready` (Triton speaks the v2 protocol).
    """
    return kserve.server_ready(url, timeout_s=timeout_s)


def triton_infer(
    url: str,
    model_name: str,
    inputs: dict[str, np.ndarray],
    *,
    outputs: Sequence[str] | None = None,
    timeout_s: float = 10.0,
) -> dict[str, np.ndarray]:
    """Run ``model_name`` on a Triton server over HTTP/REST (KServe v2 JSON); return named arrays.

    ``inputs`` map names to NumPy arrays *with* the batch dimension. Data travels as JSON lists
    (simple, fine for a tutorial; production clients use the binary extension or gRPC). An
    error answer raises :class:`helpers.serving.kserve.V2ClientError` with the server's message.
    """
    return kserve.infer(url, model_name, inputs, outputs=outputs, timeout_s=timeout_s)
