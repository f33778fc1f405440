"""helpers.serving.limits: strict JSON, the pixel budget, header sizes, the request-head deadline."""

from __future__ import annotations

import io
import socket
import textwrap
import threading
import time
import warnings

import pytest
from fastapi import FastAPI
from PIL import Image

from helpers.serving import serve_in_background
from helpers.serving.limits import (
    MAX_INT_DIGITS,
    PixelBudget,
    RequestProblem,
    header_pixels,
    json_depth,
    loads_json,
)

HOSTILE_JSON = {
    "1e400": b'{"top_k": 1e400}',
    "-1e400": b'{"top_k": -1e400}',
    "Infinity": b'{"top_k": Infinity}',
    "-Infinity": b'[-Infinity]',
    "NaN": b'{"top_k": NaN}',
    "5000-digit integer": b'{"top_k": ' + b"9" * 5000 + b"}",
    "100,000-deep array": b"[" * 100_000 + b"]" * 100_000,
    "not UTF-8": b'{"a": "\xff\xfe"}',
    "truncated": b'{"image": ',
}


@pytest.mark.parametrize("body", HOSTILE_JSON.values(), ids=HOSTILE_JSON.keys())
def test_hostile_json_is_a_one_line_400(body: bytes) -> None:
    with pytest.raises(RequestProblem) as info:
        loads_json(body)
    assert info.value.status == 400
    message = info.value.message
    assert "\n" not in message and 10 < len(message) <= 300
    assert "set_int_max_str_digits" not in message  # no advice about Python internals


def test_plain_json_still_parses() -> None:
    assert loads_json(b'{"a": [1, 2.5, -0.0, "x[\\"]{"], "b": {"c": null}}') == {
        "a": [1, 2.5, -0.0, 'x["]{'], "b": {"c": None}}
    assert loads_json("9" * MAX_INT_DIGITS) == int("9" * MAX_INT_DIGITS)
    assert loads_json(b"[" * 64 + b"]" * 64) is not None


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": "[[[[\\"{{{{", "b": [[["\\\\"]]]}') == 4
    assert json_depth(b"[" * 1000 + b"]" * 1000) == 1000
    assert json_depth(b'"just a string"') == 0


def test_pixel_budget_bounds_pixels_in_flight() -> None:
    budget = PixelBudget(10)
    in_flight, peak, lock = [0], [0], threading.Lock()

    def work(pixels: int) -> None:
        with budget.reserve(pixels):
            with lock:
                in_flight[0] += pixels
                peak[0] = max(peak[0], in_flight[0])
            time.sleep(0.02)
            with lock:
                in_flight[0] -= pixels

    threads = [threading.Thread(target=work, args=(p,)) for p in (6, 6, 6, 4, 4, 25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert peak[0] <= 25  # the oversized one ran alone ...
    assert budget.peak_pixels <= 10 and budget.in_use == 0  # ... holding the whole budget
    assert budget.waited >= 1


def test_pixel_budget_times_out_with_503() -> None:
    budget = PixelBudget(10)
    with budget.reserve(10), pytest.raises(RequestProblem) as info, budget.reserve(1, timeout_s=0.05):
        pass
    assert info.value.status == 503 and info.value.headers["retry-after"]
    assert budget.in_use == 0


def _encoded(size: tuple[int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_header_pixels_reads_the_size_without_decoding(fmt: str) -> None:
    assert header_pixels(_encoded((123, 45), fmt)) == 123 * 45
    assert header_pixels(b"not an image") is None


def test_header_pixels_of_a_bomb_neither_warns_nor_touches_pil_globals() -> None:
    """A PNG header claiming 20000 x 20000 (PIL's own check would warn or refuse it)."""
    small = _encoded((2, 2), "PNG")
    ihdr = small[8:33]
    width_height = (20000).to_bytes(4, "big") * 2
    import zlib

    chunk = b"IHDR" + width_height + ihdr[16:21]
    bomb = small[:8] + len(chunk[4:]).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert header_pixels(bomb + small[33:]) == 20000 * 20000
    assert before == Image.MAX_IMAGE_PIXELS


_FRAGMENTED_HEAP = textwrap.dedent("""
    import json, os, psutil
    from helpers.serving.limits import release_free_memory
    rss = lambda: psutil.Process().memory_info().rss
    before = rss()
    blocks = [bytearray(4000) for _ in range(50_000)]  # ~200 MB of malloc blocks under mmap's threshold
    keep = blocks[-1]  # the block at the top of the heap stays: glibc cannot shrink the heap by itself
    del blocks
    held = rss()
    released = release_free_memory()
    print(json.dumps({"before": before, "held": held, "after": rss(), "released": released}))
""")


def test_release_free_memory_returns_freed_heap_pages_to_the_os() -> None:
    """On glibc, ~200 MB freed below a live block stay resident until malloc_trim hands them back;
    elsewhere there is nothing to call and it says so (False)."""
    import json
    import platform
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _FRAGMENTED_HEAP], capture_output=True, text=True,
                         timeout=120, check=True)
    memory = json.loads(out.stdout)
    freed = 50_000 * 4000
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert memory["released"] is True
        assert memory["held"] - memory["before"] > 0.8 * freed, memory  # freed, yet still resident ...
        assert memory["held"] - memory["after"] > 0.8 * freed, memory  # ... until released
    else:  # pragma: no cover - macOS, Windows, musl
        assert memory["released"] is False


# ------------------------------------------------------------------ the request-head deadline


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """(closed by the server within ``seconds``, what it sent before closing)."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
        return True, received
    except TimeoutError:
        return False, received
    except ConnectionResetError:
        return True, received


@pytest.fixture(scope="module")
def quick_server():
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    with serve_in_background(app, header_timeout_s=1.0, keep_alive_s=1.0) as running:
        yield running


def test_idle_connections_are_closed_after_the_header_deadline(quick_server) -> None:
    """200 connections that never send a byte are all closed (uvicorn alone keeps them forever)."""
    socks = [socket.create_connection(("127.0.0.1", quick_server.port), timeout=5) for _ in range(200)]
    t0 = time.monotonic()
    try:
        results = [_closed_within(s, max(0.1, 4.0 - (time.monotonic() - t0))) for s in socks]
    finally:
        for s in socks:
            s.close()
    assert all(closed for closed, _ in results), sum(not c for c, _ in results)
    assert all(data == b"" for _, data in results)  # idle: closed silently
    assert time.monotonic() - t0 < 4.5


def test_a_request_head_trickled_byte_by_byte_gets_408(quick_server) -> None:
    with socket.create_connection(("127.0.0.1", quick_server.port), timeout=5) as sock:
        t0 = time.monotonic()
        for byte in b"GET /ping HTTP/1.1\r\nHost: x\r\n":
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > 3:
                break
        closed, data = _closed_within(sock, 3)
    assert closed and data.startswith(b"HTTP/1.1 408"), data[:80]
    assert b"request head" in data


def test_a_served_connection_gets_a_fresh_deadline(quick_server) -> None:
    with socket.create_connection(("127.0.0.1", quick_server.port), timeout=5) as sock:
        for _ in range(2):  # two requests on one keep-alive connection, 0.6 s apart
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(3)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            time.sleep(0.6)
        closed, data = _closed_within(sock, 3)  # then idle: closed
    assert closed and data == b""

