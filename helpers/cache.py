"""Content-checked caches: anything built once (a conversion, an export) is verified on every use.

- :func:`cached_build` — a folder built by a function, under ``helpers.paths.cache_dir(...)``:
  written into a temporary folder, a manifest (sizes and SHA-256) written last, then renamed
  into place atomically. An entry whose manifest is missing or does not match its files exactly (an
  interrupted build, a truncated or edited file, a file added after the build) is rebuilt with a
  :class:`CacheWarning`, never half-used. :func:`verify` is the check.
- :func:`file_sha256` — a file's SHA-256, computed the first time a process asks and then
  remembered while the file provably has not changed (same inode, size, modification *and*
  status-change time). A modification time can be put back with ``os.utime``; the status-change
  time (``ctime``) cannot — setting the mtime itself moves it — so an edit that keeps the size
  and restores the mtime is still hashed again and caught. The first use of an entry in every
  process hashes all of its files (about 1 s per GB), later uses only ``stat`` them.
- :func:`model_digest` — a hash of a model's configuration and every weight: what an export
  depends on. A cache named after a model's *name* goes stale silently when the weights behind
  the name change (a re-seeded tiny model, a new conversion); a digest cannot.
- :func:`cached_export` — one file made from a model (an ONNX export, a quantized copy), cached
  under the model's digest and the settings that shaped it, through :func:`cached_build`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from helpers.paths import cache_dir

__all__ = [
    "MANIFEST",
    "CacheWarning",
    "cached_build",
    "cached_export",
    "file_sha256",
    "model_digest",
    "verify",
]

#: The file that marks a complete cache entry (written last).
MANIFEST = ".manifest.json"


class CacheWarning(UserWarning):
    """A cache entry was damaged (truncated, edited, incomplete) and is being rebuilt."""


#: (device, inode) -> (size, mtime_ns, ctime_ns, sha256) of files hashed in this process.
_HASHES: dict[tuple[int, int], tuple[int, int, int, str]] = {}
_HASHES_LOCK = threading.Lock()
#: A hash is remembered only for a file whose ctime is at least this old: file-system timestamps
#: are coarse (a clock tick of 1-10 ms), and a change within the same tick as the remembered
#: state would otherwise leave the ctime unchanged.
_SETTLED_NS = 200_000_000


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 (hex) of a file: hashed on the first call in this process, then remembered.

    The remembered digest is used only while the file's inode, size, modification time and
    status-change time (``ctime``) are all unchanged. Any write changes the ctime, and so does
    restoring an old mtime with ``os.utime``; a file changed in any way is hashed again.
    Thread-safe; a file that changes while it is hashed is not remembered.
    """
    path = Path(path)
    before = path.stat()
    key = (before.st_dev, before.st_ino)
    ident = (before.st_size, before.st_mtime_ns, before.st_ctime_ns)
    with _HASHES_LOCK:
        known = _HASHES.get(key)
    if known is not None and known[:3] == ident:
        return known[3]
    now = time.time_ns()
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    after = path.stat()
    unchanged = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == ident
    if unchanged and before.st_ctime_ns < now - _SETTLED_NS:
        with _HASHES_LOCK:
            _HASHES[key] = (*ident, digest)
    return digest


def _sha256(path: Path) -> str:
    return file_sha256(path)


def _write_manifest(folder: Path, meta: Mapping[str, Any]) -> None:
    files = {}
    for rel in sorted(_entry_files(folder)):
        path = folder / rel
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


def _entry_files(folder: Path) -> set[str]:
    """Every file (or link) in an entry, relative and POSIX-style, except the manifest itself."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if (p.is_file() or p.is_symlink()) and p.relative_to(folder).as_posix() != MANIFEST}


def verify(folder: Path) -> tuple[bool, str]:
    """Check a cache entry against its manifest: ``(ok, why_not)``.

    An entry is exactly its manifest: a file the manifest does not list (say a
    ``special_tokens_map.json`` or ``chat_template.jinja`` added later, which a loader would
    read) fails the check as much as a missing or changed one. Sizes are always compared, and
    every file's SHA-256 with :func:`file_sha256`: hashed on the
    first check in a process and again whenever the file may have changed (its ctime moved) —
    a kept size and a restored modification time do not hide an edit.
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
    extra = sorted(_entry_files(folder) - set(files))
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        return False, f"{extra[0]} is not in the manifest (added after the build?){more}"
    for rel, info in files.items():
        path = folder / rel
        if not path.is_file():
            return False, f"{rel} is missing"
        stat = path.stat()
        if stat.st_size != info["size"]:
            return False, f"{rel} has {stat.st_size} bytes, expected {info['size']} (truncated?)"
        if _sha256(path) != info["sha256"]:
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
    ``Path`` is used as the root directly. ``build`` writes its files into the empty folder it is
    given. Returns ``(entry, note)``; the
    note says whether the entry was reused, built or rebuilt (and why), for showing to the
    learner. ``rebuild=True`` builds again even when a valid entry exists. A damaged entry
    (missing manifest, a missing, truncated or edited file, a file the manifest does not list)
    is rebuilt with a
    :class:`CacheWarning` saying what was wrong. Two processes building the same key at once are
    safe: the second one keeps the first one's entry.
    """
    root = cache_dir(folder) if isinstance(folder, str) else Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    target = root / key
    ok, why = verify(target)
    if ok and not rebuild:
        return target, f"cached at {target}"
    rebuilding = target.exists()
    if rebuilding:
        if ok:
            why = "rebuild requested"
        else:
            warnings.warn(
                f"cache entry {target} is damaged ({why}): rebuilding it",
                CacheWarning,
                stacklevel=2,
            )
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
