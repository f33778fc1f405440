"""Without network (or with downloads off) ONNX Runtime's C/C++ SDK is refused with a clear reason.

No compiler is needed: these tests stop before anything is built.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from helpers.under_the_hood import cpp


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(cpp.ORT_DIR_ENV, raising=False)
    return tmp_path / "cache"


def test_offline_names_what_it_tried_and_the_way_out(empty_cache, monkeypatch):
    calls = []

    def no_network(request, timeout=None):
        calls.append(request.full_url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(cpp.OrtSdkUnavailable) as caught:
        cpp.ort_sdk(progress=False)
    message = str(caught.value)
    assert calls and calls[0] in (cpp.ORT_HEADERS_PACKAGE.url, cpp.ORT_LIBRARY_PACKAGE.url)
    assert "could not fetch ONNX Runtime's C/C++ SDK" in message and "URLError" in message
    assert cpp.ORT_LIBRARY_PACKAGE.url in message and cpp.ORT_HEADERS_PACKAGE.url in message
    assert cpp.ORT_DIR_ENV in message
    leftovers = [p for p in empty_cache.rglob("*") if p.is_file()]
    assert leftovers == [], f"a failed download left {leftovers}"


def test_downloads_off_never_touch_the_network(empty_cache, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("ort_sdk(download=False) must not download")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    with pytest.raises(cpp.OrtSdkUnavailable, match="downloads are off") as caught:
        cpp.ort_sdk(download=False)
    assert "npm onnxruntime-node" in str(caught.value) and "libonnxruntime-dev" in str(caught.value)


def test_build_of_the_ort_consumer_reports_the_missing_sdk(empty_cache, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("offline")))
    monkeypatch.setattr(cpp, "toolchain_available", lambda: True)  # stop at the SDK, not the compiler
    with pytest.raises(cpp.CppBuildError, match="could not fetch"):
        cpp.build("ort_consumer")
