"""The C++ TorchScript consumer builds against the wheel's libtorch and matches Python.

The first run compiles (tens of seconds); the build is cached under outputs/cpp/ keyed on the
sources and the torch version, so later runs only execute the program.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from helpers import cpp, toy_models
from helpers.paths import output_dir

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
    model = toy_models.TinyClassifier()
    x = toy_models.example_images(batch=3, size=16)
    path = _save_traced(model, x, "tiny_classifier.pt")
    result = cpp.run_consumer(path, x.numpy(), executable=executable)
    with torch.inference_mode():
        expected = model(x).numpy()
    assert result.output.shape == expected.shape
    np.testing.assert_allclose(result.output, expected, rtol=1e-5, atol=1e-6)
    assert result.load_ms > 0 and result.run_ms > 0


def test_cpp_reports_a_missing_module(executable):
    x = toy_models.example_images(batch=1, size=16)
    with pytest.raises(RuntimeError, match="C\\+\\+ consumer failed"):
        cpp.run_consumer(output_dir("tests", "cpp") / "missing.pt", x.numpy(), executable=executable)
