"""Hugging Face Optimum next to the hand-written path: what is installed, and why it did not run.

``optimum-intel``'s ``OVModelForCausalLM`` is what a project would use to run a transformers
causal LM on OpenVINO; ``optimum-onnx``'s ``ORTModelForCausalLM`` is the ONNX Runtime side.
Both depend on narrow ranges of transformers and OpenVINO releases, so whether they run in a
given environment is a fact to *compute*, not to assume: :func:`optimum_intel_problem` turns a
failure into a sentence built from the installed versions and the package's own declarations.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata

__all__ = ["declared_requirements", "installed_version", "optimum_intel_problem"]


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or ``None`` when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def declared_requirements(dist: str, names: tuple[str, ...]) -> list[str]:
    """The requirements ``dist`` declares on the distributions ``names`` (extras markers kept)."""
    try:
        requires = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return []
    wanted = {n.lower().replace("_", "-") for n in names}
    out = []
    for line in requires:
        name = line.split(";")[0].strip()
        for sep in "<>=!~[ (":
            name = name.split(sep)[0]
        if name.lower().replace("_", "-") in wanted:
            out.append(line.strip())
    return out


def _openvino_recognised() -> bool | None:
    try:
        utils = importlib.import_module("optimum.intel.utils.import_utils")
    except Exception:  # noqa: BLE001 - any import failure means "could not ask"
        return None
    check = getattr(utils, "is_openvino_available", None)
    return bool(check()) if callable(check) else None


def optimum_intel_problem(error: BaseException | None = None) -> str:
    """Why ``optimum-intel`` could not run here, from what is installed (one paragraph).

    Names the installed optimum-intel, transformers and openvino versions, what optimum-intel
    declares it needs from transformers and openvino, whether it recognises the installed
    openvino (``is_openvino_available``), and the error it raised (when given).
    """
    version = installed_version("optimum-intel")
    if version is None:
        return ("optimum-intel is not installed in this environment "
                "(pip install 'optimum-intel[openvino]').")
    parts = [
        f"optimum-intel {version} is installed (transformers {installed_version('transformers')}, "
        f"openvino {installed_version('openvino')}, optimum {installed_version('optimum')})."
    ]
    declared = declared_requirements("optimum-intel", ("transformers", "openvino"))
    if declared:
        parts.append("It declares: " + "; ".join(declared) + ".")
    recognised = _openvino_recognised()
    if recognised is False:
        parts.append("It does not recognise the installed openvino package (its "
                     "is_openvino_available() is False): this release predates that OpenVINO.")
    if error is not None:
        message = " ".join(str(error).split())
        parts.append(f"Error: {type(error).__name__}: {message[:240]}")
    return " ".join(parts)
