"""One small interface over every runtime the suite teaches.

A *runner* is made from a model artifact, takes **named numpy inputs** and returns **named numpy
outputs**, and can describe itself (runtime, version, device or execution providers actually in
use, threads). Application code that talks to a runner does not change when the runner does::

    runner = ort_runner("model.onnx")                # or torch_runner(...), openvino_runner(...)
    outputs = runner({"input": batch})               # dict[str, np.ndarray]
    runner.describe()                                # what really ran, and how

Factories (one per runtime):

===========================  =================  ==========================================
factory                      ``runtime``        artifact
===========================  =================  ==========================================
:func:`torch_runner`         ``pytorch``        an ``nn.Module`` (eager, ``inference_mode``)
:func:`torchscript_runner`   ``torchscript``    a TorchScript file (legacy, deprecated upstream)
:func:`exported_program_runner` ``torch.export`` a ``.pt2`` from ``torch.export.save``
:func:`aoti_runner`          ``aoti``           an AOTInductor package (``.pt2``)
:func:`ort_runner`           ``onnxruntime``    an ONNX file + execution providers
:func:`openvino_runner`      ``openvino``       an ONNX / OpenVINO IR file or an ``nn.Module``
===========================  =================  ==========================================

Every ``run`` validates its inputs first (:func:`validate_inputs`): missing or extra names, wrong
rank, wrong fixed dimensions, wrong dtype and non-numpy values (torch tensors, lists) raise
:class:`InputError` with the expected signature in the message, instead of an opaque error deep
inside a runtime.

Layout: :mod:`.base` (signatures, validation, :class:`Runner`), :mod:`.torch_family`,
:mod:`.ort`, :mod:`.openvino`, :mod:`.runtimes` (:func:`available_runtimes`,
:func:`for_runtime`). Import everything from ``helpers.runners``.

The runtime keys of :func:`available_runtimes` each get a configured runner from one factory,
:func:`for_runtime` (``for_runtime("openvino", "model.onnx", threads=2)``).

Fallbacks are never silent: when an execution provider or device that was asked for is not the
one that runs, the runner warns with :class:`ProviderFallbackWarning` (naming what really runs)
and shows a banner; ``strict=True`` raises :class:`ProviderUnavailableError` instead.
"""

from helpers.runners.base import (
    InputError,
    ProviderFallbackWarning,
    ProviderUnavailableError,
    Runner,
    TensorSpec,
    default_threads,
    format_signature,
    validate_inputs,
)
from helpers.runners.openvino import openvino_runner, ov_dtype_name, ov_port_name
from helpers.runners.ort import ort_providers_for, ort_runner
from helpers.runners.runtimes import (
    ONNX_RUNTIMES,
    RUNTIME_LABELS,
    RUNTIME_NEEDS,
    TORCH_RUNTIMES,
    available_runtimes,
    for_runtime,
)
from helpers.runners.torch_family import (
    aoti_runner,
    exported_program_runner,
    torch_runner,
    torch_threads,
    torchscript_runner,
)

__all__ = [
    "ONNX_RUNTIMES",
    "RUNTIME_LABELS",
    "RUNTIME_NEEDS",
    "TORCH_RUNTIMES",
    "InputError",
    "ProviderFallbackWarning",
    "ProviderUnavailableError",
    "Runner",
    "TensorSpec",
    "aoti_runner",
    "available_runtimes",
    "default_threads",
    "exported_program_runner",
    "for_runtime",
    "format_signature",
    "openvino_runner",
    "ort_providers_for",
    "ort_runner",
    "ov_dtype_name",
    "ov_port_name",
    "torch_runner",
    "torch_threads",
    "torchscript_runner",
    "validate_inputs",
]
