"""Exercises 17.1 and 17.2 accept the right code (checked against the demo) and reject wrong code."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from helpers import catalog, images
from helpers.course import widgets
from helpers.course.exercises import framework, nb17
from helpers.models import tiny as tiny_models

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INFERENCE_SUITE_CACHE", str(folder))
        loaded = catalog.LoadedModel(
            task="image-classification", source="tiny", name="TinyClassifier", model=tiny_models.TinyClassifier(),
            reason="test", pretrained=False, meaningful_outputs=False,
            labels=[f"class {i}" for i in range(10)], input_size=32,
        )
        yield widgets.classifier_demo(loaded, runtimes=["pytorch", "onnxruntime"], repeats=1)


def test_two_exercises_are_registered() -> None:
    assert framework.all_keys("17") == ["17.1", "17.2"]
    for key in framework.all_keys("17"):
        assert framework.get(key).call.startswith(f'exercises.check("{key}"')


def test_17_1_fastest_runtime_that_keeps_the_answer(demo) -> None:
    table = demo.run("chelsea")
    assert framework.evaluate("17.1", nb17.fastest_keeping_answer, table=table).ok

    def fastest(t):
        return t.loc[t["latency_ms"].idxmin(), "runtime"]

    def fastest_that_ran(t):
        ran = t[t["error"] == ""]
        return ran.loc[ran["latency_ms"].idxmin(), "runtime"]

    assert "changed the answer" in framework.evaluate("17.1", fastest, table=table).message or \
        "failed" in framework.evaluate("17.1", fastest, table=table).message
    wrong = framework.evaluate("17.1", fastest_that_ran, table=table)
    assert not wrong.ok and "changed the answer" in wrong.message and "fastest row overall" in wrong.hint
    assert not framework.evaluate("17.1", "ONNX Runtime — CPU EP", table=table).ok
    no_reference = table[table["runtime"] != nb17.REFERENCE]
    assert "no 'PyTorch eager' row" in framework.evaluate("17.1", fastest, table=no_reference).message


def test_fastest_keeping_answer_skips_changed_and_failed_rows() -> None:
    table = pd.DataFrame({"runtime": ["PyTorch eager", "a", "b", "c"], "top1": ["cat", "cat", "dog", "cat"],
                          "latency_ms": [9.0, 5.0, 1.0, 2.0], "error": ["", "", "", "boom"]})
    assert nb17.fastest_keeping_answer(table) == "a"


def test_17_2_classify_an_upload(demo) -> None:
    coffee = images.sample_images()["coffee"].read_bytes()

    def classify_upload(data):
        photo = images.load_image(data)
        pixels = images.preprocess_batch([photo], backend="numpy", size=demo.size, resize=demo.resize)
        logits = demo.runners_for(["onnxruntime"])["onnxruntime"]({"pixels": pixels})["logits"]
        return demo.labels[int(logits.argmax())]

    ok = framework.evaluate("17.2", classify_upload, demo=demo, coffee=coffee)
    assert ok.ok, ok.text()

    def no_decode_check(data):  # PIL straight from bytes: a broken file fails deep inside PIL
        import io

        from PIL import Image

        photo = Image.open(io.BytesIO(data)).convert("RGB")
        pixels = images.preprocess_batch([photo], backend="numpy", size=demo.size, resize=demo.resize)
        logits = demo.runners_for(["onnxruntime"])["onnxruntime"]({"pixels": pixels})["logits"]
        return demo.labels[int(logits.argmax())]

    refused = framework.evaluate("17.2", no_decode_check, demo=demo, coffee=coffee)
    assert not refused.ok and "load_image" in refused.hint
    assert "string" in framework.evaluate("17.2", lambda data: 3, demo=demo, coffee=coffee).hint or \
        "str" in framework.evaluate("17.2", lambda data: 3, demo=demo, coffee=coffee).message
    wrong_label = framework.evaluate("17.2", lambda data: "definitely not a class", demo=demo, coffee=coffee)
    assert not wrong_label.ok and "demo.size" in wrong_label.hint
