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


def _runner(last_bias: list[float] | None = None) -> torch_runner:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, len(LABELS)),
    )
    if last_bias is not None:
        with torch.no_grad():
            model[-1].bias.copy_(torch.tensor(last_bias))
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


def test_quality_and_speed_puts_agreement_next_to_latency() -> None:
    from helpers.classify import batched_logits, quality_and_speed

    reference = _runner()
    same = _runner()  # the same seed: the same weights
    other = _runner(last_bias=[0.0, 0.0, 0.0, 0.0, 100.0])  # a bias that always picks the last class
    images, _ = photo_set(6, names=("chelsea", "coffee", "camera"))
    pixels = preprocess_batch(images, size=SIZE)
    expected_other = float(
        (batched_logits(reference, pixels).argmax(1) == len(LABELS) - 1).mean()
    )
    table = quality_and_speed(
        {"ref": reference, "same": same, "other": other}, pixels, reference="ref", chunk=4, runs=3,
        max_seconds=0.2, warmup=0,
    )
    assert list(table.index) == ["ref", "same", "other"]
    assert table.loc["same", "top1_agreement"] == 1.0 and table.loc["same", "max_abs_diff"] == 0.0
    assert table.loc["other", "top1_agreement"] == pytest.approx(expected_other)
    assert table.loc["other", "max_abs_diff"] >= 99.0  # the bias moved one logit by 100
    assert (table["images"] == 6).all() and (table["p50_ms"] > 0).all()
    assert table.loc["ref", "speedup_vs_ref"] == 1.0
    assert table.loc["ref", "runs on"] == "cpu" and table.loc["ref", "precision"] == "float32"
    with pytest.raises(ValueError, match="reference"):
        quality_and_speed({"a": reference}, pixels, reference="b")
    given = batched_logits(reference, pixels) + 1.0  # precomputed reference logits are used as given
    shifted = quality_and_speed({"ref": reference, "same": same}, pixels, reference="ref", runs=1,
                                max_seconds=0.1, warmup=0, reference_logits=given)
    assert shifted.loc["same", "max_abs_diff"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="rows"):
        quality_and_speed({"ref": reference}, pixels, reference="ref", reference_logits=given[:2])


def test_batched_logits_match_one_call() -> None:
    from helpers.classify import batched_logits

    runner = _runner()
    images, _ = photo_set(5, names=("chelsea", "coffee"))
    pixels = preprocess_batch(images, size=SIZE)
    np.testing.assert_allclose(batched_logits(runner, pixels, batch_size=2), batched_logits(runner, pixels),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="N, 3, H, W"):
        batched_logits(runner, pixels[0])
