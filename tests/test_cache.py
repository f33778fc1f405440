"""helpers.cache: verified build folders, model digests, the export cache."""

from __future__ import annotations

import pytest
import torch

from helpers import cache


def test_cached_build_is_atomic_and_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path))
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "weights.bin").write_bytes(bytes(range(256)) * 4)

    folder, note = cache.cached_build("demo", build, what="demo")
    assert "built once" in note and cache.verify(folder)[0]
    assert cache.cached_build("demo", build, what="demo")[0] == folder and len(calls) == 1

    # same size, different bytes -> checksum mismatch -> rebuilt
    data = bytearray((folder / "weights.bin").read_bytes())
    data[-10] ^= 0xFF
    (folder / "weights.bin").write_bytes(bytes(data))
    assert "checksum" in cache.verify(folder)[1]
    _, note = cache.cached_build("demo", build, what="demo")
    assert "rebuilt" in note and "checksum" in note and len(calls) == 2
    # interrupted build (no manifest) -> incomplete -> rebuilt
    (folder / ".manifest.json").unlink()
    assert "incomplete" in cache.verify(folder)[1]
    cache.cached_build("demo", build, what="demo")
    assert cache.verify(folder)[0] and len(calls) == 3

    # a failing build leaves nothing behind, and the error propagates
    def broken(folder):
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        cache.cached_build("broken", broken, what="broken")
    assert not (tmp_path / "builds" / "broken").exists()
    assert not [p for p in (tmp_path / "builds").iterdir() if p.name.startswith(".")]


def test_model_digest_changes_with_any_weight() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    before = cache.model_digest(model)
    assert before == cache.model_digest(model) and len(before) == 16
    with torch.no_grad():
        model[2].bias[1] += 1e-3
    assert cache.model_digest(model) != before
    with torch.no_grad():
        model[2].bias[1] -= 1e-3
    assert cache.model_digest(model) == before
    assert cache.model_digest(model.to(torch.bfloat16)) != before  # dtype is part of the digest


def test_cached_export_reuses_per_weights_and_settings(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path))
    model = torch.nn.Linear(2, 2)
    calls = []

    def export(path):
        calls.append(path)
        path.write_text(f"export {len(calls)}")

    first = cache.cached_export(model, export, what="Tiny linear", settings={"size": 2})
    assert first.name == "model.onnx" and first.read_text() == "export 1"
    assert cache.verify(first.parent)[0] and first.parent.parent == tmp_path / "exports"
    assert cache.cached_export(model, export, what="Tiny linear", settings={"size": 2}) == first
    assert len(calls) == 1
    other = cache.cached_export(model, export, what="Tiny linear", settings={"size": 3})
    assert other != first and len(calls) == 2
    again = cache.cached_export(model, export, what="Tiny linear", settings={"size": 2}, rebuild=True)
    assert again == first and again.read_text() == "export 3"
    with torch.no_grad():
        model.weight[0, 0] += 1.0
    assert cache.cached_export(model, export, what="Tiny linear", settings={"size": 2}) != first

    with pytest.raises(FileNotFoundError, match="did not write"):
        cache.cached_export(model, lambda path: None, what="Nothing written")
    assert not [p for p in (tmp_path / "exports").iterdir() if "nothing" in p.name]
