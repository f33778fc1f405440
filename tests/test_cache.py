"""helpers.cache: verified build folders, model digests, the export cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

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
    with pytest.warns(cache.CacheWarning, match="checksum"):
        _, note = cache.cached_build("demo", build, what="demo")
    assert "rebuilt" in note and "checksum" in note and len(calls) == 2
    # interrupted build (no manifest) -> incomplete -> rebuilt
    (folder / ".manifest.json").unlink()
    assert "incomplete" in cache.verify(folder)[1]
    with pytest.warns(cache.CacheWarning, match="incomplete"):
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


# ------------------------------------------------------------------------------------------
# Corruption that keeps the size and puts the modification time back (issue: a kept mtime
# must not hide an edit, in a new process or in the same one)
# ------------------------------------------------------------------------------------------
def _build_model_folder(folder):
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    save_file({"layer.weight": torch.randn(16, 16, generator=generator)}, folder / "model.safetensors")
    (folder / "config.json").write_text('{"num_hidden_layers": 30, "hidden_size": 16}\n')
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 8)


def _flip_bytes(folder):
    path = folder / "weights.bin"
    data = bytearray(path.read_bytes())
    data[100:104] = b"\x00\x00\x00\x00" if data[100:104] != b"\x00\x00\x00\x00" else b"\x01" * 4
    path.write_bytes(bytes(data))
    return path


def _nans_in_tensor(folder):
    import json
    import struct

    path = folder / "model.safetensors"
    raw = bytearray(path.read_bytes())
    header_len = struct.unpack("<Q", raw[:8])[0]
    start = 8 + header_len + json.loads(raw[8 : 8 + header_len])["layer.weight"]["data_offsets"][0]
    raw[start : start + 16] = struct.pack("<4f", *[float("nan")] * 4)  # 4 weights -> NaN
    path.write_bytes(bytes(raw))
    return path


def _fewer_layers(folder):
    path = folder / "config.json"
    path.write_text(path.read_text().replace('"num_hidden_layers": 30', '"num_hidden_layers": 29'))
    return path


CORRUPTIONS = {"flipped bytes": _flip_bytes, "NaNs in a tensor": _nans_in_tensor,
               "config 30 -> 29 layers": _fewer_layers}


def _corrupt_keeping_size_and_mtime(folder, corrupt):
    before = {p.name: p.stat() for p in folder.iterdir()}
    path = corrupt(folder)
    stat = before[path.name]
    assert path.stat().st_size == stat.st_size  # same size ...
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and the old mtime put back
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    return path


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corruption_with_restored_mtime_is_caught_in_a_new_process(tmp_path, monkeypatch, corruption):
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path))
    folder, _ = cache.cached_build("model", _build_model_folder, what="model")
    original = {p.name: p.read_bytes() for p in folder.iterdir()}
    path = _corrupt_keeping_size_and_mtime(folder, CORRUPTIONS[corruption])

    # A fresh process (nothing remembered) must see it: the hash is checked on first use.
    check = f"from helpers import cache; print(cache.verify(__import__('pathlib').Path({str(folder)!r})))"
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert "(False," in proc.stdout and path.name in proc.stdout and "checksum" in proc.stdout

    # And the next use rebuilds it, with a warning, back to the original bytes.
    with pytest.warns(cache.CacheWarning, match=f"damaged.*{path.name}.*checksum"):
        _, note = cache.cached_build("model", _build_model_folder, what="model")
    assert "rebuilt" in note
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != cache.MANIFEST} == {
        k: v for k, v in original.items() if k != cache.MANIFEST}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corruption_with_restored_mtime_is_caught_in_the_same_process(tmp_path, monkeypatch, corruption):
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path))
    folder, _ = cache.cached_build("model", _build_model_folder, what="model")
    time.sleep(0.3)  # let the files settle, so this process remembers their hashes
    assert cache.verify(folder) == (True, "")
    path = _corrupt_keeping_size_and_mtime(folder, CORRUPTIONS[corruption])
    ok, why = cache.verify(folder)
    assert not ok and path.name in why and "checksum" in why
    with pytest.warns(cache.CacheWarning, match="rebuilding"):
        cache.cached_build("model", _build_model_folder, what="model")
    assert cache.verify(folder) == (True, "")


def test_file_sha256_is_remembered_only_while_the_file_is_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"a" * 4096)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    time.sleep(0.3)
    calls = []
    real = cache.hashlib.file_digest

    def counting(fh, name):
        calls.append(name)
        return real(fh, name)

    monkeypatch.setattr(cache.hashlib, "file_digest", counting)
    first = cache.file_sha256(path)
    assert first == cache.hashlib.sha256(b"a" * 4096).hexdigest()
    assert cache.file_sha256(path) == first and len(calls) == 1  # later calls: a stat only
    path.write_bytes(b"b" * 4096)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # same size, same mtime
    assert cache.file_sha256(path) == cache.hashlib.sha256(b"b" * 4096).hexdigest()
    assert len(calls) == 2


# ------------------------------------------------------------------------------------------
# Issue 29.5: an entry is exactly its manifest (a file added after the build fails verification)
# ------------------------------------------------------------------------------------------
def test_a_file_the_manifest_does_not_list_fails_verification_and_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path))
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "sub").mkdir()
        (folder / "sub" / "weights.bin").write_bytes(b"w" * 100)

    folder, _ = cache.cached_build("demo", build, what="demo")
    for planted in ("special_tokens_map.json", "sub/chat_template.jinja", ".hidden"):
        (folder / planted).write_text("planted")
        ok, why = cache.verify(folder)
        assert not ok and planted in why and "not in the manifest" in why, why
        with pytest.warns(cache.CacheWarning, match=planted.replace(".", r"\.")):
            cache.cached_build("demo", build, what="demo")
        assert not (folder / planted).exists() and cache.verify(folder) == (True, "")
    assert len(calls) == 4


def _plant(folder: Path, name: str, text: str) -> Path:
    (folder / name).write_text(text)
    return folder / name


def test_every_cache_user_rebuilds_an_entry_with_a_planted_file(tmp_path, monkeypatch):
    """Issue 29.5: a special_tokens_map.json or chat_template.jinja added to an entry was loaded."""
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path))
    from helpers import catalog
    from helpers.models import packaged

    # tokenizers
    tok_dir, _ = packaged.gpt2_tokenizer_dir()
    _plant(tok_dir, "special_tokens_map.json", '{"eos_token": "France"}')
    with pytest.warns(cache.CacheWarning, match="special_tokens_map.json"):
        tok_dir, _ = packaged.gpt2_tokenizer_dir()
    assert not (tok_dir / "special_tokens_map.json").exists()
    # models built by the catalog
    loaded = catalog.load("text-generation", "tiny", show_banner=False)
    _plant(loaded.path, "chat_template.jinja", "{{ 'planted' }}")
    with pytest.warns(cache.CacheWarning, match="chat_template.jinja"):
        again = catalog.load("text-generation", "tiny", show_banner=False)
    assert not (again.path / "chat_template.jinja").exists()
    assert again.tokenizer.eos_token == loaded.tokenizer.eos_token != "France"
    # exports
    model = torch.nn.Linear(2, 2)
    path = cache.cached_export(model, lambda p: p.write_text("x"), what="Tiny linear")
    _plant(path.parent, "model.onnx.data", "planted external data")
    with pytest.warns(cache.CacheWarning, match=r"model\.onnx\.data"):
        again_path = cache.cached_export(model, lambda p: p.write_text("x"), what="Tiny linear")
    assert again_path == path and not (path.parent / "model.onnx.data").exists()


def test_the_fine_tuned_qa_entry_is_rebuilt_with_a_planted_file(tmp_path, monkeypatch):
    """Issue 29.5, the fine-tuned QA model's entry (its training is replaced by a 2-layer copy of
    MiniLM here: the cache plumbing is what is tested; test_qa_finetune.py trains for real)."""
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path))
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    from helpers.catalog import minilm_dir
    from helpers.models.tiny import seeded
    from helpers.qa import finetune

    builds = []

    def quick_build(base_folder, settings, seed, progress):
        def build(tmp):
            builds.append(tmp)
            with seeded(0):
                BertForQuestionAnswering(BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                                                    intermediate_size=64)).save_pretrained(tmp)
            AutoTokenizer.from_pretrained(base_folder).save_pretrained(tmp)
            (tmp / finetune._METRICS_FILE).write_text("{}")
        return build

    monkeypatch.setattr(finetune, "_build", quick_build)
    first = finetune.load_qa_model(minilm_dir(), "tiny", progress=False)
    _plant(first.folder, "special_tokens_map.json", '{"sep_token": "France"}')
    with pytest.warns(cache.CacheWarning, match="special_tokens_map.json"):
        again = finetune.load_qa_model(minilm_dir(), "tiny", progress=False)
    assert len(builds) == 2 and not (again.folder / "special_tokens_map.json").exists()
    assert again.tokenizer.sep_token == first.tokenizer.sep_token == "[SEP]"
