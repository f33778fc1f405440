"""The C++ consumers build, run and match Python: TorchScript, AOTInductor and ONNX Runtime.

The first run compiles (tens of seconds each) and fetches ONNX Runtime's C/C++ SDK once; builds
are cached under outputs/cpp/ keyed on the sources and what they link, so later runs only
execute the programs.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from helpers import export
from helpers.models import tiny as tiny_models
from helpers.paths import output_dir
from helpers.under_the_hood import cpp

pytestmark = pytest.mark.skipif(not cpp.toolchain_available(), reason="needs cmake and a C++ compiler")


@pytest.fixture(scope="module")
def executable():
    return cpp.build_consumer().executable


def _save_traced(model: torch.nn.Module, x: torch.Tensor, name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated (legacy lesson)
        traced = torch.jit.trace(model, x)
        path = output_dir("tests", "cpp") / name
        traced.save(str(path))
    return path


def test_build_is_cached(executable):
    again = cpp.build_consumer()
    assert again.cached
    assert again.executable == executable


def test_cpp_output_matches_python(executable):
    model = tiny_models.TinyClassifier()
    x = tiny_models.example_images(batch=3, size=16)
    path = _save_traced(model, x, "tiny_classifier.pt")
    result = cpp.run_consumer(path, x.numpy(), executable=executable)
    with torch.inference_mode():
        expected = model(x).numpy()
    assert result.output.shape == expected.shape
    np.testing.assert_allclose(result.output, expected, rtol=1e-5, atol=1e-6)
    assert result.load_ms > 0 and result.run_ms > 0


def test_cpp_reports_a_missing_module(executable):
    x = tiny_models.example_images(batch=1, size=16)
    with pytest.raises(RuntimeError, match="C\\+\\+ consumer failed"):
        cpp.run_consumer(output_dir("tests", "cpp") / "missing.pt", x.numpy(), executable=executable)


def test_aoti_package_wants_a_batch_of_two():
    with pytest.raises(ValueError, match="batch >= 2"):
        cpp.aoti_package(tiny_models.TinyClassifier(), tiny_models.example_images(batch=1, size=16))


def test_unknown_consumer_is_refused():
    with pytest.raises(ValueError, match="unknown consumer"):
        cpp.build("java_consumer")


# --------------------------------------------------------------------------------------------
# AOTInductor
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aoti_package():
    """A tiny classifier compiled with AOTInductor, dynamic batch (compiled with batch 2), cached."""
    model = tiny_models.TinyClassifier().eval()
    path = cpp.aoti_package(model, tiny_models.example_images(batch=2, size=16))
    assert path.name == "model.pt2" and cpp.aoti_package(model, tiny_models.example_images(batch=2, size=16)) == path
    return model, path


@pytest.fixture(scope="module")
def aoti_executable():
    return cpp.build("aoti_consumer").executable


def test_aoti_consumer_matches_python(aoti_package, aoti_executable):
    import torch._inductor

    model, path = aoti_package
    x = tiny_models.example_images(batch=3, size=16, seed=1)  # a batch size it was not compiled with
    result = cpp.run_aoti_consumer(path, x.numpy(), runs=3, executable=aoti_executable)
    with torch.inference_mode():
        eager = model(x).numpy()
        python_aoti = torch._inductor.aoti_load_package(str(path))(x).numpy()
    assert result.output.shape == eager.shape
    np.testing.assert_allclose(result.output, python_aoti, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.output, eager, rtol=1e-4, atol=1e-5)
    assert result.runs == 3 and result.median_ms > 0 and result.load_ms > 0
    assert cpp.build("aoti_consumer").cached


def test_aoti_consumer_reports_bad_input(aoti_package, aoti_executable):
    _, path = aoti_package
    wrong_channels = np.zeros((2, 4, 16, 16), dtype=np.float32)
    # the consumer switches on the package's own input checks (AOTI_RUNTIME_CHECK_INPUTS)
    with pytest.raises(RuntimeError, match="AOTInductor consumer failed.*unmatched dim value at 1"):
        cpp.run_aoti_consumer(path, wrong_channels, executable=aoti_executable)
    with pytest.raises(FileNotFoundError):
        cpp.run_aoti_consumer(path.with_name("missing.pt2"), wrong_channels, executable=aoti_executable)


# --------------------------------------------------------------------------------------------
# ONNX Runtime
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ort_sdk():
    try:
        return cpp.ort_sdk(progress=False)
    except cpp.OrtSdkUnavailable as error:
        if "SHA-256" in str(error):
            raise
        pytest.skip(f"ONNX Runtime's C/C++ SDK could not be fetched: {error}")


@pytest.fixture(scope="module")
def ort_executable(ort_sdk):
    return cpp.build("ort_consumer").executable


class TokenScorer(torch.nn.Module):
    """int64 token ids + float mask in; float scores and an int64 arg-max out."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(50, 8)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor):
        scores = self.head(self.embed(ids)) * mask.unsqueeze(-1)
        return scores, scores.sum(dim=1).argmax(dim=-1)


def test_ort_sdk_comes_from_pinned_registry_files(ort_sdk):
    assert (ort_sdk.include_dir / "onnxruntime_cxx_api.h").exists()
    assert ort_sdk.library.exists() and ort_sdk.library.name == "libonnxruntime.so.1"
    assert ort_sdk.library_version == cpp.ORT_LIBRARY_PACKAGE.version
    assert any("npm onnxruntime-node" in s for s in ort_sdk.sources)
    assert any("libonnxruntime-dev" in s for s in ort_sdk.sources)
    assert cpp.ort_sdk(download=False).root == ort_sdk.root  # cached: no second download


def test_ort_consumer_matches_python_ort(ort_executable, ort_sdk):
    model = tiny_models.TinyClassifier().eval()
    x = tiny_models.example_images(batch=2, size=16)
    path = export.export_onnx(model, (x,), output_dir("tests", "cpp") / "tiny_classifier.onnx",
                              input_names=["images"], output_names=["logits"],
                              dynamic_shapes=({0: "batch"},))
    x3 = tiny_models.example_images(batch=3, size=16, seed=2).numpy()
    result = cpp.run_ort_consumer(path, {"images": x3}, runs=3, executable=ort_executable)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(["logits"], {"images": x3})[0]
    assert result.outputs["logits"].shape == expected.shape
    np.testing.assert_allclose(result.outputs["logits"], expected, rtol=1e-5, atol=1e-5)
    assert result.ort_version == ort_sdk.library_version
    assert result.api_version == int(ort_sdk.header_version.split(".")[1])  # ORT_API_VERSION
    assert result.runs == 3 and result.median_ms > 0


def test_ort_consumer_takes_int64_inputs_and_outputs(ort_executable, tmp_path):
    model = TokenScorer().eval()
    ids = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 6)
    mask[1, 4:] = 0
    path = export.export_onnx(model, (ids, mask), tmp_path / "scorer.onnx",
                              input_names=["ids", "mask"], output_names=["scores", "best"])
    feed = {"mask": mask.numpy(), "ids": ids.numpy()}  # order differs from the model's: by name
    result = cpp.run_ort_consumer(path, feed, executable=ort_executable)
    with torch.inference_mode():
        scores, best = model(ids, mask)
    np.testing.assert_allclose(result.outputs["scores"], scores.numpy(), rtol=1e-5, atol=1e-6)
    assert result.outputs["best"].dtype == np.int64
    np.testing.assert_array_equal(result.outputs["best"], best.numpy())


def test_ort_consumer_errors_are_clear(ort_executable, tmp_path):
    model = tiny_models.TinyClassifier().eval()
    x = tiny_models.example_images(batch=2, size=16)
    path = export.export_onnx(model, (x,), tmp_path / "tiny.onnx", input_names=["images"],
                              output_names=["logits"])
    with pytest.raises(RuntimeError, match="missing model input images"):
        cpp.run_ort_consumer(path, {"pixels": x.numpy()}, executable=ort_executable)
    with pytest.raises(ValueError, match="float32 or int64"):
        cpp.run_ort_consumer(path, {"images": x.numpy().astype(np.float64)}, executable=ort_executable)
    with pytest.raises(FileNotFoundError):
        cpp.run_ort_consumer(tmp_path / "missing.onnx", {"images": x.numpy()}, executable=ort_executable)


def test_ort_sdk_folder_override(ort_sdk, tmp_path, monkeypatch):
    monkeypatch.setenv(cpp.ORT_DIR_ENV, str(tmp_path))
    with pytest.raises(cpp.OrtSdkUnavailable, match="expected include/onnxruntime_cxx_api.h"):
        cpp.ort_sdk()
    shutil.copytree(ort_sdk.include_dir, tmp_path / "include")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libonnxruntime.so.1.30.0").symlink_to(ort_sdk.library)
    (tmp_path / "lib" / "libonnxruntime.so.1").symlink_to(ort_sdk.library)
    sdk = cpp.ort_sdk()
    assert sdk.include_dir == tmp_path / "include"
    assert sdk.library.name == "libonnxruntime.so.1" and sdk.library_version == "1.30.0"


def test_download_rejects_a_wrong_digest(tmp_path):
    source = tmp_path / "package.tgz"
    source.write_bytes(b"not the pinned file")
    pinned = cpp.RegistryFile("npm", "example", "0.0.1", source.as_uri(),
                              hashlib.sha256(b"something else").hexdigest())
    with pytest.raises(cpp.OrtSdkUnavailable, match="does not match the pinned"):
        cpp._download(pinned, tmp_path / "out.tgz", progress=False)
    assert not (tmp_path / "out.tgz").exists()


@pytest.mark.skipif(cpp.platform.system() != "Linux", reason="the SDK is fetched for Linux only")
def test_offline_the_sdk_download_fails_with_what_it_tried(tmp_path, monkeypatch):
    """Without access to npm and Debian, ort_sdk raises OrtSdkUnavailable naming both registry
    files and the folder override, which the notebook shows as the reason it skips (no traceback)."""
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(cpp.ORT_DIR_ENV, raising=False)
    monkeypatch.setattr(cpp.urllib.request, "urlopen", offline)
    with pytest.raises(cpp.OrtSdkUnavailable) as info:
        cpp.ort_sdk(progress=False)
    message = str(info.value)
    assert "registry.npmjs.org" in message and "deb.debian.org" in message and cpp.ORT_DIR_ENV in message
    assert issubclass(cpp.OrtSdkUnavailable, cpp.CppBuildError), "the notebook catches CppBuildError"
