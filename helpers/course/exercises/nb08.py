"""Exercises of notebook 08 (serving): write a FastAPI route around the notebook's session, and
Little's law on the load test; registered on import."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
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


def _check_08_1(answer: Any, photos: Sequence[bytes], expected: Sequence[str]) -> Feedback:
    from fastapi.testclient import TestClient

    if not callable(answer) or not hasattr(answer, "routes"):
        raise Wrong(f"Expected the FastAPI app (e.g. `top1_app`), got {type(answer).__name__}.",
                    "Create it with `FastAPI()`, add the route with `@top1_app.post(\"/top1\")`, and "
                    "set `answer = top1_app`.")
    paths = {getattr(route, "path", None) for route in answer.routes}
    if "/top1" not in paths:
        raise Wrong(f"The app has no `/top1` route (routes: {', '.join(sorted(p for p in paths if p))}).",
                    'Decorate the function with `@top1_app.post("/top1")`.')
    with TestClient(answer, raise_server_exceptions=False) as client:
        for index, (jpeg, label) in enumerate(zip(photos, expected, strict=True)):
            response = client.post("/top1", content=jpeg, headers={"content-type": "image/jpeg"})
            if response.status_code != 200:
                raise Wrong(f"POST /top1 with photo {index} answered {response.status_code}: "
                            f"{response.text[:150]}",
                            "Read the raw body with `await request.body()` (the route takes a "
                            "`request: Request`), not a JSON model.")
            try:
                got = response.json().get("label")
            except (ValueError, AttributeError):
                raise Wrong(f"The answer is not a JSON object: {response.text[:100]!r}.",
                            'Return a dict such as {"label": ...}.') from None
            if got != label:
                raise Wrong(f"Photo {index}: the route says {got!r}, the notebook's session says {label!r}.",
                            "Preprocess with the notebook's `to_pixels`, add the batch axis "
                            "(`pixels[None]`) and take `argmax` of the logits.")
        bad = client.post("/top1", content=b"this is not an image", headers={"content-type": "image/jpeg"})
    if not 400 <= bad.status_code < 500:
        raise Wrong(f"A body that is not an image got {bad.status_code}; a client's mistake is a 4xx.",
                    "Catch `images.ImageError` and `raise HTTPException(400, str(error))`.")
    return correct(f"Right: /top1 answers the {len(photos)} photos exactly as the local session does, "
                   f"and refuses a body that is not an image with {bad.status_code}.")


register(
    Exercise(
        key="08.1",
        title="A route of your own",
        prompt=(
            "Write a FastAPI app `top1_app` with one route, `POST /top1`, that takes the **raw image "
            "bytes** as the request body (a `request: Request` argument and `await request.body()`), "
            "preprocesses them with the notebook's `to_pixels`, runs the notebook's ONNX Runtime "
            '`session` and returns `{"label": <the best class>}` (labels: `loaded.labels`). A body '
            "that is not an image must get a **4xx** with a message. Set `answer = top1_app`; the "
            "check calls it with photos and compares with the local answers."
        ),
        checker=_check_08_1,
        context=("photos", "expected"),
        call='exercises.check("08.1", answer, photos=jpegs[:8], expected=local_top1[:8])',
        writes_code=True,
        solution=(
            "from fastapi import FastAPI, HTTPException, Request\n\n"
            "top1_app = FastAPI()\n\n\n"
            '@top1_app.post("/top1")\n'
            "async def top1(request: Request) -> dict:\n"
            "    try:\n"
            "        pixels = to_pixels(await request.body())\n"
            "    except images.ImageError as error:\n"
            "        raise HTTPException(400, f\"cannot decode the image: {error}\") from None\n"
            "    # (an async route runs on the event loop: fine for a few ms; the lesson's route is a\n"
            "    # plain def, which FastAPI runs in its thread pool)\n"
            '    logits = session.run(["logits"], {"pixel_values": pixels[None]})[0][0]\n'
            '    return {"label": loaded.labels[int(logits.argmax())]}\n\n\n'
            "answer = top1_app"
        ),
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


def _check_08_2(answer: Any, result: Any) -> Feedback:
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
        raise Wrong("Check the units: p50 is in milliseconds.", "requests per *second*: divide by p50 / 1000.")
    raise Wrong(f"{got:.1f} req/s is not what Little's law predicts.",
                "throughput = requests in flight / time per request.")


register(
    Exercise(
        key="08.2",
        title="Little's law",
        prompt=(
            "A closed-loop load test keeps `concurrency` requests in flight; each takes about the "
            "median latency `p50_ms`. Compute, in code from the result's `concurrency` and `p50_ms` "
            "(not its `req_per_s`), the **throughput (requests per second)** to expect from the "
            "FastAPI load test `load_results[0]`."
        ),
        checker=_check_08_2,
        context=("result",),
        call='exercises.check("08.2", answer, result=load_results[0])',
        solution="result = load_results[0]\n"
        "answer = result.concurrency / (result.p50_ms / 1000)\n"
        "# Little's law: L = lambda * W  ->  lambda = L / W. The measured req/s is close when the\n"
        "# client and server do not queue elsewhere.",
    )
)
