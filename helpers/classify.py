"""One image-classification *application*, unchanged on every runtime.

:func:`classify` is the code a deployed service would run: decode images, preprocess them with
PIL + NumPy only (no torch needed at deployment), call a :class:`helpers.runners.Runner` --
PyTorch, torch.export, AOTInductor, ONNX Runtime with any execution provider, or OpenVINO --
and turn logits into top-k ``(label, probability)`` lists. Swapping the runtime never touches
this function; that is the point notebook 04 makes and notebook 08 (serving) reuses.

Preprocessing follows the model: ``size`` is its input size and ``resize`` the short side it was
trained to see before the centre crop (the catalog's ``LoadedModel.resize``: 232 for ResNet-50
``IMAGENET1K_V2``, 256 for most others — :func:`helpers.images.default_resize`).

Also here: :func:`classify_folder` (batch inference over a folder with a progress bar, one row
per file, unreadable files reported instead of crashing) and :func:`quality_and_speed` (every
runner's top-1 agreement with a reference on real photos next to its latency: one table, so a
speed is never shown without its quality).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from helpers.images import (
    ImageError,
    image_files,
    imagenet_labels,
    load_image,
    preprocess_batch,
    softmax,
    top_k,
)

__all__ = [
    "Classification",
    "batched_logits",
    "classify",
    "classify_arrays",
    "classify_folder",
    "quality_and_speed",
]

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


def batched_logits(runner: Any, pixels: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
    """The runner's first output (the logits) for ``float32 [N, 3, H, W]`` pixels, ``batch_size``
    images per call (``None``: one call), concatenated as float32."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 4:
        raise ValueError(f"expected pixels of shape [N, 3, H, W], got {pixels.shape}")
    name = _input_name(runner)
    step = len(pixels) if not batch_size else int(batch_size)
    chunks = []
    for start in range(0, len(pixels), max(step, 1)):
        out = runner({name: np.ascontiguousarray(pixels[start : start + step], dtype=np.float32)})
        chunks.append(np.asarray(out[runner.output_names[0]], dtype=np.float32))
    return np.concatenate(chunks)


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
    logits = batched_logits(runner, pixels, batch_size=batch_size)
    labels = list(labels) if labels is not None else imagenet_labels()
    return Classification(
        logits=logits,
        probabilities=softmax(logits).astype(np.float32),
        top=top_k(logits, labels, k=k),
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
    resize: int | None = None,
    backend: str = "numpy",
    batch_size: int | None = None,
) -> Classification:
    """The application: images in, top-k ``(label, probability)`` per image out, on any runner.

    ``images`` are PIL images, file paths or encoded bytes (decoded with
    :func:`helpers.images.load_image`, which raises :class:`~helpers.images.ImageError` for
    corrupt or unsupported data). ``size`` / ``resize``: the model's input size and short side
    before the crop (``LoadedModel.input_size`` / ``.resize``; ``resize=None`` means
    :func:`helpers.images.default_resize`). ``backend="numpy"`` preprocesses with PIL + NumPy
    only (what a torch-free deployment ships); ``"torchvision"`` gives the same numbers within
    1e-5.
    """
    items = list(images)
    if not items:
        raise ImageError("classify: no images given")
    names = [
        Path(i).name if isinstance(i, (str, os.PathLike)) else str(n) for n, i in enumerate(items)
    ]
    pixels = preprocess_batch(items, backend=backend, size=size, resize=resize)
    return classify_arrays(runner, pixels, labels=labels, k=k, batch_size=batch_size, names=names)


def classify_folder(
    runner: Any,
    folder: str | os.PathLike[str],
    *,
    batch_size: int = 8,
    labels: Sequence[str] | None = None,
    k: int = 1,
    size: int = 224,
    resize: int | None = None,
    progress: bool = True,
) -> Any:
    """Classify every image file in ``folder`` in batches, with a tqdm progress bar.

    Returns a DataFrame with one row per file: ``file``, ``label``, ``probability`` (top-1; with
    ``k > 1`` also ``top{k}`` columns) and ``error`` (the reason a file could not be read, else
    empty). A bad file never stops the run. ``size`` / ``resize`` as in :func:`classify`.
    """
    import pandas as pd

    from helpers.display import progress as progress_bar

    files = image_files(folder)
    rows: list[dict[str, Any]] = []
    bar = progress_bar(
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
            result = classify(
                runner, [im for _, im in good], labels=labels, k=k, size=size, resize=resize
            )
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


def _runs_on(info: Mapping[str, Any]) -> str:
    """Where a runner really runs, from its ``describe()``: ORT providers, else the device."""
    actual = info.get("providers_actual")
    if actual:
        return ", ".join(str(p).removesuffix("ExecutionProvider") for p in actual)
    return str(info.get("device") or "")


def _intra_threads(info: Mapping[str, Any]) -> Any:
    threads = info.get("threads")
    return threads.get("intra_op") if isinstance(threads, Mapping) else threads


def quality_and_speed(
    runners: Mapping[str, Any],
    pixels: np.ndarray,
    *,
    reference: str,
    timing_batch: int = 1,
    chunk: int = 8,
    runs: int = 30,
    max_seconds: float = 2.0,
    warmup: int = 3,
    reference_logits: np.ndarray | None = None,
) -> Any:
    """Each classifier runner's agreement with ``reference`` on ``pixels`` next to its latency.

    ``runners`` maps labels to :class:`helpers.runners.Runner` s with one image input;
    ``reference`` is one of the labels. Every runner classifies all of ``pixels`` (in chunks of
    ``chunk`` images, so no runtime's memory grows with the whole set) and is compared with the
    reference's logits (:func:`helpers.parity.classification_agreement`) — or with
    ``reference_logits`` when they were computed already (the reference runner is then only
    timed). Then each is timed on the first ``timing_batch`` images with
    :func:`helpers.benchmark.compare` (``warmup`` untimed calls, up to ``runs`` timed calls or
    ``max_seconds``).

    Returns a DataFrame indexed by label: ``runs on`` (execution providers or device actually
    used), ``precision``, ``threads`` (intra-op), ``max_abs_diff``, ``top1_agreement``, ``images``,
    ``p50_ms``, ``p90_ms``, ``p99_ms``, ``speedup_vs_<reference>``.
    """
    from helpers.benchmark import compare
    from helpers.parity import classification_agreement

    if reference not in runners:
        raise ValueError(f"reference {reference!r} is not one of the runners {list(runners)}")
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 4 or not len(pixels):
        raise ValueError(f"expected pixels of shape [N, 3, H, W] with N >= 1, got {pixels.shape}")
    logits = {
        label: reference_logits
        if label == reference and reference_logits is not None
        else batched_logits(r, pixels, batch_size=chunk)
        for label, r in runners.items()
    }
    if len(logits[reference]) != len(pixels):
        raise ValueError(f"reference_logits: {len(logits[reference])} rows for {len(pixels)} images")
    name = _input_name(runners[reference])
    timing = compare(
        dict(runners),
        {name: np.ascontiguousarray(pixels[:timing_batch])},
        baseline=reference,
        runs=runs,
        max_seconds=max_seconds,
        warmup=warmup,
        min_runs=3,
        batch_size=timing_batch,
        progress=False,
    ).set_index("runner")
    rows = {}
    for label, runner in runners.items():
        info = runner.describe()
        agreement = classification_agreement(logits[reference], logits[label])
        rows[label] = {
            "runs on": _runs_on(info),
            "precision": str(info.get("precision") or getattr(runner, "precision", "")),
            "threads": _intra_threads(info),
            "max_abs_diff": agreement["max_abs_diff"],
            "top1_agreement": agreement["top1_agreement"],
            "images": len(pixels),
            **{col: float(timing.loc[label, col]) for col in ("p50_ms", "p90_ms", "p99_ms")},
            f"speedup_vs_{reference}": float(timing.loc[label, f"speedup_vs_{reference}"]),
        }
    frame = _frame(rows)
    frame.attrs["reference"] = reference
    return frame


def _frame(rows: Mapping[str, Mapping[str, Any]]) -> Any:
    import pandas as pd

    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "runner"
    return frame
