"""Canonical models with random weights, planted on disk so the canonical loading code runs offline.

The canonical path (torchvision's ResNet-50 ``IMAGENET1K_V2`` checkpoint in the torch hub cache,
BERT SQuAD and ``gpt2`` in the Hugging Face cache) needs the real files, which a test machine
without a model hub cannot download. :func:`plant` writes stand-ins under the canonical names and
layouts — seeded random weights, small configs for the transformers models, the real tokenizers
the suite ships offline — so a notebook run with ``model_source="canonical"`` executes the code a
user with internet runs. :func:`environment` names the variables that point the hub caches there.

Every planted copy is *labelled*: a :data:`MARKER` file next to it records the full SHA-256 of each
weight file it vouches for. The catalog reads it (:func:`planted_weights`) and then reports the
model as ``pretrained=False``, ``meaningful_outputs=False``, "random weights planted for a test".
The marker only ever makes the catalog claim *less*: a ResNet-50 checkpoint whose SHA-256 does
not start with torchvision's published prefix is still refused unless a marker beside it names
its exact digest, and such a file is then reported as random, never as the published weights.
It is read with ``weights_only=True`` like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers.cache import file_sha256

__all__ = [
    "GPT2_REPO", "HF_COMMIT", "MARKER", "QA_REPO", "QUALITY", "environment", "plant", "planted_fields",
    "planted_weights",
]

#: The label file beside planted weights: ``{"note": ..., "sha256": {file name: full digest}}``.
MARKER = "PLANTED-RANDOM-WEIGHTS.json"
#: What the banner says about planted weights.
QUALITY = "random weights planted for a test: outputs are NOT meaningful (fine for timing and parity)"
#: The (made-up) commit of the planted Hugging Face cache snapshots.
HF_COMMIT = "0000000000000000000000000000000000000000"
#: The canonical repositories planted for the transformers tasks (the default variant of each).
QA_REPO = "google-bert/bert-large-uncased-whole-word-masking-finetuned-squad"
GPT2_REPO = "openai-community/gpt2"


def planted_weights(path: Path | str | None) -> str | None:
    """The note of the :data:`MARKER` that vouches for ``path`` (a weight file, or a transformers
    folder whose safetensors files it lists), or None: no marker, or a digest that does not match."""
    if path is None:
        return None
    path = Path(path)
    folder, files = (path, sorted(path.glob("*.safetensors"))) if path.is_dir() else (path.parent, [path])
    marker = folder / MARKER
    if not files or not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
        digests = record["sha256"]
        if all(digests.get(f.name) == file_sha256(f) for f in files):
            return str(record.get("note", "random weights planted for a test"))
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        return None
    return None


def planted_fields(note: str) -> dict[str, object]:
    """The :class:`~helpers.models.task.ModelFields` a loader adds for planted weights."""
    return {"pretrained": False, "meaningful_outputs": False, "quality": QUALITY,
            "notes": [f"Planted ({MARKER}): {note}."]}


def _mark(folder: Path, files: list[Path], note: str) -> None:
    record = {"note": note, "sha256": {f.name: file_sha256(f) for f in files}}
    (folder / MARKER).write_text(json.dumps(record, indent=1) + "\n")


def _plant_resnet50(torch_home: Path, seed: int) -> Path:
    import torch
    import torchvision

    from helpers.models.tiny import seeded

    # torchvision's own name for the checkpoint, as its weights API caches it
    resnet50_file = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.url.rsplit("/", 1)[-1]

    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    with seeded(seed):
        model = torchvision.models.resnet50(weights=None)
        # torchvision's init leaves a random ResNet-50's activations growing layer after layer:
        # set the BatchNorm statistics from a few random inputs, so the logits have a sane scale
        # and top-1 comparisons between runtimes are not decided by rounding noise.
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # cumulative average
        model.train()
        with torch.no_grad():
            model(torch.randn(4, 3, 128, 128))
        model.eval()
    file = folder / resnet50_file
    torch.save(model.state_dict(), file)
    _mark(folder, [file], f"torchvision resnet50 architecture, seeded random weights (seed {seed}) "
                          f"saved as {resnet50_file}; not torchvision's published checkpoint")
    return file


def _plant_hf(hub_cache: Path, repo_id: str, build: object, note: str) -> Path:
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / HF_COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    build(snapshot)  # type: ignore[operator]
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(HF_COMMIT)
    _mark(snapshot, sorted(snapshot.glob("*.safetensors")), note)
    return snapshot


def plant(root: Path | str, *, tasks: tuple[str, ...] = ("image-classification", "question-answering",
                                                         "text-generation"), seed: int = 0) -> dict[str, Path]:
    """Write labelled random stand-ins for the canonical models of ``tasks`` under ``root``:
    ``root/torch/hub/checkpoints/resnet50-11ad3fa6.pth`` and Hugging Face cache snapshots under
    ``root/hf/hub``. Returns ``{task: weight file or snapshot folder}``; point the caches there
    with :func:`environment`."""
    from functools import partial

    from helpers.models import tiny
    from helpers.models.packaged import gpt2_tokenizer_dir, minilm_dir

    root = Path(root)
    hub_cache = root / "hf" / "hub"
    planted: dict[str, Path] = {}
    if "image-classification" in tasks:
        planted["image-classification"] = _plant_resnet50(root / "torch", seed)
    if "question-answering" in tasks:
        build = partial(tiny.build_tiny_bert, tokenizer_dir=minilm_dir(), question_answering=True, seed=seed)
        planted["question-answering"] = _plant_hf(
            hub_cache, QA_REPO, build,
            f"BertForQuestionAnswering, 2 layers, hidden 64, seeded random weights (seed {seed}), "
            "BERT uncased WordPiece tokenizer; not the SQuAD-fine-tuned BERT-large")
    if "text-generation" in tasks:
        tokenizer_dir, _ = gpt2_tokenizer_dir()
        build = partial(tiny.build_tiny_gpt2, tokenizer_dir=tokenizer_dir, seed=seed)
        planted["text-generation"] = _plant_hf(
            hub_cache, GPT2_REPO, build,
            f"GPT2LMHeadModel, 2 layers, n_embd 64, seeded random weights (seed {seed}), GPT-2 BPE "
            "tokenizer; not OpenAI's gpt2")
    return planted


def environment(root: Path | str) -> dict[str, str]:
    """The variables that make the planted copies under ``root`` the only canonical models found,
    with no download tried."""
    root = Path(root)
    return {
        "TORCH_HOME": str(root / "torch"),
        "HF_HOME": str(root / "hf"),
        "HF_HUB_CACHE": str(root / "hf" / "hub"),
        "HF_HUB_OFFLINE": "1",
        "INFERENCE_SUITE_OFFLINE": "1",
    }

