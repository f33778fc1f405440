"""Ray Serve speaks the same API as uvicorn: /predict and the KServe v2 protocol, with the same errors.

One test, one Ray instance (start-up takes 15-30 s on 2 cores): a deployment of the tiny ONNX
classifier with the v2 router built inside the replica (``kserve.router_factory``), then valid and
hostile requests over HTTP on 127.0.0.1, then shutdown — and no Ray process may be left behind.
"""

from __future__ import annotations

import io
import re

import httpx
import numpy as np
import pytest
from PIL import Image

from helpers.images import numpy_preprocess
from helpers.models.tiny import tiny_classifier_onnx
from helpers.runners import ort_runner
from helpers.serving import kserve

LABELS = [f"class {i}" for i in range(10)]
SIZE = 32
HOSTILE = {
    "top_k 1e400": b'{"image": "", "top_k": 1e400}',
    "top_k -1e400": b'{"image": "", "top_k": -1e400}',
    "top_k Infinity": b'{"image": "", "top_k": Infinity}',
    "5000-digit integer": b'{"image": "", "top_k": ' + b"9" * 5000 + b"}",
    "100,000-deep array": b"[" * 100_000 + b"]" * 100_000,
}


def _jpeg() -> bytes:
    rng = np.random.default_rng(3)
    buffer = io.BytesIO()
    Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _check_error(response: httpx.Response, status: int | None = None) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    if status is not None:
        assert response.status_code == status, response.text[:200]
    message = response.json()["error"]
    assert isinstance(message, str) and "\n" not in message and len(message) <= 300
    return message


def test_ray_serve_speaks_predict_and_v2_and_leaves_nothing_behind(tmp_path) -> None:
    pytest.importorskip("ray.serve")
    from helpers.serving.ray_serve import ray_cluster, ray_processes, ray_serve_app, start_ray_serve

    onnx_path = tiny_classifier_onnx(tmp_path / "toy.onnx")
    image = _jpeg()
    pixels = numpy_preprocess(Image.open(io.BytesIO(image)).convert("RGB"), size=SIZE,
                              resize=SIZE * 256 // 224)[None]
    want = ort_runner(onnx_path, threads=1)({"pixel_values": pixels})["logits"]

    with ray_cluster(num_cpus=2, temp_dir=tmp_path / "ray") as cluster:
        app = ray_serve_app(onnx_path, model_name="toy", labels=LABELS, input_size=SIZE,
                            num_replicas=1, routers=[kserve.router_factory("toy")])
        server = start_ray_serve(app, ready_timeout_s=180)
        with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
            # The suite's own API, answered by the replica's FastAPI app.
            served = client.post("/predict?logits=1", content=image, headers={"content-type": "image/jpeg"})
            np.testing.assert_allclose(np.asarray(served.json()["logits"], np.float32), want[0],
                                       rtol=1e-5, atol=1e-6)
            # KServe v2, from the router built inside the replica.
            assert client.get("/v2/health/ready").json() == {"ready": True}
            meta = client.get("/v2/models/toy").json()
            assert meta["inputs"] == [{"name": "pixel_values", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]
            got = kserve.infer(server.url, "toy", {"pixel_values": pixels})["logits"]
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
            # Bad requests: 4xx in each API's error shape.
            assert "unknown model" in _check_error(client.post("/v2/models/nope/infer", json={}), 404)
            wrong = kserve.encode_request({"pixel_values": pixels.astype(np.float64)})
            assert "expects FP32" in _check_error(client.post("/v2/models/toy/infer", json=wrong), 400)
            assert set(client.post("/v2/models/toy/infer", json=wrong).json()) == {"error"}
            for name, body in HOSTILE.items():
                for path in ("/predict", "/v2/models/toy/infer"):
                    response = client.post(path, content=body, headers={"content-type": "application/json"})
                    assert response.status_code == 400, (name, path, response.text[:200])
                    _check_error(response)
    assert cluster.leftover_processes == []
    assert ray_processes(cluster.temp_dir) == []
    assert not any(re.search(r"\x1b\[", line) for line in cluster.shutdown_messages)


def test_native_stderr_collects_what_bypasses_sys_stderr() -> None:
    import os

    from helpers.serving.ray_serve import native_stderr

    lines: list[str] = []
    with native_stderr(lines):
        os.write(2, b"\x1b[33mE1201 12:00:00.000000 1 core_worker.cc:1] from C++\x1b[0m\n")
    assert lines == ["E1201 12:00:00.000000 1 core_worker.cc:1] from C++"]
    os.write(2, b"")  # descriptor 2 is usable again
