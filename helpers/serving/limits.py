"""What keeps a model server up under hostile or careless clients: the limits both servers share.

:mod:`helpers.serving.app` (``/predict``) and :mod:`helpers.serving.kserve` (the v2 protocol) use the same
pieces, on uvicorn and on Ray Serve alike:

- :func:`loads_json` parses a request body strictly: ``NaN``/``Infinity``, numbers that overflow
  a float (``1e400``), integers with more than :data:`MAX_INT_DIGITS` digits and nesting deeper
  than :data:`MAX_JSON_DEPTH` levels are refused with a one-line :class:`RequestProblem` (400)
  instead of surfacing as ``OverflowError``/``ValueError``/``RecursionError`` (a 500).
- :func:`read_body` reads a body in chunks with a size cap (413) and a **deadline** (408): a
  client that sends one byte a second cannot hold a connection and a worker forever. An
  over-limit body is read and discarded (up to a bound) before the 413, so the client gets the
  answer rather than a connection reset.
- :class:`PixelBudget` bounds the pixels decoded at the same time across all requests: a 25 MP
  photo decodes to 75 MB of RGB pixels and the decoding path holds several copies, so sixteen
  at once need gigabytes. Requests beyond the budget wait their turn (503 after a wait limit).
  :func:`header_pixels` reads an image's size from its header without decoding it;
  :func:`release_free_memory` hands memory freed after a large decode back to the operating
  system (glibc's ``malloc_trim``), so the server's resident memory returns to its idle level
  instead of staying at the peak.
- :func:`header_deadline_protocol` is uvicorn's HTTP protocol plus a **header deadline**: a
  connection that sends no complete request head within the deadline (an idle connection that
  never sends anything, or headers trickled byte by byte) is closed — with a 408 if it had started
  a request. uvicorn's own ``timeout_keep_alive`` only starts after a first response.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import io
import json
import math
import re
import threading
import time
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

__all__ = [
    "MAX_INT_DIGITS",
    "MAX_JSON_DEPTH",
    "PixelBudget",
    "RequestProblem",
    "header_deadline_protocol",
    "header_pixels",
    "drain_limit",
    "loads_json",
    "read_body",
    "release_free_memory",
]

#: Longest integer literal accepted in a JSON body (uint64 needs 20 digits).
MAX_INT_DIGITS = 32
#: Deepest nesting of arrays/objects accepted in a JSON body (a v2 tensor of rank 16 needs 17).
MAX_JSON_DEPTH = 64
_MESSAGE_CHARS = 300


class RequestProblem(Exception):
    """A request the server refuses: ``status`` (4xx/503), a one-line ``message``, extra ``headers``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        message = " ".join(str(message).split())  # one line, whatever the cause said
        if len(message) > _MESSAGE_CHARS:
            message = message[: _MESSAGE_CHARS - 1] + "…"
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def shorten(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 5000-digit number is not echoed back whole)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"


# --------------------------------------------------------------------------------------------
# Strict JSON
# --------------------------------------------------------------------------------------------
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def json_depth(raw: bytes) -> int:
    """How deeply arrays/objects nest in ``raw`` (brackets inside strings do not count)."""
    brackets = _STRING.sub(b'""', raw).translate(None, _NOT_BRACKETS)  # C speed, then a short loop
    depth = deepest = 0
    for char in brackets:
        if char in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON (JSON numbers must be finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {shorten(text)[1:-1]} is out of range (JSON numbers must be finite)")
    return value


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits is too large (at most {MAX_INT_DIGITS})")
    return int(text)


def loads_json(raw: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON request body strictly, or raise :class:`RequestProblem` (400) saying why.

    Refused: bytes that are not UTF-8, syntax errors (with line and column), ``NaN`` and
    ``Infinity``, numbers beyond float range (``1e400``), integers over :data:`MAX_INT_DIGITS`
    digits, nesting deeper than ``max_depth``. Nothing here can raise anything else.
    """
    data = raw.encode() if isinstance(raw, str) else bytes(raw)
    if data.count(b"[") + data.count(b"{") > max_depth:  # else it cannot nest deeper
        depth = json_depth(data)
        if depth > max_depth:
            raise RequestProblem(400, f"the JSON nests {depth} levels deep (at most {max_depth})")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant,
                          parse_float=_finite_float, parse_int=_bounded_int)
    except UnicodeDecodeError:
        raise RequestProblem(400, "the request body is not UTF-8 JSON") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise RequestProblem(400, "the JSON is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise RequestProblem(400, f"invalid JSON at line {error.lineno} column {error.colno}: "
                                  f"{error.msg}") from None
    except ValueError as error:  # our number checks
        raise RequestProblem(400, f"invalid JSON: {error}") from None


# --------------------------------------------------------------------------------------------
# Request bodies: size cap and deadline
# --------------------------------------------------------------------------------------------
_CLOSE = {"connection": "close"}


def drain_limit(max_bytes: int) -> int:
    """How much of an over-limit body :func:`read_body` reads and discards before its 413."""
    return 2 * max_bytes + (1 << 20)


async def read_body(
    request: Any, *, max_bytes: int, timeout_s: float | None, drain_bytes: int | None = None
) -> bytes:
    """Read a Starlette request's body: 413 past ``max_bytes``, 408 if not complete in ``timeout_s``.

    A body over the cap is still read — and thrown away, chunk by chunk — up to ``drain_bytes``
    (default :func:`drain_limit`: twice the cap plus 1 MiB) within the same deadline, and only then
    answered with 413: a client usually sends its whole body before it reads the answer, and a
    server that closes a connection with unread bytes makes the kernel *reset* it, so the client
    would see a connection error instead of the 413. A declared ``Content-Length`` beyond
    ``drain_bytes`` is refused before anything is read (uvicorn started by
    :func:`helpers.serving.serve_in_background` then lingers to drain it:
    :func:`header_deadline_protocol`). The 413 and 408 answers carry ``Connection: close``.
    """
    from starlette.requests import ClientDisconnect

    drain = drain_limit(max_bytes) if drain_bytes is None else int(drain_bytes)
    declared = request.headers.get("content-length")
    over = False
    if declared not in (None, ""):
        try:
            length = int(declared)
        except ValueError:
            raise RequestProblem(400, f"invalid Content-Length header {shorten(declared)}") from None
        if length > max_bytes:
            over = True
            if length > drain:
                raise RequestProblem(413, f"request body of {length:,} bytes exceeds the limit of "
                                          f"{max_bytes:,} bytes", headers=_CLOSE)
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size, over
        async for chunk in request.stream():
            size += len(chunk)
            if over or size > max_bytes:  # over the limit: keep reading, keep nothing
                over = True
                chunks.clear()
                if size > drain:
                    return
            else:
                chunks.append(chunk)

    try:
        async with asyncio.timeout(timeout_s):
            await collect()
    except TimeoutError:
        if over:
            raise RequestProblem(413, f"request body exceeds the limit of {max_bytes:,} bytes",
                                 headers=_CLOSE) from None
        raise RequestProblem(
            408, f"the request body was not received within {timeout_s:g} s ({size:,} bytes "
                 "arrived)", headers=_CLOSE) from None
    except ClientDisconnect:
        raise RequestProblem(400, "the client disconnected before sending the whole body") from None
    if over:
        raise RequestProblem(413, f"request body of {size:,}{'+' if size > drain else ''} bytes "
                                  f"exceeds the limit of {max_bytes:,} bytes", headers=_CLOSE)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------
# Memory under large images
# --------------------------------------------------------------------------------------------
def header_pixels(data: bytes, *, formats: Sequence[str] | None = None) -> int | None:
    """Width × height from an image file's header, without decoding it; ``None`` if unknown.

    Uses PIL's format plugins directly (their header parsers), so PIL's global decompression-bomb
    check is neither triggered nor changed; the caller applies its own limit. ``formats`` (PIL's
    names) limits the plugins tried to the formats the caller accepts; ``None``: all of them.
    """
    from PIL import Image

    Image.init()
    prefix = data[:16]
    wanted = {f.upper() for f in formats} if formats is not None else None
    for format_id in Image.ID:
        if wanted is not None and format_id not in wanted:
            continue
        factory, accept = Image.OPEN[format_id]
        try:
            accepted = accept is None or accept(prefix)
            if isinstance(accepted, str) or not accepted:
                continue
            with factory(io.BytesIO(data), "") as image:
                width, height = image.size
        except Exception:  # a header this plugin cannot read: the decoder will say why
            continue
        return int(width) * int(height)
    return None


class PixelBudget:
    """At most ``total`` pixels decoded at the same time, over all threads.

    ``with budget.reserve(pixels): decode(...)`` waits until the pixels fit (an image bigger than
    the whole budget waits until nothing else is being decoded, then runs alone). Waiting longer
    than ``timeout_s`` raises :class:`RequestProblem` 503 with ``Retry-After``.
    :attr:`peak_pixels` and :attr:`waited` say how the budget was used.
    """

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"a pixel budget must be positive, got {total}")
        self.total = int(total)
        self.in_use = 0
        self.peak_pixels = 0
        self.waited = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, pixels: int, *, timeout_s: float = 60.0) -> Iterator[None]:
        """Hold ``min(pixels, total)`` of the budget for the duration of the block."""
        need = max(0, min(int(pixels), self.total))
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if self.in_use + need > self.total:
                self.waited += 1
            while self.in_use + need > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RequestProblem(
                        503, f"the server is busy decoding other large images (waited {timeout_s:g} "
                             "s); retry later", headers={"retry-after": "5"})
                self._cond.wait(left)
            self.in_use += need
            self.peak_pixels = max(self.peak_pixels, self.in_use)
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= need
                self._cond.notify_all()

    def describe(self) -> dict[str, int]:
        """Budget, pixels in use now, peak, and how many decodes had to wait."""
        return {"pixels": self.total, "in_use": self.in_use, "peak": self.peak_pixels,
                "waited": self.waited}


@cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None


def release_free_memory() -> bool:
    """Return memory the allocator holds but no longer uses to the OS (glibc); False elsewhere.

    After a large image is decoded and freed, glibc keeps most of the freed pages in its arenas
    (one per thread), so a server's resident memory stays near its peak. ``malloc_trim(0)``
    releases them. It changes no setting and is safe to call from any thread.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


# --------------------------------------------------------------------------------------------
# uvicorn: a deadline for the request head
# --------------------------------------------------------------------------------------------
def _timeout_response(seconds: float) -> bytes:
    body = json.dumps({"error": f"no complete request head within {seconds:g} s", "status": 408})
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
            + body.encode())


#: How long, and for how many bytes, a closing connection keeps reading what its client still sends.
LINGER_S = 5.0
LINGER_BYTES = 64 << 20


class _LingeringTransport:
    """A transport whose ``close()``, while the request's body is still arriving, lingers.

    Closing a TCP socket with unread bytes in it makes the kernel answer with a reset, and the
    client — still busy sending its body — loses the response it was about to read. Like a web
    server's "lingering close", this half-closes instead (the response is flushed, then FIN),
    reads and discards what the client still sends, and closes when the client has closed its
    side, after :data:`LINGER_S`, or after :data:`LINGER_BYTES`, whichever comes first.
    """

    def __init__(self, transport: Any, protocol: Any) -> None:
        self._transport = transport
        self._protocol = protocol
        self.lingering = False
        self.discarded = 0
        self._timer: asyncio.TimerHandle | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or bool(self._transport.is_closing())

    def close(self) -> None:
        if self.lingering or self._transport.is_closing():
            return
        cycle = getattr(self._protocol, "cycle", None)
        if cycle is None or not getattr(cycle, "more_body", False) or not self._transport.can_write_eof():
            self._transport.close()
            return
        self.lingering = True
        self._transport.write_eof()  # after the buffered response: FIN, reading goes on
        flow = getattr(self._protocol, "flow", None)
        if flow is not None:
            flow.resume_reading()
        self._timer = self._protocol.loop.call_later(LINGER_S, self.finish)

    def discard(self, data: bytes) -> None:
        self.discarded += len(data)
        if self.discarded > LINGER_BYTES:
            self.finish()

    def finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.close()


def header_deadline_protocol(header_timeout_s: float) -> type:
    """uvicorn's HTTP protocol class plus a deadline for each request head (pass as ``http=``).

    The deadline starts when the connection opens and again after each response. If no request
    is being handled when it passes, the connection is closed — with a 408 if some bytes of a
    request head had arrived, silently if the connection was idle. Requests in progress are
    never cut (their bodies have :func:`read_body`'s deadline).

    A connection closed after its response while the request body is still arriving (a 413
    refused from ``Content-Length``) closes *lingering*: it half-closes and discards what the
    client still sends (at most :data:`LINGER_BYTES`, :data:`LINGER_S`), so the client reads
    the answer instead of a connection reset.
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class HeaderDeadlineProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _deadline: asyncio.TimerHandle | None = None
        _partial = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.transport = _LingeringTransport(transport, self)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if isinstance(self.transport, _LingeringTransport) and self.transport.lingering:
                self.transport.discard(data)
                return
            self._partial = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            self._partial = False
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            if isinstance(self.transport, _LingeringTransport):
                self.transport.finish()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = None
            if not self.transport.is_closing():
                self._deadline = self.loop.call_later(header_timeout_s, self._deadline_passed)

        def _deadline_passed(self) -> None:
            self._deadline = None
            cycle = self.cycle
            if self.transport.is_closing() or (cycle is not None and not cycle.response_complete):
                return  # closed already, or a request is being handled
            if self._partial:
                self.transport.write(_timeout_response(header_timeout_s))
            self.transport.close()

    HeaderDeadlineProtocol.header_timeout_s = header_timeout_s
    return HeaderDeadlineProtocol
