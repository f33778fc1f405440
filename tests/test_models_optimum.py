"""helpers.models.optimum: why Hugging Face Optimum did not run, from the installed metadata."""

from __future__ import annotations

import importlib.metadata as metadata

import pytest

from helpers.models import optimum


@pytest.fixture
def fake_packages(monkeypatch):
    """A fake optimum-intel 9.0 that pins transformers < 5.6 next to transformers 5.23."""
    versions = {
        "optimum-intel": "9.0",
        "transformers": "5.23.0",
        "openvino": "2026.4.1",
        "onnx": "1.23.2",
    }
    requires = {
        "optimum-intel": [
            "transformers<5.6,>=4.51",
            "onnx ; extra == 'openvino'",
            "openvino<2025 ; extra == 'openvino'",
            "torch ; extra == 'tests'",
            "not a requirement !!",
        ]
    }

    def version(dist):
        if dist not in versions:
            raise metadata.PackageNotFoundError(dist)
        return versions[dist]

    monkeypatch.setattr(optimum.metadata, "version", version)
    monkeypatch.setattr(optimum.metadata, "requires", lambda dist: requires.get(dist, []))
    return versions


def test_a_missing_package_says_how_to_install_it():
    text = optimum.problem(
        ImportError("No module named 'optimum_nothing'"), dist="optimum-nothing", extra="x"
    )
    assert text == (
        "optimum-nothing is not installed in this environment "
        '(`pip install "optimum-nothing[x]"`).'
    )


def test_broken_requirements_are_named_with_the_installed_versions(fake_packages):
    assert optimum.broken_requirements("optimum-intel") == [
        "transformers<5.6,>=4.51 (installed: transformers 5.23.0)"
    ]
    with_extra = optimum.broken_requirements("optimum-intel", ("openvino",))
    assert "openvino<2025 (installed: openvino 2026.4.1)" in with_extra and len(with_extra) == 2


def test_the_problem_joins_requirements_and_the_error(fake_packages):
    text = optimum.problem(ImportError("cannot import name 'VisionRotaryEmbedding'\nmore lines"))
    assert text.startswith(
        "optimum-intel 9.0 is installed: it requires transformers<5.6,>=4.51 (installed: "
        "transformers 5.23.0); openvino<2025 (installed: openvino 2026.4.1)."
    )
    assert text.endswith("The error: ImportError: cannot import name 'VisionRotaryEmbedding'.")


def test_the_removed_openvino_runtime_module_is_recognised(fake_packages, monkeypatch):
    monkeypatch.setattr(optimum, "_missing_module", lambda name: name == "openvino.runtime")
    monkeypatch.setattr(optimum.importlib.util, "find_spec", lambda name: object())
    text = optimum.problem(
        ImportError(
            "OVModelForQuestionAnswering requires the openvino library but it was "
            "not found in your environment."
        )
    )
    assert "`openvino.runtime` module, which OpenVINO 2026.4.1 no longer has" in text
    monkeypatch.setattr(optimum, "_missing_module", lambda name: False)
    assert "openvino.runtime" not in optimum.problem(ImportError("requires the openvino library"))
