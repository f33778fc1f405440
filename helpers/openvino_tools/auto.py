"""OpenVINO's ``AUTO`` device: what it picked, and what it could choose from."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpers.runners.openvino_throughput import compiled_settings

__all__ = ["auto_device_report"]

def auto_device_report(
    model: str | Path | Any,
    *,
    hint: str = "LATENCY",
    config: Mapping[str, Any] | None = None,
    core: Any = None,
) -> dict[str, Any]:
    """Compile ``model`` for ``AUTO`` and report what it picked and what it could choose from.

    Keys: ``available_devices``, ``device_names`` (``FULL_DEVICE_NAME`` of each), ``gpu_present``
    (an OpenVINO ``GPU`` device is listed), ``priorities`` (``MULTI_DEVICE_PRIORITIES``: AUTO's
    candidates, best first), ``execution_devices`` (what the compiled model runs on),
    ``performance_hint``, ``compile_s`` and ``compiled`` (the compiled model). ``config`` adds
    properties that AUTO passes on to the device it picks (e.g. ``INFERENCE_PRECISION_HINT``).
    ``AUTO`` prefers a GPU; without one it compiles for
    the CPU. (With a GPU and the LATENCY hint it may start on the CPU while the GPU compiles —
    ``EXECUTION_DEVICES`` then lists both.)
    """
    import openvino as ov

    core = core or ov.Core()
    available = list(core.available_devices)
    names = {}
    for dev in available:
        with contextlib.suppress(Exception):
            names[dev] = core.get_property(dev, "FULL_DEVICE_NAME")
    source = str(model) if isinstance(model, (str, Path)) else model
    t0 = time.perf_counter()
    compiled = core.compile_model(source, "AUTO", {"PERFORMANCE_HINT": hint.upper(), **(config or {})})
    seconds = time.perf_counter() - t0
    settings = compiled_settings(compiled, ("EXECUTION_DEVICES", "PERFORMANCE_HINT",
                                            "MULTI_DEVICE_PRIORITIES"))
    return {
        "available_devices": available,
        "device_names": names,
        "gpu_present": any(d.split(".")[0] == "GPU" for d in available),
        "priorities": settings.get("MULTI_DEVICE_PRIORITIES"),
        "execution_devices": settings.get("EXECUTION_DEVICES"),
        "performance_hint": settings.get("PERFORMANCE_HINT"),
        "compile_s": seconds,
        "compiled": compiled,
    }
