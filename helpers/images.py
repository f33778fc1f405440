"""Photos, ImageNet labels, image preprocessing (with torchvision and without torch), predictions.

Two preprocessing paths produce the same ``float32 [3, 224, 224]`` array:

- :func:`torchvision_preprocess` — the usual ``Resize(256) → CenterCrop(224) → ToTensor → Normalize``
  transform, for PyTorch code;
- :func:`numpy_preprocess` — the same steps written with PIL and NumPy only, for a deployment that
  ships ONNX Runtime or OpenVINO without torch.

They agree within :data:`PREPROCESS_ATOL` (absolute, on normalised values; measured ~1e-6: both
resize with PIL's antialiased bilinear filter, the rest is float32 arithmetic in a different order).

:func:`softmax` and :func:`top_k` turn logits into labelled probabilities (every classifier and
sampler in the suite uses them); :func:`photo_set` makes a reproducible set of ~100 *real* photos
(scikit-image's sample photos plus random crops, flips and colour jitter of them) for INT8
calibration and agreement checks without any download.

:func:`load_image` is the single entry point for untrusted files: it opens only the formats it is
told to accept (:data:`IMAGE_FORMATS` by default; PIL itself would try dozens), always returns an
8-bit RGB ``PIL.Image`` (converting grayscale, palette, RGBA/LA, CMYK and 16-bit images, honouring
EXIF orientation) or raises :class:`ImageError` with a message that names the format and says what
was wrong (corrupt or truncated data, a format not accepted, not an image, too small, too many
pixels — the decompression-bomb guard). Whatever a decoder raises becomes that error.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps, UnidentifiedImageError

from helpers.paths import cache_dir

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.figure

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGE_FORMATS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_PIXELS",
    "MIN_SIDE",
    "PHOTO_NAMES",
    "PREPROCESS_ATOL",
    "ImageError",
    "default_resize",
    "image_files",
    "imagenet_labels",
    "load_image",
    "numpy_preprocess",
    "photo_set",
    "preprocess_batch",
    "sample_images",
    "show_predictions",
    "sniff_format",
    "softmax",
    "top_k",
    "torchvision_preprocess",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Largest image accepted by :func:`load_image` (width × height). 40 MP covers any phone photo;
#: a decompression bomb (a small file that expands to gigapixels) is refused before decoding.
MAX_PIXELS = 40_000_000
#: Smallest side accepted by :func:`load_image`; anything smaller carries no usable content.
MIN_SIDE = 8
#: Documented (and tested) agreement between the torchvision and NumPy preprocessing paths.
PREPROCESS_ATOL = 1e-5
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
#: The formats (PIL's names) :func:`load_image` opens by default: those of :data:`IMAGE_EXTENSIONS`
#: (``PPM`` covers PBM/PGM/PPM; a phone's multi-picture JPEG opens as ``MPO`` through ``JPEG``).
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PPM")

_SAMPLES = {
    "chelsea": "a tabby cat (scikit-image `chelsea`)",
    "coffee": "a cup of coffee (scikit-image `coffee`)",
    "astronaut": "astronaut Eileen Collins (scikit-image `astronaut`)",
}


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


class ImageError(ValueError):
    """An image could not be used; the message says why (corrupt, too large, unsupported...)."""


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def sample_images() -> dict[str, Path]:
    """The suite's sample photos as JPEG files: ``{"chelsea": ..., "coffee": ..., "astronaut": ...}``.

    They ship inside scikit-image (no network). Written once under
    ``helpers.paths.cache_dir("images")`` (atomically: a half-written file is never used).
    """
    import skimage.data

    folder = cache_dir("images")
    out: dict[str, Path] = {}
    for name in _SAMPLES:
        path = folder / f"{name}.jpg"
        if not _is_readable_image(path):
            array = getattr(skimage.data, name)()
            _atomic_save(Image.fromarray(array).convert("RGB"), path, quality=95)
        out[name] = path
    return out


def _is_readable_image(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


def _atomic_save(image: Image.Image, path: Path, **save_kwargs: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp, **save_kwargs)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files in ``folder`` (recursively, sorted by path), or ``[folder]`` if it is one file.

    Files are selected by extension (:data:`IMAGE_EXTENSIONS`, case-insensitive); hidden files
    are skipped. Raises :class:`ImageError` if the path does not exist.
    """
    root = Path(folder).expanduser()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ImageError(f"no such file or folder: {root}")
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


# --------------------------------------------------------------------------------------------
# Decoding untrusted images
# --------------------------------------------------------------------------------------------
def load_image(
    path_or_bytes: str | os.PathLike[str] | bytes | bytearray | io.IOBase | Image.Image,
    *,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
    formats: Sequence[str] | None = IMAGE_FORMATS,
) -> Image.Image:
    """Decode an image into 8-bit RGB, or raise :class:`ImageError` saying why it cannot be used.

    Accepts a path, raw bytes, a binary file object or a ``PIL.Image``. Only the ``formats``
    listed (PIL's names, default :data:`IMAGE_FORMATS`; ``None``: every format PIL knows) are
    opened: a file of another format (ICO, TGA, DDS, ... sent as a JPEG) is refused, and PIL
    never decodes it (only its header is read, to name the format in the message). Handles
    grayscale (``L``/``1``), palette (``P``), alpha
    (``RGBA``/``LA``/``PA``, composited on white), ``CMYK``, ``YCbCr``/``LAB``/``HSV`` and
    16-/32-bit integer or float images (rescaled from their actual range to 0–255). EXIF
    orientation is applied. Rejected: unreadable or truncated data, files that are not images,
    images with more than ``max_pixels`` pixels (checked from the header, before decoding — a
    decompression-bomb guard) and images with a side below ``min_side``. Every failure of a
    decoder (``OSError``, ``ValueError``, ``NotImplementedError``, ``struct.error``,
    ``EOFError``, ...) becomes an :class:`ImageError` naming the format; only ``MemoryError``
    passes through (the machine's problem, not the file's).

    Thread-safe, and no process-wide state is changed: PIL's own settings
    (``Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``) are honoured, never set. PIL
    still refuses images above ``2 * Image.MAX_IMAGE_PIXELS`` (about 179 MP by default) whatever
    ``max_pixels`` says, and warns (``DecompressionBombWarning``) above ``Image.MAX_IMAGE_PIXELS``;
    a process that really needs bigger images raises that limit once, at start-up.
    """
    label = _describe_source(path_or_bytes)
    if isinstance(path_or_bytes, Image.Image):
        image = path_or_bytes
        _check_size(image.size, label, max_pixels, min_side)
        return _to_rgb(image.copy(), label)

    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        if len(path_or_bytes) == 0:
            raise ImageError(f"{label}: empty data, not an image")
        source: Any = io.BytesIO(bytes(path_or_bytes))
    elif isinstance(path_or_bytes, str | os.PathLike):
        path = Path(path_or_bytes).expanduser()
        if not path.is_file():
            raise ImageError(f"{label}: no such file")
        if path.stat().st_size == 0:
            raise ImageError(f"{label}: the file is empty")
        source = path
    elif hasattr(path_or_bytes, "read"):
        source = path_or_bytes
    else:
        raise ImageError(
            f"cannot load an image from {type(path_or_bytes).__name__}; "
            "pass a path, bytes, a binary file object or a PIL.Image"
        )
    allowed = [f.upper() for f in formats] if formats is not None else None

    # No PIL global is changed here (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, the
    # warning filters): they are process-wide, and setting them per call races between threads.
    # PIL's own bomb check runs in Image.open (it raises above 2 x Image.MAX_IMAGE_PIXELS); ours
    # is stricter and runs on the header size, before any pixel is decoded.
    try:
        image = Image.open(source, formats=allowed)
    except Image.DecompressionBombError as exc:
        raise ImageError(_pil_bomb_message(label, exc, max_pixels)) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(_unidentified_message(label, source, allowed)) from exc
    except MemoryError:
        raise
    except Exception as exc:  # a format's header parser failed: ValueError, struct.error, ...
        name = sniff_format(source) or "image"
        raise ImageError(f"{label}: cannot read this {name} file ({_cause(exc)})") from exc
    with image:
        fmt = image.format or sniff_format(source) or "image"
        _check_size(image.size, label, max_pixels, min_side)
        try:
            image.load()
        except Image.DecompressionBombError as exc:  # a frame bigger than the header said
            raise ImageError(_pil_bomb_message(label, exc, max_pixels)) from exc
        except MemoryError:
            raise
        except Exception as exc:  # OSError, ValueError, NotImplementedError, EOFError, ...
            raise ImageError(f"{label}: corrupt or truncated {fmt} data ({_cause(exc)})") from exc
        # A broken EXIF block is not worth rejecting the photo for.
        with contextlib.suppress(Exception):
            image = ImageOps.exif_transpose(image) or image
        rgb = _to_rgb(image, f"{label} ({fmt})")
        rgb.info["source_format"] = fmt
        return rgb


def _cause(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:120]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _prefix(source: Any) -> bytes:
    """The first 16 bytes of a source (the part PIL's format checks look at)."""
    try:
        if isinstance(source, Path):
            with open(source, "rb") as fh:
                return fh.read(16)
        position = source.tell()
        try:
            source.seek(0)
            return bytes(source.read(16))
        finally:
            source.seek(position)
    except Exception:  # an unseekable stream: no name for the format
        return b""


def sniff_format(source: Any) -> str | None:
    """The PIL format whose signature the data starts with (``"ICO"``, ``"PNG"``...), else ``None``.

    Only the signature checks of PIL's plugins run (on the first 16 bytes), never a decoder or a
    header parser, so it is safe on hostile data. ``source`` is bytes, a path or a seekable binary
    file object; it is used to *name* a format in messages, not to decide what to open.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        prefix = bytes(source[:16])
    else:
        prefix = _prefix(Path(source) if isinstance(source, str | os.PathLike) else source)
    if not prefix:
        return None
    Image.init()
    for format_id in Image.ID:
        accept = Image.OPEN[format_id][1]
        try:
            if accept is not None and accept(prefix):
                return str(format_id)
        except Exception:  # a signature check that cannot handle this prefix
            continue
    return None


def _identify(source: Any) -> str | None:
    """The format of a file PIL would open with all its plugins — its header only, never decoded —
    else the signature it starts with. For naming a refused file in a message."""
    try:
        with Image.open(source) as image:  # header parsers only; pixels are not decoded
            return str(image.format) if image.format else None
    except Exception:  # noqa: BLE001 - the name is only for the message
        return sniff_format(source)
    finally:
        with contextlib.suppress(Exception):
            if not isinstance(source, Path):
                source.seek(0)


def _unidentified_message(label: str, source: Any, allowed: list[str] | None) -> str:
    found = _identify(source)
    accepted = f"accepted: {', '.join(allowed)}" if allowed is not None else "any format PIL reads"
    if found is not None and allowed is not None and found not in allowed:
        return f"{label}: a {found} file — {found} is not an accepted format ({accepted})"
    if found is not None:
        return f"{label}: starts like a {found} file but cannot be read (corrupt or an unsupported variant)"
    return f"{label}: not a recognised image format (corrupt or not an image; {accepted})"


def _pil_bomb_message(label: str, exc: Exception, max_pixels: int) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f"{int(found.group(1)):,} pixels" if found else "the image"
    pil_limit = Image.MAX_IMAGE_PIXELS
    limit = min(max_pixels, 2 * pil_limit) if pil_limit else max_pixels
    hint = "pass max_pixels= to allow it"
    if pil_limit and max_pixels > 2 * pil_limit:
        hint = (
            f"PIL itself refuses more than 2 x Image.MAX_IMAGE_PIXELS = {2 * pil_limit:,} in this "
            "process; raise Image.MAX_IMAGE_PIXELS once at start-up to go beyond it"
        )
    return f"{label}: {pixels} exceeds the limit of {limit:,} (decompression-bomb guard; {hint})"


def _describe_source(obj: Any) -> str:
    if isinstance(obj, str | os.PathLike):
        return f"image {os.fspath(obj)!r}"
    if isinstance(obj, bytes | bytearray | memoryview):
        return f"image bytes ({len(obj)} B)"
    if isinstance(obj, Image.Image):
        return f"PIL image ({obj.mode}, {obj.size[0]}x{obj.size[1]})"
    return f"image {type(obj).__name__}"


def _check_size(size: tuple[int, int], label: str, max_pixels: int, min_side: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"{label}: {width}x{height} = {width * height:,} pixels exceeds the limit of "
            f"{max_pixels:,} (decompression-bomb guard; pass max_pixels= to allow it)"
        )
    if min(width, height) < min_side:
        raise ImageError(
            f"{label}: {width}x{height} is too small (each side must be at least {min_side} px)"
        )


def _to_rgb(image: Image.Image, label: str) -> Image.Image:
    try:
        return _convert_to_rgb(image, label)
    except (ImageError, MemoryError):
        raise
    except Exception as exc:  # a decoder that fails only when its pixels are read
        raise ImageError(f"{label}: cannot convert the {image.mode} image to RGB ({_cause(exc)})") from exc


def _convert_to_rgb(image: Image.Image, label: str) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image.copy()  # always a new object: the caller closes the decoded one
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("1", "L", "P", "CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    if mode.startswith(("I", "F")):  # I, I;16, I;16B, I;16L, I;16N, F: rescale the actual range
        array = np.asarray(image, dtype=np.float64)
        if array.ndim != 2:
            raise ImageError(f"{label}: unsupported {mode} layout with shape {array.shape}")
        low, high = float(array.min()), float(array.max())
        if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535 and high > 255):
            scaled = array / 65535.0 * 255.0 if high > 255 else array
        elif high > low:
            scaled = (array - low) / (high - low) * 255.0
        else:
            scaled = np.zeros_like(array)
        gray = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
        return gray.convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageError(f"{label}: unsupported image mode {mode!r} ({_cause(exc)})") from exc


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _labels() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.DEFAULT.meta["categories"])


def imagenet_labels() -> list[str]:
    """The 1,000 ImageNet-1k class names in model output order (offline, from torchvision).

    Index 285 is ``"Egyptian cat"``, 967 ``"espresso"``.
    """
    return list(_labels())


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------
def torchvision_preprocess(size: int = 224, resize: int = 256) -> Any:
    """``Resize(resize) → CenterCrop(size) → ToTensor → Normalize(ImageNet)`` for PIL images.

    Returns a ``torchvision.transforms.Compose``; applied to an RGB ``PIL.Image`` it gives a
    ``float32`` tensor ``[3, size, size]``.
    """
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(
                resize, interpolation=transforms.InterpolationMode.BILINEAR, antialias=True
            ),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def default_resize(size: int) -> int:
    """The usual short side before a centre crop of ``size``: ``size * 256 / 224`` (256 for 224).

    Models trained with another ratio say so (the catalog's ``LoadedModel.resize``, e.g. 232 for
    ResNet-50 ``IMAGENET1K_V2``); pass that instead.
    """
    return size * 256 // 224


def _resized_shape(width: int, height: int, resize: int) -> tuple[int, int]:
    """(new_width, new_height) with the short side = ``resize``, as torchvision computes it."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = resize, int(resize * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def numpy_preprocess(image: Image.Image, size: int = 224, resize: int = 256) -> np.ndarray:
    """The same preprocessing as :func:`torchvision_preprocess`, with PIL and NumPy only.

    Returns ``float32 [3, size, size]`` (CHW, ImageNet-normalised). Agrees with the torchvision
    path within :data:`PREPROCESS_ATOL`.
    """
    if not isinstance(image, Image.Image):
        raise ImageError(f"numpy_preprocess expects a PIL.Image, got {type(image).__name__}")
    if image.mode != "RGB":
        image = load_image(image)
    width, height = image.size
    new_w, new_h = _resized_shape(width, height, resize)
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    # Centre crop (torchvision pads with zeros when the crop is bigger than the image).
    array = np.asarray(image, dtype=np.uint8)
    if new_h < size or new_w < size:
        pad_h, pad_w = max(size - new_h, 0), max(size - new_w, 0)
        array = np.pad(
            array,
            ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
        )
        new_h, new_w = array.shape[:2]
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    crop = array[top : top + size, left : left + size]
    x: np.ndarray = crop.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def preprocess_batch(
    images: Iterable[Image.Image | str | os.PathLike[str] | bytes],
    *,
    backend: str = "torchvision",
    size: int = 224,
    resize: int | None = None,
) -> np.ndarray:
    """Load (if needed) and preprocess images into one ``float32 [N, 3, size, size]`` array.

    ``backend`` is ``"torchvision"`` or ``"numpy"``; ``resize`` is the short side before the
    centre crop — the model's own (``LoadedModel.resize``), else :func:`default_resize`.
    Each item may be a PIL image, a path or bytes (decoded with :func:`load_image`).
    """
    if backend not in ("torchvision", "numpy"):
        raise ValueError(f"unknown backend {backend!r}; choose 'torchvision' or 'numpy'")
    resize = resize if resize is not None else default_resize(size)
    pil = [
        load_image(item) if not (isinstance(item, Image.Image) and item.mode == "RGB") else item
        for item in images
    ]
    if not pil:
        raise ImageError("no images to preprocess")
    if backend == "numpy":
        arrays = [numpy_preprocess(im, size=size, resize=resize) for im in pil]
    else:
        transform = torchvision_preprocess(size=size, resize=resize)
        arrays = [transform(im).numpy() for im in pil]
    return np.stack(arrays).astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------------
def softmax(logits: Any) -> np.ndarray:
    """Probabilities from logits over the last axis, computed stably in float64.

    The maximum is subtracted before ``exp`` (no overflow for logits of any size); ``-inf``
    entries (masked or filtered tokens) get probability 0. Accepts NumPy arrays, lists and torch
    tensors; returns a float64 array of the same shape.
    """
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().float().numpy()
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k(
    logits: Any, labels: Sequence[str] | None = None, k: int = 5
) -> list[list[tuple[str, float]]]:
    """Top-``k`` ``(label, probability)`` pairs per row of ``logits`` (softmax over the last axis).

    ``logits`` is ``[num_classes]`` or ``[N, num_classes]`` (NumPy or torch); ``labels`` defaults
    to :func:`imagenet_labels`. Always returns one list per row.
    """
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().numpy()
    array = np.asarray(logits)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise ValueError(
            f"top_k expects logits of shape [classes] or [N, classes], got {array.shape}"
        )
    labels = list(labels) if labels is not None else imagenet_labels()
    if len(labels) != array.shape[1]:
        raise ValueError(f"{len(labels)} labels for {array.shape[1]} classes")
    probs = softmax(array)
    k = min(k, array.shape[1])
    out = []
    for row in probs:
        idx = np.argsort(-row, kind="stable")[:k]
        out.append([(labels[i], float(row[i])) for i in idx])
    return out


def show_predictions(
    images: Sequence[Image.Image | str | os.PathLike[str]],
    predictions: Sequence[Sequence[tuple[str, float]]],
    *,
    columns: int = 4,
    title: str = "",
) -> matplotlib.figure.Figure:
    """A small grid: each image with its top predictions (``label  prob%``) underneath."""
    import matplotlib.pyplot as plt

    if len(images) != len(predictions):
        raise ValueError(f"{len(images)} images but {len(predictions)} prediction lists")
    n = max(len(images), 1)
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item, preds in zip(axes.flat, images, predictions, strict=False):
        im = item if isinstance(item, Image.Image) else load_image(item)
        ax.imshow(im)
        ax.set_title("\n".join(f"{lab[:28]}  {p:.0%}" for lab, p in list(preds)[:3]), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)  # returned for display; not left open in pyplot's global state
    return fig


# --------------------------------------------------------------------------------------------
# A reproducible set of real photos
# --------------------------------------------------------------------------------------------
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
