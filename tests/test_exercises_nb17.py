"""Exercises 08.1–08.3 accept the right answer (computed from the demo) and reject wrong ones with a hint."""

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


def test_three_exercises_are_registered() -> None:
    assert framework.all_keys("17") == ["17.1", "17.2", "17.3"]
    for key in framework.all_keys("17"):
        assert framework.get(key).call.startswith(f'exercises.check("{key}"')


def test_08_1_the_fastest_runtime_of_the_table() -> None:
    table = pd.DataFrame({"runtime": ["PyTorch (eager)", "ONNX Runtime (CPU EP)", "OpenVINO"],
                          "latency_ms": [4.0, 1.5, 2.5], "error": ["", "", ""]})
    ok = framework.evaluate("17.1", "ONNX Runtime (CPU EP)", table=table)
    assert ok.ok and "1.50 ms" in ok.message and "1.67x" in ok.message
    assert framework.evaluate("17.1", "onnx runtime (cpu ep)", table=table).ok
    assert "slowest" in framework.evaluate("17.1", "PyTorch (eager)", table=table).message
    assert "another runtime was faster" in framework.evaluate("17.1", "OpenVINO", table=table).message
    assert "not a runtime in this table" in framework.evaluate("17.1", "TensorRT", table=table).message
    assert "string" in framework.evaluate("17.1", 1, table=table).message
    failed = table.assign(error=["", "InputError: x", ""])  # a failed runtime is not a candidate
    assert "not a runtime" in framework.evaluate("17.1", "ONNX Runtime (CPU EP)", table=failed).message


def test_08_1_on_the_demo_table(demo) -> None:
    table = demo.run("chelsea")
    fastest = table.loc[table["latency_ms"].idxmin(), "runtime"]
    assert framework.evaluate("17.1", fastest, table=table).ok


def test_08_2_agreement_over_the_sample_photos(demo) -> None:
    fraction, agreed = nb17.agreement(demo)
    assert set(agreed) == set(images.sample_images()) and fraction == sum(agreed.values()) / len(agreed)
    for name, ok in agreed.items():  # the same as the tables the learner reads
        assert ok == (demo.run(name)["top1"].nunique() == 1)
    assert framework.evaluate("17.2", fraction, demo=demo).ok
    assert not framework.evaluate("17.2", fraction - 1 / 3, demo=demo).ok
    if fraction:
        assert "percentage" in framework.evaluate("17.2", fraction * 100, demo=demo).message


def test_08_2_counts_disagreement(demo, monkeypatch: pytest.MonkeyPatch) -> None:
    top = iter([["a", "a"], ["a", "b"], ["c", "c"]])  # three photos, one disagreement
    prediction = lambda label: widgets.RuntimePrediction(runtime="x", name="x", top=[(label, 1.0)])  # noqa: E731
    monkeypatch.setattr(demo, "predict", lambda photo: [prediction(label) for label in next(top)])
    fraction, agreed = nb17.agreement(demo, ["p1", "p2", "p3"])
    assert fraction == pytest.approx(2 / 3) and agreed == {"p1": True, "p2": False, "p3": True}


def test_08_3_a_truncated_upload(demo) -> None:
    coffee = images.sample_images()["coffee"].read_bytes()
    demo.run(coffee[:1000])
    message = demo.message
    assert message.startswith("This file cannot be classified:") and "truncated" in message
    cat = demo.run("chelsea")["top1"].iloc[0]
    ok = framework.evaluate("17.3", (message, cat), demo=demo, coffee=coffee)
    assert ok.ok, ok.text()
    assert demo.current_name == "chelsea" and demo.last  # the check leaves the demo on the cat
    demo.run(coffee[:1000])
    html_message = demo.result.value  # the widget's HTML says the same
    assert html_message.startswith("<div") and framework.evaluate("17.3", (html_message, cat), demo=demo,
                                                                   coffee=coffee).ok
    assert "something else" in framework.evaluate("17.3", ("it worked", cat), demo=demo, coffee=coffee).message
    assert "names" in framework.evaluate("17.3", (message, "a dog"), demo=demo, coffee=coffee).message
    assert "pair" in framework.evaluate("17.3", message, demo=demo, coffee=coffee).message


def test_solutions_mention_the_notebook_objects() -> None:
    assert "idxmin" in framework.get("17.1").solution
    assert "sample_images" in framework.get("17.2").solution
    assert "coffee[:1000]" in framework.get("17.3").solution
