"""Build and run the C++ consumers in ``cpp/``: TorchScript, AOTInductor and ONNX Runtime.

=======================  ==========================================  ==============================
consumer                 loads                                       built against
=======================  ==========================================  ==============================
``torchscript_consumer`` a TorchScript file (legacy)                 the torch wheel's libtorch
``aoti_consumer``        an AOTInductor package (``.pt2``)           the torch wheel's libtorch
``ort_consumer``         an ONNX model                               ONNX Runtime's C++ API
=======================  ==========================================  ==============================

The libtorch consumers compile against the headers and libraries inside the installed torch wheel
(``torch/include``, ``torch/lib``), so no separate libtorch download is needed.

The PyPI ``onnxruntime`` wheel has neither the C/C++ headers nor a linkable library, so
:func:`ort_sdk` fetches both once from registry packages, verified by SHA-256, into the model
cache: ``libonnxruntime.so.1`` from npm's ``onnxruntime-node`` and the headers from Debian's
``libonnxruntime-dev``. The headers are an older release than the library; that works because
the C API is versioned: ``onnxruntime_cxx_api.h`` asks the library for the API version it was
written for (``OrtGetApiBase()->GetApi(ORT_API_VERSION)``), which every later library serves.
``INFERENCE_SUITE_ORT_DIR`` points at an ONNX Runtime release folder (``include/``, ``lib/``)
to use instead.

Builds live under ``outputs/cpp/<consumer>/<key>``, where the key hashes the sources, the
libraries built against and the compiler: a second call (or test run) reuses the build, a
changed source or a new torch triggers a rebuild.

>>> exe = build_consumer()                       # TorchScript; ~15-60 s the first time
>>> result = run_consumer("model.pt", x)          # x: float32 numpy array
>>> run_aoti_consumer(aoti_package(model, example), x).output  # compiled once, cached
>>> run_ort_consumer("model.onnx", {"images": x}).outputs["logits"]
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helpers.paths import REPO_ROOT, cache_dir, output_dir

__all__ = [
    "CONSUMERS",
    "CppBuildError",
    "OrtSdkUnavailable",
    "BuildInfo",
    "ConsumerResult",
    "OrtConsumerResult",
    "OrtSdk",
    "RegistryFile",
    "ORT_LIBRARY_PACKAGE",
    "ORT_HEADERS_PACKAGE",
    "torch_dir",
    "toolchain_available",
    "ort_sdk",
    "build",
    "build_consumer",
    "aoti_package",
    "run_consumer",
    "run_aoti_consumer",
    "run_ort_consumer",
]

CPP_DIR = REPO_ROOT / "cpp"
CONSUMERS = ("torchscript_consumer", "aoti_consumer", "ort_consumer")
SOURCE_DIR = CPP_DIR / "torchscript_consumer"  # the TorchScript consumer (legacy)
EXECUTABLE = "torchscript_consumer"
ORT_DIR_ENV = "INFERENCE_SUITE_ORT_DIR"


class CppBuildError(RuntimeError):
    """CMake configure or build failed; the message carries the tail of the compiler log."""


class OrtSdkUnavailable(CppBuildError):
    """ONNX Runtime's C/C++ headers or library could not be had; the message says what was tried."""


def torch_dir() -> Path:
    """The installed torch package folder (it holds ``include/`` and ``lib/`` of libtorch)."""
    import torch

    return Path(torch.__file__).resolve().parent


def toolchain_available() -> bool:
    """True when ``cmake`` and a C++ compiler are on PATH (the tests skip otherwise)."""
    return shutil.which("cmake") is not None and any(
        shutil.which(c) for c in ("c++", "g++", "clang++")
    )


# --------------------------------------------------------------------------------------------
# ONNX Runtime's C/C++ SDK from registry packages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryFile:
    """One file of a registry package, pinned by version and SHA-256."""

    registry: str
    package: str
    version: str
    url: str
    sha256: str

    def label(self) -> str:
        """``registry package version``, e.g. ``npm onnxruntime-node 1.30.0``."""
        return f"{self.registry} {self.package} {self.version}"


ORT_LIBRARY_PACKAGE = RegistryFile(
    registry="npm",
    package="onnxruntime-node",
    version="1.30.0",
    url="https://registry.npmjs.org/onnxruntime-node/-/onnxruntime-node-1.30.0.tgz",
    sha256="6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75",
)
ORT_HEADERS_PACKAGE = RegistryFile(
    registry="Debian trixie",
    package="libonnxruntime-dev",
    version="1.21.0+dfsg-1",
    url="https://deb.debian.org/debian/pool/main/o/onnxruntime/"
    "libonnxruntime-dev_1.21.0+dfsg-1_amd64.deb",
    sha256="14f7d959d5deacbcf1504830d4189f91fc67382b399ed9ae9d3aa9c4050ced08",
)
_NPM_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass
class OrtSdk:
    """Where ONNX Runtime's headers and library are, and which packages they came from."""

    root: Path
    include_dir: Path
    library: Path
    library_version: str
    header_version: str
    sources: list[str] = field(default_factory=list)
    cached: bool = True

    def describe(self) -> dict[str, Any]:
        """The facts as a plain dict (for tables)."""
        return {
            "library": str(self.library),
            "library version": self.library_version,
            "headers": str(self.include_dir),
            "header version": self.header_version,
            "from": "; ".join(self.sources),
        }


def _download(item: RegistryFile, target: Path, *, progress: bool) -> None:
    """Stream ``item.url`` to ``target`` and check its SHA-256 (raise on a mismatch)."""
    request = urllib.request.Request(item.url, headers={"User-Agent": "inference-suite"})
    digest = hashlib.sha256()
    partial = target.with_name(target.name + ".partial")
    with urllib.request.urlopen(request, timeout=60) as response, partial.open("wb") as sink:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = None
        if progress:
            from helpers.display import progress as progress_bar

            bar = progress_bar(total=total, unit="B", unit_scale=True, desc=item.label())
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            sink.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
    if digest.hexdigest() != item.sha256:
        partial.unlink()
        raise OrtSdkUnavailable(
            f"{item.url}: SHA-256 {digest.hexdigest()} does not match the pinned {item.sha256}"
        )
    partial.replace(target)


def _ar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The members of an ``ar`` archive (a ``.deb`` is one): name and content."""
    if not data.startswith(b"!<arch>\n"):
        raise OrtSdkUnavailable("not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(data):
        header = data[offset:offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        offset += 60
        yield name, data[offset:offset + size]
        offset += size + (size % 2)  # members are 2-byte aligned


def _extract_headers(deb: Path, include_dir: Path) -> None:
    """Copy ``usr/include/onnxruntime/**`` (and the copyright file) out of a ``.deb``."""
    payload = next((blob for name, blob in _ar_members(deb.read_bytes())
                    if name.startswith("data.tar")), None)
    if payload is None:
        raise OrtSdkUnavailable(f"{deb.name} has no data.tar member")
    prefix = "./usr/include/onnxruntime/"
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.startswith(prefix):
                relative = member.name[len(prefix):]
            elif member.isfile() and member.name.endswith("/copyright"):
                relative = "COPYRIGHT.debian"
            else:
                continue
            target = include_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())


def _extract_library(tgz: Path, member: str, library: Path) -> None:
    """Copy one file out of the npm tarball (streamed: the archive holds every platform)."""
    with tarfile.open(tgz, mode="r|gz") as archive:
        for entry in archive:
            if entry.name == member:
                source = archive.extractfile(entry)
                assert source is not None
                library.parent.mkdir(parents=True, exist_ok=True)
                with library.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
                library.chmod(0o755)
                return
    raise OrtSdkUnavailable(f"{tgz.name} has no {member}")


def _sdk_from_folder(root: Path) -> OrtSdk:
    """An ONNX Runtime release folder (``include/onnxruntime_cxx_api.h``, ``lib/libonnxruntime.so*``)."""
    include = next((p.parent for p in root.glob("include/**/onnxruntime_cxx_api.h")), None)
    libraries = sorted(root.glob("lib/libonnxruntime.so*"))
    if include is None or not libraries:
        raise OrtSdkUnavailable(
            f"{ORT_DIR_ENV}={root}: expected include/onnxruntime_cxx_api.h and lib/libonnxruntime.so*"
        )
    library = next((p for p in libraries if p.name == "libonnxruntime.so.1"), libraries[-1])
    version = libraries[-1].name.removeprefix("libonnxruntime.so").lstrip(".") or "unknown"
    return OrtSdk(root, include, library, version, version, sources=[f"{ORT_DIR_ENV}={root}"])


def ort_sdk(*, download: bool = True, progress: bool = True) -> OrtSdk:
    """ONNX Runtime's C/C++ headers and ``libonnxruntime.so.1``, fetched once into the cache.

    The library comes from :data:`ORT_LIBRARY_PACKAGE` (npm), the headers from
    :data:`ORT_HEADERS_PACKAGE` (Debian), both checked against pinned SHA-256 digests; only the
    library and the headers are kept (the npm archive, ~110 MB, is deleted). With
    ``INFERENCE_SUITE_ORT_DIR`` set, that folder is used instead and nothing is downloaded.
    Linux only (x86-64 and arm64). Raises :class:`OrtSdkUnavailable` saying what failed.
    """
    if os.environ.get(ORT_DIR_ENV):
        return _sdk_from_folder(Path(os.environ[ORT_DIR_ENV]).expanduser())
    arch = _NPM_ARCH.get(platform.machine().lower())
    if platform.system() != "Linux" or arch is None:
        raise OrtSdkUnavailable(
            f"the ONNX Runtime consumer is set up for Linux x86-64/arm64, not "
            f"{platform.system()} {platform.machine()}; set {ORT_DIR_ENV} to an ONNX Runtime "
            "release folder for your platform"
        )
    lib_pkg, hdr_pkg = ORT_LIBRARY_PACKAGE, ORT_HEADERS_PACKAGE
    root = cache_dir("onnxruntime-cxx", f"{lib_pkg.version}-{arch}_headers-{hdr_pkg.version}")
    manifest = root / "sources.json"
    include_dir, library = root / "include", root / "lib" / "libonnxruntime.so.1"
    sources = [f"{lib_pkg.label()} ({lib_pkg.url})", f"{hdr_pkg.label()} ({hdr_pkg.url})"]
    sdk = OrtSdk(root, include_dir, library, lib_pkg.version, hdr_pkg.version.split("+")[0],
                 sources=sources)
    if manifest.exists() and library.exists() and (include_dir / "onnxruntime_cxx_api.h").exists():
        return sdk
    if not download:
        raise OrtSdkUnavailable(
            "ONNX Runtime's C/C++ SDK is not in the cache yet and downloads are off (download=False); "
            "allowed, it would come once from " + " and ".join(sources)
            + f". Or set {ORT_DIR_ENV} to an ONNX Runtime release folder."
        )
    try:
        # Everything lands in a private folder first and is moved into place whole, so a second
        # process (a notebook next to the tests) never sees half a library.
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            deb, tgz = Path(tmp) / "headers.deb", Path(tmp) / "library.tgz"
            _download(hdr_pkg, deb, progress=progress)
            _extract_headers(deb, Path(tmp) / "include")
            _download(lib_pkg, tgz, progress=progress)
            _extract_library(tgz, f"package/bin/napi-v6/linux/{arch}/libonnxruntime.so.1",
                             Path(tmp) / "lib" / library.name)
            if not include_dir.exists():
                (Path(tmp) / "include").replace(include_dir)
            library.parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / "lib" / library.name).replace(library)
    except (urllib.error.URLError, OSError) as error:
        raise OrtSdkUnavailable(
            f"could not fetch ONNX Runtime's C/C++ SDK ({type(error).__name__}: {error}); tried "
            + " and ".join(sources) + f". Set {ORT_DIR_ENV} to an ONNX Runtime release folder instead."
        ) from error
    manifest.write_text(json.dumps({"library": lib_pkg.__dict__, "headers": hdr_pkg.__dict__},
                                   indent=1))
    sdk.cached = False
    return sdk


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


@dataclass
class BuildInfo:
    """Where the program was built, whether the cached build was reused, and how long it took."""

    executable: Path
    cached: bool
    seconds: float
    command: list[str] = field(default_factory=list)


def _configure_args(consumer: str) -> tuple[list[str], list[str]]:
    """CMake ``-D`` arguments for a consumer, and the strings its build key depends on."""
    if consumer == "ort_consumer":
        sdk = ort_sdk()
        args = [f"-DORT_INCLUDE_DIR={sdk.include_dir}", f"-DORT_LIBRARY={sdk.library}"]
        return args, [str(sdk.library), sdk.library_version, sdk.header_version]
    import torch

    return [f"-DTORCH_DIR={torch_dir()}"], [torch.__version__, str(torch_dir())]


def _build_key(consumer: str, extra: list[str]) -> str:
    digest = hashlib.sha256()
    for name in ("CMakeLists.txt", "main.cpp"):
        digest.update((CPP_DIR / consumer / name).read_bytes())
    for item in extra:
        digest.update(item.encode())
    digest.update(str(shutil.which("c++") or shutil.which("g++")).encode())
    return digest.hexdigest()[:12]


def build(consumer: str, *, force: bool = False, verbose: bool = False) -> BuildInfo:
    """Configure and build one of :data:`CONSUMERS` with CMake (cached; see module docstring).

    Raises :class:`CppBuildError` with the compiler output when the build fails, and
    :class:`OrtSdkUnavailable` when ONNX Runtime's SDK cannot be had (``ort_consumer``).
    """
    if consumer not in CONSUMERS:
        raise ValueError(f"unknown consumer {consumer!r}; choose one of {CONSUMERS}")
    if not toolchain_available():
        raise CppBuildError(f"cmake and a C++ compiler are needed to build {consumer}")
    defines, key_parts = _configure_args(consumer)
    build_dir = output_dir("cpp", consumer, _build_key(consumer, key_parts))
    exe = build_dir / consumer
    if exe.exists() and not force:
        return BuildInfo(exe, cached=True, seconds=0.0)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = ["cmake", "-S", str(CPP_DIR / consumer), "-B", str(build_dir), *generator,
                 *defines, "-DCMAKE_BUILD_TYPE=Release"]
    steps = (configure, ["cmake", "--build", str(build_dir)])
    start = time.perf_counter()
    for command in steps:
        proc = subprocess.run(command, capture_output=True, text=True)
        if verbose:
            print(proc.stdout, proc.stderr)
        if proc.returncode != 0:
            log = (proc.stdout + proc.stderr)[-4000:]
            raise CppBuildError(f"{' '.join(command)} failed:\n{log}")
    if not exe.exists():
        raise CppBuildError(f"build finished but {exe} is missing")
    return BuildInfo(exe, cached=False, seconds=time.perf_counter() - start, command=configure)


def build_consumer(*, force: bool = False, verbose: bool = False) -> BuildInfo:
    """Build the TorchScript consumer (``build("torchscript_consumer")``)."""
    return build("torchscript_consumer", force=force, verbose=verbose)


def aoti_package(model: Any, example: Any, *, rebuild: bool = False) -> Path:
    """``model`` compiled by AOTInductor into a CPU package (``.pt2``) with a dynamic batch; cached.

    The same two calls as in a plain script — ``torch.export.export(model, (example,),
    dynamic_shapes=({0: Dim("batch")},))`` then ``torch._inductor.aoti_compile_and_package`` —
    run once per model weights, example shape and torch version (:func:`helpers.cache.cached_export`),
    because compiling takes a minute or more. ``example`` needs a batch of at least 2 (a batch of
    1 would be specialised). torch's notice that no CUDA toolkit is installed (irrelevant for a
    CPU package) is silenced while compiling.
    """
    import logging

    import torch
    import torch._inductor

    from helpers.cache import cached_export

    if example.shape[0] < 2:
        raise ValueError(f"aoti_package: export with an example batch >= 2, got {tuple(example.shape)}")

    def compile_into(path: Path) -> None:
        program = torch.export.export(model, (example,),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))
        notices = logging.getLogger("torch.utils.cpp_extension")
        level = notices.level
        notices.setLevel(logging.ERROR)
        try:
            torch._inductor.aoti_compile_and_package(program, package_path=str(path))
        finally:
            notices.setLevel(level)

    return cached_export(model, compile_into, what="AOTInductor package", filename="model.pt2",
                         settings={"example": list(example.shape), "dtype": str(example.dtype)},
                         rebuild=rebuild)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


@dataclass
class ConsumerResult:
    """What a libtorch consumer printed: the output tensor and its own timings.

    ``run_ms`` is the first call; ``median_ms`` the median of ``runs`` calls after it (AOTI
    consumer only; 0 when ``runs`` is 0).
    """

    output: np.ndarray
    load_ms: float
    run_ms: float
    wall_s: float
    median_ms: float = 0.0
    runs: int = 0


@dataclass
class OrtConsumerResult:
    """What the ONNX Runtime consumer printed: every output, its timings and ORT's versions."""

    outputs: dict[str, np.ndarray]
    load_ms: float
    run_ms: float
    median_ms: float
    runs: int
    ort_version: str
    api_version: int
    wall_s: float


def _execute(command: list[str], timeout: float, what: str) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def _float_input(x: np.ndarray, tmp: str) -> tuple[str, str]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    input_file = Path(tmp) / "input.bin"
    x.tofile(input_file)
    return str(input_file), ",".join(str(d) for d in x.shape)


def _tensor(payload: Mapping[str, Any], dtype: Any = np.float32) -> np.ndarray:
    return np.asarray(payload["values"], dtype=dtype).reshape(payload["shape"])


def run_consumer(module_path: str | os.PathLike[str], x: np.ndarray, *,
                 executable: Path | None = None, timeout: float = 120.0) -> ConsumerResult:
    """Run the C++ TorchScript consumer on a TorchScript file and one float32 input."""
    exe = executable or build_consumer().executable
    with tempfile.TemporaryDirectory() as tmp:
        input_file, shape = _float_input(x, tmp)
        payload, wall = _execute([str(exe), str(module_path), input_file, shape], timeout,
                                 "C++ consumer")
    return ConsumerResult(_tensor(payload), float(payload["load_ms"]), float(payload["run_ms"]),
                          wall)


def run_aoti_consumer(package_path: str | os.PathLike[str], x: np.ndarray, *, runs: int = 0,
                      executable: Path | None = None, timeout: float = 120.0) -> ConsumerResult:
    """Run the C++ AOTInductor consumer on a CPU package and one float32 input.

    ``runs`` further calls after the first are timed (``median_ms``). The first output of the
    package is returned.
    """
    if not Path(package_path).exists():
        raise FileNotFoundError(f"no AOTInductor package at {package_path}")
    exe = executable or build("aoti_consumer").executable
    with tempfile.TemporaryDirectory() as tmp:
        input_file, shape = _float_input(x, tmp)
        payload, wall = _execute([str(exe), str(package_path), input_file, shape, str(int(runs))],
                                 timeout, "C++ AOTInductor consumer")
    return ConsumerResult(_tensor(payload), float(payload["load_ms"]), float(payload["run_ms"]),
                          wall, float(payload["median_ms"]), int(payload["runs"]))


_ORT_INPUT_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64"}


def run_ort_consumer(onnx_path: str | os.PathLike[str], inputs: Mapping[str, np.ndarray], *,
                     runs: int = 0, executable: Path | None = None,
                     timeout: float = 120.0) -> OrtConsumerResult:
    """Run the C++ ONNX Runtime consumer on an ONNX file with named float32/int64 inputs.

    Every model input must be given (the program checks the names against the session's);
    ``runs`` further calls after the first are timed (``median_ms``). Outputs come back as
    float32 or int64 arrays (the program prints only those two types).
    """
    if not Path(onnx_path).exists():
        raise FileNotFoundError(f"no ONNX file at {onnx_path}")
    if not inputs:
        raise ValueError("run_ort_consumer needs at least one named input")
    for name, value in inputs.items():
        if not isinstance(value, np.ndarray) or value.dtype not in _ORT_INPUT_DTYPES:
            got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise ValueError(f"input {name!r}: the C++ consumer takes float32 or int64 numpy "
                             f"arrays, got {got}")
        if any(ch in name for ch in "=:"):
            raise ValueError(f"input name {name!r} contains '=' or ':'")
    exe = executable or build("ort_consumer").executable
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for i, (name, value) in enumerate(inputs.items()):
            path = Path(tmp) / f"input{i}.bin"
            np.ascontiguousarray(value).tofile(path)
            shape = ",".join(str(d) for d in value.shape)
            args.append(f"{name}={_ORT_INPUT_DTYPES[value.dtype]}:{shape}:{path}")
        payload, wall = _execute([str(exe), str(onnx_path), str(int(runs)), *args], timeout,
                                 "C++ ONNX Runtime consumer")
    outputs = {name: _tensor(tensor, np.dtype(tensor["dtype"]))
               for name, tensor in payload["outputs"].items()}
    return OrtConsumerResult(outputs, float(payload["load_ms"]), float(payload["run_ms"]),
                             float(payload["median_ms"]), int(payload["runs"]),
                             str(payload["ort_version"]), int(payload["api_version"]), wall)

