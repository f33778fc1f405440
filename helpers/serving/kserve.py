"""The KServe v2 / Open Inference Protocol over HTTP: a FastAPI router for any runner, and a client.

Triton Inference Server, KServe, OpenVINO Model Server, Seldon MLServer and others speak the same
REST protocol, so one client talks to any of them. :func:`router` serves a mapping
``name → Runner`` (:mod:`helpers.runners`) with it; add it to an existing FastAPI app with
``app.include_router(kserve.router({"classifier": runner}))`` — and, since Ray Serve deploys a
FastAPI app with ``serve.ingress``, to a Ray Serve deployment the same way.

Endpoints
---------
``GET /v2``                                     server metadata (name, version, extensions)
``GET /v2/health/live``                         ``{"live": true}``
``GET /v2/health/ready``                        ``{"ready": true}`` (503 when no model is served)
``GET /v2/models/{name}[/versions/{v}]``        inputs and outputs: ``name``, ``datatype``, ``shape``
``GET /v2/models/{name}[/versions/{v}]/ready``  ``{"name": ..., "ready": true}``
``POST /v2/models/{name}[/versions/{v}]/infer`` typed tensors in, typed tensors out::

    {"id": "42", "inputs": [{"name": "pixel_values", "shape": [1, 3, 224, 224],
                             "datatype": "FP32", "data": [0.1, ...]}],
     "outputs": [{"name": "logits"}]}                          # optional selection
    → {"model_name": "classifier", "model_version": "1", "id": "42",
       "outputs": [{"name": "logits", "shape": [1, 1000], "datatype": "FP32", "data": [...]}]}

``data`` is row-major, flat or nested to the tensor's shape. Triton's *binary tensor data*
extension is supported too (what ``tritonclient`` sends by default): the JSON header is followed
by raw little-endian tensor bytes, its length in the ``Inference-Header-Content-Length`` header,
each binary tensor marked with ``"parameters": {"binary_data_size": n}``; outputs come back
binary when asked for (``"binary_data": true`` on an output, or ``"binary_data_output": true``
on the request).

Errors are ``{"error": "<what is wrong and what was expected>"}`` (one line): 404 for an unknown
model or version, 400 for a malformed request (invalid JSON, NaN/Infinity, numbers beyond float
range, integers of more than 32 digits, nesting deeper than 64 levels, unknown field, wrong input
name/count/datatype/shape, a zero-size dimension, data that does not match the shape), 408 for a
body not received within ``body_timeout_s``, 413 for a body or tensor over the limits, 415 for a
content type other than JSON / octet-stream, 422 when finite inputs make the model's outputs NaN
or infinite (values beyond what its arithmetic holds, e.g. ``3e38`` in FP32: the request's
fault, told apart from the model's by an all-zero input of the same shape), 500 (logged, no
traceback to the client) when the model itself fails. The limits are
:mod:`helpers.serving.limits`, shared with the ``/predict`` app.

Memory: a JSON body's tensors never become Python lists. The declared shapes are checked against
``max_elements`` before a number is read, and then the numbers go straight into typed arrays
(:mod:`helpers.serving.v2_json`); binary tensors are read in place. After a large request the
freed memory is handed back to the operating system, as ``/predict`` does. Everything — parsing,
checks, the model, the answer — runs in the thread pool, not on the event loop.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from helpers.runners import InputError, Runner, TensorSpec, ov_dtype_name
from helpers.serving import v2_json
from helpers.serving.limits import RequestProblem, read_body, release_free_memory
from helpers.serving.v2_client import (
    _NUMPY_TO_V2,
    DATATYPES,
    V2ClientError,
    datatype_of,
    decode_response,
    encode_request,
    infer,
    model_metadata,
    server_ready,
)

__all__ = [
    "DATATYPES",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_ELEMENTS",
    "InferenceRequest",
    "RequestInput",
    "RequestOutput",
    "V2ClientError",
    "datatype_of",
    "decode_response",
    "encode_request",
    "infer",
    "model_metadata",
    "output_specs_of",
    "router",
    "router_factory",
    "server_ready",
]

_log = logging.getLogger(__name__)

#: Largest request body accepted (bytes); larger bodies get a 413.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Largest number of elements in one input tensor; more gets a 413 (checked before any number is read).
DEFAULT_MAX_ELEMENTS = 1 << 22
#: Requests with a body at least this large hand freed memory back to the OS when they are done.
TRIM_AFTER_BYTES = 1 << 20
MAX_RANK = 16
_HEADER_LENGTH = "inference-header-content-length"


# --------------------------------------------------------------------------------------------
# Request and response bodies
# --------------------------------------------------------------------------------------------


class RequestInput(BaseModel):
    """One input tensor of an inference request."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    shape: list[Annotated[StrictInt, Field(ge=0)]] = Field(max_length=MAX_RANK)
    datatype: str = Field(min_length=1, max_length=16)
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class RequestOutput(BaseModel):
    """An output the client asks for (all outputs when the request lists none)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """The body of ``POST /v2/models/{name}/infer``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=256)
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=64)
    outputs: list[RequestOutput] | None = Field(default=None, max_length=64)


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with ``$defs`` references inlined (for ``openapi_extra``)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.split("/")[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


class _Problem(RequestProblem):
    """A request the server refuses: HTTP status and a one-line message."""


# --------------------------------------------------------------------------------------------
# What a runner looks like on the wire
# --------------------------------------------------------------------------------------------


def _wire_shape(shape: Sequence[Any]) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def _ort_dtype(type_name: str) -> str:
    inner = type_name.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64"}.get(inner, inner)


def output_specs_of(runner: Runner) -> list[TensorSpec]:
    """Name, shape and dtype of each output of ``runner``, for model metadata.

    Uses the runner's ``output_specs`` when it has them (:class:`helpers.openvino_tools.
    ThroughputRunner`), else asks the runtime underneath (an ONNX Runtime ``session``, an
    OpenVINO ``compiled`` model). Raises ``ValueError`` when neither is there: pass
    ``output_specs`` to :func:`router` for such a runner.
    """
    specs = getattr(runner, "output_specs", None)
    if isinstance(specs, Sequence) and all(isinstance(s, TensorSpec) for s in specs):
        return list(specs)
    session = getattr(runner, "session", None)
    if session is not None and hasattr(session, "get_outputs"):
        return [TensorSpec(o.name, tuple(d if isinstance(d, int) else None for d in o.shape),
                           _ort_dtype(o.type)) for o in session.get_outputs()]
    compiled = getattr(runner, "compiled", None)
    if compiled is not None and hasattr(compiled, "outputs"):
        specs = []
        for name, port in zip(runner.output_names, compiled.outputs, strict=True):
            shape = tuple(None if d.is_dynamic else d.get_length() for d in port.get_partial_shape())
            specs.append(TensorSpec(name, shape, ov_dtype_name(port.get_element_type())))
        return specs
    raise ValueError(
        f"cannot tell the output dtypes and shapes of {runner!r}; pass "
        f"output_specs={{name: [TensorSpec(...), ...]}} to kserve.router"
    )


def _tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": _NUMPY_TO_V2.get(spec.dtype, spec.dtype.upper()),
            "shape": _wire_shape(spec.shape)}


# --------------------------------------------------------------------------------------------
# Decoding a request
# --------------------------------------------------------------------------------------------


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item.get("loc", ())) or "body"
        parts.append(f"{where}: {item.get('msg')}")
    more = len(error.errors()) - 3
    return "invalid inference request: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _elements(shape: Sequence[int]) -> int:
    return math.prod(shape) if shape else 1


def _from_json_data(tensor: RequestInput, dtype: np.dtype) -> np.ndarray:
    where = f"input {tensor.name!r}"
    try:
        array = np.asarray(tensor.data)
    except (ValueError, TypeError, RecursionError):
        raise _Problem(400, f"{where}: data must be a flat or nested list of numbers "
                            f"matching shape {tensor.shape}") from None
    kind = array.dtype.kind
    allowed = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}[dtype.kind]
    if array.size and kind not in allowed:
        expected = {"b": "true/false", "i": "integers", "u": "integers", "f": "numbers"}[dtype.kind]
        found = {"U": "strings", "S": "strings", "b": "booleans", "O": "mixed types or numbers too large",
                 "f": "non-integer or out-of-range numbers"}.get(kind, array.dtype.name)
        raise _Problem(400, f"{where}: datatype {tensor.datatype} needs {expected} in data, got {found}")
    expected_size = _elements(tensor.shape)
    if array.ndim > 1 and array.ndim != len(tensor.shape):
        raise _Problem(400, f"{where}: data is nested {array.ndim} levels deep but shape "
                            f"{tensor.shape} has rank {len(tensor.shape)}")
    if array.ndim > 1 and list(array.shape) != list(tensor.shape):
        raise _Problem(400, f"{where}: nested data has shape {list(array.shape)} but shape says "
                            f"{tensor.shape}")
    if array.size != expected_size:
        raise _Problem(400, f"{where}: shape {tensor.shape} needs {expected_size} values, data has "
                            f"{array.size}")
    if dtype.kind in "iu" and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise _Problem(400, f"{where}: values out of range for {tensor.datatype}")
    with np.errstate(over="ignore"):
        return array.astype(dtype).reshape(tensor.shape)


def _from_binary(tensor: RequestInput, dtype: np.dtype, chunk: bytes | memoryview) -> np.ndarray:
    expected = _elements(tensor.shape) * dtype.itemsize
    if len(chunk) != expected:
        raise _Problem(400, f"input {tensor.name!r}: binary_data_size is {len(chunk)} bytes but "
                            f"shape {tensor.shape} of {tensor.datatype} needs {expected}")
    return np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(tensor.shape)


def _decode_inputs(
    body: InferenceRequest, binary: bytes | memoryview, runner: Runner, max_elements: int,
    lifted: v2_json.Lifted | None = None, spans: Mapping[int, tuple[int, int]] | None = None,
) -> dict[str, np.ndarray]:
    specs = {spec.name: spec for spec in runner.inputs}
    expected = ", ".join(f"{s.name} ({_tensor_metadata(s)['datatype']} "
                         f"{_tensor_metadata(s)['shape']})" for s in runner.inputs)
    names = [t.name for t in body.inputs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _Problem(400, f"input(s) {duplicates} given more than once")
    unknown = [n for n in names if n not in specs]
    missing = [n for n in specs if n not in names]
    if unknown or missing:
        problem = "; ".join(filter(None, [f"unknown input(s) {unknown}" if unknown else None,
                                          f"missing input(s) {missing}" if missing else None]))
        raise _Problem(400, f"{problem}. The model expects: {expected}")
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    spans = spans or {}
    for index, tensor in enumerate(body.inputs):
        spec = specs[tensor.name]
        want = _NUMPY_TO_V2.get(spec.dtype, spec.dtype)
        if tensor.datatype not in DATATYPES:
            raise _Problem(400, f"input {tensor.name!r}: datatype {tensor.datatype!r} is not "
                                f"supported (supported: {', '.join(DATATYPES)})")
        if tensor.datatype != want:
            raise _Problem(400, f"input {tensor.name!r}: datatype {tensor.datatype} but the model "
                                f"expects {want}")
        if 0 in tensor.shape:
            raise _Problem(400, f"input {tensor.name!r}: shape {tensor.shape} has a zero-size dimension "
                                f"(axis {tensor.shape.index(0)}); every dimension needs at least 1 element")
        if _elements(tensor.shape) > max_elements:
            raise _Problem(413, f"input {tensor.name!r}: shape {tensor.shape} has "
                                f"{_elements(tensor.shape)} elements, over the limit of {max_elements}")
        dtype = np.dtype(DATATYPES[tensor.datatype])
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is not None:
            if tensor.data is not None:
                raise _Problem(400, f"input {tensor.name!r}: give either data or binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
                raise _Problem(400, f"input {tensor.name!r}: binary_data_size {size!r} does not fit "
                                    f"the {len(binary) - offset} binary bytes left")
            array = _from_binary(tensor, dtype, binary[offset:offset + size])
            offset += size
        elif index in spans and lifted is not None:  # numbers straight into a typed array
            array = v2_json.read_array(lifted.body, spans[index], tensor.shape, dtype,
                                       datatype=tensor.datatype, where=f"input {tensor.name!r}")
        elif tensor.data is None:
            raise _Problem(400, f"input {tensor.name!r} has no data")
        else:
            array = _from_json_data(tensor, dtype)
        if dtype.kind == "f" and not np.isfinite(array).all():
            raise _Problem(400, f"input {tensor.name!r} contains NaN or infinity (or values beyond "
                                f"the range of {tensor.datatype})")
        arrays[tensor.name] = array
    if offset != len(binary):
        raise _Problem(400, f"{len(binary) - offset} binary bytes after the last binary tensor")
    return arrays


def _selected_outputs(body: InferenceRequest, runner: Runner) -> list[tuple[str, bool]]:
    binary_default = bool((body.parameters or {}).get("binary_data_output", False))
    if not body.outputs:
        return [(name, binary_default) for name in runner.output_names]
    names = [o.name for o in body.outputs]
    unknown = [n for n in names if n not in runner.output_names]
    if unknown:
        raise _Problem(400, f"unknown output(s) {unknown}; the model has {runner.output_names}")
    if len(set(names)) != len(names):
        raise _Problem(400, f"output(s) asked for more than once: {names}")
    chosen = []
    for out in body.outputs:
        params = out.parameters or {}
        if "classification" in params:
            raise _Problem(400, "the classification extension is not supported; ask for the "
                                "raw output and take the top-k on the client")
        chosen.append((out.name, bool(params.get("binary_data", binary_default))))
    return chosen


# --------------------------------------------------------------------------------------------
# The router
# --------------------------------------------------------------------------------------------


def router(
    models: Mapping[str, Runner],
    *,
    output_specs: Mapping[str, Sequence[TensorSpec]] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    server_name: str = "inference-suite",
    server_version: str = "1",
    body_timeout_s: float | None = 30.0,
) -> APIRouter:
    """A FastAPI ``APIRouter`` speaking the v2 protocol for every runner in ``models``.

    ``models`` maps the model name in the URL to a :class:`~helpers.runners.Runner`; it is read
    on every request, so a dict filled or changed later is served as it is then. Every model has
    version ``"1"``. Runners are called from FastAPI's thread pool, several at a time: use
    runners whose ``run`` is thread-safe (all of :mod:`helpers.runners`, and
    :class:`helpers.openvino_tools.ThroughputRunner`, which also runs concurrent requests in
    parallel). ``output_specs`` gives output dtypes/shapes for runners that cannot report them
    (see :func:`output_specs_of`). A body must arrive within ``body_timeout_s`` (408). Usage::

        app = create_app(classifier)                       # any FastAPI app
        app.include_router(kserve.router({"classifier": runner}))

    On Ray Serve the router must be built inside the replica (it holds compiled models, which
    cannot be pickled): pass :func:`router_factory` to ``ray_serve_app(routers=[...])``.
    """
    api = APIRouter(tags=["KServe v2 / Open Inference Protocol"])
    explicit = dict(output_specs or {})
    for name, runner in models.items():  # fail early for runners whose outputs are unknown
        if name not in explicit:
            output_specs_of(runner)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def lookup(name: str, version: str | None) -> Runner:
        if name not in models:
            raise _Problem(404, f"unknown model {name!r}; this server has {sorted(models)}")
        if version is not None and version != "1":
            raise _Problem(404, f"model {name!r} has no version {version!r} (versions: ['1'])")
        return models[name]

    def metadata(name: str, runner: Runner) -> dict[str, Any]:
        outputs = explicit.get(name) or output_specs_of(runner)
        return {"name": name, "versions": ["1"], "platform": runner.runtime,
                "inputs": [_tensor_metadata(s) for s in runner.inputs],
                "outputs": [_tensor_metadata(s) for s in outputs]}

    @api.get("/v2", summary="Server metadata")
    async def server_metadata() -> dict[str, Any]:
        return {"name": server_name, "version": server_version,
                "extensions": ["binary_tensor_data"]}

    @api.get("/v2/health/live", summary="Server liveness")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @api.get("/v2/health/ready", summary="Server readiness (every model loaded)")
    async def ready() -> Response:
        ok = len(models) > 0
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    def model_meta(name: str, version: str | None) -> Response:
        try:
            return JSONResponse(metadata(name, lookup(name, version)))
        except _Problem as problem:
            return error(problem.status, problem.message)

    def model_ready(name: str, version: str | None) -> Response:
        try:
            lookup(name, version)
        except _Problem as problem:
            return error(problem.status, problem.message)
        return JSONResponse({"name": name, "ready": True})

    async def model_infer(request: Request, name: str, version: str | None) -> Response:
        try:
            runner = lookup(name, version)
            raw = await read_body(request, max_bytes=max_body_bytes, timeout_s=body_timeout_s)
        except RequestProblem as problem:
            return _problem_response(problem)
        large = len(raw) >= TRIM_AFTER_BYTES
        try:  # parse, check, run and answer in the thread pool: the event loop stays free
            return await run_in_threadpool(_answer, name, runner, request.headers, raw, max_elements)
        finally:
            del raw
            if large:  # as /predict does: the freed pages go back to the OS, not to glibc's arenas
                await run_in_threadpool(release_free_memory)

    infer_body = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": _inline_schema(InferenceRequest)}}}}

    @api.get("/v2/models/{name}", summary="Model metadata")
    async def meta(name: str) -> Response:
        return model_meta(name, None)

    @api.get("/v2/models/{name}/versions/{version}", summary="Model metadata (one version)")
    async def meta_version(name: str, version: str) -> Response:
        return model_meta(name, version)

    @api.get("/v2/models/{name}/ready", summary="Model readiness")
    async def ready_model(name: str) -> Response:
        return model_ready(name, None)

    @api.get("/v2/models/{name}/versions/{version}/ready", summary="Model readiness (one version)")
    async def ready_version(name: str, version: str) -> Response:
        return model_ready(name, version)

    @api.post("/v2/models/{name}/infer", summary="Inference", openapi_extra=infer_body)
    async def infer_model(request: Request, name: str) -> Response:
        return await model_infer(request, name, None)

    @api.post("/v2/models/{name}/versions/{version}/infer", summary="Inference (one version)",
              openapi_extra=infer_body)
    async def infer_version(request: Request, name: str, version: str) -> Response:
        return await model_infer(request, name, version)

    return api


def _router_for(
    classifier: Any, *, name: str, models: Callable[[Any], Mapping[str, Runner]] | None,
    options: Mapping[str, Any],
) -> APIRouter:
    served = dict(models(classifier)) if models is not None else {name: classifier.runner}
    return router(served, **options)


def router_factory(
    name: str = "classifier",
    *,
    models: Callable[[Any], Mapping[str, Runner]] | None = None,
    **options: Any,
) -> Callable[[Any], APIRouter]:
    """A picklable ``f(classifier) -> APIRouter`` for ``create_app``/``ray_serve_app(routers=...)``.

    The router is built where ``f`` is called — on each Ray Serve replica, next to the models it
    serves — not where the factory is made. By default it serves the app's own classifier
    runner under ``name``; ``models(classifier)`` may instead return any ``{name: Runner}``
    (built in the replica, e.g. an OpenVINO throughput runner). ``options`` go to
    :func:`router`.
    """
    return functools.partial(_router_for, name=name, models=models, options=dict(options))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _problem_response(problem: RequestProblem) -> JSONResponse:
    return JSONResponse({"error": problem.message}, status_code=problem.status,
                        headers=problem.headers or None)


def _answer(name: str, runner: Runner, headers: Mapping[str, str], raw: bytes,
            max_elements: int) -> Response:
    """Decode, check, run and encode one inference request (in the thread pool)."""
    try:
        body, arrays, chosen = _decode_request(headers, raw, runner, max_elements)
    except RequestProblem as problem:
        return _problem_response(problem)
    try:
        results = runner.run(arrays)
    except InputError as bad:
        return _error(400, str(bad))
    except Exception as failure:  # the model failed: log it, no traceback to the client
        _log.exception("inference failed for model %s", name)
        return _error(500, f"inference failed ({type(failure).__name__}); see the server log")
    not_finite = [out for out, _ in chosen if np.asarray(results[out]).dtype.kind == "f"
                  and not np.isfinite(results[out]).all()]
    if not_finite:
        return _not_finite_answer(name, runner, arrays, not_finite)
    return _encode_response(name, body.id, results, chosen, _error)


def _not_finite_answer(name: str, runner: Runner, arrays: Mapping[str, np.ndarray],
                       outputs: Sequence[str]) -> Response:
    """NaN or infinity in an output: the request's fault (422) if an all-zero input of the same
    shapes gives finite outputs — its values overflow the model's arithmetic — else the model's (500)."""
    try:
        probe = runner.run({key: np.zeros_like(value) for key, value in arrays.items()})
        model_fault = any(not np.isfinite(np.asarray(probe[out])).all() for out in outputs)
    except Exception:  # noqa: BLE001 - a model that cannot run on zeros is at fault either way
        model_fault = True
    if model_fault:
        _log.error("model %s: output(s) %s contain NaN or infinity even for an all-zero input", name,
                   list(outputs))
        return _error(500, f"output {outputs[0]!r} contains NaN or infinity even for an all-zero "
                           "input: a fault of the model, not of the request; see the server log")
    largest = "; ".join(f"input {key!r} has values up to {float(np.abs(value).max()):.3g} in magnitude"
                        for key, value in arrays.items() if value.dtype.kind == "f" and value.size)
    return _error(422, f"output {outputs[0]!r} is NaN or infinite for this request (it is finite for "
                       f"an all-zero input): the input overflows the model's arithmetic ({largest}); "
                       "send values in the range the model expects")


def _decode_request(
    headers: Mapping[str, str], raw: bytes, runner: Runner, max_elements: int
) -> tuple[InferenceRequest, dict[str, np.ndarray], list[tuple[str, bool]]]:
    """Parse and check one inference request body (in the thread pool); raises :class:`_Problem`.

    Memory is bounded before any tensor is read: the ``data`` arrays are lifted out of the JSON
    (:func:`helpers.serving.v2_json.lift_data`), the rest is parsed and validated — names,
    datatypes, shapes against ``max_elements`` — and only then are the numbers read, straight
    into arrays of the tensor's dtype.
    """
    header, binary = _split_body(headers, raw)
    lifted = v2_json.lift_data(header)
    payload = v2_json.restore(lifted)
    spans: dict[int, tuple[int, int]] = {}
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    for index, item in enumerate(inputs if isinstance(inputs, list) else []):
        if isinstance(item, dict) and lifted.is_placeholder(item.get("data")):
            spans[index] = lifted.spans[item["data"]]
            item["data"] = []  # a list for the schema; the numbers are read after every check
    try:
        body = InferenceRequest.model_validate(payload)
    except ValidationError as invalid:
        raise _Problem(400, _validation_message(invalid)) from None
    arrays = _decode_inputs(body, binary, runner, max_elements, lifted, spans)
    return body, arrays, _selected_outputs(body, runner)


def _split_body(headers: Mapping[str, str], raw: bytes) -> tuple[bytes, bytes | memoryview]:
    content_type = (headers.get("content-type") or "application/json").split(";")[0].strip()
    header_length = headers.get(_HEADER_LENGTH)
    if header_length is None:
        if content_type not in ("application/json", "application/octet-stream"):
            raise _Problem(415, f"content type {content_type!r}: send application/json")
        return raw, b""
    try:
        length = int(header_length)
    except ValueError:
        raise _Problem(400, f"Inference-Header-Content-Length {header_length!r} is not a number") from None
    if not 0 < length <= len(raw):
        raise _Problem(400, f"Inference-Header-Content-Length {length} does not fit the "
                            f"{len(raw)}-byte body")
    return raw[:length], memoryview(raw)[length:]  # the tensors' bytes are not copied


def _encode_response(
    name: str, request_id: str | None, results: Mapping[str, np.ndarray],
    chosen: Sequence[tuple[str, bool]], error: Any,
) -> Response:
    outputs, blobs = [], []
    for out_name, binary in chosen:
        array = np.asarray(results[out_name])
        try:
            datatype = datatype_of(array.dtype)
        except ValueError as bad:
            return error(500, f"output {out_name!r}: {bad}")
        entry: dict[str, Any] = {"name": out_name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            blob = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                return error(500, f"output {out_name!r} contains NaN or infinity, which JSON cannot "
                                  f"carry; ask for it with binary_data")
            entry["data"] = array.reshape(-1).tolist()
        outputs.append(entry)
    body: dict[str, Any] = {"model_name": name, "model_version": "1", "outputs": outputs}
    if request_id is not None:
        body["id"] = request_id
    if not blobs:
        return JSONResponse(body)
    header = json.dumps(body, separators=(",", ":")).encode()
    return Response(header + b"".join(blobs), media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})
