"""helpers.serving.kserve: the KServe v2 / Open Inference Protocol router, checked with clients nobody here wrote."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from helpers.models.tiny import tiny_classifier_onnx
from helpers.runners import Runner, TensorSpec, ort_runner
from helpers.serving import ImageClassifier, create_app, kserve, serve_in_background

CLASSES = 5


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory):
    return tiny_classifier_onnx(tmp_path_factory.mktemp("kserve") / "toy.onnx", num_classes=CLASSES)


@pytest.fixture(scope="module")
def models(onnx_path) -> dict[str, Runner]:
    found: dict[str, Runner] = {"toy": ort_runner(onnx_path, threads=1)}
    try:
        from helpers.openvino_tools import openvino_throughput_runner
    except ImportError:  # pragma: no cover - openvino is in every environment
        return found
    found["toy-ov"] = openvino_throughput_runner(onnx_path, precision="f32")
    return found


@pytest.fixture(scope="module")
def client(models) -> TestClient:
    app = FastAPI()
    app.include_router(kserve.router(models, max_body_bytes=1_000_000, max_elements=100_000))
    return TestClient(app)


@pytest.fixture(scope="module")
def server(models):
    app = FastAPI()
    app.include_router(kserve.router(models))
    with serve_in_background(app) as running:
        yield running


def pixels(seed: int = 0, batch: int = 2, size: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, 3, size, size), dtype=np.float32)


def local(models, x: np.ndarray) -> np.ndarray:
    return models["toy"]({"pixel_values": x})["logits"]


def body(x: Any, **tensor: Any) -> dict[str, Any]:
    arr = np.asarray(x)
    entry = {"name": "pixel_values", "shape": list(arr.shape), "datatype": "FP32",
             "data": arr.reshape(-1).tolist()}
    entry.update(tensor)
    return {"inputs": [entry]}


def test_health_and_metadata(client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    server_meta = client.get("/v2").json()
    assert server_meta["name"] and "binary_tensor_data" in server_meta["extensions"]
    for name, platform in (("toy", "onnxruntime"), ("toy-ov", "openvino")):
        meta = client.get(f"/v2/models/{name}").json()
        assert meta == {
            "name": name, "versions": ["1"], "platform": platform,
            "inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": [-1, 3, -1, -1]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, CLASSES]}],
        }
        assert client.get(f"/v2/models/{name}/versions/1").json() == meta
        assert client.get(f"/v2/models/{name}/ready").json() == {"name": name, "ready": True}
    for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/toy/versions/2",
                 "/v2/models/toy/versions/2/ready"):
        response = client.get(path)
        assert response.status_code == 404 and set(response.json()) == {"error"}, path


def test_infer_flat_nested_and_selected_outputs(client, models) -> None:
    x = pixels()
    want = local(models, x)
    for name in ("toy", "toy-ov"):
        flat = client.post(f"/v2/models/{name}/infer", json={**body(x), "id": "req-1"})
        assert flat.status_code == 200, flat.text
        answer = flat.json()
        assert answer["model_name"] == name and answer["id"] == "req-1"
        out = answer["outputs"][0]
        assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [2, CLASSES]
        np.testing.assert_allclose(np.asarray(out["data"], np.float32).reshape(2, CLASSES), want,
                                   rtol=1e-5, atol=1e-6)
    nested = client.post("/v2/models/toy/versions/1/infer",
                         json={**body(x, data=x.tolist()), "outputs": [{"name": "logits"}]})
    assert nested.status_code == 200, nested.text
    np.testing.assert_array_equal(kserve.decode_response(nested.json())["logits"], want)


def test_binary_tensor_extension(client, models) -> None:
    x = pixels(3)
    header = json.dumps({"inputs": [{"name": "pixel_values", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}).encode()
    response = client.post("/v2/models/toy/infer", content=header + x.astype("<f4").tobytes(),
                           headers={"Inference-Header-Content-Length": str(len(header)),
                                    "content-type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    size = int(response.headers["inference-header-content-length"])
    meta = json.loads(response.content[:size])
    out = meta["outputs"][0]
    assert out["parameters"]["binary_data_size"] == 2 * CLASSES * 4 and "data" not in out
    got = np.frombuffer(response.content[size:], dtype="<f4").reshape(out["shape"])
    np.testing.assert_array_equal(got, local(models, x))


def _deep(depth: int) -> bytes:
    return (b'{"inputs":[{"name":"pixel_values","shape":[1,3,1,1],"datatype":"FP32","data":'
            + b"[" * depth + b"1" + b"]" * depth + b"}]}")


X = pixels(1, batch=1, size=2)
GOOD = body(X)
BAD_REQUESTS = [
    # (case, path, request kwargs, status, fragment of the error message)
    ("unknown model", "nope", {"json": GOOD}, 404, "unknown model 'nope'"),
    ("unknown version", "toy/versions/7", {"json": GOOD}, 404, "no version '7'"),
    ("invalid JSON", "toy", {"content": b'{"inputs": ['}, 400, "invalid JSON"),
    ("NaN literal", "toy", {"content": json.dumps(GOOD).replace("[0.", "[NaN, 0.", 1).encode()}, 400, "NaN"),
    ("Infinity literal", "toy", {"content": json.dumps(GOOD).replace("[0.", "[Infinity, 0.", 1).encode()},
     400, "Infinity"),
    ("number that overflows to inf", "toy", {"content": json.dumps(GOOD).replace("[0.", "[1e999, 0.", 1).encode()},
     400, "finite"),
    ("not UTF-8", "toy", {"content": b'{"inputs": "\xff"}'}, 400, "UTF-8"),
    ("body is a list", "toy", {"json": [GOOD]}, 400, "invalid inference request"),
    ("no inputs", "toy", {"json": {"inputs": []}}, 400, "inputs"),
    ("unknown top-level field", "toy", {"json": {**GOOD, "input": []}}, 400, "Extra inputs"),
    ("wrong datatype", "toy", {"json": body(X, datatype="FP64")}, 400, "FP64 but the model expects FP32"),
    ("unsupported datatype", "toy", {"json": body(X, datatype="BYTES")}, 400, "not supported"),
    ("wrong input name", "toy", {"json": body(X, name="image")}, 400, "unknown input(s) ['image']"),
    ("duplicate input", "toy", {"json": {"inputs": GOOD["inputs"] * 2}}, 400, "more than once"),
    ("wrong rank", "toy", {"json": body(X, shape=[12])}, 400, "rank 1"),
    ("wrong fixed dim", "toy", {"json": body(np.zeros((1, 4, 1, 1), np.float32))}, 400, "axis 1"),
    ("data count != shape", "toy", {"json": body(X, shape=[1, 3, 2, 3])}, 400, "needs 18 values, data has 12"),
    ("nested shape != shape", "toy", {"json": body(X, data=X.reshape(1, 3, 4, 1).tolist())}, 400, "nested data"),
    ("ragged nested data", "toy", {"json": body(X, shape=[1, 3, 1, 2], data=[[[[1.0, 2.0]], [[1.0]], [[1.0, 2.0]]]])},
     400, "flat or nested list"),
    ("strings as data", "toy", {"json": body(X, data=["0.5"] * 12)}, 400, "needs numbers"),
    ("negative dim", "toy", {"json": body(X, shape=[1, 3, -2, 2])}, 400, "greater than or equal to 0"),
    ("dim as string", "toy", {"json": body(X, shape=[1, "3", 2, 2])}, 400, "valid integer"),
    ("no data", "toy", {"json": {"inputs": [{k: v for k, v in GOOD["inputs"][0].items() if k != "data"}]}},
     400, "has no data"),
    ("too many elements", "toy", {"json": body(X, shape=[1000, 3, 100, 100])}, 413, "over the limit"),
    ("deeply nested payload", "toy", {"content": _deep(100_000)}, 400, "nested 100000 levels deep"),
    ("deeply nested parameters", "toy", {"content": json.dumps({**GOOD, "parameters": {"p": "X"}}).replace(
        '"X"', "[" * 100_000 + "]" * 100_000).encode()}, 400, "levels deep (at most 64)"),
    ("5000-digit integer in data", "toy", {"content": json.dumps(GOOD).replace("[0.", "[" + "9" * 5000 + ", 0.", 1)
                                           .encode()}, 400, "5000 digits is too large"),
    ("5000-digit dimension", "toy", {"content": json.dumps(GOOD).replace('"shape": [1', '"shape": [' + "9" * 5000, 1)
                                     .encode()}, 400, "5000 digits is too large"),
    ("number that overflows to -inf", "toy", {"content": json.dumps(GOOD).replace("[0.", "[-1e400, 0.", 1).encode()},
     400, "-1e400 is out of range"),
    ("nesting deeper than the shape", "toy", {"content": _deep(50)}, 400, "nested 50 levels deep"),
    ("huge body", "toy", {"content": b" " * 1_000_001}, 413, "exceeds the limit"),
    ("unknown output", "toy", {"json": {**GOOD, "outputs": [{"name": "probs"}]}}, 400, "unknown output(s) ['probs']"),
    ("classification extension", "toy",
     {"json": {**GOOD, "outputs": [{"name": "logits", "parameters": {"classification": 3}}]}}, 400, "classification"),
    ("wrong content type", "toy", {"content": json.dumps(GOOD).encode(), "headers": {"content-type": "text/plain"}},
     415, "application/json"),
    ("binary header length past the body", "toy",
     {"content": b"{}", "headers": {"Inference-Header-Content-Length": "99"}}, 400, "does not fit"),
    ("binary size mismatch", "toy",
     {"content": json.dumps(body(X, data=None, parameters={"binary_data_size": 8})).encode() + b"\0" * 8,
      "headers": {"Inference-Header-Content-Length": str(len(json.dumps(
          body(X, data=None, parameters={"binary_data_size": 8}))))}},
     400, "needs 48"),
]


@pytest.mark.parametrize(("case", "path", "kwargs", "status", "fragment"), BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_4xx_with_the_protocol_error_shape(client, case, path, kwargs, status, fragment) -> None:
    response = client.post(f"/v2/models/{path}/infer", **kwargs)
    assert response.status_code == status, (case, response.text)
    answer = response.json()
    assert set(answer) == {"error"} and isinstance(answer["error"], str) and answer["error"]
    assert fragment in answer["error"], answer["error"]
    assert "Traceback" not in answer["error"]
    assert "\n" not in answer["error"] and len(answer["error"]) <= 300, answer["error"]
    assert "set_int_max_str_digits" not in answer["error"]  # no advice about Python's internals


def test_readiness_follows_the_mapping(onnx_path) -> None:
    served: dict[str, Runner] = {}
    app = FastAPI()
    app.include_router(kserve.router(served))
    with TestClient(app) as tc:
        assert tc.get("/v2/health/ready").status_code == 503
        assert tc.get("/v2/models/toy/ready").status_code == 404
        served["toy"] = ort_runner(onnx_path)  # loaded later, e.g. in a startup hook
        assert tc.get("/v2/health/ready").json() == {"ready": True}
        assert tc.post("/v2/models/toy/infer", json=GOOD).status_code == 200


class _Opaque(Runner):
    """A runner that reports no output dtypes and fails on demand."""

    name, runtime = "opaque", "custom"
    inputs = [TensorSpec("x", (None,), "int64")]
    output_names = ["y", "z"]

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["x"]
        if (x < 0).any():
            raise RuntimeError("negative input /secret/path")
        return {"y": x * 2, "z": (x > 1)}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "runtime": self.runtime}


def test_opaque_runner_needs_output_specs_and_model_faults_are_500() -> None:
    with pytest.raises(ValueError, match="output_specs"):
        kserve.router({"m": _Opaque()})
    specs = {"m": [TensorSpec("y", (None,), "int64"), TensorSpec("z", (None,), "bool")]}
    app = FastAPI()
    app.include_router(kserve.router({"m": _Opaque()}, output_specs=specs))
    with TestClient(app) as tc:
        assert [o["datatype"] for o in tc.get("/v2/models/m").json()["outputs"]] == ["INT64", "BOOL"]
        tensor = {"name": "x", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]}
        ok = tc.post("/v2/models/m/infer", json={"inputs": [tensor], "outputs": [{"name": "z"}]}).json()
        assert ok["outputs"] == [{"name": "z", "datatype": "BOOL", "shape": [3], "data": [False, True, True]}]
        for data, fragment in (([1.5, 2, 3], "needs integers"), ([1, 2, 2**63], "out of range"),
                               ([1, 2, 2**70], "out of range"), ([1, 2, 10**40], "41 digits is too large"),
                               ([True, False, True], "got booleans")):
            bad = tc.post("/v2/models/m/infer", json={"inputs": [{**tensor, "data": data}]})
            assert bad.status_code == 400 and fragment in bad.json()["error"], bad.text
        fault = tc.post("/v2/models/m/infer", json={"inputs": [{**tensor, "data": [1, -1, 2]}]})
        assert fault.status_code == 500 and set(fault.json()) == {"error"}
        assert "RuntimeError" in fault.json()["error"] and "/secret/path" not in fault.json()["error"]


def test_router_joins_the_suites_serving_app(onnx_path) -> None:
    classifier = ImageClassifier.from_onnx(onnx_path, model_name="toy", input_size=8, threads=1)
    app = create_app(classifier)
    app.include_router(kserve.router({"toy": ort_runner(onnx_path, threads=1)}))
    with TestClient(app) as tc:
        assert tc.get("/health").json() == {"status": "ok"}
        assert tc.get("/v2/health/ready").json() == {"ready": True}
        assert tc.post("/v2/models/toy/infer", json=GOOD).status_code == 200
        assert tc.post("/v2/models/toy/infer", json=body(X, datatype="INT8")).status_code == 400
        assert "/v2/models/{name}/infer" in tc.get("/openapi.json").json()["paths"]


def test_plain_httpx_client_over_a_real_server(server, models) -> None:
    assert kserve.server_ready(server.url, timeout_s=10) == (True, "ready")
    assert kserve.model_metadata(server.url, "toy")["outputs"][0]["shape"] == [-1, CLASSES]
    x = pixels(7, batch=3, size=5)
    with httpx.Client(trust_env=False) as http:
        got = kserve.infer(server.url, "toy", {"pixel_values": x}, client=http)["logits"]
        with pytest.raises(kserve.V2ClientError) as info:
            kserve.infer(server.url, "missing", {"pixel_values": x}, client=http)
    assert info.value.status == 404
    np.testing.assert_array_equal(got, local(models, x))


def test_concurrent_requests_are_all_answered_correctly(server, models) -> None:
    inputs = [pixels(seed, batch=1, size=6) for seed in range(24)]
    expected = [local(models, x) for x in inputs]
    answers: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            with httpx.Client(trust_env=False, timeout=30) as http:
                for index in range(offset, len(inputs), 6):
                    answers[index] = kserve.infer(server.url, "toy-ov", {"pixel_values": inputs[index]},
                                                  client=http)["logits"]
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(answers) == list(range(len(inputs)))
    for index, want in enumerate(expected):
        np.testing.assert_allclose(answers[index], want, rtol=1e-5, atol=1e-6)


def test_tritonclient_http_talks_to_the_router(server, models) -> None:
    http = pytest.importorskip("tritonclient.http", exc_type=(ImportError, RuntimeError))
    from tritonclient.utils import InferenceServerException

    triton = http.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        assert triton.is_server_live() and triton.is_server_ready() and triton.is_model_ready("toy-ov")
        meta = triton.get_model_metadata("toy-ov")
        assert meta["inputs"][0] == {"name": "pixel_values", "datatype": "FP32", "shape": [-1, 3, -1, -1]}
        x = pixels(11, batch=2, size=7)
        want = local(models, x)
        for binary in (True, False):  # tritonclient's default (binary tensors) and plain JSON
            tensor = http.InferInput("pixel_values", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            result = triton.infer("toy-ov", [tensor], request_id="abc",
                                  outputs=[http.InferRequestedOutput("logits", binary_data=binary)])
            np.testing.assert_allclose(result.as_numpy("logits"), want, rtol=1e-5, atol=1e-6)
            assert result.get_response()["id"] == "abc"
        tensor = http.InferInput("pixel_values", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        default = triton.infer("toy", [tensor])  # no outputs named: all of them, binary
        np.testing.assert_array_equal(default.as_numpy("logits"), want)
        wrong = http.InferInput("pixel_values", list(x.shape), "FP64")
        wrong.set_data_from_numpy(x.astype(np.float64))
        with pytest.raises(InferenceServerException) as info:
            triton.infer("toy", [wrong])
        assert info.value.status() == "400" and "expects FP32" in info.value.message()
        with pytest.raises(InferenceServerException) as info:
            triton.get_model_metadata("nope")
        assert info.value.status() == "404"
    finally:
        triton.close()


def test_encode_request_matches_the_spec() -> None:
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    encoded = kserve.encode_request({"ids": x}, outputs=["y"], request_id="1")
    assert encoded == {"inputs": [{"name": "ids", "shape": [2, 3], "datatype": "INT32", "data": [0, 1, 2, 3, 4, 5]}],
                       "outputs": [{"name": "y"}], "id": "1"}
    assert kserve.datatype_of(np.float16) == "FP16"
    with pytest.raises(ValueError, match="no v2 datatype"):
        kserve.datatype_of(np.complex64)
    assert struct.calcsize("<f") == 4  # the binary extension is little-endian float32 on the wire


def test_a_slow_body_gets_408_in_the_protocol_error_shape(models) -> None:
    import socket
    import time

    app = FastAPI()
    app.include_router(kserve.router(models, body_timeout_s=1.0))
    with serve_in_background(app) as running, socket.create_connection(
            ("127.0.0.1", running.port), timeout=5) as sock:
        sock.sendall(b"POST /v2/models/toy/infer HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{")
        t0, answer = time.monotonic(), b""
        sock.settimeout(0.25)
        while time.monotonic() - t0 < 5 and not answer:
            try:
                sock.sendall(b" ")
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower(), answer[:200]
    assert set(json.loads(payload)) == {"error"} and time.monotonic() - t0 < 4


# ------------------------------------------------------------------ issue 29.2: the client's tensors
class _Spy(Runner):
    """Wraps a runner and counts the calls that reach it; ``fault`` makes every output NaN."""

    def __init__(self, inner: Runner, fault: bool = False) -> None:
        self.inner, self.fault, self.calls = inner, fault, 0
        self.name, self.runtime = inner.name, inner.runtime
        self.inputs, self.output_names = inner.inputs, inner.output_names
        self.session = getattr(inner, "session", None)

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        out = self.inner(inputs)
        return {k: np.full_like(v, np.nan) for k, v in out.items()} if self.fault else out

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


def test_a_zero_size_dimension_is_a_400_before_inference(models) -> None:
    """Issue 29.2: shape [1, 3, 0, 0] with data [] used to reach ONNX Runtime: 500 "inference failed"."""
    spy = _Spy(models["toy"])
    app = FastAPI()
    app.include_router(kserve.router({"toy": spy}))
    empty = {"name": "pixel_values", "shape": [1, 3, 0, 0], "datatype": "FP32"}
    header = json.dumps({"inputs": [{**empty, "parameters": {"binary_data_size": 0}}]}).encode()
    with TestClient(app, raise_server_exceptions=False) as tc:
        for response in (tc.post("/v2/models/toy/infer", json={"inputs": [{**empty, "data": []}]}),
                         tc.post("/v2/models/toy/infer", json={"inputs": [{**empty, "shape": [0, 3, 4, 4],
                                                                           "data": []}]}),
                         tc.post("/v2/models/toy/infer", content=header,
                                 headers={"Inference-Header-Content-Length": str(len(header))})):
            assert response.status_code == 400, response.text
            assert "zero-size" in response.json()["error"] and "pixel_values" in response.json()["error"]
    assert spy.calls == 0


def test_non_finite_outputs_from_finite_inputs_are_the_clients_and_model_faults_stay_500(models) -> None:
    """Issue 29.2: finite FP32 values near the maximum (3e38) overflow inside the model: a 4xx
    naming the cause, not 500 "output contains NaN or infinity". A model that gives NaN for any
    input is the server's fault: still 500."""
    huge = np.full((1, 3, 4, 4), 3e38, np.float32)
    assert np.isfinite(huge).all() and not np.isfinite(local(models, huge)).all()
    app = FastAPI()
    app.include_router(kserve.router({"toy": models["toy"], "broken": _Spy(models["toy"], fault=True)}))
    with TestClient(app, raise_server_exceptions=False) as tc:
        response = tc.post("/v2/models/toy/infer", json=body(huge))
        assert response.status_code == 422, response.text
        message = response.json()["error"]
        assert "logits" in message and "pixel_values" in message and "3e+38" in message, message
        assert tc.post("/v2/models/toy/infer", json=body(pixels())).status_code == 200
        fault = tc.post("/v2/models/broken/infer", json=body(pixels()))
        assert fault.status_code == 500 and "NaN" in fault.json()["error"], fault.text


# ------------------------------------------------------------------ issue 29.3: memory of JSON bodies
def _json_body(x: np.ndarray, shape: list[int] | None = None, tail: str = "") -> bytes:
    """A v2 request with ``x`` as flat JSON data (``tail`` is appended to the numbers, e.g. ", NaN")."""
    numbers = json.dumps(x.reshape(-1).tolist())[:-1] + tail + "]"
    return (b'{"inputs": [{"name": "pixel_values", "shape": ' + json.dumps(shape or list(x.shape)).encode()
            + b', "datatype": "FP32", "data": ' + numbers.encode() + b"}]}")


def _traced_peak(work: Any) -> tuple[Any, int]:
    import tracemalloc

    tracemalloc.start()
    try:
        try:
            result = work()
        except Exception as error:  # noqa: BLE001 - returned for the caller to check
            result = error
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_v2_json_is_checked_before_parsing_and_parsed_into_a_typed_array(models) -> None:
    """Issue 29.3: the whole body used to become Python lists (JSON → pydantic → np.asarray, ~7x
    its size here) before the element limit was checked. The declared shape is checked first and
    the numbers go straight into a float32 array."""
    x = np.round(np.random.default_rng(5).random((1, 3, 400, 400)), 2)  # short numbers: 0.81, ...
    raw = _json_body(x)
    headers = {"content-type": "application/json"}
    (parsed, arrays, _), peak = _traced_peak(lambda: kserve._decode_request(headers, raw, models["toy"], 1 << 22))
    np.testing.assert_array_equal(arrays["pixel_values"], x.astype(np.float32))
    assert arrays["pixel_values"].dtype == np.float32
    report = f"body {len(raw) / 2**20:.1f} MiB, peak traced {peak / 2**20:.1f} MiB"
    assert peak < 1.5 * len(raw), report  # the float32 array (4 B per ~7-byte number) and chunks
    over = _json_body(x, shape=[64, 3, 400, 400])  # declares 30.7M elements, over the limit
    refused, peak = _traced_peak(lambda: kserve._decode_request(headers, over, models["toy"], 1 << 22))
    assert getattr(refused, "status", None) == 413, refused
    assert peak < 0.25 * len(over), f"refused after {peak / 2**20:.1f} MiB for a {len(over) / 2**20:.1f} MiB body"


_V2_MEMORY_SERVER = textwrap.dedent("""
    import socket, sys
    import uvicorn
    from fastapi import FastAPI
    from helpers.runners import ort_runner
    from helpers.serving import kserve
    app = FastAPI()
    app.include_router(kserve.router({"toy": ort_runner(sys.argv[1], threads=1)}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="error")).run(sockets=[sock])
""")


def test_v2_server_memory_is_bounded_and_released_under_concurrent_json_bodies(onnx_path) -> None:
    """Issue 29.3: 8 concurrent ~7 MB JSON bodies (half ending in a 400) took the server's RSS up
    by ~8x the bytes in flight, and most of it stayed. Now the peak stays within a few times the
    bodies in flight and memory goes back down afterwards (freed pages are returned to the OS)."""
    from helpers.serving.loadtest import memory_during

    x = np.round(np.random.default_rng(6).random((1, 3, 640, 640)), 2)
    good, bad = _json_body(x), _json_body(x[..., :-1], shape=list(x.shape), tail=", NaN")
    proc = subprocess.Popen([sys.executable, "-c", _V2_MEMORY_SERVER, str(onnx_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        url = f"http://127.0.0.1:{port}/v2/models/toy/infer"
        deadline = time.monotonic() + 60
        while httpx_status(url) is None:
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.05)

        def send(raw: bytes) -> int:
            return httpx.post(url, content=raw, headers={"content-type": "application/json"},
                              timeout=120).status_code

        small = _json_body(np.round(np.random.default_rng(1).random((1, 3, 8, 8)), 2))
        with ThreadPoolExecutor(8) as pool:  # warm-up: threads, connections, first-call allocations
            assert set(pool.map(send, [small] * 16)) == {200}
            assert send(good) == 200 and send(bad) == 400
            single = memory_during(lambda: send(good), pid=proc.pid)
            many = memory_during(lambda: sorted(pool.map(send, [good, bad] * 4)), pid=proc.pid, settle_s=2)
    finally:
        proc.terminate()
        proc.wait(10)
    in_flight = 4 * (len(good) + len(bad))
    report = (f"bodies {len(good) / 2**20:.1f} MiB; one: {single.row()}; 8 at once: {many.row()}; "
              f"in flight {in_flight / 2**20:.0f} MiB")
    print(report)
    assert single.result == 200 and many.result == [200] * 4 + [400] * 4, report
    assert many.peak - many.before <= 4 * in_flight, report  # the bodies, their tensors, chunks
    assert many.after - many.before <= 0.5 * (many.peak - many.before), report  # and it goes back


def httpx_status(url: str) -> int | None:
    try:
        return httpx.get(url.replace("/infer", "/ready"), timeout=1).status_code
    except httpx.HTTPError:
        return None
