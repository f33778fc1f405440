"""Exercises 08.1 (a FastAPI route around a session) and 08.2 (Little's law) accept right answers
and reject wrong ones with a hint."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI, HTTPException, Request
from PIL import Image

from helpers import images
from helpers.course.exercises import framework, nb08  # noqa: F401 - registers 08.1 and 08.2
from helpers.models.tiny import tiny_classifier_onnx

LABELS = [f"class {i}" for i in range(10)]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import onnxruntime as ort

    path = tiny_classifier_onnx(tmp_path_factory.mktemp("nb08") / "toy.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def to_pixels(data: bytes) -> np.ndarray:
        return images.numpy_preprocess(images.load_image(data), size=32, resize=36)

    photos = []
    for seed in range(6):
        buffer = io.BytesIO()
        color = np.random.default_rng(seed).integers(0, 255, 3)
        Image.fromarray(np.full((40, 40, 3), color, np.uint8)).save(buffer, format="JPEG")
        photos.append(buffer.getvalue())
    expected = [LABELS[int(session.run(None, {"pixel_values": to_pixels(p)[None]})[0][0].argmax())]
                for p in photos]
    assert len(set(expected)) > 1  # the check can tell a right route from a constant one
    return session, to_pixels, photos, expected


def _app(session, to_pixels, *, refuse_bad: bool = True, fixed: str | None = None, path: str = "/top1"):
    app = FastAPI()

    @app.post(path)
    async def top1(request: Request) -> dict:
        try:
            pixels = to_pixels(await request.body())
        except images.ImageError as error:
            if refuse_bad:
                raise HTTPException(400, str(error)) from None
            return {"label": "none"}
        logits = session.run(None, {"pixel_values": pixels[None]})[0][0]
        return {"label": fixed or LABELS[int(logits.argmax())]}

    return app


def test_08_1_a_route_that_answers_like_the_session(served) -> None:
    session, to_pixels, photos, expected = served
    ok = framework.evaluate("08.1", _app(session, to_pixels), photos=photos, expected=expected)
    assert ok.ok, ok.text()
    constant = framework.evaluate("08.1", _app(session, to_pixels, fixed=expected[0]), photos=photos,
                                  expected=expected)
    assert not constant.ok and "to_pixels" in constant.hint
    lenient = framework.evaluate("08.1", _app(session, to_pixels, refuse_bad=False), photos=photos,
                                 expected=expected)
    assert not lenient.ok and "HTTPException" in lenient.hint
    elsewhere = framework.evaluate("08.1", _app(session, to_pixels, path="/predict"), photos=photos,
                                   expected=expected)
    assert not elsewhere.ok and "/top1" in elsewhere.message
    assert not framework.evaluate("08.1", "top1_app", photos=photos, expected=expected).ok
    assert not framework.evaluate("08.1", None, photos=photos, expected=expected).answered


def test_08_2_littles_law() -> None:
    row = {"concurrency": 8, "p50_ms": 40.0, "req_per_s": 190.0}
    assert framework.evaluate("08.2", 200.0, result=row).ok
    assert framework.evaluate("08.2", 200.0, result=pd.Series(row)).ok
    single = framework.evaluate("08.2", 25.0, result=row)
    assert not single.ok and "concurrency" in single.hint
    units = framework.evaluate("08.2", 0.2, result=row)
    assert not units.ok and "milliseconds" in units.message
