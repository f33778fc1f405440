"""Build and run the C++ TorchScript consumer in ``cpp/torchscript_consumer``.

The program is compiled with CMake against the libtorch that ships inside the installed torch
wheel (headers in ``torch/include``, libraries in ``torch/lib``), so no separate libtorch
download is needed. The build lives under ``outputs/cpp/torchscript_consumer/<key>`` where the
key hashes the sources, the torch version and the compiler: a second call (or a second test run)
reuses it and costs nothing, a changed ``main.cpp`` or a new torch triggers a rebuild.

>>> exe = build_consumer()                       # ~15-60 s the first time, instant afterwards
>>> result = run_consumer("model.pt", x)          # x: float32 numpy array
>>> result.output, result.load_ms, result.run_ms
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.paths import REPO_ROOT, output_dir

SOURCE_DIR = REPO_ROOT / "cpp" / "torchscript_consumer"
EXECUTABLE = "torchscript_consumer"


class CppBuildError(RuntimeError):
    """CMake configure or build failed; the message carries the tail of the compiler log."""


def torch_dir() -> Path:
    """The installed torch package folder (it holds ``include/`` and ``lib/`` of libtorch)."""
    import torch

    return Path(torch.__file__).resolve().parent


def toolchain_available() -> bool:
    """True when ``cmake`` and a C++ compiler are on PATH (the test skips otherwise)."""
    return shutil.which("cmake") is not None and any(
        shutil.which(c) for c in ("c++", "g++", "clang++")
    )


def _build_key() -> str:
    import torch

    digest = hashlib.sha256()
    for name in ("CMakeLists.txt", "main.cpp"):
        digest.update((SOURCE_DIR / name).read_bytes())
    digest.update(torch.__version__.encode())
    digest.update(str(torch_dir()).encode())
    digest.update(str(shutil.which("c++") or shutil.which("g++")).encode())
    return digest.hexdigest()[:12]


@dataclass
class BuildInfo:
    """Where the program was built, whether the cached build was reused, and how long it took."""

    executable: Path
    cached: bool
    seconds: float
    command: list[str] = field(default_factory=list)


def build_consumer(*, force: bool = False, verbose: bool = False) -> BuildInfo:
    """Configure and build the consumer with CMake (cached; see module docstring).

    Raises :class:`CppBuildError` with the compiler output when the build fails.
    """
    build_dir = output_dir("cpp", "torchscript_consumer", _build_key())
    exe = build_dir / EXECUTABLE
    if exe.exists() and not force:
        return BuildInfo(exe, cached=True, seconds=0.0)
    if not toolchain_available():
        raise CppBuildError("cmake and a C++ compiler are needed to build the consumer")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = ["cmake", "-S", str(SOURCE_DIR), "-B", str(build_dir), *generator,
                 f"-DTORCH_DIR={torch_dir()}", "-DCMAKE_BUILD_TYPE=Release"]
    build = ["cmake", "--build", str(build_dir)]
    start = time.perf_counter()
    for command in (configure, build):
        proc = subprocess.run(command, capture_output=True, text=True)
        if verbose:
            print(proc.stdout, proc.stderr)
        if proc.returncode != 0:
            log = (proc.stdout + proc.stderr)[-4000:]
            raise CppBuildError(f"{' '.join(command)} failed:\n{log}")
    if not exe.exists():
        raise CppBuildError(f"build finished but {exe} is missing")
    return BuildInfo(exe, cached=False, seconds=time.perf_counter() - start,
                     command=configure)


@dataclass
class ConsumerResult:
    """What the C++ program printed: the output tensor and its own timings."""

    output: np.ndarray
    load_ms: float
    run_ms: float
    wall_s: float


def run_consumer(module_path: str | os.PathLike[str], x: np.ndarray, *,
                 executable: Path | None = None, timeout: float = 120.0) -> ConsumerResult:
    """Run the C++ consumer on a TorchScript file and one float32 input; parse its JSON line."""
    exe = executable or build_consumer().executable
    x = np.ascontiguousarray(x, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        input_file = Path(tmp) / "input.bin"
        x.tofile(input_file)
        shape = ",".join(str(d) for d in x.shape)
        start = time.perf_counter()
        proc = subprocess.run([str(exe), str(module_path), str(input_file), shape],
                              capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"C++ consumer failed ({proc.returncode}): {proc.stderr.strip()}")
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    output = np.asarray(payload["values"], dtype=np.float32).reshape(payload["shape"])
    return ConsumerResult(output, float(payload["load_ms"]), float(payload["run_ms"]), wall)
