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
:func:`openvino_throughput_runner` ``openvino`` the same, in throughput mode (a request pool)
===========================  =================  ==========================================

Every ``run`` validates its inputs first (:func:`validate_inputs`): missing or extra names, wrong
rank, wrong fixed dimensions, wrong dtype and non-numpy values (torch tensors, lists) raise
:class:`InputError` with the expected signature in the message, instead of an opaque error deep
inside a runtime. Arrays in the other byte order (``x.astype(">f4")``, which numpy still calls
``float32``) are converted to the machine's order before any runtime sees them
(:func:`native_byte_order`): ONNX Runtime would otherwise read them as garbage without an error.

Layout: :mod:`.base` (signatures, validation, :class:`Runner`), :mod:`.spec` (a runtime as one
record, :class:`RuntimeSpec`), the runtime modules :mod:`.torch_family`, :mod:`.ort` and
:mod:`.openvino` (each a runner factory plus its ``RUNTIMES`` specs), :mod:`.runtimes` (the
registry: :func:`available_runtimes`, :func:`for_runtime`, :func:`runtime_specs`,
:func:`register`), :mod:`.openvino_throughput` (OpenVINO's throughput mode: a pool of infer
requests), :mod:`.trust` (which model files may be loaded). Import everything from
``helpers.runners``.

Model files can be code: a ``.pt2`` may hold pickles that ``torch.export.load`` unpickles without
restriction, and an AOTInductor package is a shared library. :func:`exported_program_runner`
inspects the archive first and refuses such pickles; :func:`aoti_runner` loads only the suite's
own packages unless told ``trusted=True``; both take ``sha256=`` to check a published hash.
Refusals raise :class:`UntrustedArtifactError`.

Runtimes are records. Each is a :class:`RuntimeSpec` (key, label, what it needs, the artifact it
runs, GPU / execution provider, ``available()``, ``make(...)``) in the registry, and everything
that lists runtimes loops over it::

    for spec in runtime_specs():                     # display order
        spec.key, spec.label, spec.artifact          # "openvino", "OpenVINO (native)", "onnx"
    available_runtimes()                             # {"pytorch": True, "pytorch-cuda": False, ...}
    for_runtime("openvino", "model.onnx", threads=2) # one configured runner per key
    runtime_specs(artifact="onnx")                   # the runtimes that run an ONNX file

Adding a runtime is one module (its runner and ``RUNTIMES = (RuntimeSpec(...),)``) plus one line
in :data:`RUNTIME_MODULES`; :func:`register` adds one at run time. :data:`RUNTIME_LABELS` and
:data:`RUNTIME_NEEDS` are live views of the registry (``{key: label}``, ``{key: needs}``).

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
    native_byte_order,
    validate_inputs,
)
from helpers.runners.openvino import openvino_runner, ov_dtype_name, ov_port_name
from helpers.runners.openvino_throughput import ThroughputRunner, openvino_throughput_runner
from helpers.runners.ort import ort_providers_for, ort_runner
from helpers.runners.runtimes import (
    ONNX_RUNTIMES,
    RUNTIME_LABELS,
    RUNTIME_MODULES,
    RUNTIME_NEEDS,
    RUNTIMES,
    TORCH_RUNTIMES,
    RegistryView,
    available_runtimes,
    for_runtime,
    register,
    runtime_spec,
    runtime_specs,
    unregister,
)
from helpers.runners.spec import ARTIFACT_KINDS, RuntimeSpec
from helpers.runners.torch_family import (
    aoti_runner,
    exported_program_runner,
    torch_runner,
    torch_threads,
    torchscript_runner,
)
from helpers.runners.trust import UntrustedArtifactError

__all__ = [
    "ARTIFACT_KINDS",
    "ONNX_RUNTIMES",
    "RUNTIMES",
    "RUNTIME_LABELS",
    "RUNTIME_MODULES",
    "RUNTIME_NEEDS",
    "TORCH_RUNTIMES",
    "InputError",
    "ProviderFallbackWarning",
    "ProviderUnavailableError",
    "RegistryView",
    "Runner",
    "RuntimeSpec",
    "TensorSpec",
    "ThroughputRunner",
    "UntrustedArtifactError",
    "aoti_runner",
    "available_runtimes",
    "default_threads",
    "exported_program_runner",
    "for_runtime",
    "format_signature",
    "native_byte_order",
    "openvino_runner",
    "openvino_throughput_runner",
    "ort_providers_for",
    "ort_runner",
    "ov_dtype_name",
    "ov_port_name",
    "register",
    "runtime_spec",
    "runtime_specs",
    "torch_runner",
    "torch_threads",
    "torchscript_runner",
    "unregister",
    "validate_inputs",
]
