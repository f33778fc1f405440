"""The runner interface: signatures, input validation, the :class:`Runner` base class, fallbacks.

Every runtime module (:mod:`.torch_family`, :mod:`.ort`, :mod:`.openvino`) builds on this one.
"""

from __future__ import annotations

import abc
import contextlib
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.display import banner
from helpers.hardware import cpu_info

__all__ = [
    "InputError",
    "ProviderFallbackWarning",
    "ProviderUnavailableError",
    "Runner",
    "TensorSpec",
    "base_description",
    "default_threads",
    "format_signature",
    "native_byte_order",
    "report_fallback",
    "validate_inputs",
]


# --------------------------------------------------------------------------------------------
# Signatures and input validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one model input.

    ``shape`` holds an ``int`` for a fixed dimension and a ``str`` (symbolic, e.g. ``"batch"``) or
    ``None`` (unnamed) for a dynamic one. ``dtype`` is a numpy dtype name (``"float32"``).
    """

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str

    def __str__(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


class InputError(ValueError):
    """Inputs do not match the runner's signature; the message names the expected signature."""


class ProviderFallbackWarning(UserWarning):
    """An execution provider or device that was asked for is not the one that runs."""


class ProviderUnavailableError(RuntimeError):
    """Raised instead of :class:`ProviderFallbackWarning` when a runner is created with ``strict=True``."""


def format_signature(specs: Sequence[TensorSpec]) -> str:
    """``"input_ids: int64[batch, seq], attention_mask: int64[batch, seq]"``."""
    return ", ".join(str(spec) for spec in specs)


def _describe_value(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype.name}[{', '.join(str(d) for d in value.shape)}]"
    module = type(value).__module__
    if module.startswith("torch"):
        shape = getattr(value, "shape", None)
        dims = ", ".join(str(d) for d in shape) if shape is not None else "?"
        return f"torch.Tensor {getattr(value, 'dtype', '?')}[{dims}]"
    return type(value).__name__


def _describe_inputs(inputs: Mapping[str, object]) -> str:
    return (
        ", ".join(f"{name}: {_describe_value(value)}" for name, value in inputs.items())
        or "nothing"
    )


def validate_inputs(specs: Sequence[TensorSpec], inputs: Mapping[str, np.ndarray]) -> None:
    """Check named numpy inputs against a signature; raise :class:`InputError` on any mismatch.

    Checked: the inputs are a mapping; no input is missing or extra; every value is a numpy array
    (a torch tensor gets a hint to call ``.numpy()``); dtypes match exactly (``float64`` where
    ``float32`` is expected is an error, with an ``.astype`` hint — ONNX Runtime would refuse it);
    ranks match; fixed dimensions match; a symbolic dimension (e.g. ``"batch"``) has the same size
    in every input that uses it. The byte order is not checked here: :meth:`Runner.run` converts
    big-endian arrays (see :func:`native_byte_order`).
    """
    expected = f"expected inputs: {_sig(specs)}"
    if not isinstance(inputs, Mapping):
        raise InputError(
            f"inputs must be a dict of name -> numpy array, got {_describe_value(inputs)}. "
            f"{expected}"
        )
    got = f"got: {_describe_inputs(inputs)}"
    names = [spec.name for spec in specs]
    missing = [n for n in names if n not in inputs]
    extra = [n for n in inputs if n not in names]
    problems: list[str] = []
    if missing:
        problems.append(f"missing input(s) {missing}")
    if extra:
        problems.append(f"unexpected input(s) {extra}")
    if problems:
        raise InputError(f"{'; '.join(problems)}. {expected}; {got}")

    symbols: dict[str, tuple[str, int]] = {}
    for spec in specs:
        value = inputs[spec.name]
        if not isinstance(value, np.ndarray):
            if type(value).__module__.startswith("torch"):
                hint = (
                    f"input {spec.name!r} is a torch tensor; runners take numpy arrays "
                    f"(call .numpy(), or .detach().cpu().numpy() for tensors that need grad or "
                    f"live on a GPU)"
                )
            else:
                hint = (
                    f"input {spec.name!r} is a {type(value).__name__}, not a numpy array "
                    f"(use np.asarray(value, dtype=np.{spec.dtype}))"
                )
            raise InputError(f"{hint}. {expected}; {got}")
        if value.dtype.name != spec.dtype:
            raise InputError(
                f"input {spec.name!r} has dtype {value.dtype.name} but the model expects "
                f"{spec.dtype} (convert with .astype(np.{spec.dtype})). {expected}; {got}"
            )
        if len(value.shape) != len(spec.shape):
            raise InputError(
                f"input {spec.name!r} has rank {value.ndim} (shape {tuple(value.shape)}) but the "
                f"model expects rank {len(spec.shape)}. {expected}; {got}"
            )
        for axis, (dim, size) in enumerate(zip(spec.shape, value.shape, strict=True)):
            if isinstance(dim, int) and dim >= 0 and dim != size:
                raise InputError(
                    f"input {spec.name!r} has size {size} on axis {axis} but the model fixes it "
                    f"to {dim}. {expected}; {got}"
                )
            if isinstance(dim, str) and dim:
                seen = symbols.setdefault(dim, (spec.name, size))
                if seen[1] != size:
                    raise InputError(
                        f"dimension {dim!r} is {seen[1]} in input {seen[0]!r} but {size} in input "
                        f"{spec.name!r}; inputs sharing a dimension must agree. {expected}; {got}"
                    )


def native_byte_order(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs with every array in this machine's byte order (others are converted, a copy).

    ``x.astype(">f4")`` is still ``float32`` to numpy (``dtype.name`` ignores the byte order),
    so it passes the dtype check; but ONNX Runtime reads the raw bytes as little-endian and
    returns garbage or NaN without an error, and ``torch.from_numpy`` refuses it. Converting
    keeps the values (``np.array_equal`` holds) for every runtime. Arrays already in native
    order — the usual case — are passed through untouched (no copy). Memory layout is left
    alone: Fortran-ordered, strided and read-only arrays give the same outputs on every runtime.
    """
    out: dict[str, np.ndarray] = {}
    for name, value in inputs.items():
        if not value.dtype.isnative:
            value = value.astype(value.dtype.newbyteorder("="))
        out[name] = value
    return out


def _sig(specs: Sequence[TensorSpec]) -> str:
    return "; ".join(str(spec) for spec in specs)


# --------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------


class Runner(abc.ABC):
    """A model that maps named numpy inputs to named numpy outputs.

    Subclasses set ``name``, ``runtime``, ``inputs`` and ``output_names`` and implement
    :meth:`_run` and :meth:`describe`. Call a runner like a function (``runner(inputs)``) or with
    :meth:`run`; both validate the inputs first.
    """

    name: str
    runtime: str
    inputs: list[TensorSpec]
    output_names: list[str]
    #: Numeric precision of the computation, used to pick parity tolerances
    #: (``"float32"``, ``"float16"``, ``"bfloat16"``, ``"int8"``); best effort.
    precision: str = "float32"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate ``inputs`` against :attr:`inputs`, run the model, return named outputs.

        Arrays in the other byte order (``x.astype(">f4")``) are converted to this machine's
        order first (:func:`native_byte_order`), for every runtime alike.
        """
        validate_inputs(self.inputs, inputs)
        return self._run(native_byte_order(inputs))

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Same as :meth:`run`."""
        return self.run(inputs)

    @abc.abstractmethod
    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run validated inputs."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What runs, as a flat dict (shown in notebooks, stored with benchmark results).

        Always present: ``name``, ``runtime``, ``version``, ``device`` (what really runs, e.g.
        ``"cpu"``, ``"cuda"``, ``"openvino:CPU"``, ``"CPU"``), ``providers_requested`` and
        ``providers_actual`` (ORT execution providers / OpenVINO devices; ``None`` for PyTorch),
        ``threads`` (``{"intra_op": n, "inter_op": m}``; OpenVINO: ``{"intra_op": n, "streams": s}``),
        ``artifact`` (file path or class name), ``precision``, ``inputs`` (signature) and
        ``outputs``. Runtimes add their own keys (``legacy``, ``fallback``,
        ``graph_optimization_level``, ``performance_hint``, ...).
        """

    def thread_scope(self) -> contextlib.AbstractContextManager[Any]:
        """A context to enter around a *block* of timed calls, giving the runner its thread count.

        ONNX Runtime and OpenVINO fix their threads per session or compiled model, so this does
        nothing for them. PyTorch has one intra-op thread pool per process: a PyTorch runner's
        ``threads`` is the count it is *measured* at, and its scope sets that for the block (and
        restores it after). Plain calls never change the process's setting — state shared by
        every thread is not toggled per call; the timing loops
        (:func:`helpers.benchmark.benchmark`, :func:`helpers.benchmark.measure_throughput`)
        enter the scope once per measurement.
        """
        return contextlib.nullcontext()

    def signature(self) -> str:
        """The expected inputs, e.g. ``"input_ids: int64[batch, seq], attention_mask: ..."``."""
        return format_signature(self.inputs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.runtime}): {self.signature()} -> {self.output_names}>"


def base_description(runner: Runner, **extra: Any) -> dict[str, Any]:
    """The keys every ``describe()`` has (see :meth:`Runner.describe`), updated with ``extra``."""
    info: dict[str, Any] = {
        "name": runner.name,
        "runtime": runner.runtime,
        "version": None,
        "device": None,
        "providers_requested": None,
        "providers_actual": None,
        "threads": None,
        "artifact": None,
        "precision": runner.precision,
        "inputs": runner.signature(),
        "outputs": ", ".join(runner.output_names),
    }
    info.update(extra)
    return info


def report_fallback(message: str, *, strict: bool, title: str) -> None:
    """Raise (strict) or warn + banner: a fallback must never be silent."""
    if strict:
        raise ProviderUnavailableError(message)
    warnings.warn(message, ProviderFallbackWarning, stacklevel=3)
    banner(title, message, kind="warning")


def default_threads() -> int:
    """Physical cores (else logical cores), within this process's CPU affinity: the default
    intra-op thread count."""
    cpu = cpu_info()
    count = cpu["physical_cores"] or cpu["logical_cores"] or 1
    with contextlib.suppress(AttributeError):  # respect taskset/cgroup affinity where known
        count = min(count, len(os.sched_getaffinity(0)))
    return max(1, count)
