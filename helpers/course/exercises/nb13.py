"""Exercises of notebook 13 (serving at scale): a KServe v2 request written by hand, and the JSON
body of the suite's /predict; registered on import."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from helpers.course.exercises.framework import Exercise, Feedback, Wrong, correct, register


def _check_13_1(answer: Any, runner: Any, pixels: Any) -> Feedback:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from helpers.serving import kserve

    if isinstance(answer, (bytes, str)):
        try:
            answer = json.loads(answer)
        except json.JSONDecodeError as exc:
            raise Wrong(f"That is not valid JSON ({exc.msg}).") from None
    if not isinstance(answer, Mapping):
        raise Wrong(f"Expected a dict (the JSON body), got {type(answer).__name__}.")
    try:
        body = json.dumps(answer, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise Wrong(f"The body cannot be sent as JSON: {exc}.",
                    "JSON has no arrays of NumPy floats: use `pixels.ravel().tolist()` and a list "
                    "for the shape.") from None
    app = FastAPI()
    app.include_router(kserve.router({"classifier": runner}))
    with TestClient(app) as client:
        response = client.post("/v2/models/classifier/infer", content=body,
                               headers={"content-type": "application/json"})
    if response.status_code != 200:
        message = response.json().get("error", response.text) if response.content else ""
        raise Wrong(f"The server answered {response.status_code}: {str(message)[:200]}",
                    'One input: {"name": "pixel_values", "shape": [...], "datatype": "FP32", '
                    '"data": [...]} inside {"inputs": [...]}.')
    got = kserve.decode_response(response.json())
    want = runner({runner.inputs[0].name: np.ascontiguousarray(pixels, dtype=np.float32)})
    name = runner.output_names[0]
    if name not in got or got[name].shape != want[name].shape or not np.allclose(got[name], want[name],
                                                                                 rtol=1e-5, atol=1e-5):
        raise Wrong("The server answered, but not for these pixels.",
                    "Send all of `pixels`, in row-major order, with its own shape.")
    return correct(f"Right: the server ran your request and its {name} equal the local ones "
                   f"({list(got[name].shape)}).")


register(
    Exercise(
        key="13.1",
        title="A v2 inference request by hand",
        prompt=(
            "Write the **JSON body** (a Python dict) of a KServe v2 inference request that sends the "
            "preprocessed photos `pixels` (float32, shape `[N, 3, H, W]`) to the model's input "
            "`pixel_values`. The check posts it to a v2 router serving the notebook's runner and "
            "compares the answer with the local one."
        ),
        checker=_check_13_1,
        context=("runner", "pixels"),
        call='exercises.check("13.1", answer, runner=classifier.runner, pixels=pixels)',
        solution=(
            'answer = {"inputs": [{"name": "pixel_values", "shape": list(pixels.shape), '
            '"datatype": "FP32",\n'
            '                      "data": pixels.ravel().tolist()}]}'
        ),
    )
)


def _check_13_2(answer: Any, image_bytes: Any) -> Feedback:
    if isinstance(answer, (bytes, str)):
        try:
            answer = json.loads(answer)
        except json.JSONDecodeError as exc:
            raise Wrong(f"That is not valid JSON ({exc.msg}).") from None
    if not isinstance(answer, Mapping):
        raise Wrong(f"Expected a dict (the JSON body), got {type(answer).__name__}.")
    try:
        json.dumps(answer)
    except TypeError as exc:
        raise Wrong(
            f"The body cannot be serialised as JSON: {exc}.",
            "JSON has no bytes type: base64-encode the image and .decode('ascii') it.",
        ) from None
    if "image" not in answer:
        raise Wrong(f"No 'image' field (keys: {', '.join(map(str, answer))}).")
    unknown = set(answer) - {"image", "top_k", "return_logits"}
    if unknown:
        raise Wrong(
            f"Unknown field(s) {', '.join(sorted(map(str, unknown)))}; the API takes image, top_k, "
            "return_logits."
        )
    try:
        decoded = base64.b64decode(answer["image"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise Wrong(
            "'image' is not valid base64.", "base64.b64encode(image_bytes).decode('ascii')"
        ) from None
    if decoded != bytes(image_bytes):
        raise Wrong(
            "'image' decodes to different bytes than the file.",
            "Encode the file's raw bytes (not a decoded array or a path).",
        )
    top_k = answer.get("top_k")
    if top_k != 3 or isinstance(top_k, bool):
        raise Wrong(f"top_k is {top_k!r}; the exercise asks for 3 (an integer).")
    return correct("Correct: a JSON body the /predict endpoint accepts, asking for the top 3 classes.")


register(
    Exercise(
        key="13.2",
        title="A JSON request for /predict",
        prompt=(
            'The server\'s `POST /predict` accepts JSON `{"image": "<base64>", "top_k": k, '
            '"return_logits": false}`. Build the **body as a Python dict** asking for the **top 3** '
            "classes of the photo whose JPEG bytes are `jpeg`."
        ),
        checker=_check_13_2,
        context=("image_bytes",),
        call='exercises.check("13.2", answer, image_bytes=jpeg)',
        solution='import base64\n\nanswer = {"image": base64.b64encode(jpeg).decode("ascii"), "top_k": 3}',
    )
)
