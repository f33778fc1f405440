"""The PyTorch family of runners: eager, TorchScript (legacy), torch.export and AOTInductor.

The file-based runners check a file before they load it (:mod:`helpers.runners.trust`): a
``.pt2`` is refused when it holds pickles that ``weights_only=True`` would refuse or compiled
code; an AOTInductor package (a shared library) only loads from the suite's own folders, with a
matching ``sha256=`` or with ``trusted=True``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.runners.base import (
    Runner,
    TensorSpec,
    base_description,
    report_fallback,
)
from helpers.runners.spec import RunnerFactory, RuntimeSpec, module_available
from helpers.runners.trust import check_pt2, check_sha256, require_trusted_code

if TYPE_CHECKING:
    import torch

__all__ = [
    "RUNTIMES",
    "aoti_runner",
    "exported_program_runner",
    "torch_runner",
    "torch_threads",
    "torchscript_runner",
]


# --------------------------------------------------------------------------------------------
# PyTorch family: eager, TorchScript, torch.export, AOTInductor
# --------------------------------------------------------------------------------------------


def _torch_precision(module: torch.nn.Module) -> str:
    try:
        param = next(iter(module.parameters()))
    except (StopIteration, AttributeError, TypeError):
        return "float32"
    return str(param.dtype).replace("torch.", "")


def _flatten(value: object) -> list[object]:
    if isinstance(value, (list, tuple)):
        flat: list[object] = []
        for item in value:
            flat.extend(_flatten(item))
        return flat
    return [value]


def _to_numpy(value: object, name: str) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16
            value = value.float()
        return value.cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (int, float, bool, np.number)):
        return np.asarray(value)
    raise TypeError(f"output {name!r} is a {type(value).__name__}, not a tensor")


def _map_outputs(result: object, output_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Map a tensor, tuple/list, dict or transformers ModelOutput to ``output_names``."""
    names = list(output_names)
    if isinstance(result, Mapping):  # dict, transformers ModelOutput (an OrderedDict)
        if all(n in result for n in names):
            return {n: _to_numpy(result[n], n) for n in names}
        values = _flatten([v for v in result.values() if v is not None])
    else:
        values = _flatten(result)
    if len(values) < len(names):
        raise ValueError(
            f"the model returned {len(values)} output(s) but output_names lists {len(names)}: {names}"
        )
    if len(values) > len(names) and not isinstance(result, Mapping):
        raise ValueError(
            f"the model returned {len(values)} outputs but output_names lists only {len(names)}: "
            f"{names}; name every output"
        )
    return {n: _to_numpy(v, n) for n, v in zip(names, values, strict=False)}


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(threads)``; the previous count is restored.

    ``None`` leaves the setting alone. Yields the thread count in force inside the block.
    """
    import torch

    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(int(threads))
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class _TorchFamilyRunner(Runner):
    """Shared plumbing: numpy -> tensors on ``device``, ``inference_mode``, outputs -> numpy."""

    legacy = False

    def __init__(
        self,
        fn: Callable[..., object],
        inputs: Sequence[TensorSpec],
        output_names: Sequence[str],
        *,
        name: str,
        runtime: str,
        device: str = "cpu",
        threads: int | None = None,
        artifact: str | None = None,
        precision: str = "float32",
        note: str = "",
    ) -> None:
        self._fn = fn
        self.inputs = list(inputs)
        self.output_names = list(output_names)
        self.name = name
        self.runtime = runtime
        self.device = device
        self.threads = threads
        self.artifact = artifact
        self.precision = precision
        self.note = note

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = []
        for spec in self.inputs:
            array = inputs[spec.name]
            if not array.flags.writeable or not array.flags.c_contiguous:
                array = np.array(array, order="C", copy=True)
            args.append(torch.from_numpy(array).to(self.device))
        with torch.inference_mode():  # the thread count is the process's: see thread_scope()
            result = self._fn(*args)
        return _map_outputs(result, self.output_names)

    def thread_scope(self) -> contextlib.AbstractContextManager[Any]:
        """``torch_threads(self.threads)``: the block runs with the count this runner is measured
        at (``None``: as the process has it). See :meth:`helpers.runners.Runner.thread_scope`."""
        return torch_threads(self.threads)

    def describe(self) -> dict[str, Any]:
        import torch

        info = base_description(
            self,
            version=torch.__version__,
            device=self.device,
            providers_requested=None,
            providers_actual=None,
            threads={
                "intra_op": self.threads if self.threads is not None else torch.get_num_threads(),
                "inter_op": torch.get_num_interop_threads(),
            },
            artifact=self.artifact,
            legacy=self.legacy,
        )
        if self.device.startswith("cuda") and torch.cuda.is_available():
            info["device_name"] = torch.cuda.get_device_name(torch.device(self.device))
        if self.note:
            info["note"] = self.note
        return info


class _TorchScriptRunner(_TorchFamilyRunner):
    legacy = True


def _resolve_torch_device(device: str, *, strict: bool) -> str:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        report_fallback(
            f"PyTorch device {device!r} was requested but no CUDA GPU is usable here "
            f"(torch {torch.__version__}); running on 'cpu' instead.",
            strict=strict,
            title="Running on CPU, not CUDA",
        )
        return "cpu"
    return device


def torch_runner(
    model: torch.nn.Module,
    inputs: Sequence[TensorSpec],
    output_names: Sequence[str],
    *,
    name: str = "PyTorch eager",
    device: str = "cpu",
    threads: int | None = None,
    strict: bool = False,
) -> Runner:
    """PyTorch eager: ``model.eval()``, called under ``torch.inference_mode()``.

    The model is called with positional arguments in the order of ``inputs``. Its output may be a
    tensor, a (nested) tuple/list, a dict or a transformers ``ModelOutput``; it is mapped to
    ``output_names`` (by key when the keys match, else in order). ``threads`` is the
    intra-op thread count the runner is measured at: the timing loops run it inside
    :meth:`thread_scope` (``torch.set_num_threads`` for the block, restored after); a plain call
    uses the process's setting, which PyTorch shares between all threads and no call changes.
    ``device="cuda"`` without a usable GPU warns and runs on the CPU (``strict=True`` raises).
    """
    device = _resolve_torch_device(device, strict=strict)
    model.eval()
    model.to(device)
    return _TorchFamilyRunner(
        model,
        inputs,
        output_names,
        name=name,
        runtime="pytorch",
        device=device,
        threads=threads,
        artifact=type(model).__name__,
        precision=_torch_precision(model),
    )


def torchscript_runner(
    path: str | Path | torch.jit.ScriptModule,
    inputs: Sequence[TensorSpec],
    output_names: Sequence[str],
    *,
    name: str = "TorchScript (legacy)",
    threads: int | None = None,
    device: str = "cpu",
    sha256: str | None = None,
) -> Runner:
    """A TorchScript file (from ``torch.jit.trace``/``script`` + ``.save``) — **legacy**.

    ``torch.jit.load`` emits a FutureWarning in current PyTorch: TorchScript is deprecated in
    favour of ``torch.export``. The warning is left visible on purpose, and ``describe()`` says
    ``legacy: True``. An already loaded ``ScriptModule`` is accepted too.

    Trust: a TorchScript file holds TorchScript code and pickles that TorchScript's own,
    restricted unpickler reads (it refuses Python globals such as ``os.system``), so loading
    does not run Python from the file; calling the model runs its TorchScript code. ``sha256``
    (full hex digest or a prefix of at least 8 digits) is checked before loading when given.
    """
    import torch

    device = _resolve_torch_device(device, strict=False)
    if isinstance(path, (str, Path)):
        if sha256 is not None:
            check_sha256(path, sha256)
        module = torch.jit.load(str(path), map_location=device)
        artifact = str(path)
    else:
        module, artifact = path, type(path).__name__
    module.eval()
    return _TorchScriptRunner(
        module,
        inputs,
        output_names,
        name=name,
        runtime="torchscript",
        device=device,
        threads=threads,
        artifact=artifact,
        precision=_torch_precision(module),
        note="TorchScript is deprecated upstream (torch.jit.* emit FutureWarning); "
        "use torch.export / AOTInductor for new work.",
    )


def exported_program_runner(
    path_or_program: str | Path | torch.export.ExportedProgram,
    inputs: Sequence[TensorSpec],
    output_names: Sequence[str],
    *,
    name: str = "torch.export",
    threads: int | None = None,
    device: str = "cpu",
    trusted: bool = False,
    sha256: str | None = None,
) -> Runner:
    """A ``torch.export`` program: a ``.pt2`` from ``torch.export.save`` or an ``ExportedProgram``.

    Runs ``program.module()`` (a ``GraphModule``; it is already in inference form, so ``.eval()`` is
    neither needed nor supported) under ``torch.inference_mode()``.

    Trust: ``torch.export.load`` unpickles whatever pickles the archive holds with
    ``weights_only=False`` (PyTorch's own docs: never load one from an untrusted source), so a
    planted ``.pt2`` can run any command. The file is therefore read once and inspected first
    (:func:`helpers.runners.trust.pt2_problems`): pickles that ``weights_only=True`` refuses and
    compiled AOTInductor code raise :class:`~helpers.runners.trust.UntrustedArtifactError`, and
    what was inspected is what is loaded. What ``torch.export.save`` writes for plain tensors
    (raw bytes plus JSON) passes. ``sha256`` (full digest or a prefix of at least 8 hex digits)
    is checked first when given: it proves the file is the one that was published, not that its
    publisher's pickles are harmless. ``trusted=True`` skips the inspection, for a file whose
    source you trust (one you made, or one you verified and vouch for).
    """
    import torch

    if isinstance(path_or_program, (str, Path)):
        data = Path(path_or_program).read_bytes()
        if sha256 is not None:
            check_sha256(path_or_program, sha256, data=data)
        if not trusted:
            check_pt2(path_or_program, data)
        program = torch.export.load(io.BytesIO(data))
        artifact = str(path_or_program)
    else:
        program, artifact = path_or_program, type(path_or_program).__name__
    module = program.module()
    if device != "cpu":
        device = _resolve_torch_device(device, strict=False)
        module.to(device)
    return _TorchFamilyRunner(
        module,
        inputs,
        output_names,
        name=name,
        runtime="torch.export",
        device=device,
        threads=threads,
        artifact=artifact,
        precision=_torch_precision(module),
    )


def aoti_runner(
    package_path: str | Path,
    inputs: Sequence[TensorSpec],
    output_names: Sequence[str],
    *,
    name: str = "AOTInductor",
    threads: int | None = None,
    device: str = "cpu",
    trusted: bool = False,
    sha256: str | None = None,
) -> Runner:
    """An AOTInductor package (``torch._inductor.aoti_compile_and_package``), loaded with
    ``torch._inductor.aoti_load_package``: ahead-of-time compiled C++ kernels, no Python graph.

    ``device`` must be the device the package was compiled for.

    Trust: the package holds a shared library, and loading it runs native code — no inspection
    can make that safe. It is loaded only when it is the suite's own (inside the output folder
    or model cache, where the notebooks compile theirs) or with ``trusted=True``; otherwise
    :class:`~helpers.runners.trust.UntrustedArtifactError`. ``sha256`` (full digest or a prefix
    of at least 8 hex digits) is checked first when given — for a package from elsewhere, check
    it and pass ``trusted=True``.
    """
    import torch
    import torch._inductor

    require_trusted_code(
        package_path, trusted=trusted, sha256=sha256, what="an AOTInductor package (a shared library)"
    )
    compiled = torch._inductor.aoti_load_package(str(package_path))
    return _TorchFamilyRunner(
        compiled,
        inputs,
        output_names,
        name=name,
        runtime="aoti",
        device=device,
        threads=threads,
        artifact=str(package_path),
    )


# --------------------------------------------------------------------------------------------
# The runtime records (collected by helpers.runners.runtimes)
# --------------------------------------------------------------------------------------------
def _torch_has(*attributes: str) -> bool:
    """``torch`` is installed and has ``torch.<a>.<b>...`` (e.g. ``"jit.load"``)."""
    if not module_available("torch"):
        return False
    import torch

    for dotted in attributes:
        value: object = torch
        for part in dotted.split("."):
            if not hasattr(value, part):
                return False
            value = getattr(value, part)
    return True


def _cuda_usable() -> bool:
    if not module_available("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def _aoti_buildable() -> bool:
    return module_available("torch._inductor") and any(
        shutil.which(cc) for cc in ("g++", "c++", "clang++")
    )


def _make_eager(device: str) -> RunnerFactory:
    def make(
        artifact: torch.nn.Module,
        *,
        inputs: Sequence[TensorSpec],
        output_names: Sequence[str],
        name: str,
        threads: int | None = None,
        strict: bool = False,
        **_: object,
    ) -> Runner:
        model = copy.deepcopy(artifact) if device != "cpu" else artifact  # the caller's stays put
        return torch_runner(
            model, inputs, output_names, name=name, device=device, threads=threads, strict=strict
        )

    return make


def _make_from_file(factory: Callable[..., Runner], *, takes_trusted: bool = False) -> RunnerFactory:
    """The registry's ``make`` for a runner of a file (or of what loading it gives)."""

    def make(
        artifact: object,
        *,
        inputs: Sequence[TensorSpec],
        output_names: Sequence[str],
        name: str,
        threads: int | None = None,
        trusted: bool = False,
        **_: object,
    ) -> Runner:
        extra = {"trusted": trusted} if takes_trusted else {}
        return factory(artifact, inputs, output_names, name=name, threads=threads, **extra)

    return make


#: The PyTorch family's runtimes, in display order.
RUNTIMES: tuple[RuntimeSpec, ...] = (
    RuntimeSpec(
        key="pytorch",
        label="PyTorch eager",
        needs="PyTorch (torch)",
        artifact="module",
        available=lambda: module_available("torch"),
        make=_make_eager("cpu"),
    ),
    RuntimeSpec(
        key="pytorch-cuda",
        label="PyTorch eager (CUDA)",
        needs="an NVIDIA GPU visible to PyTorch",
        artifact="module",
        available=_cuda_usable,
        make=_make_eager("cuda"),
        needs_gpu=True,
    ),
    RuntimeSpec(
        key="torchscript",
        label="TorchScript (legacy)",
        needs="torch.jit",
        artifact="torchscript",
        available=lambda: _torch_has("jit.load"),
        make=_make_from_file(torchscript_runner),
        legacy=True,
    ),
    RuntimeSpec(
        key="torch.export",
        label="torch.export",
        needs="torch.export",
        artifact="exported-program",
        available=lambda: _torch_has("export.load"),
        make=_make_from_file(exported_program_runner, takes_trusted=True),
    ),
    RuntimeSpec(
        key="aoti",
        label="AOTInductor",
        needs="a C++ compiler (g++) for AOTInductor",
        artifact="aoti-package",
        available=_aoti_buildable,
        make=_make_from_file(aoti_runner, takes_trusted=True),
    ),
)
