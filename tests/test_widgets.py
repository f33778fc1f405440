"""The classroom widgets, headless: the functions behind them and the widgets' own event paths."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import catalog, images, runners
from helpers.course import widgets
from helpers.models import tiny as tiny_models

torch.set_num_threads(1)
LABELS = [f"class {i}" for i in range(10)]


def test_runtime_options_follow_availability() -> None:
    available = {"pytorch": True, "onnxruntime": True, "openvino": False, "onnxruntime-cuda": False}
    options = {o.key: o for o in widgets.runtime_options(available)}
    assert list(options) == list(widgets.RUNTIMES)
    assert options["pytorch"].usable and not options["openvino"].usable
    assert "GPU" in options["onnxruntime-cuda"].note
    assert widgets.usable_runtimes(available) == ["pytorch", "onnxruntime"]
    # the real check: at least PyTorch and ORT's CPU EP run in every environment of the suite
    assert {"pytorch", "onnxruntime"} <= set(widgets.usable_runtimes())


def test_picker_builds_without_a_frontend() -> None:
    available = {"pytorch": True, "onnxruntime": True}
    picker = widgets.runtime_picker(["onnxruntime", "openvino"], available=available)
    assert [key for _, key in picker.selector.options] == ["pytorch", "onnxruntime"]
    assert picker.value == ("onnxruntime",)  # openvino is not offered here, so not chosen
    assert "Not available in this kernel" in picker.info.value and "OpenVINO" in picker.info.value
    assert "application/vnd.jupyter.widget-view+json" in picker._repr_mimebundle_()


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory):
    model = tiny_models.TinyClassifier().eval()
    onnx_path = widgets.export_for_demo(model, 32, tmp_path_factory.mktemp("onnx"))
    return model, onnx_path


def test_classify_image_on_several_runtimes(toy) -> None:
    model, onnx_path = toy
    folder = onnx_path.parent.parent  # the cache root: each export is a verified entry in it
    assert widgets.export_for_demo(model, 32, folder) == onnx_path  # cached by weights
    keys = [k for k in ("pytorch", "onnxruntime", "openvino") if k in widgets.usable_runtimes()]
    runner_map = {
        k: widgets.build_runner(k, model, input_size=32, onnx_path=onnx_path) for k in keys
    }
    # a runner expecting another input size fails alone; the others still answer
    runner_map["broken"] = widgets.build_runner("pytorch", model, input_size=48)
    photo = images.sample_images()["chelsea"]
    preds = widgets.classify_image(photo, runner_map, labels=LABELS, k=3, repeats=2, size=32)
    good = [p for p in preds if not p.error]
    assert [p.runtime for p in good] == keys
    assert len({p.top1 for p in good}) == 1, [p.top for p in good]
    for p in good:
        assert len(p.top) == 3 and p.latency_ms > 0 and p.runs == 2 and p.device
        assert np.isclose(
            sum(prob for _, prob in p.top), sum(prob for _, prob in good[0].top), atol=1e-4
        )
    assert "InputError" in preds[-1].error
    frame = widgets.predictions_frame(preds)
    assert list(frame["top1"][:-1]) == [good[0].top1] * len(good)
    html = widgets.predictions_html(preds)
    assert good[0].top1 in html and " ms</td>" in html and "failed: InputError" in html
    with pytest.raises(ValueError, match="onnx_path"):
        widgets.build_runner("onnxruntime", model)
    with pytest.raises(images.ImageError):
        widgets.classify_image(b"not an image", runner_map, labels=LABELS)


def test_classifier_demo_headless(toy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path))
    model, onnx_path = toy
    loaded = catalog.LoadedModel(
        task="image-classification",
        source="tiny",
        name="TinyClassifier (toy)",
        model=model,
        reason="test",
        pretrained=False,
        meaningful_outputs=False,
        labels=LABELS,
        input_size=32,
    )
    demo = widgets.classifier_demo(
        loaded, runtimes=["pytorch", "onnxruntime"], repeats=1, auto_run=True
    )
    assert "class" in demo.result.value and " ms" in demo.result.value
    assert "NOT meaningful" in demo.widget.children[0].value  # the model's status is never hidden
    assert demo.image.value[:2] == b"\xff\xd8"  # a JPEG thumbnail of the photo

    table = demo.run("coffee")
    assert list(table["runtime"]) == [widgets.RUNTIMES[k][0] for k in ("pytorch", "onnxruntime")]
    assert table["top1"].nunique() == 1 and (table["latency_ms"] > 0).all()
    lines = demo.message.splitlines()  # plain text: what the result area shows
    assert lines[0] == "coffee — top-5 per runtime (batch 1)" and "<" not in demo.message
    assert [line.split(":")[0] for line in lines[1:]] == list(table["runtime"])
    assert all(f": {table['top1'][0]} (" in line for line in lines[1:])

    # the widgets' own events: choose a sample, upload bytes, change runtimes
    demo.sample.value = "astronaut"
    assert demo.current_name == "astronaut" and "astronaut" in demo.result.value
    jpeg = images.sample_images()["chelsea"].read_bytes()
    demo.upload.value = (
        {
            "name": "mine.jpg",
            "type": "image/jpeg",
            "size": len(jpeg),
            "content": memoryview(jpeg),
            "last_modified": datetime.now(UTC),
        },
    )
    assert demo.current_name == "mine.jpg" and "mine.jpg" in demo.result.value
    demo.picker.value = ("pytorch",)
    assert len(demo.last) == 1 and demo.last[0].runtime == "pytorch"

    broken = demo.run(b"definitely not a photo", name="notes.txt")
    assert broken.empty and "cannot be classified" in demo.result.value
    assert demo.message.startswith("This file cannot be classified: image bytes (22 B): not a recognised")
    assert demo.last == [] and not demo.run("chelsea").empty  # the demo stays usable
    assert runners.Runner in type(demo.runners_for(["onnxruntime"])["onnxruntime"]).__mro__
