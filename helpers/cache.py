"""Content-checked caches: anything built once (a conversion, an export) is verified on every use.

- :func:`cached_build` — a folder built by a function, under ``helpers.paths.cache_dir(...)``:
  written into a temporary folder, a manifest (sizes, modification times, SHA-256) written
  last, then renamed into place atomically. An entry whose manifest is missing or does not
  match its files (an interrupted build, a truncated or edited file) is rebuilt, never
  half-used. :func:`verify` is the check.
- :func:`model_digest` — a hash of a model's configuration and every weight: what an export
  depends on. A cache named after a model's *name* goes stale silently when the weights behind
  the name change (a re-seeded tiny model, a new conversion); a digest cannot.
- :func:`cached_export` — one file made from a model (an ONNX export, a quantized copy), cached
  under the model's digest and the settings that shaped it, through :func:`cached_build`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from helpers.paths import cache_dir

__all__ = ["MANIFEST", "cached_build", "cached_export", "model_digest", "verify"]

#: The file that marks a complete cache entry (written last).
MANIFEST = ".manifest.json"
_log = logging.getLogger(__name__)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_manifest(folder: Path, meta: Mapping[str, Any]) -> None:
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        stat = path.stat()
        files[path.relative_to(folder).as_posix()] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": _sha256(path),
        }
    manifest = {"format": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **meta, "files": files}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / MANIFEST)  # written last: its presence means "complete"


def verify(folder: Path) -> tuple[bool, str]:
    """Check a cache entry against its manifest: ``(ok, why_not)``.

    Sizes are always compared; a file whose modification time changed is re-hashed.
    """
    marker = folder / MANIFEST
    if not folder.is_dir():
        return False, "not built yet"
    if not marker.is_file():
        return False, "incomplete (no manifest: an interrupted build?)"
    try:
        manifest = json.loads(marker.read_text())
        files = manifest["files"]
    except (ValueError, KeyError) as exc:
        return False, f"unreadable manifest ({exc})"
    for rel, info in files.items():
        path = folder / rel
        if not path.is_file():
            return False, f"{rel} is missing"
        stat = path.stat()
        if stat.st_size != info["size"]:
            return False, f"{rel} has {stat.st_size} bytes, expected {info['size']} (truncated?)"
        if stat.st_mtime_ns != info["mtime_ns"] and _sha256(path) != info["sha256"]:
            return False, f"{rel} does not match its checksum (modified or corrupt)"
    return True, ""


def cached_build(
    key: str,
    build: Callable[[Path], None],
    *,
    what: str,
    folder: str | Path = "builds",
    rebuild: bool = False,
) -> tuple[Path, str]:
    """The verified cache folder ``cache_dir(folder)/key``, built with ``build(tmp_folder)`` if needed.

    ``folder`` names a sub-folder of the model cache (:func:`helpers.paths.cache_dir`); a
    ``Path`` is used as the root directly. ``build`` writes its files into the empty folder it is given. Returns ``(entry, note)``; the
    note says whether the entry was reused, built or rebuilt (and why), for showing to the
    learner. ``rebuild=True`` builds again even when a valid entry exists. Two processes
    building the same key at once are safe: the second one keeps the first one's entry.
    """
    root = cache_dir(folder) if isinstance(folder, str) else Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    target = root / key
    ok, why = verify(target)
    if ok and not rebuild:
        return target, f"cached at {target}"
    rebuilding = target.exists()
    if rebuilding:
        why = why if not ok else "rebuild requested"
        _log.warning("cache entry %s is %s: rebuilding it", target, why)
        shutil.rmtree(target, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-building-", dir=root))
    start = time.perf_counter()
    try:
        build(tmp)
        _write_manifest(tmp, {"key": key, "what": what})
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished the same build first
            if not verify(target)[0]:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    verb = f"rebuilt ({why})" if rebuilding else "built"
    return target, f"{what} {verb} once in {seconds:.1f} s and cached at {target}"


def model_digest(model: Any, length: int = 16) -> str:
    """A hex digest of a model's configuration and *all* of its weights and buffers.

    Hashes the transformers config (when the model has one), then every ``state_dict`` entry's
    name, dtype, shape and bytes (BLAKE2b; ~1 s per GB). Equal models give equal digests; any
    changed weight changes it.
    """
    import torch

    digest = hashlib.blake2b(digest_size=32)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        digest.update(config.to_json_string(use_diff=False).encode())
    digest.update(type(model).__name__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}".encode())
        if data.numel():
            digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:length]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "export"


def cached_export(
    model: Any,
    export: Callable[[Path], Any],
    *,
    what: str,
    filename: str = "model.onnx",
    settings: Mapping[str, Any] | None = None,
    rebuild: bool = False,
    folder: str | Path = "exports",
) -> Path:
    """A file made from ``model`` once — ``export(path)`` writes it — and reused while valid.

    ``model`` is the ``nn.Module`` the file is made from, or its :func:`model_digest` (to hash a
    large model once for several files). The cache key is ``what`` plus the model's digest, plus a digest of
    ``settings`` (anything else that shapes the file: input size, quantization options) and of
    the torch version: a changed weight, setting or exporter gives a new entry, never a stale
    file. Files the export writes next to ``path`` (external ``.data``) are part of the entry.
    Returns the path of the file inside the verified cache entry
    (``cache_dir("exports")/<what>-<digest>/<filename>``; ``folder`` as in :func:`cached_build`).
    """
    import torch

    shape = json.dumps({"torch": torch.__version__, **(settings or {})}, sort_keys=True, default=str)
    digest = model if isinstance(model, str) else model_digest(model, 12)
    key = f"{_slug(what)}-{digest}-{hashlib.sha256(shape.encode()).hexdigest()[:8]}"

    def build(folder: Path) -> None:
        export(folder / filename)
        if not (folder / filename).is_file():
            raise FileNotFoundError(f"the export for {what!r} did not write {filename}")

    entry, _ = cached_build(key, build, what=what, folder=folder, rebuild=rebuild)
    return entry / filename
