"""Serve an ONNX image classifier over HTTP: FastAPI + uvicorn on one machine, Ray Serve beyond.

One :class:`ImageClassifier` holds everything a server needs for one model — **one** ONNX Runtime
session shared by every request, the preprocessing, the labels and the input validation — so the
FastAPI app (:func:`create_app`) and the Ray Serve deployment (:func:`ray_serve_app`) answer the
same requests in the same way and a single client talks to both.

The HTTP API (identical on both servers)
----------------------------------------
``GET /health``
    ``{"status": "ok"}`` once the model is loaded.
``GET /metadata``
    Model name, input signature, runtime and its settings, request limits.
``POST /predict``
    Either the raw image bytes with ``Content-Type: image/jpeg`` (png, webp, bmp, gif, tiff) and
    optional query parameters ``top_k`` and ``logits=true``, or JSON
    ``{"image": "<base64>", "top_k": 5, "return_logits": false}``. Answer:
    ``{"model": ..., "predictions": [{"label": ..., "probability": ...}, ...]}`` plus
    ``"logits"`` when asked for.

Every bad request gets a 4xx with a one-line ``{"error": ...}`` message, never a 500 with a
traceback: wrong content type (415), body over the size limit (413), invalid JSON or an
undecodable image (400), JSON of the wrong shape or bad parameters (422), unknown path (404),
wrong method (405). An unexpected server fault is logged on the server and answered with a
500 that says only that.

Running servers from a notebook
-------------------------------
:func:`serve_in_background` runs uvicorn in a background thread on ``127.0.0.1`` and a free
port (a socket bound *before* the server starts, so there is no race for the port), waits until
it accepts connections and stops it cleanly on exit. :func:`ray_cluster` starts a local Ray
instance with its temporary folder inside the project's outputs (see :func:`ray_temp_dir` about
the Unix-socket path limit), and on exit shuts Serve and Ray down and checks with ``psutil`` that
no Ray process (raylet, GCS server, workers) is left behind. :func:`ray_batch_predict` runs the
same model over a folder of images with Ray Data's ``map_batches``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from starlette.requests import Request

from helpers.images import ImageError, load_image, numpy_preprocess, top_k

__all__ = [
    "ACCEPTED_IMAGE_TYPES",
    "DEFAULT_MAX_BYTES",
    "ImageClassifier",
    "RayCluster",
    "RequestError",
    "RunningServer",
    "create_app",
    "free_port",
    "ray_batch_predict",
    "ray_cluster",
    "ray_processes",
    "ray_serve_app",
    "ray_temp_dir",
    "serve_in_background",
    "start_ray_serve",
    "toy_classifier_onnx",
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
#: Largest decoded image (pixels) a server accepts; bigger ones are refused from the header.
SERVER_MAX_PIXELS = 25_000_000
_JSON_FIELDS = {"image", "top_k", "return_logits"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class RequestError(Exception):
    """A request the server refuses; ``status`` is the HTTP status (4xx), ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """The JSON body sent to the client: ``{"error": message, "status": status}``."""
        return {"error": self.message, "status": self.status}


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
    Preprocessing is :func:`helpers.images.numpy_preprocess` (PIL + NumPy; no torch on the server).
    """

    def __init__(
        self,
        runner: Any,
        *,
        model_name: str = "",
        labels: Sequence[str] | None = None,
        input_size: int = 224,
        default_top_k: int = 5,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = SERVER_MAX_PIXELS,
        extra_metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.runner = runner
        self.input_name = runner.inputs[0].name
        self.output_name = runner.output_names[0]
        self.model_name = model_name or getattr(runner, "name", "model")
        self.input_size = int(input_size)
        self.resize = self.input_size * 256 // 224
        if labels is None:
            from helpers.images import imagenet_labels

            labels = imagenet_labels()
        self.labels = list(labels)
        self.default_top_k = int(default_top_k)
        self.max_bytes = int(max_bytes)
        self.max_pixels = int(max_pixels)
        self.extra_metadata = dict(extra_metadata or {})
        self.requests_served = 0
        self._lock = threading.Lock()

    @classmethod
    def from_onnx(
        cls,
        onnx_path: str | os.PathLike[str],
        *,
        intra_op_threads: int | None = None,
        **kwargs: Any,
    ) -> ImageClassifier:
        """Build from an ONNX file with :func:`helpers.runners.ort_runner` on the CPU provider."""
        from helpers.runners import ort_runner

        runner = ort_runner(
            onnx_path, providers=("CPUExecutionProvider",), intra_op_threads=intra_op_threads
        )
        return cls(runner, **kwargs)

    # ---------------------------------------------------------------- validation + parsing
    def check_length(self, content_length: str | int | None) -> None:
        """Refuse (413) a declared ``Content-Length`` above :attr:`max_bytes` before reading it."""
        if content_length in (None, ""):
            return
        try:
            size = int(content_length)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise RequestError(400, f"invalid Content-Length header {content_length!r}") from None
        if size > self.max_bytes:
            raise RequestError(
                413, f"request body of {size:,} bytes exceeds the limit of {self.max_bytes:,} bytes"
            )

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
        try:
            image = load_image(image_bytes, max_pixels=self.max_pixels)
        except ImageError as error:
            raise RequestError(400, f"cannot decode the image: {error}") from None
        pixels = numpy_preprocess(image, size=self.input_size, resize=self.resize)
        return _Parsed(pixels=pixels, top_k=k, return_logits=want_logits)

    def _parse_json(self, body: bytes) -> tuple[bytes, int, bool]:
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(400, f"body is not valid JSON ({error})") from None
        shape_hint = 'expected a JSON object {"image": "<base64 image>", "top_k": 5}'
        if not isinstance(payload, dict):
            raise RequestError(422, f"{shape_hint}, got a JSON {type(payload).__name__}")
        unknown = sorted(set(payload) - _JSON_FIELDS)
        if unknown:
            raise RequestError(
                422, f"unexpected field(s) {unknown}; allowed: {sorted(_JSON_FIELDS)}"
            )
        if "image" not in payload:
            raise RequestError(422, f"missing field 'image'; {shape_hint}")
        encoded = payload["image"]
        if not isinstance(encoded, str):
            raise RequestError(
                422, f"field 'image' must be a base64 string, got {type(encoded).__name__}"
            )
        try:
            image_bytes = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(422, "field 'image' is not valid base64") from None
        k = self._check_top_k(payload.get("top_k", self.default_top_k), "field 'top_k'")
        want_logits = payload.get("return_logits", False)
        if not isinstance(want_logits, bool):
            raise RequestError(422, "field 'return_logits' must be true or false")
        return image_bytes, k, want_logits

    def _check_top_k(self, value: Any, where: str) -> int:
        if isinstance(value, bool):
            value = "bool"
        try:
            k = int(value)
            if isinstance(value, float) and value != k:
                raise ValueError
        except (TypeError, ValueError):
            raise RequestError(422, f"{where} must be an integer, got {value!r}") from None
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
        raise RequestError(422, f"{where} must be true or false, got {value!r}")

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
                "content_types": [*ACCEPTED_IMAGE_TYPES, "application/json"],
            },
            "requests_served": self.requests_served,
            **self.extra_metadata,
        }


# --------------------------------------------------------------------------------------------
# FastAPI
# --------------------------------------------------------------------------------------------
async def _read_body(request: Any, max_bytes: int) -> bytes:
    """Read a request body in chunks, stopping with a 413 as soon as it passes ``max_bytes``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(
                413, f"request body exceeds the limit of {max_bytes:,} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(classifier: ImageClassifier, *, title: str = "Image classifier") -> Any:
    """A FastAPI app serving ``classifier`` at ``/predict``, ``/health`` and ``/metadata``.

    The model session is created once (in ``classifier``) and shared by all requests. The
    blocking work (image decoding, ONNX Runtime) runs in Starlette's thread pool so the event
    loop keeps accepting connections. Errors are answered as described in the module docstring.
    """
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title=title, description="Serves one ONNX image classifier (helpers.serving).")
    app.state.classifier = classifier

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, error: RequestError) -> JSONResponse:
        return JSONResponse(error.to_dict(), status_code=error.status)

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
    async def metadata() -> dict[str, Any]:
        """Model, input signature, runtime settings and request limits."""
        return {"server": "fastapi+uvicorn", **classifier.metadata()}

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        """Classify one image (raw image bytes or JSON with base64); see the module docstring."""
        classifier.check_length(request.headers.get("content-length"))
        body = await _read_body(request, classifier.max_bytes)
        return await run_in_threadpool(
            classifier.handle,
            request.headers.get("content-type"),
            body,
            dict(request.query_params),
        )

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
) -> Iterator[RunningServer]:
    """Run ``app`` with uvicorn in a background thread; stop it cleanly when the block ends.

    The listening socket is bound here (to ``host`` and ``port``, or a free port the OS picks)
    and handed to uvicorn, so the port is known before the server starts and no other process
    can take it in between. The block is entered only once the server accepts connections;
    leaving it asks uvicorn to exit (finishing requests in flight), joins the thread and checks
    that the port is closed. Only ``127.0.0.1`` is used in this suite: nothing is exposed.
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
    running = RunningServer(host, actual_port, "uvicorn", started_s=time.perf_counter() - t0)
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


# --------------------------------------------------------------------------------------------
# Ray: local cluster, Serve deployment, Data batch inference
# --------------------------------------------------------------------------------------------
#: Linux limits a Unix socket path (``sun_path``) to 107 characters. Ray puts its sockets at
#: ``<temp_dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store``, ~64 characters more.
UNIX_SOCKET_PATH_MAX = 107
_RAY_SOCKET_SUFFIX = "/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store"


def ray_temp_dir(preferred: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Where Ray keeps its session files, and why: ``(folder, reason)``.

    Preferably inside the project's outputs (``outputs/07_serving/ray``), so nothing is left in
    ``/tmp/ray`` (Ray's default). But Ray's Unix sockets live under that folder and Linux caps a
    socket path at 107 characters: if the folder is too deep (a long checkout path), a short
    folder under the system temp dir is used instead, and the reason says so.
    """
    from helpers.paths import output_dir

    folder = Path(preferred) if preferred is not None else output_dir("07_serving", "ray")
    folder = folder.resolve()
    if len(str(folder)) + len(_RAY_SOCKET_SUFFIX) <= UNIX_SOCKET_PATH_MAX:
        folder.mkdir(parents=True, exist_ok=True)
        return folder, f"inside the project's outputs ({folder})"
    short = Path(tempfile.gettempdir()) / f"ray-{os.getuid()}"
    short.mkdir(parents=True, exist_ok=True)
    return short, (
        f"{folder} is {len(str(folder))} characters long; Ray's socket paths under it would pass "
        f"Linux's {UNIX_SOCKET_PATH_MAX}-character limit for Unix sockets, so Ray uses {short}"
    )


_RAY_PROCESS_NAMES = ("raylet", "gcs_server", "plasma_store", "dashboard", "ray::", "ray_client")


def ray_processes(temp_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Running Ray processes (raylet, GCS server, workers...) — of this session's ``temp_dir`` if given.

    Found with ``psutil``: by process name or command line. With ``temp_dir``, only processes whose
    command line mentions it (every raylet/GCS/worker of a session does) or that are children
    of this process count, so another user's Ray on the same machine is not reported.
    """
    import psutil

    me = psutil.Process()
    try:
        children = {p.pid for p in me.children(recursive=True)}
    except psutil.Error:  # pragma: no cover
        children = set()
    marker = str(Path(temp_dir).resolve()) if temp_dir is not None else None
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        try:
            name = proc.info["name"] or ""
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:  # pragma: no cover
            continue
        text = f"{name} {cmd}"
        is_ray = any(key in text for key in _RAY_PROCESS_NAMES) or (
            "ray" in cmd and ("default_worker.py" in cmd or "ray/_private" in cmd)
        )
        if not is_ray or proc.pid == me.pid:
            continue
        if marker is not None and marker not in cmd and proc.pid not in children:
            continue
        found.append({"pid": proc.pid, "name": name, "cmdline": cmd[:160]})
    return found


@dataclass
class RayCluster:
    """A local Ray instance started by :func:`ray_cluster`."""

    temp_dir: Path
    temp_dir_reason: str
    num_cpus: int
    started_s: float = 0.0
    processes_at_start: list[dict[str, Any]] = field(default_factory=list)
    leftover_processes: list[dict[str, Any]] | None = None
    shutdown_s: float = 0.0
    attempts: int = 1


def _terminate(processes: Sequence[Mapping[str, Any]], timeout_s: float = 10.0) -> None:
    """Terminate the given processes (by pid; they are this session's Ray processes)."""
    import psutil

    procs = []
    for info in processes:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(int(info["pid"]))
            proc.terminate()
            procs.append(proc)
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


@contextlib.contextmanager
def ray_cluster(
    *,
    num_cpus: int = 2,
    temp_dir: str | os.PathLike[str] | None = None,
    object_store_memory: int = 200 * 1024 * 1024,
    shutdown_timeout_s: float = 30.0,
    attempts: int = 3,
) -> Iterator[RayCluster]:
    """Start a local Ray instance; on exit shut Serve and Ray down and check nothing is left.

    ``ray.init`` runs with no dashboard, a small object store, ``num_cpus`` CPUs and its
    temporary folder from :func:`ray_temp_dir`. Leaving the block calls ``serve.shutdown()``
    (if Serve was started) and ``ray.shutdown()``, then waits up to ``shutdown_timeout_s`` for
    every Ray process of this session to exit; any survivor raises ``RuntimeError`` naming it.

    Ray's raylet gives its agent processes ~15 s to start; on an overloaded machine they can be
    slower and ``ray.init`` fails ("The current node timed out during startup"). That attempt's
    processes are then terminated (by pid) and start-up is retried, up to ``attempts`` times.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report (no network here)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray

    folder, reason = ray_temp_dir(temp_dir)
    t0 = time.perf_counter()
    for attempt in range(1, attempts + 1):
        try:
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                object_store_memory=object_store_memory,
                _temp_dir=str(folder),
                logging_level=logging.ERROR,
                log_to_driver=False,
                namespace="inference-suite",
            )
            break
        except Exception as error:
            # The raylet waits ~15 s for its agents (Python processes) to write their port
            # files; on an overloaded machine they can be slower and the start-up aborts
            # ("The current node timed out during startup"). Clean up that attempt, retry.
            with contextlib.suppress(Exception):
                ray.shutdown()
            _terminate(ray_processes(folder))
            if attempt == attempts:
                raise RuntimeError(
                    f"Ray did not start in {attempts} attempts (last error: {error}). Ray's "
                    "agents must start within ~15 s; is the machine overloaded?"
                ) from error
            _log.warning("Ray start-up attempt %d failed (%s); retrying", attempt, error)
    cluster = RayCluster(folder, reason, num_cpus, started_s=time.perf_counter() - t0)
    cluster.attempts = attempt
    cluster.processes_at_start = ray_processes(folder)
    try:
        yield cluster
    finally:
        t1 = time.perf_counter()
        with contextlib.suppress(Exception):
            from ray import serve

            serve.shutdown()
        ray.shutdown()
        deadline = time.perf_counter() + shutdown_timeout_s
        left = ray_processes(folder)
        while left and time.perf_counter() < deadline:
            time.sleep(0.25)
            left = ray_processes(folder)
        cluster.leftover_processes = left
        cluster.shutdown_s = time.perf_counter() - t1
        if left:
            raise RuntimeError(
                "Ray processes still running after serve.shutdown() and ray.shutdown(): "
                + ", ".join(f"{p['name']} (pid {p['pid']})" for p in left)
            )


def ray_serve_app(
    onnx_path: str | os.PathLike[str],
    *,
    model_name: str = "",
    labels: Sequence[str] | None = None,
    input_size: int = 224,
    num_replicas: int = 2,
    max_batch_size: int = 8,
    batch_wait_timeout_s: float = 0.005,
    intra_op_threads: int = 1,
    num_cpus_per_replica: float = 0.5,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Any:
    """A Ray Serve application answering the same HTTP API as :func:`create_app`.

    ``num_replicas`` replicas (actors), each with its own ONNX Runtime session of
    ``intra_op_threads`` threads. Requests are validated in the replica with the same
    :class:`ImageClassifier` code, then grouped by ``@serve.batch`` (up to ``max_batch_size``
    images, waiting at most ``batch_wait_timeout_s`` for a batch to fill) into one session call.
    ``/metadata`` reports which replica answered and the batch sizes it has run.
    """
    from ray import serve
    from starlette.responses import JSONResponse

    labels = list(labels) if labels is not None else None
    options = {
        "model_name": model_name,
        "labels": labels,
        "input_size": input_size,
        "max_bytes": max_bytes,
        "intra_op_threads": intra_op_threads,
    }

    @serve.deployment(
        num_replicas=num_replicas,
        ray_actor_options={"num_cpus": num_cpus_per_replica},
        max_ongoing_requests=max(2 * max_batch_size, 16),
    )
    class ImageClassifierDeployment:
        def __init__(self, path: str, opts: dict[str, Any]) -> None:
            opts = dict(opts)
            threads = opts.pop("intra_op_threads")
            self.classifier = ImageClassifier.from_onnx(path, intra_op_threads=threads, **opts)
            self.batch_sizes: Counter[int] = Counter()
            self.replica = f"{os.getpid()}"

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s)
        async def infer(self, pixels: list[np.ndarray]) -> list[np.ndarray]:
            self.batch_sizes[len(pixels)] += 1
            logits = self.classifier.predict_batch(np.stack(pixels))
            return list(logits)

        async def __call__(self, request: Any) -> Any:
            path = request.url.path.rstrip("/") or "/"
            try:
                if path == "/health":
                    if request.method != "GET":
                        raise RequestError(405, "Method Not Allowed")
                    return JSONResponse({"status": "ok"})
                if path == "/metadata":
                    if request.method != "GET":
                        raise RequestError(405, "Method Not Allowed")
                    meta = {
                        "server": "ray-serve",
                        **self.classifier.metadata(),
                        "replica_pid": self.replica,
                        "batch_sizes": dict(sorted(self.batch_sizes.items())),
                        "max_batch_size": max_batch_size,
                        "batch_wait_timeout_s": batch_wait_timeout_s,
                    }
                    return JSONResponse(meta)
                if path != "/predict":
                    raise RequestError(404, "Not Found")
                if request.method != "POST":
                    raise RequestError(405, "Method Not Allowed")
                c = self.classifier
                c.check_length(request.headers.get("content-length"))
                body = await _read_body(request, c.max_bytes)
                parsed = c.parse(
                    request.headers.get("content-type"), body, dict(request.query_params)
                )
                logits = await self.infer(parsed.pixels)
                return JSONResponse(c.answer(logits, parsed.top_k, parsed.return_logits))
            except RequestError as error:
                return JSONResponse(error.to_dict(), status_code=error.status)
            except Exception as error:  # never a traceback to the client
                _log.exception("unexpected error while serving a request")
                return JSONResponse(
                    {"error": f"internal server error ({type(error).__name__}); see the server log",
                     "status": 500},
                    status_code=500,
                )

    return ImageClassifierDeployment.bind(str(Path(onnx_path).resolve()), options)


def start_ray_serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    name: str = "classifier",
    ready_timeout_s: float = 120.0,
) -> RunningServer:
    """Start Serve's HTTP proxy on ``host:port`` (a free port by default), deploy ``app``, wait.

    Needs a running Ray (:func:`ray_cluster`); returns once ``/health`` answers 200.
    :func:`ray_cluster` shuts it all down on exit (``serve.shutdown()``).
    """
    import httpx
    from ray import serve

    port = port or free_port(host)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
    serve.run(app, name=name, route_prefix="/", blocking=False)
    url = f"http://{host}:{port}"
    deadline = t0 + ready_timeout_s
    last = ""
    while time.perf_counter() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return RunningServer(host, port, "ray-serve", started_s=time.perf_counter() - t0)
            last = "health check not 200 yet"
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(0.25)
    raise TimeoutError(f"Ray Serve did not become ready within {ready_timeout_s} s ({last})")


class _RayDataPredictor:
    """Ray Data ``map_batches`` callable: one ONNX Runtime session per actor."""

    def __init__(self, onnx_path: str, input_size: int, intra_op_threads: int) -> None:
        from helpers.runners import ort_runner

        self.runner = ort_runner(onnx_path, intra_op_threads=intra_op_threads)
        self.input_name = self.runner.inputs[0].name
        self.output_name = self.runner.output_names[0]
        self.input_size = input_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pixels = np.stack(
            [
                numpy_preprocess(
                    load_image(str(p)), size=self.input_size, resize=self.input_size * 256 // 224
                )
                for p in batch["path"]
            ]
        )
        logits = self.runner.run({self.input_name: pixels})[self.output_name]
        return {"path": batch["path"], "logits": logits}


def ray_batch_predict(
    onnx_path: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    *,
    input_size: int = 224,
    batch_size: int = 8,
    concurrency: int = 1,
    intra_op_threads: int = 1,
    num_cpus: float = 0.5,
) -> dict[str, np.ndarray]:
    """Logits for every image file with Ray Data: ``from_items → map_batches → take_all``.

    Needs a running Ray (:func:`ray_cluster`). ``concurrency`` actors each hold one ONNX Runtime
    session (a callable class in ``map_batches``), so the model loads once per actor, not once
    per batch. Returns ``{path: logits}`` (Ray Data does not promise to keep row order).
    """
    import ray
    import ray.data

    items = [{"path": str(Path(f).resolve())} for f in files]
    if not items:
        raise ValueError("no files to predict")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # keep notebook output readable
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    dataset = ray.data.from_items(items).map_batches(
        _RayDataPredictor,
        fn_constructor_kwargs={
            "onnx_path": str(Path(onnx_path).resolve()),
            "input_size": input_size,
            "intra_op_threads": intra_op_threads,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
    )
    return {row["path"]: np.asarray(row["logits"]) for row in dataset.take_all()}


def toy_classifier_onnx(
    path: str | os.PathLike[str], *, num_classes: int = 10, seed: int = 0
) -> Path:
    """Write a toy ONNX image classifier (no torch needed) for tests and quick demos; return its path.

    ``pixel_values: float32[batch, 3, H, W]`` → global average pool → linear →
    ``logits: float32[batch, num_classes]``, with seeded random weights. Any image size works; it
    runs in microseconds, so a test can send hundreds of requests.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 4.0, size=(3, num_classes)).astype(np.float32)
    bias = rng.normal(0, 0.1, size=(num_classes,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["pixel_values"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "weight", "bias"], ["logits"]),
        ],
        "toy_classifier",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes])],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
