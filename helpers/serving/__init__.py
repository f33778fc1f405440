"""Serving one model over HTTP, and everything around it.

- :mod:`.app`        the FastAPI app around one ONNX model, uvicorn in the background
                     (its API is re-exported here: ``from helpers import serving``)
- :mod:`.limits`     limits both servers share: strict JSON, body size and deadlines, a pixel budget
- :mod:`.kserve`     the KServe v2 / Open Inference Protocol router (and its client, re-exported)
- :mod:`.v2_json`    a v2 request's JSON tensors read straight into typed arrays, memory bounded
- :mod:`.v2_client`  the v2 client (plain JSON over httpx) and its datatypes
- :mod:`.ray_serve`  a local Ray cluster, Ray Serve deploying the same app, Ray Data
- :mod:`.triton`     a Triton Inference Server model repository
- :mod:`.loadtest`   bounded loopback load tests
"""

from helpers.serving.app import *  # noqa: F403
from helpers.serving.app import __all__ as __all__
