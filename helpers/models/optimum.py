"""Hugging Face Optimum next to the hand-written paths: why it did not run, computed from the
installed packages.

Optimum wraps the export and the runtime for transformers models — ``optimum-intel`` for OpenVINO
(``OVModelForQuestionAnswering``, ``OVModelForCausalLM``, ...), ``optimum-onnx`` for ONNX Runtime
(``ORTModelFor...``). Both pin the transformers releases they support, so in a given environment
they may be missing, refuse to import, or import and then fail. :func:`problem` turns such a
failure into a sentence a learner can act on: what is installed, which requirement of the
package the environment breaks, and the error itself.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util

from packaging.requirements import InvalidRequirement, Requirement

__all__ = ["broken_requirements", "installed_version", "problem"]


def installed_version(dist: str) -> str | None:
    """The installed version of the distribution ``dist``, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def broken_requirements(dist: str, extras: tuple[str, ...] = ()) -> list[str]:
    """The requirements of ``dist`` (and of its ``extras``) that the installed packages break,
    as sentences: ``"transformers>=4.51,<5.6 (installed: transformers 5.23.0)"``. Requirements on
    packages that are not installed are left out (a missing package is its own problem)."""
    found = []
    for text in metadata.requires(dist) or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        env = [{"extra": extra} for extra in ("", *extras)]
        if req.marker is not None and not any(req.marker.evaluate(e) for e in env):
            continue
        have = installed_version(req.name)
        if (
            have is not None
            and req.specifier
            and not req.specifier.contains(have, prereleases=True)
        ):
            found.append(f"{req.name}{req.specifier} (installed: {req.name} {have})")
    return found


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": .")


def problem(
    exc: BaseException | None = None,
    *,
    dist: str = "optimum-intel",
    extra: str = "openvino",
    install_hint: bool = True,
) -> str:
    """Why ``dist`` did not run here, from the installed metadata and the error ``exc``.

    Says whether it is installed (and which version), which of its requirements the environment
    breaks, a known symptom (optimum-intel releases before OpenVINO 2025 import
    ``openvino.runtime``, which OpenVINO 2026 removed, and then report OpenVINO as missing), and
    the error's first line. ``install_hint``: say how to install a missing package.
    """
    version = installed_version(dist)
    if version is None:
        hint = f' (`pip install "{dist}[{extra}]"`)' if install_hint else ""
        return f"{dist} is not installed in this environment{hint}."
    parts = [f"{dist} {version} is installed"]
    broken = broken_requirements(dist, (extra,))
    if broken:
        parts.append("it requires " + "; ".join(broken))
    openvino = installed_version("openvino")
    if (
        exc is not None
        and "requires the openvino library" in str(exc)
        and openvino is not None
        and importlib.util.find_spec("openvino") is not None
        and _missing_module("openvino.runtime")
    ):
        parts.append(
            f"it looks for the `openvino.runtime` module, which OpenVINO {openvino} no longer has, "
            "and so reports OpenVINO as missing"
        )
    text = ", ".join(parts[:1]) + (": " + "; ".join(parts[1:]) if parts[1:] else "") + "."
    if exc is not None:
        text += f" The error: {_first_line(exc)}."
    return text


def _missing_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:
        return True
