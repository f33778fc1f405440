"""The registry of runtimes: which run here, and one factory that configures a runner for any.

Every runtime is one :class:`~helpers.runners.spec.RuntimeSpec`, declared in its own module's
``RUNTIMES`` tuple; :data:`RUNTIME_MODULES` names those modules, one line each, in display order.
:func:`available_runtimes`, :func:`for_runtime`, the labels, the environment report and the
classroom widgets loop over :func:`runtime_specs`, so adding a runtime is one module plus one
line here. :func:`register` adds a spec at run time (a plug-in, a test's fake runtime) and
:func:`unregister` removes it again.

:func:`for_runtime` turns a key and an artifact into a runner set up the way the suite compares
runtimes (same thread count, explicit providers, strict GPU requests), so the environment report,
notebook 04 and the classroom widgets build their runners in one place.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from helpers.hardware import gpu_present
from helpers.runners.base import Runner, TensorSpec
from helpers.runners.spec import ArtifactKind, RuntimeSpec

__all__ = [
    "ONNX_RUNTIMES",
    "RUNTIMES",
    "RUNTIME_LABELS",
    "RUNTIME_MODULES",
    "RUNTIME_NEEDS",
    "TORCH_RUNTIMES",
    "RegistryView",
    "available_runtimes",
    "for_runtime",
    "register",
    "runtime_spec",
    "runtime_specs",
    "unregister",
]

#: The modules whose ``RUNTIMES`` tuple holds the suite's runtimes, in display order.
#: Adding a runtime: write its module (runner + ``RUNTIMES = (RuntimeSpec(...),)``), add it here.
RUNTIME_MODULES = (
    "helpers.runners.torch_family",
    "helpers.runners.ort",
    "helpers.runners.openvino",
)

_REGISTRY: dict[str, RuntimeSpec] = {}
_FP32 = {"float32", "fp32", "f32"}


def register(spec: RuntimeSpec, *, replace: bool = False) -> RuntimeSpec:
    """Add ``spec`` to the registry (after the others); returns it.

    A key that is already registered raises ``ValueError`` unless ``replace=True`` (which keeps
    its place in the order).
    """
    if not isinstance(spec, RuntimeSpec):
        raise TypeError(f"register() takes a RuntimeSpec, got {type(spec).__name__}")
    if spec.key in _REGISTRY and not replace:
        raise ValueError(f"runtime {spec.key!r} is already registered ({_REGISTRY[spec.key].label})")
    _REGISTRY[spec.key] = spec
    return spec


def unregister(key: str) -> RuntimeSpec:
    """Remove runtime ``key`` from the registry; returns its spec."""
    return _REGISTRY.pop(runtime_spec(key).key)


def runtime_spec(key: str) -> RuntimeSpec:
    """The spec of runtime ``key``; ``ValueError`` naming the choices for an unknown key."""
    try:
        return _REGISTRY[key]
    except KeyError:
        raise ValueError(
            f"unknown runtime {key!r}; choose one of {', '.join(_REGISTRY)}"
        ) from None


def runtime_specs(*, artifact: ArtifactKind | None = None) -> tuple[RuntimeSpec, ...]:
    """Every registered runtime in display order (only those running ``artifact``, if given).

    ``[spec.label for spec in runtime_specs()]`` names them all; ``runtime_specs(artifact="onnx")``
    are those that run an ONNX file.
    """
    return tuple(s for s in _REGISTRY.values() if artifact is None or s.artifact == artifact)


def _runs_here(spec: RuntimeSpec) -> bool:
    try:
        installed = bool(spec.available())
    except Exception:  # a broken install counts as absent; the report says why
        return False
    # A CUDA build lists CUDA without a GPU and then runs on the CPU: the list alone lies.
    return installed and (not spec.needs_gpu or gpu_present())


def available_runtimes() -> dict[str, bool]:
    """``{key: runs here}`` for every registered runtime, in display order.

    A runtime counts when its packages are installed (``spec.available()``) and, for those that
    need a GPU (``pytorch-cuda``, ``onnxruntime-cuda``), a GPU is visible — an execution provider
    listed by the build is not enough. See :func:`runtime_specs` for what each key is.
    """
    return {spec.key: _runs_here(spec) for spec in _REGISTRY.values()}


def for_runtime(
    key: str,
    artifact: Any,
    threads: int | None = None,
    *,
    inputs: Sequence[TensorSpec] | None = None,
    output_names: Sequence[str] | None = None,
    name: str | None = None,
    precision: str | None = None,
    strict: bool | None = None,
    trusted: bool = False,
) -> Runner:
    """A runner for runtime ``key`` (see :func:`runtime_specs`), set up for comparisons.

    - ``artifact``: what the runtime's spec says it runs (``spec.artifact``): an ``nn.Module``
      for ``pytorch`` / ``pytorch-cuda`` (the CUDA runner gets a copy, so the module stays on
      the CPU); a TorchScript file or ``ScriptModule`` for ``torchscript``; a ``.pt2`` or
      ``ExportedProgram`` for ``torch.export``; an AOTInductor package for ``aoti``; an ONNX
      file for the ONNX Runtime keys and ``openvino``.
    - ``inputs`` / ``output_names``: the signature; required by the PyTorch family (ONNX-based
      runners read it from the file).
    - ``threads``: intra-op threads for every runtime (ONNX Runtime inter-op stays 1; OpenVINO's
      ``INFERENCE_NUM_THREADS``); ``None`` leaves each runtime's default.
    - ``precision``: ``None`` keeps each runtime's default; ``"float32"`` asks for true fp32
      where a runtime would choose less by default — OpenVINO's bf16 on CPUs that have it
      (``INFERENCE_PRECISION_HINT=f32``) and TF32 matmuls on the CUDA EP (``use_tf32=0``).
      Runtimes with ``spec.reduced_precision`` (OpenVINO) also take ``"bf16"`` / ``"f16"``.
    - ``strict``: defaults to True for GPUs and execution providers (a request that would fall
      back to the CPU raises :class:`ProviderUnavailableError` instead of measuring the CPU under
      another name) and False for CPU runtimes (``spec.strict_by_default``).
    - ``name``: defaults to the runtime's label (``spec.label``, :data:`RUNTIME_LABELS`).
    - ``trusted``: vouch for a ``.pt2`` / AOTInductor file from outside the suite's folders
      (see :func:`exported_program_runner` and :func:`aoti_runner`: such files can run code).
    """
    spec = runtime_spec(key)
    if precision is not None and precision.lower() not in _FP32 and not spec.reduced_precision:
        takers = [s.label for s in _REGISTRY.values() if s.reduced_precision]
        raise ValueError(
            f"precision={precision!r}: only {' and '.join(takers) or 'no runtime'} "
            "take(s) a reduced precision; the other runtimes run the artifact's own precision "
            "(None or 'float32')"
        )
    name = name or spec.label
    if spec.needs_signature and (inputs is None or output_names is None):
        raise ValueError(
            f"{key} runs a PyTorch artifact ({spec.artifact_description}), which does not carry "
            "its signature: pass inputs= and output_names="
        )
    if artifact is None:
        raise ValueError(f"{name} runs {spec.artifact_description}: pass it as the artifact")
    return spec.make(
        artifact,
        threads=threads,
        name=name,
        strict=spec.strict_by_default if strict is None else strict,
        precision=precision,
        inputs=list(inputs) if inputs is not None else None,
        output_names=list(output_names) if output_names is not None else None,
        trusted=trusted,
    )


# --------------------------------------------------------------------------------------------
# Read-only views of the registry (always the runtimes registered now)
# --------------------------------------------------------------------------------------------
T = TypeVar("T")


class RegistryView(Mapping[str, T]):
    """``{key: pick(spec)}`` over the registered runtimes that pass ``where``, in display order.

    A view, not a copy: a runtime registered later shows up in it.
    """

    def __init__(
        self,
        pick: Callable[[RuntimeSpec], T],
        where: Callable[[RuntimeSpec], bool] | None = None,
        description: str = "",
    ) -> None:
        self._pick = pick
        self._where = where or (lambda spec: True)
        self._description = description

    def _specs(self) -> Iterator[RuntimeSpec]:
        return (spec for spec in _REGISTRY.values() if self._where(spec))

    def __getitem__(self, key: str) -> T:
        spec = _REGISTRY.get(key)
        if spec is None or not self._where(spec):
            raise KeyError(key)
        return self._pick(spec)

    def __iter__(self) -> Iterator[str]:
        return (spec.key for spec in self._specs())

    def __len__(self) -> int:
        return sum(1 for _ in self._specs())

    def __repr__(self) -> str:
        return f"<{self._description or 'runtimes'}: {dict(self)!r}>"


#: ``{key: spec}`` of every registered runtime.
RUNTIMES: RegistryView[RuntimeSpec] = RegistryView(lambda spec: spec, description="RUNTIMES")
#: A readable name for every runtime key (the default runner name).
RUNTIME_LABELS: RegistryView[str] = RegistryView(
    lambda spec: spec.label, description="RUNTIME_LABELS"
)
#: What each runtime needs, for saying why it is missing in this kernel.
RUNTIME_NEEDS: RegistryView[str] = RegistryView(lambda spec: spec.needs, description="RUNTIME_NEEDS")
#: Runtimes whose artifact is a PyTorch module, program or package (they need a signature).
TORCH_RUNTIMES: RegistryView[RuntimeSpec] = RegistryView(
    lambda spec: spec, lambda spec: spec.needs_signature, "TORCH_RUNTIMES"
)
#: Runtimes whose artifact is an ONNX file (OpenVINO also reads its IR ``.xml``).
ONNX_RUNTIMES: RegistryView[RuntimeSpec] = RegistryView(
    lambda spec: spec, lambda spec: spec.artifact == "onnx", "ONNX_RUNTIMES"
)


def _register_builtin() -> None:
    for module_name in RUNTIME_MODULES:
        specs: tuple[RuntimeSpec, ...] = importlib.import_module(module_name).RUNTIMES
        for spec in specs:
            register(spec)


_register_builtin()
