"""helpers.classify: the runtime-independent classification application, folders, resize."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.classify import classify, classify_arrays, classify_folder
from helpers.images import ImageError, photo_set, preprocess_batch
from helpers.runners import TensorSpec, torch_runner

torch.set_num_threads(1)
LABELS = ["ant", "bee", "cat", "dog", "eel"]
SIZE = 32


def _runner() -> torch_runner:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, len(LABELS)),
    )
    return torch_runner(
        model, [TensorSpec("pixels", ("batch", 3, SIZE, SIZE), "float32")], ["logits"]
    )


def test_classify_images_and_paths(tmp_path: Path) -> None:
    images, captions = photo_set(3, names=("chelsea", "coffee", "camera"))
    path = tmp_path / "cat.png"
    images[0].save(path)
    runner = _runner()
    result = classify(runner, [*images, path], labels=LABELS, k=3, size=SIZE)
    assert result.logits.shape == (4, len(LABELS))
    assert np.allclose(result.probabilities.sum(-1), 1, atol=1e-5)
    assert all(len(row) == 3 for row in result.top)
    assert result.names[-1] == "cat.png"
    probs = [p for _, p in result.top[0]]
    assert probs == sorted(probs, reverse=True)
    assert result.top1[0] == result.top1[3]  # the same photo, from memory and from a file
    assert list(result.indices) == [LABELS.index(lbl) for lbl in result.top1]
    assert len(result.frame()) == 4 and "top3" in result.frame().columns
    # torchvision and numpy preprocessing give the same answer; batching does not change it
    tv = classify(runner, images, labels=LABELS, size=SIZE, backend="torchvision", batch_size=1)
    assert np.allclose(tv.logits, result.logits[:3], atol=1e-4)


def test_classify_errors() -> None:
    runner = _runner()
    with pytest.raises(ImageError):
        classify(runner, [], labels=LABELS)
    with pytest.raises(ValueError, match="labels"):
        classify_arrays(runner, np.zeros((1, 3, SIZE, SIZE), np.float32), labels=["a"])
    with pytest.raises(ValueError, match="N, 3, H, W"):
        classify_arrays(runner, np.zeros((3, SIZE, SIZE), np.float32), labels=LABELS)
    with pytest.raises(TypeError):
        classify_arrays(lambda x: x, np.zeros((1, 3, SIZE, SIZE), np.float32), labels=LABELS)


def test_classify_folder_reports_bad_files(tmp_path: Path) -> None:
    images, _ = photo_set(5, names=("chelsea", "coffee"))
    for i, im in enumerate(images):
        im.save(tmp_path / f"img{i}.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    (tmp_path / "notes.txt").write_text("ignored")
    frame = classify_folder(
        _runner(), tmp_path, batch_size=2, labels=LABELS, k=2, size=SIZE, progress=False
    )
    assert len(frame) == 6
    bad = frame[frame["file"] == "broken.jpg"].iloc[0]
    assert bad["error"] and not isinstance(bad["label"], str)
    good = frame[frame["error"] == ""]
    assert len(good) == 5 and set(good["label"]) <= set(LABELS) and "top2" in frame.columns


class _Recorder:
    """A runner that records the pixels it is given (and answers with fixed logits)."""

    name = "recorder"
    inputs = [TensorSpec("pixels", ("batch", 3, 224, 224), "float32")]
    output_names = ["logits"]

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def __call__(self, feed: dict) -> dict:
        self.seen.append(feed["pixels"])
        return {"logits": np.zeros((len(feed["pixels"]), len(LABELS)), np.float32)}


def test_resize_reaches_the_runner(tmp_path: Path) -> None:
    """The catalog's resize (232 for ResNet-50 IMAGENET1K_V2) is what the runner sees."""
    photos, _ = photo_set(2, names=("chelsea", "coffee"))
    expected = preprocess_batch(photos, backend="numpy", size=224, resize=232)
    default = preprocess_batch(photos, backend="numpy", size=224)
    assert not np.allclose(expected, default, atol=1e-3)  # 232 is not the default 256
    runner = _Recorder()
    classify(runner, photos, labels=LABELS, size=224, resize=232)
    np.testing.assert_array_equal(runner.seen[-1], expected)
    for i, im in enumerate(photos):
        im.save(tmp_path / f"{i}.png")
    classify_folder(runner, tmp_path, labels=LABELS, size=224, resize=232, progress=False)
    np.testing.assert_array_equal(runner.seen[-1], expected)
