"""One image-classification *application*, unchanged on every runtime.

:func:`classify` is the code a deployed service would run: decode images, preprocess them with
PIL + NumPy only (no torch needed at deployment), call a :class:`helpers.runners.Runner` --
PyTorch, torch.export, AOTInductor, ONNX Runtime with any execution provider, or OpenVINO --
and turn logits into top-k ``(label, probability)`` lists. Swapping the runtime never touches
this function; that is the point notebook 04 makes and notebook 07 (serving) reuses.

Also here: :func:`classify_folder` (batch inference over a folder with a progress bar, one row
per file, unreadable files reported instead of crashing) and :func:`photo_set` (a reproducible
set of ~100 *real* photos -- scikit-image's sample photos plus random crops, flips and colour
jitter of them -- for INT8 calibration and agreement checks without any download).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from helpers.images import ImageError, image_files, imagenet_labels, load_image, preprocess_batch

__all__ = [
    "Classification",
    "classify",
    "classify_arrays",
    "classify_folder",
    "softmax",
    "photo_set",
    "PHOTO_NAMES",
]

#: scikit-image photos bundled in its wheel (no download): ImageNet-like objects first, then
#: harder, less ImageNet-like ones (grayscale, microscopy, textures, astronomy).
PHOTO_NAMES = (
    "chelsea",
    "coffee",
    "astronaut",
    "rocket",
    "camera",
    "clock",
    "coins",
    "moon",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "gravel",
)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis (float64 internally, float32 out)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class Classification:
    """What :func:`classify` returns: logits, probabilities and readable top-k lists."""

    logits: np.ndarray  # [N, classes] float32, straight from the runner
    probabilities: np.ndarray  # [N, classes] softmax
    top: list[list[tuple[str, float]]]  # per image: k (label, probability) pairs, best first
    runner: str = ""
    names: list[str] = field(default_factory=list)  # optional per-image names

    @property
    def top1(self) -> list[str]:
        """The best label per image."""
        return [row[0][0] for row in self.top]

    @property
    def indices(self) -> np.ndarray:
        """Arg-max class index per image."""
        return self.logits.argmax(axis=-1)

    def frame(self) -> Any:
        """A pandas DataFrame: one row per image with the top-k labels and probabilities."""
        import pandas as pd

        rows = []
        for i, preds in enumerate(self.top):
            row: dict[str, Any] = {"image": self.names[i] if i < len(self.names) else i}
            for rank, (label, prob) in enumerate(preds, start=1):
                row[f"top{rank}"] = f"{label} ({prob:.1%})"
            rows.append(row)
        return pd.DataFrame(rows)


def _input_name(runner: Any) -> str:
    inputs = getattr(runner, "inputs", None)
    if not inputs:
        raise TypeError(
            f"classify needs a helpers.runners.Runner with one image input, got {type(runner).__name__}"
        )
    if len(inputs) != 1:
        raise TypeError(
            f"classify expects a runner with exactly one input (the image batch); "
            f"{getattr(runner, 'name', runner)} has {runner.signature()}"
        )
    return inputs[0].name


def classify_arrays(
    runner: Any,
    pixels: np.ndarray,
    *,
    labels: Sequence[str] | None = None,
    k: int = 5,
    batch_size: int | None = None,
    names: Sequence[str] = (),
) -> Classification:
    """Run already-preprocessed ``float32 [N, 3, H, W]`` pixels through ``runner``; top-k per row.

    ``batch_size`` splits ``N`` into chunks (``None``: one call). The runner's first output is
    taken as the logits.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 4:
        raise ValueError(f"expected pixels of shape [N, 3, H, W], got {pixels.shape}")
    name = _input_name(runner)
    step = len(pixels) if not batch_size else int(batch_size)
    chunks = []
    for start in range(0, len(pixels), max(step, 1)):
        out = runner({name: np.ascontiguousarray(pixels[start : start + step], dtype=np.float32)})
        chunks.append(np.asarray(out[runner.output_names[0]], dtype=np.float32))
    logits = np.concatenate(chunks)
    probs = softmax(logits)
    labels = list(labels) if labels is not None else imagenet_labels()
    if len(labels) != probs.shape[-1]:
        raise ValueError(f"{len(labels)} labels for {probs.shape[-1]} classes")
    k = min(k, probs.shape[-1])
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    top = [[(labels[j], float(p[j])) for j in idx] for p, idx in zip(probs, order, strict=True)]
    return Classification(
        logits=logits,
        probabilities=probs,
        top=top,
        runner=str(getattr(runner, "name", "")),
        names=[str(n) for n in names],
    )


def classify(
    runner: Any,
    images: Sequence[Image.Image | str | os.PathLike[str] | bytes],
    *,
    labels: Sequence[str] | None = None,
    k: int = 5,
    size: int = 224,
    backend: str = "numpy",
    batch_size: int | None = None,
) -> Classification:
    """The application: images in, top-k ``(label, probability)`` per image out, on any runner.

    ``images`` are PIL images, file paths or encoded bytes (decoded with
    :func:`helpers.images.load_image`, which raises :class:`~helpers.images.ImageError` for
    corrupt or unsupported data). ``backend="numpy"`` preprocesses with PIL + NumPy only (what
    a torch-free deployment ships); ``"torchvision"`` gives the same numbers within 1e-5.
    """
    items = list(images)
    if not items:
        raise ImageError("classify: no images given")
    names = [
        Path(i).name if isinstance(i, (str, os.PathLike)) else str(n) for n, i in enumerate(items)
    ]
    pixels = preprocess_batch(items, backend=backend, size=size)
    return classify_arrays(runner, pixels, labels=labels, k=k, batch_size=batch_size, names=names)


def classify_folder(
    runner: Any,
    folder: str | os.PathLike[str],
    *,
    batch_size: int = 8,
    labels: Sequence[str] | None = None,
    k: int = 1,
    size: int = 224,
    progress: bool = True,
) -> Any:
    """Classify every image file in ``folder`` in batches, with a tqdm progress bar.

    Returns a DataFrame with one row per file: ``file``, ``label``, ``probability`` (top-1; with
    ``k > 1`` also ``top{k}`` columns) and ``error`` (the reason a file could not be read, else
    empty). A bad file never stops the run.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    files = image_files(folder)
    rows: list[dict[str, Any]] = []
    bar = tqdm(
        total=len(files), desc=f"classify {Path(folder).name}", unit="img", disable=not progress
    )
    for start in range(0, len(files), batch_size):
        good: list[tuple[Path, Image.Image]] = []
        for path in files[start : start + batch_size]:
            try:
                good.append((path, load_image(path)))
            except ImageError as exc:
                rows.append(
                    {"file": path.name, "label": None, "probability": np.nan, "error": str(exc)}
                )
        if good:
            result = classify(runner, [im for _, im in good], labels=labels, k=k, size=size)
            for (path, _), preds in zip(good, result.top, strict=True):
                row: dict[str, Any] = {
                    "file": path.name,
                    "label": preds[0][0],
                    "probability": preds[0][1],
                    "error": "",
                }
                for rank, (label, prob) in enumerate(preds[1:], start=2):
                    row[f"top{rank}"] = f"{label} ({prob:.1%})"
                rows.append(row)
        bar.update(len(files[start : start + batch_size]))
    bar.close()
    frame = pd.DataFrame(rows, columns=None if rows else ["file", "label", "probability", "error"])
    if len(frame):
        frame = frame.sort_values("file", kind="stable").reset_index(drop=True)
    return frame


def _photo(name: str) -> Image.Image:
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(array[..., :3])).convert("RGB")


def _augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    scale = rng.uniform(0.5, 1.0)
    cw, ch = max(int(width * scale), 8), max(int(height * scale), 8)
    left = int(rng.integers(0, width - cw + 1))
    top = int(rng.integers(0, height - ch + 1))
    image = image.crop((left, top, left + cw, top + ch))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.7, 1.3))
    return ImageEnhance.Color(image).enhance(rng.uniform(0.7, 1.3))


def photo_set(
    n: int = 96,
    *,
    seed: int = 0,
    names: Sequence[str] = PHOTO_NAMES,
    include_originals: bool = True,
) -> tuple[list[Image.Image], list[str]]:
    """``n`` real photos for calibration / agreement checks, reproducible from ``seed``.

    The scikit-image sample photos in ``names`` (offline, inside its wheel) first -- when
    ``include_originals`` -- then random variants of them: a crop keeping 50-100 % of each side,
    a horizontal flip half of the time, and brightness / contrast / saturation jitter of +-30 %.
    Different seeds give different variants, so a calibration set (seed 1) and an evaluation
    set (seed 0) share subjects but not pixels. Returns ``(images, captions)``.
    """
    if n < 1:
        raise ValueError("photo_set: n must be >= 1")
    if not names:
        raise ValueError("photo_set: names must not be empty")
    base = [_photo(name) for name in names]
    rng = np.random.default_rng(seed)
    images: list[Image.Image] = []
    captions: list[str] = []
    if include_originals:
        for name, im in zip(names, base, strict=True):
            if len(images) < n:
                images.append(im)
                captions.append(name)
    i = 0
    while len(images) < n:
        j = i % len(base)
        images.append(_augment(base[j], rng))
        captions.append(f"{names[j]}~{i // len(base) + 1}")
        i += 1
    return images, captions
