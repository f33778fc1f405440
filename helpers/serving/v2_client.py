"""A client for the KServe v2 / Open Inference Protocol (plain JSON over httpx), and its datatypes.

Works against any v2 server — this suite's :func:`helpers.serving.kserve.router`, Triton, KServe,
OpenVINO Model Server. Re-exported by :mod:`helpers.serving.kserve`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DATATYPES",
    "V2ClientError",
    "datatype_of",
    "decode_response",
    "encode_request",
    "infer",
    "model_metadata",
    "server_ready",
]

#: v2 datatype → NumPy dtype name (``BYTES`` and ``BF16`` have no NumPy equivalent here).
DATATYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
_NUMPY_TO_V2 = {v: k for k, v in DATATYPES.items()}
def datatype_of(dtype: Any) -> str:
    """The v2 datatype for a NumPy dtype (``float32`` → ``"FP32"``); ``ValueError`` if none."""
    name = np.dtype(dtype).name
    if name not in _NUMPY_TO_V2:
        raise ValueError(f"no v2 datatype for numpy dtype {name} (supported: {sorted(_NUMPY_TO_V2)})")
    return _NUMPY_TO_V2[name]


# --------------------------------------------------------------------------------------------
# Client (plain JSON over httpx)
# --------------------------------------------------------------------------------------------


class V2ClientError(RuntimeError):
    """A v2 server answered with an error; ``status`` is the HTTP status, the message its text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def encode_request(
    inputs: Mapping[str, np.ndarray], *, outputs: Sequence[str] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The JSON body of a v2 inference request for named NumPy arrays."""
    body: dict[str, Any] = {"inputs": [
        {"name": name, "shape": list(np.shape(array)), "datatype": datatype_of(np.asarray(array).dtype),
         "data": np.asarray(array).reshape(-1).tolist()}
        for name, array in inputs.items()
    ]}
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    if request_id is not None:
        body["id"] = request_id
    return body


def decode_response(body: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Named NumPy arrays from a (JSON) v2 inference response."""
    return {
        out["name"]: np.asarray(out["data"], dtype=DATATYPES.get(out["datatype"], "float32"))
        .reshape(out["shape"])
        for out in body["outputs"]
    }


def _raise_for(response: Any) -> None:
    if response.status_code >= 400:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise V2ClientError(response.status_code, str(message)[:500])


def server_ready(url: str, *, timeout_s: float = 0.5) -> tuple[bool, str]:
    """``(True, "ready")`` if ``GET {url}/v2/health/ready`` answers 200, else ``(False, why)``.

    The short timeout keeps a notebook from hanging when nothing listens.
    """
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}/v2/health/ready", timeout=timeout_s, trust_env=False)
    except httpx.HTTPError as failure:
        return False, f"{type(failure).__name__}: {failure}"
    return (True, "ready") if response.status_code == 200 else (False, f"HTTP {response.status_code}")


def model_metadata(url: str, model: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
    """``GET {url}/v2/models/{model}``: the model's inputs and outputs."""
    import httpx

    response = httpx.get(f"{url.rstrip('/')}/v2/models/{model}", timeout=timeout_s, trust_env=False)
    _raise_for(response)
    return response.json()


def infer(
    url: str, model: str, inputs: Mapping[str, np.ndarray], *,
    outputs: Sequence[str] | None = None, timeout_s: float = 10.0, client: Any = None,
) -> dict[str, np.ndarray]:
    """``POST {url}/v2/models/{model}/infer`` with JSON tensors; returns named NumPy arrays.

    Works against any v2 server (this suite's router, Triton, KServe, OpenVINO Model Server).
    ``client`` may be an ``httpx.Client`` to reuse connections. An error answer raises
    :class:`V2ClientError` with the server's message.
    """
    import httpx

    target = f"{url.rstrip('/')}/v2/models/{model}/infer"
    body = encode_request(inputs, outputs=outputs)
    if client is None:
        response = httpx.post(target, json=body, timeout=timeout_s, trust_env=False)
    else:
        response = client.post(target, json=body, timeout=timeout_s)
    _raise_for(response)
    return decode_response(response.json())
