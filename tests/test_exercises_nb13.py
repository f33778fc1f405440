"""Exercises 13.1 (a v2 request by hand) and 13.2 (a /predict JSON body) accept right answers and
reject wrong ones with a hint."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from helpers.course.exercises import framework, nb13  # noqa: F401 - registers 13.1 and 13.2
from helpers.models.tiny import tiny_classifier_onnx
from helpers.runners import ort_runner


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return ort_runner(tiny_classifier_onnx(tmp_path_factory.mktemp("nb13") / "toy.onnx"), threads=1)


def test_13_1_a_v2_request(runner) -> None:
    pixels = np.random.default_rng(0).random((2, 3, 6, 6), dtype=np.float32)
    body = {"inputs": [{"name": "pixel_values", "shape": list(pixels.shape), "datatype": "FP32",
                        "data": pixels.ravel().tolist()}]}
    assert framework.evaluate("13.1", body, runner=runner, pixels=pixels).ok
    wrong_type = {"inputs": [{**body["inputs"][0], "datatype": "FP64"}]}
    feedback = framework.evaluate("13.1", wrong_type, runner=runner, pixels=pixels)
    assert not feedback.ok and "400" in feedback.message and "FP32" in feedback.message
    other = {"inputs": [{**body["inputs"][0], "data": pixels[::-1].ravel().tolist()}]}
    assert "not for these pixels" in framework.evaluate("13.1", other, runner=runner, pixels=pixels).message
    numpy_data = {"inputs": [{**body["inputs"][0], "data": pixels}]}
    assert "tolist" in framework.evaluate("13.1", numpy_data, runner=runner, pixels=pixels).hint


def test_13_2_request_body() -> None:
    image = b"\xff\xd8\xff fake jpeg bytes"
    body = {"image": base64.b64encode(image).decode("ascii"), "top_k": 3}
    assert framework.evaluate("13.2", body, image_bytes=image).ok
    assert "base64" in framework.evaluate("13.2", {"image": image, "top_k": 3}, image_bytes=image).hint
    assert not framework.evaluate("13.2", {**body, "top_k": 5}, image_bytes=image).ok
