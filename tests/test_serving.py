"""helpers.serving and helpers.loadtest: FastAPI validation, output equality, a real uvicorn server.

The validation cases run in-process through ``fastapi.testclient`` (no socket); one test starts
and stops a real uvicorn server on 127.0.0.1 and load-tests it briefly. The model is a tiny ONNX
classifier (``tiny_classifier_onnx``: microseconds per call) with real ONNX Runtime.
Ray Serve and Ray Data are exercised by notebook 07 (Ray's start-up takes ~20 s).
"""

from __future__ import annotations

import base64
import io
import socket

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from helpers.images import numpy_preprocess
from helpers.loadtest import load_test, plot_load_tests, results_table
from helpers.ray_serving import ray_processes, ray_temp_dir
from helpers.runners import ort_runner
from helpers.serving import ImageClassifier, RequestError, create_app, serve_in_background
from helpers.tiny_models import tiny_classifier_onnx

LABELS = [f"class {i}" for i in range(10)]
SIZE = 32


def _jpeg(color: tuple[int, int, int] = (200, 30, 40), size: tuple[int, int] = (48, 40)) -> bytes:
    rng = np.random.default_rng(sum(color))
    array = (rng.random((size[1], size[0], 3)) * 60 + np.array(color) * 0.7).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory):
    return tiny_classifier_onnx(tmp_path_factory.mktemp("serving") / "toy.onnx")


@pytest.fixture(scope="module")
def classifier(onnx_path) -> ImageClassifier:
    return ImageClassifier.from_onnx(
        onnx_path, model_name="toy", labels=LABELS, input_size=SIZE, intra_op_threads=1,
        max_bytes=200_000,
    )


@pytest.fixture(scope="module")
def client(classifier: ImageClassifier):
    with TestClient(create_app(classifier)) as test_client:
        yield test_client


def _local_logits(onnx_path, image_bytes: bytes) -> np.ndarray:
    """The plain local computation the server must reproduce."""
    runner = ort_runner(onnx_path, intra_op_threads=1)
    pixels = numpy_preprocess(Image.open(io.BytesIO(image_bytes)).convert("RGB"), size=SIZE,
                              resize=SIZE * 256 // 224)
    return runner({"pixel_values": pixels[None]})["logits"][0]


def test_health_and_metadata(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    meta = client.get("/metadata").json()
    assert meta["model"] == "toy"
    assert meta["classes"] == 10
    assert meta["input"]["name"] == "pixel_values"
    assert meta["runtime"]["providers"] == ["CPUExecutionProvider"]
    assert "image/jpeg" in meta["limits"]["content_types"]


def test_predict_raw_bytes_equals_local(client: TestClient, onnx_path) -> None:
    image = _jpeg()
    response = client.post("/predict?top_k=3&logits=true", content=image,
                           headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    body = response.json()
    local = _local_logits(onnx_path, image)
    np.testing.assert_array_equal(np.asarray(body["logits"], dtype=np.float32), local)
    assert [p["label"] for p in body["predictions"]] == [LABELS[i] for i in np.argsort(-local)[:3]]
    probabilities = [p["probability"] for p in body["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-9


def test_predict_json_base64_equals_raw(client: TestClient) -> None:
    image = _jpeg((20, 180, 90))
    raw = client.post("/predict", content=image, headers={"content-type": "image/jpeg"}).json()
    as_json = client.post("/predict", json={"image": base64.b64encode(image).decode()}).json()
    assert raw == as_json
    assert len(raw["predictions"]) == 5 and "logits" not in raw


def test_one_session_shared(client: TestClient, classifier: ImageClassifier) -> None:
    session = classifier.runner.session
    before = classifier.requests_served
    for _ in range(3):
        client.post("/predict", content=_jpeg(), headers={"content-type": "image/jpeg"})
    assert classifier.runner.session is session
    assert classifier.requests_served == before + 3


BAD_REQUESTS = [
    ("wrong content type", {"content": b"hello", "headers": {"content-type": "text/plain"}}, 415),
    ("no content type", {"content": b"\xff\xd8\xff"}, 415),
    ("undecodable image", {"content": b"not a jpeg at all", "headers": {"content-type": "image/jpeg"}}, 400),
    ("truncated image", {"content": _jpeg()[:200], "headers": {"content-type": "image/jpeg"}}, 400),
    ("empty body", {"content": b"", "headers": {"content-type": "image/png"}}, 400),
    ("too large", {"content": b"\x00" * 250_000, "headers": {"content-type": "image/jpeg"}}, 413),
    ("invalid json", {"content": b"{image:", "headers": {"content-type": "application/json"}}, 400),
    ("json list", {"json": [1, 2, 3]}, 422),
    ("json missing image", {"json": {"top_k": 3}}, 422),
    ("json unknown field", {"json": {"image": "", "pixels": [1]}}, 422),
    ("json image not a string", {"json": {"image": [1, 2]}}, 422),
    ("json bad base64", {"json": {"image": "***"}}, 422),
    ("json top_k zero", {"json": {"image": base64.b64encode(_jpeg()).decode(), "top_k": 0}}, 422),
    ("json top_k too big", {"json": {"image": base64.b64encode(_jpeg()).decode(), "top_k": 11}}, 422),
    ("json return_logits not bool", {"json": {"image": base64.b64encode(_jpeg()).decode(), "return_logits": "yes"}}, 422),
]


@pytest.mark.parametrize(("case", "kwargs", "status"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_4xx_with_message(client: TestClient, case: str, kwargs: dict, status: int) -> None:
    response = client.post("/predict", **kwargs)
    assert response.status_code == status, (case, response.text)
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["error"], str) and len(body["error"]) > 10
    assert "Traceback" not in response.text


def test_bad_query_parameters(client: TestClient) -> None:
    image = _jpeg()
    for query in ("top_k=abc", "top_k=0", "logits=maybe"):
        response = client.post(f"/predict?{query}", content=image, headers={"content-type": "image/jpeg"})
        assert response.status_code == 422, (query, response.text)


def test_wrong_method_and_path(client: TestClient) -> None:
    assert client.get("/predict").status_code == 405
    assert client.post("/health").status_code == 405
    response = client.get("/nowhere")
    assert response.status_code == 404 and response.json()["error"] == "Not Found"


def test_declared_length_refused_before_reading(classifier: ImageClassifier) -> None:
    with pytest.raises(RequestError) as info:
        classifier.check_length("10000000")
    assert info.value.status == 413
    with pytest.raises(RequestError) as info:
        classifier.check_length("ten")
    assert info.value.status == 400
    classifier.check_length(None)


class _BrokenRunner:
    """A runner that fails inside inference, to check the 500 path."""

    name = "broken"

    def __init__(self, real) -> None:
        self.inputs, self.output_names = real.inputs, real.output_names

    def run(self, inputs):
        raise RuntimeError("secret internal detail")

    def describe(self):
        return {}

    def signature(self):
        return "pixel_values: float32[batch, 3, ?, ?]"


def test_unexpected_error_is_500_without_traceback(onnx_path) -> None:
    broken = ImageClassifier(_BrokenRunner(ort_runner(onnx_path, intra_op_threads=1)),
                             labels=LABELS, input_size=SIZE)
    with TestClient(create_app(broken), raise_server_exceptions=False) as test_client:
        response = test_client.post("/predict", content=_jpeg(), headers={"content-type": "image/jpeg"})
    assert response.status_code == 500
    assert "secret internal detail" not in response.text and "Traceback" not in response.text
    assert "internal server error" in response.json()["error"]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_real_uvicorn_start_stop_and_load_test(classifier: ImageClassifier, onnx_path) -> None:
    image = _jpeg((90, 90, 200))
    with serve_in_background(create_app(classifier)) as server:
        assert server.host == "127.0.0.1" and _port_open(server.port)
        assert httpx.get(f"{server.url}/health", timeout=5).json() == {"status": "ok"}
        body = httpx.post(f"{server.url}/predict?logits=1", content=image,
                          headers={"content-type": "image/jpeg"}, timeout=5).json()
        np.testing.assert_array_equal(np.asarray(body["logits"], np.float32),
                                      _local_logits(onnx_path, image))
        isolated = load_test(f"{server.url}/predict", image, requests=40, concurrency=4,
                             time_limit_s=30, label="isolated")
        threaded = load_test(f"{server.url}/predict", image, requests=20, concurrency=2,
                             time_limit_s=30, isolate=False, label="thread")
        rejected = load_test(f"{server.url}/predict", b"x", content_type="text/plain",
                             requests=10, concurrency=2, isolate=False, warmup=0, label="415")
        expected = load_test(f"{server.url}/predict", b"x", content_type="text/plain",
                             requests=10, concurrency=2, isolate=False, warmup=0,
                             expect_status=[415], label="415 expected")
    assert server.stopped and not _port_open(server.port)
    for result in (isolated, threaded):
        assert result.errors == 0 and result.ok == result.requests_planned, result.error_examples
        assert 0 < result.p50_ms <= result.p99_ms
        assert result.req_per_s > 0
    assert rejected.errors == 10 and rejected.ok == 0 and "415" in rejected.error_examples[0]
    assert expected.errors == 0 and expected.ok == 10
    table = results_table([isolated, threaded])
    assert list(table["server"]) == ["isolated", "thread"]
    assert {"p50_ms", "p99_ms", "req_per_s", "errors"} <= set(table.columns)
    assert plot_load_tests([isolated, threaded]) is not None


def test_load_test_is_bounded_by_time_and_counts_refused_connections() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = load_test(f"http://127.0.0.1:{port}/predict", b"x", requests=10_000, concurrency=2,
                       time_limit_s=0.5, timeout_s=1, warmup=0, isolate=False)
    assert result.errors == result.requests_sent > 0
    assert result.stopped_by_time_limit and result.requests_sent < 10_000
    with pytest.raises(ValueError):
        load_test("http://127.0.0.1:1/", requests=0)


def test_ray_temp_dir_respects_socket_path_limit(tmp_path) -> None:
    folder, reason = ray_temp_dir(tmp_path / "ray")
    assert folder == (tmp_path / "ray").resolve() or "Unix sockets" in reason
    deep = tmp_path.joinpath(*(["a_long_folder_name"] * 6))
    folder, reason = ray_temp_dir(deep)
    assert folder != deep and "107" in reason
    assert len(str(folder)) < 60


def test_ray_processes_lists_nothing_for_an_unused_temp_dir(tmp_path) -> None:
    assert ray_processes(tmp_path) == []


def test_server_preprocessing_follows_the_models_resize(onnx_path) -> None:
    """ImageClassifier(resize=232) preprocesses exactly as classify(..., resize=232)."""
    from helpers.images import load_image, preprocess_batch

    server = ImageClassifier.from_onnx(onnx_path, labels=LABELS, input_size=SIZE, resize=SIZE + 4,
                                       intra_op_threads=1)
    image = _jpeg()
    parsed = server.parse("image/jpeg", image)
    expected = preprocess_batch([load_image(image)], backend="numpy", size=SIZE, resize=SIZE + 4)[0]
    np.testing.assert_array_equal(parsed.pixels, expected)
    assert server.metadata()["preprocessing"].startswith(f"resize {SIZE + 4}, centre crop {SIZE}")
