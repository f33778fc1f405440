"""Ray for the serving lessons: a local cluster, and Ray Serve around the FastAPI app.

- :func:`ray_cluster` starts a local Ray instance with its temporary folder inside the project's
  outputs (see :func:`ray_temp_dir` about the Unix-socket path limit) and, on exit, shuts Serve
  and Ray down and checks with ``psutil`` that no Ray process (raylet, GCS server, workers) is
  left behind (:func:`ray_processes`). Ray's log lines are kept out of the caller's output:
  workers' logs are not forwarded (``log_to_driver=False``) and what Ray prints while shutting
  down is captured in :attr:`RayCluster.shutdown_messages`; Ray Serve's driver-side INFO lines
  are silenced (its ``ray.serve`` logger is set to WARNING).
- :func:`ray_serve_app` deploys **the same FastAPI app** as :func:`helpers.serving.create_app`
  on Ray Serve replicas (``@serve.ingress``), with ``@serve.batch`` grouping requests into one
  ONNX Runtime call, and any extra routers (e.g. the KServe v2 protocol,
  :func:`helpers.serving.kserve.router_factory`) built inside each replica; :func:`start_ray_serve`
  runs it on ``127.0.0.1`` with request and keep-alive timeouts on Serve's HTTP proxy.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helpers.paths import output_dir
from helpers.serving.app import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_BYTES,
    ImageClassifier,
    RunningServer,
    create_app,
    free_port,
)

__all__ = [
    "UNIX_SOCKET_PATH_MAX",
    "RayCluster",
    "ray_cluster",
    "ray_processes",
    "ray_serve_app",
    "native_stderr",
    "ray_temp_dir",
    "start_ray_serve",
]

_log = logging.getLogger(__name__)


#: Linux limits a Unix socket path (``sun_path``) to 107 characters. Ray puts its sockets at
#: ``<temp_dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store``, ~64 characters more.
UNIX_SOCKET_PATH_MAX = 107
_RAY_SOCKET_SUFFIX = "/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store"


def ray_temp_dir(preferred: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Where Ray keeps its session files, and why: ``(folder, reason)``.

    ``preferred`` (default ``outputs/ray``: inside the project's outputs, so nothing is left in
    ``/tmp/ray``, Ray's default) — a notebook passes its own output folder. But Ray's Unix
    sockets live under that folder and Linux caps a socket path at 107 characters: if the folder
    is too deep (a long checkout path), a short folder under the system temp dir is used
    instead, and the reason says so.
    """
    folder = Path(preferred) if preferred is not None else output_dir("ray")
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
    #: What Ray printed while shutting down (ANSI colours removed), e.g. the raylet reporting
    #: that the Serve controller's ``graceful_shutdown`` task failed because its actor was
    #: already being stopped — Ray's bookkeeping, not an error of the application.
    shutdown_messages: list[str] = field(default_factory=list)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@contextlib.contextmanager
def native_stderr(into: list[str]) -> Iterator[None]:
    """Collect what is written to file descriptor 2 in the block (ANSI removed) into ``into``.

    Ray's C++ core in the driver process logs warnings as glog-style ``E…`` lines straight to
    the process's stderr descriptor, past Python's ``sys.stderr``; in a notebook they would land
    in the cell's output. Everything written to descriptor 2 in the block — also by other
    threads — is kept instead.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = _ANSI.sub("", sink.read().decode("utf-8", errors="replace"))
            into.extend(line for line in text.splitlines() if line.strip())


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
    # Serve's driver-side INFO lines ("Started Serve...", "Application ... is ready") would land in
    # the caller's output; warnings still show.
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    cluster = RayCluster(folder, reason, num_cpus, started_s=time.perf_counter() - t0)
    cluster.attempts = attempt
    cluster.processes_at_start = ray_processes(folder)
    try:
        yield cluster
    finally:
        t1 = time.perf_counter()
        printed, native = io.StringIO(), list[str]()
        # Ray's driver thread prints the raylet's messages (coloured) to sys.stdout/stderr;
        # its C++ core writes to file descriptor 2 directly.
        with native_stderr(native), contextlib.redirect_stdout(printed), \
                contextlib.redirect_stderr(printed):
            with contextlib.suppress(Exception):
                from ray import serve

                serve.shutdown()
            ray.shutdown()
        cluster.shutdown_messages = [
            line for line in _ANSI.sub("", printed.getvalue()).splitlines() if line.strip()] + native
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
    resize: int | None = None,
    num_replicas: int = 2,
    max_batch_size: int = 8,
    batch_wait_timeout_s: float = 0.005,
    threads: int = 1,
    num_cpus_per_replica: float = 0.5,
    max_bytes: int = DEFAULT_MAX_BYTES,
    body_timeout_s: float | None = DEFAULT_BODY_TIMEOUT_S,
    routers: Sequence[Any] = (),
) -> Any:
    """A Ray Serve application serving **the same FastAPI app** as :func:`helpers.serving.create_app`.

    Each of ``num_replicas`` replicas (actors) builds its own :class:`ImageClassifier` (one ONNX
    Runtime session of ``threads`` threads) and the FastAPI app around it; Ray Serve
    routes HTTP into that app (``@serve.ingress``), so validation, errors, ``/docs`` and any
    extra ``routers`` are exactly those of the uvicorn server. The only difference is inference:
    ``@serve.batch`` groups concurrent requests (up to ``max_batch_size`` images, waiting at most
    ``batch_wait_timeout_s`` for a batch to fill) into one session call. ``/metadata`` adds which
    replica answered and the batch sizes it has run.

    ``routers`` are shipped to the replicas with cloudpickle, so each item is either a picklable
    ``APIRouter`` or — for routers that hold models (compiled sessions cannot be pickled) — a
    **factory** ``f(classifier) -> APIRouter`` that each replica calls after loading its
    model, e.g. :func:`helpers.serving.kserve.router_factory` for the KServe v2 protocol.
    """
    from ray import serve

    options = {
        "model_name": model_name,
        "labels": list(labels) if labels is not None else None,
        "input_size": input_size,
        "resize": resize,
        "max_bytes": max_bytes,
        "threads": threads,
    }
    if any(not callable(r) and not hasattr(r, "routes") for r in routers):
        raise TypeError("routers: give fastapi.APIRouter objects or factories f(classifier) -> APIRouter")
    extra_routers = list(routers)

    @serve.deployment(
        num_replicas=num_replicas,
        ray_actor_options={"num_cpus": num_cpus_per_replica},
        max_ongoing_requests=max(2 * max_batch_size, 16),
    )
    @serve.ingress()
    class ImageClassifierDeployment:
        def __init__(self, path: str, opts: dict[str, Any]) -> None:
            opts = dict(opts)
            threads = opts.pop("threads")
            self.classifier = ImageClassifier.from_onnx(path, threads=threads, **opts)
            self.batch_sizes: Counter[int] = Counter()

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s)
        async def infer(self, pixels: list[np.ndarray]) -> list[np.ndarray]:
            self.batch_sizes[len(pixels)] += 1
            return list(self.classifier.predict_batch(np.stack(pixels)))

        def replica_metadata(self) -> dict[str, Any]:
            return {
                "replica_pid": str(os.getpid()),
                "batch_sizes": dict(sorted(self.batch_sizes.items())),
                "max_batch_size": max_batch_size,
                "batch_wait_timeout_s": batch_wait_timeout_s,
            }

        def __serve_build_asgi_app__(self) -> Any:  # called on the replica, after __init__
            return create_app(
                self.classifier,
                server="ray-serve",
                infer=self.infer,
                metadata=self.replica_metadata,
                routers=extra_routers,
                body_timeout_s=body_timeout_s,
            )

    return ImageClassifierDeployment.bind(  # type: ignore[attr-defined]  # serve.deployment adds bind
        str(Path(onnx_path).resolve()), options
    )


def start_ray_serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    name: str = "classifier",
    ready_timeout_s: float = 120.0,
    request_timeout_s: float = 60.0,
    keep_alive_s: int = 5,
) -> RunningServer:
    """Start Serve's HTTP proxy on ``host:port`` (a free port by default), deploy ``app``, wait.

    Needs a running Ray (:func:`ray_cluster`); returns once ``/health`` answers 200. ``app`` is
    what :func:`ray_serve_app` returns. The proxy ends any request after ``request_timeout_s``
    (408) and closes idle keep-alive connections after ``keep_alive_s``; the app's own body
    deadline (``body_timeout_s``) applies inside the replicas. Connections that never send a
    request are the proxy's (Ray's own uvicorn) to manage: in production, put a load balancer
    with a header timeout in front.
    :func:`ray_cluster` shuts it all down on exit (``serve.shutdown()``).
    """
    import httpx
    from ray import serve

    port = port or free_port(host)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    serve.start(
        http_options={"host": host, "port": port, "request_timeout_s": request_timeout_s,
                      "keep_alive_timeout_s": int(keep_alive_s)},
        logging_config={"log_level": "WARNING"},
    )
    serve.run(app, name=name, route_prefix="/", blocking=False)
    url = f"http://{host}:{port}"
    deadline = t0 + ready_timeout_s
    last = ""
    while time.perf_counter() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return RunningServer(host, port, "ray-serve", started_s=time.perf_counter() - t0,
                                     info={"request_timeout_s": request_timeout_s,
                                           "keep_alive_s": keep_alive_s})
            last = "health check not 200 yet"
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(0.25)
    raise TimeoutError(f"Ray Serve did not become ready within {ready_timeout_s} s ({last})")
