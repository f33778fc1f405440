"""Serve an ONNX image classifier over HTTP with FastAPI (uvicorn here, Ray Serve in :mod:`helpers.serving.ray_serve`).

One :class:`ImageClassifier` holds everything a server needs for one model — **one** runner
(an ONNX Runtime session, or any :class:`helpers.runners.Runner` such as OpenVINO's throughput
runner) shared by every request, the preprocessing, the labels and the input validation — and
:func:`create_app` wraps it in one FastAPI app. Ray Serve deploys that same app on its replicas
(:func:`helpers.serving.ray_serve.ray_serve_app`), so both servers answer the same requests in the
same way and a single client talks to both. More endpoints (e.g. the Open Inference Protocol of
:mod:`helpers.serving.kserve`) plug in as FastAPI routers: ``create_app(classifier, routers=[...])``.

The HTTP API
------------
``GET /health``
    ``{"status": "ok"}`` once the model is loaded.
``GET /metadata``
    Model name, input signature, runtime and its settings, request limits.
``POST /predict``
    Either the raw image bytes with ``Content-Type: image/jpeg`` (png, webp, bmp, gif, tiff) and
    optional query parameters ``top_k`` and ``logits=true``, or JSON
    ``{"image": "<base64>", "top_k": 5, "return_logits": false}`` (:class:`PredictRequest`).
    Answer (:class:`PredictResponse`):
    ``{"model": ..., "predictions": [{"label": ..., "probability": ...}, ...]}`` plus
    ``"logits"`` when asked for.
``GET /openapi.json`` and ``GET /docs``
    The OpenAPI schema of every route (with the :class:`PredictRequest` body and, when mounted,
    the v2 inference request), and FastAPI's interactive Swagger page for it (its script loads
    from a CDN, so offline the page stays blank; the JSON schema is served by the app itself).
    ``create_app(..., docs=False)`` switches both off (404).

Every bad request gets a 4xx with a one-line ``{"error": ..., "status": ...}`` message, never a
500 with a traceback: wrong content type (415), body over the size limit (413; the body is read
and discarded up to a bound first, so a client still sending receives the answer), a body not
received within the deadline (408), invalid JSON — including ``NaN``/``Infinity``, numbers
beyond float range, 5000-digit integers and deeply nested arrays — or an image that is corrupt or
not of an accepted format (:data:`ACCEPTED_FORMATS`; whatever the decoder raised, the message names
the format) (400), JSON of the wrong shape or bad parameters (422), unknown path (404), wrong method (405),
too many large images waiting to be decoded (503). An unexpected server fault is logged on the
server and answered with a 500 that says only that.

Resources under load (:mod:`helpers.serving.limits`)
----------------------------------------------------
- **Memory**: decoded pixels in flight are bounded by a :class:`~helpers.serving.limits.
  PixelBudget` (default: one image of the largest accepted size, ``max_pixels``); freed decode
  memory is returned to the OS after large images, so resident memory falls back to idle.
- **Slow or idle clients**: the body must arrive within ``body_timeout_s`` (408); on uvicorn
  (:func:`serve_in_background`) a connection must send a complete request head within
  ``header_timeout_s`` of opening or of its last response (else it is closed), idle keep-alive
  connections close after ``keep_alive_s``, and beyond ``max_connections`` new requests get 503.

Running a server from a notebook
--------------------------------
:func:`serve_in_background` runs uvicorn in a background thread on ``127.0.0.1`` and a free
port (a socket bound *before* the server starts, so there is no race for the port), waits until
it accepts connections and stops it cleanly on exit.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from helpers.images import ImageError, default_resize, load_image, numpy_preprocess, top_k
from helpers.serving.limits import (
    PixelBudget,
    RequestProblem,
    header_deadline_protocol,
    header_pixels,
    loads_json,
    read_body,
    release_free_memory,
    shorten,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "ACCEPTED_IMAGE_TYPES",
    "DEFAULT_BODY_TIMEOUT_S",
    "DEFAULT_MAX_BYTES",
    "ImageClassifier",
    "PredictRequest",
    "PredictResponse",
    "RequestError",
    "RunningServer",
    "create_app",
    "free_port",
    "serve_in_background",
]

_log = logging.getLogger(__name__)

#: Largest request body accepted by ``/predict`` (bytes); larger bodies get a 413.
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
#: Content types accepted as raw image bodies (``application/json`` is accepted too).
ACCEPTED_IMAGE_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/bmp",
    "image/gif",
    "image/tiff",
)
#: The image formats (PIL's names) a server decodes: those of :data:`ACCEPTED_IMAGE_TYPES`, whatever
#: the Content-Type says; a file of any other format PIL knows (ICO, TGA, DDS...) gets a 400.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
#: Largest decoded image (pixels) a server accepts; bigger ones are refused from the header.
SERVER_MAX_PIXELS = 25_000_000
#: Seconds a client has to send a whole request body; slower bodies get a 408.
DEFAULT_BODY_TIMEOUT_S = 30.0
#: Images at least this large (pixels) hand their freed memory back to the OS after decoding.
TRIM_AFTER_PIXELS = 4_000_000
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class RequestError(RequestProblem):
    """A request the server refuses; ``status`` is the HTTP status (4xx), ``message`` says why."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON body sent to the client: ``{"error": message, "status": status}``."""
        return {"error": self.message, "status": self.status}


# --------------------------------------------------------------------------------------------
# The request and answer bodies (what /docs shows)
# --------------------------------------------------------------------------------------------
class PredictRequest(BaseModel):
    """The JSON body of ``POST /predict`` (the other form is the raw image bytes)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="the image file (JPEG, PNG, WebP, ...) encoded as base64")
    top_k: int = Field(5, ge=1, strict=True, description="how many classes to return, best first")
    return_logits: bool = Field(False, strict=True, description="also return the raw logits")


class Prediction(BaseModel):
    """One class and its probability."""

    label: str
    probability: float


class PredictResponse(BaseModel):
    """The answer of ``POST /predict``."""

    model: str
    predictions: list[Prediction]
    logits: list[float] | None = Field(None, description="only with return_logits / logits=true")


# --------------------------------------------------------------------------------------------
# The model behind every server
# --------------------------------------------------------------------------------------------
@dataclass
class _Parsed:
    pixels: np.ndarray  # float32 [3, H, W]
    top_k: int
    return_logits: bool


class ImageClassifier:
    """One ONNX image classifier ready to serve: one shared session, preprocessing, validation.

    ``runner`` is a :class:`helpers.runners.Runner` (normally :func:`helpers.runners.ort_runner`);
    its first input takes ``float32 [batch, 3, size, size]`` and its first output is the logits.
    ONNX Runtime's ``InferenceSession.run`` is thread-safe, so one session serves concurrent
    requests — creating a session per request would reload the model every time.
    Decoding is bounded in memory: at most ``decode_budget_pixels`` pixels (default
    ``max_pixels``: one largest image) are decoded at once over all requests; others wait up to
    ``decode_wait_s`` (then 503).
    Preprocessing is :func:`helpers.images.numpy_preprocess` (PIL + NumPy; no torch on the
    server) at the model's ``input_size`` and ``resize`` (its short side before the crop: the
    catalog's ``LoadedModel.resize``; ``None`` = :func:`helpers.images.default_resize`).
    """

    def __init__(
        self,
        runner: Any,
        *,
        model_name: str = "",
        labels: Sequence[str] | None = None,
        input_size: int = 224,
        resize: int | None = None,
        default_top_k: int = 5,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = SERVER_MAX_PIXELS,
        decode_budget_pixels: int | None = None,
        decode_wait_s: float = 60.0,
        extra_metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.runner = runner
        self.input_name = runner.inputs[0].name
        self.output_name = runner.output_names[0]
        self.model_name = model_name or getattr(runner, "name", "model")
        self.input_size = int(input_size)
        self.resize = int(resize) if resize is not None else default_resize(self.input_size)
        if labels is None:
            from helpers.images import imagenet_labels

            labels = imagenet_labels()
        self.labels = list(labels)
        self.default_top_k = int(default_top_k)
        self.max_bytes = int(max_bytes)
        self.max_pixels = int(max_pixels)
        self.decode_budget = PixelBudget(decode_budget_pixels or self.max_pixels)
        self.decode_wait_s = float(decode_wait_s)
        self.extra_metadata = dict(extra_metadata or {})
        self.requests_served = 0
        self._lock = threading.Lock()

    @classmethod
    def from_onnx(
        cls,
        onnx_path: str | os.PathLike[str],
        *,
        threads: int | None = None,
        **kwargs: Any,
    ) -> ImageClassifier:
        """Build from an ONNX file with :func:`helpers.runners.ort_runner` on the CPU provider."""
        from helpers.runners import ort_runner

        runner = ort_runner(
            onnx_path, providers=("CPUExecutionProvider",), threads=threads
        )
        return cls(runner, **kwargs)

    # ---------------------------------------------------------------- validation + parsing
    def parse(
        self,
        content_type: str | None,
        body: bytes,
        params: Mapping[str, str] | None = None,
    ) -> _Parsed:
        """Validate one ``/predict`` request and preprocess its image, or raise :class:`RequestError`."""
        params = params or {}
        if len(body) > self.max_bytes:
            raise RequestError(
                413,
                f"request body of {len(body):,} bytes exceeds the limit of {self.max_bytes:,} bytes",
            )
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media == "application/json":
            image_bytes, k, want_logits = self._parse_json(body)
        elif media in ACCEPTED_IMAGE_TYPES:
            image_bytes = body
            k = self._check_top_k(params.get("top_k", self.default_top_k), "query parameter top_k")
            want_logits = self._check_bool(params.get("logits", "false"), "query parameter logits")
        else:
            raise RequestError(
                415,
                f"unsupported Content-Type {content_type or '(none)'!r}; send the image bytes as "
                f"one of {', '.join(ACCEPTED_IMAGE_TYPES)}, or application/json "
                '{"image": "<base64>"}',
            )
        if not image_bytes:
            raise RequestError(400, "empty body: no image was sent")
        return _Parsed(pixels=self.decode(image_bytes), top_k=k, return_logits=want_logits)

    def decode(self, image_bytes: bytes) -> np.ndarray:
        """Decode and preprocess one image within the decode budget (``float32 [3, H, W]``)."""
        size = header_pixels(image_bytes, formats=ACCEPTED_FORMATS) or 0
        if size > self.max_pixels:  # refused from the header, before any budget or decoding
            raise RequestError(400, f"cannot decode the image: it has {size:,} pixels, more than "
                                    f"the {self.max_pixels:,} this server accepts")
        with self.decode_budget.reserve(size, timeout_s=self.decode_wait_s):
            try:
                image = load_image(image_bytes, max_pixels=self.max_pixels, formats=ACCEPTED_FORMATS)
            except ImageError as error:
                raise RequestError(400, f"cannot decode the image: {error}") from None
            pixels = numpy_preprocess(image, size=self.input_size, resize=self.resize)
            del image
        if size >= TRIM_AFTER_PIXELS:
            release_free_memory()
        return pixels

    def _parse_json(self, body: bytes) -> tuple[bytes, int, bool]:
        payload = loads_json(body)  # RequestProblem (400) for anything that is not plain JSON
        if not isinstance(payload, dict):
            raise RequestError(
                422,
                'expected a JSON object {"image": "<base64 image>", "top_k": 5}, got a JSON '
                f"{type(payload).__name__}",
            )
        try:
            request = PredictRequest.model_validate(payload)
        except ValidationError as error:
            raise RequestError(422, _validation_message(error)) from None
        try:
            image_bytes = base64.b64decode(request.image, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(422, "field 'image' is not valid base64") from None
        k = self._check_top_k(request.top_k, "field 'top_k'")
        return image_bytes, k, request.return_logits

    def _check_top_k(self, value: Any, where: str) -> int:
        if isinstance(value, bool):
            value = "bool"
        try:
            k = int(value)
            if isinstance(value, float) and value != k:
                raise ValueError
        except (TypeError, ValueError):
            raise RequestError(422, f"{where} must be an integer, got {shorten(value)}") from None
        if not 1 <= k <= len(self.labels):
            raise RequestError(422, f"{where} must be between 1 and {len(self.labels)}, got {k}")
        return k

    @staticmethod
    def _check_bool(value: str, where: str) -> bool:
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise RequestError(422, f"{where} must be true or false, got {shorten(value)}")

    # ---------------------------------------------------------------- inference + answers
    def predict_batch(self, pixels: np.ndarray) -> np.ndarray:
        """Logits ``float32 [N, classes]`` for preprocessed images ``float32 [N, 3, H, W]``."""
        batch = np.ascontiguousarray(pixels, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[None]
        logits = self.runner.run({self.input_name: batch})[self.output_name]
        with self._lock:
            self.requests_served += len(batch)
        return logits

    def answer(self, logits: np.ndarray, k: int, return_logits: bool) -> dict[str, Any]:
        """The JSON answer for one image's logits row."""
        preds = top_k(np.asarray(logits)[None], self.labels, k=k)[0]
        out: dict[str, Any] = {
            "model": self.model_name,
            "predictions": [{"label": label, "probability": p} for label, p in preds],
        }
        if return_logits:
            out["logits"] = np.asarray(logits, dtype=np.float32).tolist()
        return out

    def handle(
        self, content_type: str | None, body: bytes, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Parse, run and answer one ``/predict`` request (raises :class:`RequestError`)."""
        parsed = self.parse(content_type, body, params)
        logits = self.predict_batch(parsed.pixels)[0]
        return self.answer(logits, parsed.top_k, parsed.return_logits)

    def metadata(self) -> dict[str, Any]:
        """What ``/metadata`` returns: model, signature, runtime settings, limits."""
        info = self.runner.describe()
        return {
            "model": self.model_name,
            "input": {"name": self.input_name, "signature": self.runner.signature()},
            "output": self.output_name,
            "preprocessing": f"resize {self.resize}, centre crop {self.input_size}, ImageNet mean/std",
            "classes": len(self.labels),
            "runtime": {
                "name": info.get("name"),
                "runtime": info.get("runtime"),
                "version": info.get("version"),
                "providers": info.get("providers_actual"),
                "threads": info.get("threads"),
            },
            "limits": {
                "max_bytes": self.max_bytes,
                "max_pixels": self.max_pixels,
                "decode_budget": self.decode_budget.describe(),
                "content_types": [*ACCEPTED_IMAGE_TYPES, "application/json"],
                "image_formats": list(ACCEPTED_FORMATS),
            },
            "requests_served": self.requests_served,
            **self.extra_metadata,
        }


# --------------------------------------------------------------------------------------------
# FastAPI
# --------------------------------------------------------------------------------------------
def _validation_message(error: ValidationError) -> str:
    """A pydantic error as one line: which field, what is wrong (and the fields allowed)."""
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        if item.get("type") == "extra_forbidden":
            problems.append(f"unexpected field {where!r}")
        else:
            problems.append(f"field {where!r}: {item.get('msg')}")
    allowed = ", ".join(PredictRequest.model_fields)
    return f"{'; '.join(problems)} (fields: {allowed})"


def _predict_openapi() -> dict[str, Any]:
    """The request body ``/docs`` shows for ``POST /predict``: JSON or raw image bytes."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
                **{media: binary for media in ACCEPTED_IMAGE_TYPES},
            },
        },
        "parameters": [
            {"name": "top_k", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1}, "description": "raw-image requests"},
            {"name": "logits", "in": "query", "required": False,
             "schema": {"type": "boolean"}, "description": "raw-image requests"},
        ],
    }


def create_app(
    classifier: ImageClassifier,
    *,
    title: str = "Image classifier",
    routers: Sequence[Any] = (),
    server: str = "fastapi+uvicorn",
    infer: Callable[[np.ndarray], Awaitable[np.ndarray]] | None = None,
    metadata: Callable[[], Mapping[str, Any]] | None = None,
    body_timeout_s: float | None = DEFAULT_BODY_TIMEOUT_S,
    docs: bool = True,
) -> Any:
    """A FastAPI app serving ``classifier`` at ``/predict``, ``/health`` and ``/metadata``.

    The model session is created once (in ``classifier``) and shared by all requests. The
    blocking work (image decoding, ONNX Runtime) runs in Starlette's thread pool so the event
    loop keeps accepting connections. Errors are answered as described in the module docstring,
    for every route of the app.

    - ``routers``: more ``fastapi.APIRouter`` s to include (after the built-in routes), e.g. an
      Open Inference Protocol router; ``app.include_router(...)`` later works too. An item may
      also be a **factory** ``f(classifier) -> APIRouter``, called here — this is how a router
      holding compiled models reaches a Ray Serve replica (a router cannot be pickled, a
      function can). Errors not answered by a router get the ``{"error": ..., "status": ...}``
      bodies. The classifier is ``request.app.state.classifier`` inside any route.
    - ``server``: how ``/metadata`` names the server.
    - ``infer``: an async function from one preprocessed image ``float32 [3, H, W]`` to its
      logits row; default: ``classifier.predict_batch`` in the thread pool. Ray Serve passes its
      ``@serve.batch`` method here (:mod:`helpers.serving.ray_serve`).
    - ``metadata``: extra fields for ``/metadata`` (computed per request).
    - ``body_timeout_s``: deadline for receiving a request body (408 after it; ``None``: none).
    - ``docs``: serve ``/openapi.json`` and ``/docs`` (``False``: both answer 404).
    """
    from fastapi import APIRouter, FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title=title, description="Serves one ONNX image classifier (helpers.serving.app).",
                  docs_url="/docs" if docs else None, openapi_url="/openapi.json" if docs else None,
                  redoc_url=None)
    app.state.classifier = classifier

    async def infer_in_threadpool(pixels: np.ndarray) -> np.ndarray:
        return (await run_in_threadpool(classifier.predict_batch, pixels))[0]

    run_model = infer or infer_in_threadpool

    @app.exception_handler(RequestProblem)  # also RequestError, its subclass
    async def _request_error(_: Request, error: RequestProblem) -> JSONResponse:
        return JSONResponse({"error": error.message, "status": error.status},
                            status_code=error.status, headers=error.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in error.errors()
        )
        return JSONResponse({"error": problems, "status": 422}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(error.detail), "status": error.status_code},
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        _log.exception("unexpected error while serving a request")
        return JSONResponse(
            {"error": f"internal server error ({type(error).__name__}); see the server log",
             "status": 500},
            status_code=500,
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the model is loaded and the server answers."""
        return {"status": "ok"}

    @app.get("/metadata")
    async def model_metadata() -> dict[str, Any]:
        """Model, input signature, runtime settings and request limits."""
        info = {"server": server, **classifier.metadata(), **(metadata() if metadata else {})}
        info["limits"] = {**info.get("limits", {}), "body_timeout_s": body_timeout_s}
        return info

    @app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True,
              openapi_extra=_predict_openapi())
    async def predict(request: Request) -> dict[str, Any]:
        """Classify one image: raw image bytes, or JSON with the image in base64."""
        body = await read_body(request, max_bytes=classifier.max_bytes, timeout_s=body_timeout_s)
        parsed = await run_in_threadpool(
            classifier.parse, request.headers.get("content-type"), body, dict(request.query_params)
        )
        logits = await run_model(parsed.pixels)
        return classifier.answer(logits, parsed.top_k, parsed.return_logits)

    # The JSON body is parsed by hand (the same endpoint takes raw images), so register its
    # schema for /docs explicitly.
    app.openapi_schema = None
    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = app.openapi_schema
        if schema is None:
            schema = original_openapi()  # sets app.openapi_schema to this dict
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["PredictRequest"] = PredictRequest.model_json_schema()
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    for router in routers:
        app.include_router(router if isinstance(router, APIRouter) else router(classifier))
    return app


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """A server started by :func:`serve_in_background` (or Ray Serve): where to reach it."""

    host: str
    port: int
    kind: str = "uvicorn"
    started_s: float = 0.0
    stopped: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"


@contextlib.contextmanager
def serve_in_background(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    startup_timeout_s: float = 30.0,
    shutdown_timeout_s: float = 10.0,
    log_level: str = "warning",
    header_timeout_s: float = 10.0,
    keep_alive_s: float = 5.0,
    max_connections: int | None = 256,
) -> Iterator[RunningServer]:
    """Run ``app`` with uvicorn in a background thread; stop it cleanly when the block ends.

    The listening socket is bound here (to ``host`` and ``port``, or a free port the OS picks)
    and handed to uvicorn, so the port is known before the server starts and no other process
    can take it in between. The block is entered only once the server accepts connections;
    leaving it asks uvicorn to exit (finishing requests in flight), joins the thread and checks
    that the port is closed. Only ``127.0.0.1`` is used in this suite: nothing is exposed.

    Connections are bounded in time and number: a complete request head must arrive within
    ``header_timeout_s`` of the connection opening or of its previous response (else the
    connection is closed, with a 408 if a request had started —
    :func:`helpers.serving.limits.header_deadline_protocol`); idle keep-alive connections close
    after ``keep_alive_s`` (uvicorn's ``timeout_keep_alive``); beyond ``max_connections``
    connections or requests at once uvicorn answers 503 (``limit_concurrency``). The body's own
    deadline is the app's (``create_app(body_timeout_s=...)``).
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port or 0))
    actual_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        host=host,
        port=actual_port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(max(shutdown_timeout_s - 1, 1)),
        http=header_deadline_protocol(header_timeout_s),
        timeout_keep_alive=max(1, round(keep_alive_s)),
        limit_concurrency=max_connections,
    )
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def _run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    thread = threading.Thread(target=_run, name=f"uvicorn-{actual_port}", daemon=True)
    t0 = time.perf_counter()
    thread.start()
    deadline = t0 + startup_timeout_s
    while not server.started:
        if errors or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"uvicorn failed to start: {errors[0] if errors else 'thread exited'}")
        if time.perf_counter() > deadline:
            server.should_exit = True
            thread.join(shutdown_timeout_s)
            sock.close()
            raise TimeoutError(f"uvicorn did not start within {startup_timeout_s} s")
        time.sleep(0.02)
    running = RunningServer(host, actual_port, "uvicorn", started_s=time.perf_counter() - t0,
                            info={"header_timeout_s": header_timeout_s, "keep_alive_s": keep_alive_s,
                                  "max_connections": max_connections})
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout_s)
        if thread.is_alive():  # pragma: no cover - a hung request; force it
            server.force_exit = True
            thread.join(shutdown_timeout_s)
        sock.close()
        running.stopped = not thread.is_alive() and not _port_open(host, actual_port)
        if not running.stopped:  # pragma: no cover
            raise RuntimeError(f"uvicorn on {host}:{actual_port} did not stop")


def _port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0
