"""What a runtime is, as one record: :class:`RuntimeSpec`.

Each runtime module (:mod:`.torch_family`, :mod:`.ort`, :mod:`.openvino`) declares its specs in a
``RUNTIMES`` tuple; :mod:`.runtimes` (the registry) collects them. Everything that lists runtimes
— :func:`helpers.runners.available_runtimes`, :func:`helpers.runners.for_runtime`, the labels,
the environment report, the classroom widgets — loops over the registry, so a spec is the only
place a runtime is described.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from helpers.runners.base import Runner

__all__ = [
    "ARTIFACT_KINDS",
    "ArtifactKind",
    "RunnerFactory",
    "RuntimeSpec",
    "module_available",
]

#: The kind of file or object a runtime runs.
ArtifactKind = Literal["module", "torchscript", "exported-program", "aoti-package", "onnx"]

#: Each artifact kind, as a sentence fragment ("runs an ONNX file").
ARTIFACT_KINDS: dict[ArtifactKind, str] = {
    "module": "a PyTorch nn.Module",
    "torchscript": "a TorchScript file or ScriptModule",
    "exported-program": "a .pt2 from torch.export.save or an ExportedProgram",
    "aoti-package": "an AOTInductor package (.pt2)",
    "onnx": "an ONNX file (OpenVINO also reads its IR .xml)",
}
#: Artifacts that do not carry their input/output signature (the runner needs it passed in).
_PYTORCH_ARTIFACTS: frozenset[ArtifactKind] = frozenset(
    {"module", "torchscript", "exported-program", "aoti-package"}
)

#: ``make(artifact, *, threads, name, strict, precision, inputs, output_names, trusted) -> Runner``;
#: a factory takes the keywords it uses and ignores the others (``**_``).
RunnerFactory = Callable[..., Runner]


def module_available(name: str) -> bool:
    """Whether ``import name`` would find the module (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class RuntimeSpec:
    """One runtime the suite can run a model on.

    - ``key``: the name :func:`helpers.runners.for_runtime` takes (``"onnxruntime-cuda"``);
    - ``label``: its readable name, the default runner name (``"ONNX Runtime — CUDA EP"``);
    - ``needs``: what it needs, for saying why it is missing (``"OpenVINO (openvino)"``);
    - ``artifact``: what it runs (:data:`ArtifactKind`: ``module``, ``torchscript``,
      ``exported-program``, ``aoti-package`` or ``onnx``);
    - ``available()``: whether its packages or build are installed here (cheap, no model run);
      the registry adds the GPU check for ``needs_gpu`` runtimes (a CUDA build lists CUDA
      without a GPU);
    - ``make(artifact, *, threads, name, strict, precision, inputs, output_names, trusted)``: the
      runner, configured; :func:`~helpers.runners.for_runtime` checks the arguments first;
    - ``needs_gpu`` / ``execution_provider``: a request that could fall back to the CPU
      unnoticed, so :func:`~helpers.runners.for_runtime` is strict by default for them;
    - ``reduced_precision``: takes ``precision="bf16"`` / ``"f16"`` (others run the artifact's
      own precision); ``legacy``: deprecated upstream (TorchScript).
    """

    key: str
    label: str
    needs: str
    artifact: ArtifactKind
    available: Callable[[], bool]
    make: RunnerFactory
    needs_gpu: bool = False
    #: The ONNX Runtime execution provider it runs on (ONNX Runtime runtimes only).
    execution_provider: str | None = None
    reduced_precision: bool = False
    legacy: bool = False

    def __post_init__(self) -> None:
        if not self.key or not self.label:
            raise ValueError("a runtime needs a key and a label")
        if self.artifact not in ARTIFACT_KINDS:
            raise ValueError(
                f"runtime {self.key!r}: artifact must be one of {', '.join(ARTIFACT_KINDS)}, "
                f"got {self.artifact!r}"
            )

    @property
    def needs_signature(self) -> bool:
        """True when the artifact does not carry its signature (the PyTorch family): pass
        ``inputs=`` and ``output_names=``."""
        return self.artifact in _PYTORCH_ARTIFACTS

    @property
    def strict_by_default(self) -> bool:
        """GPUs and non-CPU execution providers: a fallback to the CPU raises unless asked not to."""
        return self.needs_gpu or self.execution_provider not in (None, "CPUExecutionProvider")

    @property
    def artifact_description(self) -> str:
        """What it runs, e.g. ``"an ONNX file (OpenVINO also reads its IR .xml)"``."""
        return ARTIFACT_KINDS[self.artifact]
