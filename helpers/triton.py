"""Export an ONNX model as a Triton Inference Server model repository, and validate it offline.

Triton ships only as a container image (the PyPI ``tritonserver`` package is a placeholder), so
this suite cannot run the server. What it can do — and what a deployment needs from the model
side — is produce the *model repository* Triton loads::

    <repository>/
      <model_name>/
        config.pbtxt          # the model configuration (protobuf text format)
        1/                    # version 1
          model.onnx

:func:`export_model_repository` writes it from an ONNX file: inputs and outputs (names, dtypes,
dims without the batch dimension) are read from the ONNX graph, ``max_batch_size`` > 0 with
``dynamic_batching`` lets Triton merge concurrent requests into batches (preferred sizes, a
maximum queue delay), ``instance_group`` sets how many copies of the model run on the CPU.

:func:`parse_config` is a small **strict** parser for the protobuf text format of
``config.pbtxt``, restricted to the fields this module writes plus common ones (unknown fields,
wrong types, bad enum values and syntax errors raise :class:`ConfigError` with the line number).
It exists because Triton's own ``ModelConfig`` protobuf classes come with ``tritonclient``, whose
dependency pins (``ml-dtypes<=0.5.4``; ``protobuf<7`` with the ``grpc`` extra) conflict with this
suite's environment. :func:`validate_repository` parses the file and checks it against the ONNX
model (names, dtypes, dims, batch dimension, batching settings).

:func:`triton_ready` and :func:`triton_infer` are the client side, over Triton's HTTP/REST
(KServe v2) protocol with plain ``httpx``: they work when a Triton server is reachable, and
:func:`triton_ready` answers quickly (short timeout) when none is.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ConfigError",
    "ONNX_TO_TRITON",
    "export_model_repository",
    "parse_config",
    "render_config",
    "triton_infer",
    "triton_ready",
    "validate_repository",
]


class ConfigError(ValueError):
    """``config.pbtxt`` is malformed or does not match the model; the message says where and why."""


#: ONNX/NumPy dtype name → Triton ``DataType``.
ONNX_TO_TRITON = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16",
    "object": "TYPE_STRING",
    "string": "TYPE_STRING",
}
#: Triton ``DataType`` → the KServe v2 REST ``datatype`` string.
_TRITON_TO_V2 = {v: v.removeprefix("TYPE_").replace("STRING", "BYTES") for v in ONNX_TO_TRITON.values()}
_V2_TO_NUMPY = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16",
    "FP32": "float32", "FP64": "float64",
}

# --------------------------------------------------------------------------------------------
# Schema of the ModelConfig subset understood by the strict parser.
# kind: "str" | "int" | "bool" | ("enum", {...}) | dict (a message); repeated fields in _REPEATED
# --------------------------------------------------------------------------------------------
_DATA_TYPES = {"TYPE_INVALID", *ONNX_TO_TRITON.values()}
_SHAPE = {"shape": "int"}
_TENSOR_COMMON: dict[str, Any] = {
    "name": "str",
    "data_type": ("enum", _DATA_TYPES),
    "dims": "int",
    "reshape": _SHAPE,
}
_INPUT = {
    **_TENSOR_COMMON,
    "format": ("enum", {"FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW"}),
    "is_shape_tensor": "bool",
    "allow_ragged_batch": "bool",
    "optional": "bool",
}
_OUTPUT = {**_TENSOR_COMMON, "label_filename": "str", "is_shape_tensor": "bool"}
_INSTANCE_GROUP = {
    "name": "str",
    "kind": ("enum", {"KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"}),
    "count": "int",
    "gpus": "int",
}
_DYNAMIC_BATCHING = {
    "preferred_batch_size": "int",
    "max_queue_delay_microseconds": "int",
    "preserve_ordering": "bool",
    "priority_levels": "int",
    "default_priority_level": "int",
}
_VERSION_POLICY = {
    "latest": {"num_versions": "int"},
    "all": {},
    "specific": {"versions": "int"},
}
_PARAMETER = {"key": "str", "value": {"string_value": "str"}}
_MODEL_CONFIG: dict[str, Any] = {
    "name": "str",
    "platform": "str",
    "backend": "str",
    "runtime": "str",
    "max_batch_size": "int",
    "version_policy": _VERSION_POLICY,
    "input": _INPUT,
    "output": _OUTPUT,
    "instance_group": _INSTANCE_GROUP,
    "dynamic_batching": _DYNAMIC_BATCHING,
    "default_model_filename": "str",
    "parameters": _PARAMETER,
}
_REPEATED = {
    "input", "output", "instance_group", "dims", "shape", "preferred_batch_size", "gpus",
    "versions", "parameters",
}

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\]:,;<>])
    """,
    re.VERBOSE,
)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos, line = 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ConfigError(f"line {line}: unexpected character {text[pos]!r}")
        kind = match.lastgroup or ""
        value = match.group()
        if kind != "ws":
            tokens.append((kind, value, line))
        line += value.count("\n")
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            last = self.tokens[-1][2] if self.tokens else 1
            raise ConfigError(f"line {last}: unexpected end of file")
        self.i += 1
        return token

    def expect(self, value: str) -> None:
        kind, got, line = self.take()
        if got != value:
            raise ConfigError(f"line {line}: expected {value!r}, got {got!r}")

    def message(self, schema: dict[str, Any], where: str, closing: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            token = self.peek()
            if token is None:
                if closing is not None:
                    self.take()  # raises "unexpected end of file"
                return out
            if closing is not None and token[1] == closing:
                self.take()
                return out
            kind, name, line = self.take()
            if kind != "ident":
                raise ConfigError(f"line {line}: expected a field name in {where}, got {name!r}")
            if name not in schema:
                raise ConfigError(
                    f"line {line}: unknown field {name!r} in {where} (known: {', '.join(sorted(schema))})"
                )
            field_schema = schema[name]
            values = self.field_values(field_schema, f"{where}.{name}", line)
            if name in _REPEATED:
                out.setdefault(name, []).extend(values)
            else:
                if name in out or len(values) != 1:
                    raise ConfigError(f"line {line}: field {where}.{name} is not repeated but given more than once")
                out[name] = values[0]
            nxt = self.peek()
            if nxt is not None and nxt[1] in (",", ";"):
                self.take()

    def field_values(self, schema: Any, where: str, line: int) -> list[Any]:
        is_message = isinstance(schema, dict)
        nxt = self.peek()
        if nxt is not None and nxt[1] == ":":
            self.take()
        elif not is_message:
            raise ConfigError(f"line {line}: expected ':' after scalar field {where}")
        nxt = self.peek()
        if nxt is not None and nxt[1] == "[":
            self.take()
            values: list[Any] = []
            if self.peek() is not None and self.peek()[1] == "]":  # type: ignore[index]
                self.take()
                return values
            while True:
                values.append(self.value(schema, where))
                kind, sep, sep_line = self.take()
                if sep == "]":
                    return values
                if sep != ",":
                    raise ConfigError(f"line {sep_line}: expected ',' or ']' in list {where}, got {sep!r}")
        return [self.value(schema, where)]

    def value(self, schema: Any, where: str) -> Any:
        if isinstance(schema, dict):
            kind, opener, line = self.take()
            if opener not in ("{", "<"):
                raise ConfigError(f"line {line}: expected '{{' to open message {where}, got {opener!r}")
            return self.message(schema, where, "}" if opener == "{" else ">")
        kind, text, line = self.take()
        if schema == "str":
            if kind != "string":
                raise ConfigError(f"line {line}: {where} must be a quoted string, got {text!r}")
            return bytes(text[1:-1], "utf-8").decode("unicode_escape")
        if schema == "int":
            if kind != "number" or not re.fullmatch(r"[-+]?\d+", text):
                raise ConfigError(f"line {line}: {where} must be an integer, got {text!r}")
            return int(text)
        if schema == "bool":
            if text not in ("true", "false", "True", "False", "1", "0"):
                raise ConfigError(f"line {line}: {where} must be true or false, got {text!r}")
            return text in ("true", "True", "1")
        if isinstance(schema, tuple) and schema[0] == "enum":
            if kind != "ident" or text not in schema[1]:
                raise ConfigError(
                    f"line {line}: {where} must be one of {', '.join(sorted(schema[1]))}, got {text!r}"
                )
            return text
        raise AssertionError(schema)  # pragma: no cover


def parse_config(source: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a ``config.pbtxt`` (a path or its text) into a dict, strictly.

    Supports the protobuf text format (``field: value``, ``message { ... }``, lists
    ``[a, b]``, repeated fields, comments) for the ModelConfig fields listed in this module's
    schema. Raises :class:`ConfigError` with a line number for syntax errors, unknown fields,
    wrong value types, unknown enum values and non-repeated fields given twice.
    """
    text = Path(source).read_text() if _looks_like_path(source) else str(source)
    return _Parser(text).message(_MODEL_CONFIG, "ModelConfig", None)


def _looks_like_path(source: Any) -> bool:
    if isinstance(source, os.PathLike):
        return True
    return isinstance(source, str) and "\n" not in source and source.endswith(".pbtxt")


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
) -> str:
    """The text of a ``config.pbtxt`` for an ONNX model (ONNX Runtime backend).

    ``inputs``/``outputs`` are ``(name, triton_data_type, dims_without_batch)``; -1 marks a
    dynamic dimension. ``max_batch_size`` 0 turns batching off (dims then include the batch).
    """

    def tensor(item: tuple[str, str, Sequence[int]]) -> str:
        tname, dtype, dims = item
        return (
            f'  {{\n    name: "{tname}"\n    data_type: {dtype}\n'
            f"    dims: [ {', '.join(str(d) for d in dims)} ]\n  }}"
        )

    lines = [
        f'name: "{name}"',
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch_size}",
        "input [\n" + ",\n".join(tensor(i) for i in inputs) + "\n]",
        "output [\n" + ",\n".join(tensor(o) for o in outputs) + "\n]",
        f"instance_group [\n  {{\n    count: {instance_count}\n    kind: {kind}\n  }}\n]",
    ]
    if max_batch_size > 0:
        sizes = ", ".join(str(s) for s in preferred_batch_sizes)
        lines.append(
            "dynamic_batching {\n"
            + (f"  preferred_batch_size: [ {sizes} ]\n" if preferred_batch_sizes else "")
            + f"  max_queue_delay_microseconds: {max_queue_delay_us}\n}}"
        )
    lines.append('version_policy: { latest: { num_versions: 1 } }')
    return "# Triton model configuration written by helpers.triton.export_model_repository\n" + "\n".join(lines) + "\n"


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
) -> Path:
    """Write ``<repository>/<model_name>/{config.pbtxt, <version>/model.onnx}``; return the model folder.

    The ONNX file is copied (it must be self-contained: no external ``.data`` file). With
    ``max_batch_size`` > 0 the first dimension of every input and output must be dynamic (the
    batch) and is left out of ``dims``; Triton adds it. The result is validated with
    :func:`validate_repository` before returning (raises :class:`ConfigError`).
    """
    onnx_path = Path(onnx_path)
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", model_name):
        raise ValueError(f"model_name {model_name!r}: use letters, digits, '_', '-', '.' only")
    if any(s < 1 or s > max_batch_size for s in preferred_batch_sizes) and max_batch_size > 0:
        raise ValueError(
            f"preferred_batch_sizes {list(preferred_batch_sizes)} must lie in 1..max_batch_size ({max_batch_size})"
        )
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

    model_dir = Path(repository) / model_name
    version_dir = model_dir / str(int(version))
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, version_dir / "model.onnx")
    (model_dir / "config.pbtxt").write_text(
        render_config(
            model_name,
            convert(inputs),
            convert(outputs),
            max_batch_size=max_batch_size,
            preferred_batch_sizes=preferred_batch_sizes,
            max_queue_delay_us=max_queue_delay_us,
            instance_count=instance_count,
            kind=kind,
        )
    )
    report = validate_repository(Path(repository), model_name)
    failed = report[~report["ok"]]
    if len(failed):
        raise ConfigError("; ".join(f"{r.check}: {r.detail}" for r in failed.itertuples()))
    return model_dir


def validate_repository(repository: str | os.PathLike[str], model_name: str) -> pd.DataFrame:
    """Check a Triton model folder offline; one row per check: ``check``, ``ok``, ``detail``.

    Checks: ``config.pbtxt`` parses strictly (:func:`parse_config`); its ``name`` matches the
    folder; the backend is ONNX Runtime; a numeric version folder holds ``model.onnx`` that
    passes ``onnx.checker``; every config input/output exists in the ONNX graph with the same
    dtype and dims (batch dimension dynamic and left out when ``max_batch_size`` > 0);
    preferred batch sizes lie in ``1..max_batch_size``; instance counts are positive.
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
        add("parse config.pbtxt", True, f"{len(config)} top-level fields")
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
                f"config {tensor.get('data_type')}, ONNX {dtype} → {want_type}")
            dims = list(tensor.get("dims", []))
            if mbs > 0:
                batch_ok = bool(shape) and not isinstance(shape[0], int)
                add(f"{role} {tname} batch dim dynamic", batch_ok, f"ONNX shape {shape}")
                shape = shape[1:]
            expect = _dims(shape)
            ok = len(dims) == len(expect) and all(
                e == -1 or d == e for d, e in zip(dims, expect, strict=False)
            )
            add(f"{role} {tname} dims", ok, f"config {dims}, ONNX (without batch) {expect}")
    batching = config.get("dynamic_batching")
    if batching is not None:
        sizes = batching.get("preferred_batch_size", [])
        add("dynamic batching needs max_batch_size > 0", mbs > 0, f"max_batch_size {mbs}")
        add("preferred batch sizes in range", all(1 <= s <= mbs for s in sizes),
            f"{sizes} within 1..{mbs}")
        delay = batching.get("max_queue_delay_microseconds", 0)
        add("max queue delay >= 0", delay >= 0, f"{delay} µs")
    for group in config.get("instance_group", []):
        add("instance count > 0", group.get("count", 1) > 0,
            f"{group.get('count', 1)} × {group.get('kind', 'KIND_AUTO')}")
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Client (HTTP/REST, KServe v2 protocol)
# --------------------------------------------------------------------------------------------
def triton_ready(url: str, *, timeout_s: float = 0.5) -> tuple[bool, str]:
    """``(True, ...)`` if a Triton server at ``url`` answers ``GET /v2/health/ready`` with 200.

    Uses a short timeout so a notebook does not hang when no server is reachable; the second
    item says what happened (e.g. ``"connection refused"``).
    """
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}/v2/health/ready", timeout=timeout_s, trust_env=False)
    except httpx.HTTPError as error:
        return False, f"{type(error).__name__}: {error}"
    if response.status_code == 200:
        return True, "ready"
    return False, f"HTTP {response.status_code}"


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
    (simple, fine for a tutorial; production clients use the binary extension or gRPC).
    """
    import httpx

    body = {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": _TRITON_TO_V2[ONNX_TO_TRITON[array.dtype.name]],
                "data": array.reshape(-1).tolist(),
            }
            for name, array in inputs.items()
        ]
    }
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    response = httpx.post(
        f"{url.rstrip('/')}/v2/models/{model_name}/infer", json=body, timeout=timeout_s, trust_env=False
    )
    response.raise_for_status()
    return {
        out["name"]: np.asarray(out["data"], dtype=_V2_TO_NUMPY.get(out["datatype"], "float32")).reshape(out["shape"])
        for out in response.json()["outputs"]
    }
