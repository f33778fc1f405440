"""Exercises of notebook 08 (serving); registered on import."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_number,
    correct,
    is_close,
    register,
)


def _check_07_1(answer: Any, image_bytes: Any) -> Feedback:
    import base64
    import binascii

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
        key="08.1",
        title="A JSON request for /predict",
        prompt=(
            'The server\'s `POST /predict` accepts JSON `{"image": "<base64>", "top_k": k, '
            '"return_logits": false}`. Build the **body as a Python dict** asking for the **top 3** '
            "classes of the photo whose JPEG bytes are `jpeg`."
        ),
        checker=_check_07_1,
        context=("image_bytes",),
        call='exercises.check("08.1", answer, image_bytes=jpeg)',
        solution='import base64\n\nanswer = {"image": base64.b64encode(jpeg).decode("ascii"), "top_k": 3}',
    )
)


def _field(result: Any, name: str) -> float:
    if isinstance(result, Mapping):
        return float(result[name])
    if hasattr(result, "row") and callable(result.row):
        return float(result.row()[name])
    if hasattr(result, "index") and hasattr(result, "__getitem__"):  # pandas Series
        return float(result[name])
    return float(getattr(result, name))


def _check_07_2(answer: Any, result: Any) -> Feedback:
    got = as_number(answer, "the throughput")
    concurrency, p50 = _field(result, "concurrency"), _field(result, "p50_ms")
    expected = concurrency / (p50 / 1e3)
    measured = ""
    with contextlib.suppress(KeyError, AttributeError, TypeError, ValueError):
        measured = f" The load test measured {_field(result, 'req_per_s'):.0f} req/s."
    if is_close(got, expected, 0.05):
        return correct(
            f"Right: {concurrency:.0f} requests in flight, each taking ~{p50:.1f} ms, complete "
            f"~{expected:.0f} requests per second (Little's law).{measured}"
        )
    if is_close(got, 1e3 / p50, 0.05):
        raise Wrong(
            "That is the throughput of a single client.",
            f"{concurrency:.0f} requests are in flight at once: multiply by the concurrency.",
        )
    if is_close(got, concurrency / p50, 0.05):
        raise Wrong(
            "Check the units: p50 is in milliseconds.",
            "requests per *second*: divide by p50 / 1000.",
        )
    raise Wrong(
        f"{got:.1f} req/s is not what Little's law predicts.",
        "throughput = requests in flight / time per request.",
    )


register(
    Exercise(
        key="08.2",
        title="Little's law",
        prompt=(
            "A closed-loop load test keeps `concurrency` requests in flight; each takes about the "
            "median latency `p50_ms`. Without looking at its `req_per_s`, what **throughput "
            "(requests per second)** do you expect from the FastAPI load test `load_results[0]`? Answer "
            "with the number."
        ),
        checker=_check_07_2,
        context=("result",),
        call='exercises.check("08.2", answer, result=load_results[0])',
        solution="result = load_results[0]\n"
        "answer = result.concurrency / (result.p50_ms / 1000)\n"
        "# Little's law: L = lambda * W  ->  lambda = L / W. The measured req/s is close when the\n"
        "# client and server do not queue elsewhere.",
    )
)
