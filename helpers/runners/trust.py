"""Which model files may be loaded: ``.pt2`` archives inspected, hashes checked, the suite's own folders.

Loading a model file is running someone else's work, to a degree that depends on the format:

=========================  ====================================================================
format                     what loading it can do
=========================  ====================================================================
ONNX, OpenVINO IR,         data: a graph of known operators and raw tensors (no code is loaded)
safetensors
``torch.load`` with        tensors and an allow-list of plain types only; a pickle that names
``weights_only=True``      anything else is refused before it runs
``torch.export`` ``.pt2``  a graph of ATen operators plus weights — *but* the archive may hold
                           pickles (tensor subclasses, constants, example inputs, older formats),
                           which ``torch.export.load`` unpickles with ``weights_only=False``: any
                           function the file names is called
TorchScript                TorchScript code and pickles read by TorchScript's own restricted
                           unpickler (a Python global such as ``os.system`` is refused)
AOTInductor package        a compiled shared library: loading it runs native code
=========================  ====================================================================

So :func:`check_pt2` looks inside a ``.pt2`` *before* ``torch.export.load`` does and refuses
any pickle that ``weights_only=True`` would refuse, and any compiled code; :func:`check_sha256`
compares a file with the hash its publisher gave; :func:`is_suite_file` says whether a file is in
the suite's own output folder or model cache (where notebooks write what they export or compile).
A refusal is an :class:`UntrustedArtifactError` saying what was found and what to do.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import zipfile
from collections.abc import Sequence
from pathlib import Path

from helpers.paths import cache_dir, output_root

__all__ = [
    "UntrustedArtifactError",
    "check_pt2",
    "check_sha256",
    "is_suite_file",
    "pt2_problems",
    "require_trusted_code",
]


class UntrustedArtifactError(ValueError):
    """A model file was not loaded because loading it could run code the suite cannot vouch for."""


_TRUST_HINT = (
    "Load it only if you trust where it came from: check its SHA-256 against the one its "
    "publisher gave (sha256=...), then pass trusted=True to vouch for it."
)


def is_suite_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` lies inside the suite's output folder or model cache
    (:func:`helpers.paths.output_root`, :func:`helpers.paths.cache_dir`), symlinks resolved."""
    resolved = Path(path).resolve()
    roots = (output_root().resolve(), cache_dir().resolve())
    return any(resolved.is_relative_to(root) for root in roots)


def _matches(digest: str, expected: str) -> bool:
    expected = expected.strip().lower()
    if len(expected) < 8 or any(c not in "0123456789abcdef" for c in expected):
        raise ValueError(
            f"expected SHA-256 {expected!r}: give at least 8 hex digits (64 for the full hash)"
        )
    return digest.startswith(expected)


def check_sha256(
    path: str | os.PathLike[str], expected: str, *, data: bytes | None = None
) -> str:
    """Raise :class:`UntrustedArtifactError` unless the file's SHA-256 starts with ``expected``.

    ``expected`` is the full hex digest or a prefix of at least 8 digits (torchvision names its
    checkpoints after the first 8). ``data``: the file's bytes, when already read (they are what
    is hashed, so what was checked is what gets loaded). Returns the full digest.
    """
    if data is not None:
        digest = hashlib.sha256(data).hexdigest()
    else:
        from helpers.cache import file_sha256

        digest = file_sha256(path)
    if not _matches(digest, expected):
        raise UntrustedArtifactError(
            f"{path}: SHA-256 is {digest[:16]}…, expected {expected.strip().lower()[:16]}…: not the "
            "file that was published (corrupt, or replaced). It was not loaded; delete it and "
            "fetch it again from its source."
        )
    return digest


def _weights_only_loadable(data: bytes) -> str | None:
    """None when ``torch.load(weights_only=True)`` accepts ``data``, else why not (one line)."""
    import torch

    try:
        torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        useful = next((line for line in lines if "Unsupported global" in line), None)
        return (useful or (lines[0] if lines else type(exc).__name__)).split(". Please")[0].strip()
    return None


def pt2_problems(data: bytes, *, name: str = "archive") -> list[str]:
    """What in a ``torch.export`` ``.pt2`` archive (its bytes) would run code when loaded.

    Returned, one line each: compiled code (``data/aotinductor/``), pickled custom objects, and
    every pickle (weights or constants stored with ``use_pickle``, example inputs, legacy
    ``.pt`` files) that ``torch.load(weights_only=True)`` refuses. Raw tensor payloads and JSON
    are data and are not listed. An empty list means ``torch.export.load`` will not unpickle
    anything beyond tensors and plain containers.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return [f"{name} is not a .pt2 (zip) archive"]
    problems: list[str] = []
    members = [m for m in archive.namelist() if not m.endswith("/")]
    tops = {m.split("/", 1)[0] for m in members}
    prefix = f"{tops.pop()}/" if len(tops) == 1 else ""  # torch.export.save's archive folder

    def rel(member: str) -> str:
        return member[len(prefix) :] if prefix and member.startswith(prefix) else member

    raw_payloads: set[str] = set()
    for member in members:
        if rel(member).endswith("_config.json") and rel(member).startswith("data/"):
            try:
                config = json.loads(archive.read(member)).get("config", {})
            except (ValueError, AttributeError):
                problems.append(f"{rel(member)}: unreadable payload configuration")
                continue
            folder = posixpath.dirname(rel(member))
            raw_payloads.update(
                posixpath.join(folder, meta["path_name"])
                for meta in config.values()
                if isinstance(meta, dict) and not meta.get("use_pickle") and "path_name" in meta
            )
    for member in members:
        path = rel(member)
        base = posixpath.basename(path)
        if path.startswith("data/aotinductor/"):
            problems.append(f"{path}: AOTInductor compiled code (loading it runs native code)")
        elif path.startswith(("data/weights/", "data/constants/", "data/sample_inputs/")):
            if path in raw_payloads or path.endswith(".json"):
                continue
            if base.startswith(("custom_obj", "opaque_obj")):
                problems.append(f"{path}: a pickled custom object")
                continue
            why = _weights_only_loadable(archive.read(member))
            if why is not None:
                problems.append(f"{path}: a pickle that weights_only=True refuses ({why})")
        elif path.endswith((".pt", ".pkl", ".pickle")):  # older archive layouts
            why = _weights_only_loadable(archive.read(member))
            if why is not None:
                problems.append(f"{path}: a pickle that weights_only=True refuses ({why})")
    return problems


def check_pt2(path: str | os.PathLike[str], data: bytes) -> None:
    """Raise :class:`UntrustedArtifactError` when :func:`pt2_problems` finds anything in ``data``."""
    problems = pt2_problems(data, name=str(path))
    if problems:
        raise UntrustedArtifactError(_refusal(path, problems, "torch.export.load"))


def _refusal(path: str | os.PathLike[str], problems: Sequence[str], loader: str) -> str:
    listed = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
    return (
        f"{path} was not loaded: {loader} would run code from it — {listed}. {_TRUST_HINT}"
    )


def require_trusted_code(
    path: str | os.PathLike[str], *, trusted: bool, sha256: str | None, what: str
) -> None:
    """For formats that *are* code (an AOTInductor package): check ``sha256`` when given, then
    allow the file only when it is the suite's own (:func:`is_suite_file`) or ``trusted``."""
    if sha256 is not None:
        check_sha256(path, sha256)
    if trusted or is_suite_file(path):
        return
    raise UntrustedArtifactError(
        f"{path} was not loaded: {what} — loading it runs native code, and the file is not in "
        f"this suite's output folder ({output_root()}) or model cache. {_TRUST_HINT}"
    )
