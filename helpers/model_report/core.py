"""The report's pipeline: export once per artefact, run every available runtime, check parity and
quality against PyTorch eager, time each batch size, compare with the machine's limit, recommend."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helpers.export import error_line
from helpers.model_report.explain import explain
from helpers.model_report.inputs import ModelInput

__all__ = ["PRECISIONS", "SLOW_RUNTIMES", "Row", "Settings", "collect", "generated_inputs"]

#: Precisions the report knows: fp32 everywhere, INT8 and bf16 on the ONNX runtimes.
PRECISIONS = ("fp32", "int8-dynamic", "int8-static", "bf16")
#: Runtimes left out unless asked for by name (they compile C++ for minutes on a small machine).
SLOW_RUNTIMES = ("aoti",)
_LIMIT_NAMES = {"fp32": "float32", "bf16": "bfloat16", "int8-dynamic": "int8", "int8-static": "int8"}

#: A task check: ``score(reference_outputs, candidate_outputs) -> float`` (1.0 = same quality).
TaskScore = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], float]


@dataclass
class Settings:
    """What to run: precisions, batch sizes, threads, runtimes (None: every available one), how long
    to time, whether to measure the machine's limits, the quality threshold and an optional task."""

    precisions: Sequence[str] = ("fp32",)
    batch_sizes: Sequence[int] = (1,)
    threads: int | None = None
    runtimes: Sequence[str] | None = None
    runs: int = 50
    time_budget: float = 2.0
    limits: bool = True
    quality_threshold: float = 0.98
    samples: int = 8
    task: TaskScore | None = None
    #: Input sets for parity, quality and calibration (real data); None: generated like the example.
    eval_inputs: Sequence[Mapping[str, np.ndarray]] | None = None
    output: Path | None = None
    progress: bool = True


@dataclass
class Row:
    """One runtime at one precision: what happened, parity, quality, latency per batch size."""

    runtime: str
    label: str
    precision: str
    status: str = "ok"  # ok | failed | skipped
    error: str = ""
    explanation: str = ""
    fix: str = ""
    artifact: str = ""
    size_mib: float | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    tolerance: str = ""
    parity_ok: bool | None = None
    quality: float | None = None
    quality_metric: str = ""
    quality_ok: bool | None = None
    latency: dict[int, dict[str, float | None]] = field(default_factory=dict)
    computes: str = ""

    @property
    def passed(self) -> bool:
        """Parity and quality held (a reduced precision is judged by quality when it has one)."""
        if self.status != "ok":
            return True
        if self.precision != "fp32" and self.quality_ok is not None:
            return bool(self.quality_ok)
        return bool(self.parity_ok) and self.quality_ok is not False


def _tile(array: np.ndarray, axis: int, size: int) -> np.ndarray:
    reps = -(-size // array.shape[axis])
    return np.take(np.concatenate([array] * reps, axis=axis), range(size), axis=axis)


def batched(item: ModelInput, batch: int) -> dict[str, np.ndarray]:
    """The example inputs with batch size ``batch`` (axis 0 tiled)."""
    return {n: _tile(a, 0, batch) for n, a in item.inputs.items()}


def generated_inputs(item: ModelInput, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``count`` input sets shaped like the example: floats drawn around the example's mean and
    spread, integers within its range — for parity, quality and INT8 calibration."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(count):
        one = {}
        for name, a in item.inputs.items():
            if a.dtype.kind == "f":
                std = float(a.std()) or 1.0
                one[name] = (float(a.mean()) + std * rng.standard_normal(a.shape)).astype(a.dtype)
            elif a.dtype.kind == "b":
                one[name] = a.copy()  # masks: keep the example's
            else:
                one[name] = rng.integers(int(a.min()), int(a.max()) + 1, a.shape).astype(a.dtype)
        sets.append(one)
    return sets


def _export_example(item: ModelInput) -> tuple | dict:
    """Example inputs with every dynamic axis of size ≥ 2 (size 1 would be specialised)."""
    arrays = dict(item.inputs)
    for name, axes in item.dynamic.items():
        for axis in axes:
            if arrays[name].shape[axis] < 2:
                arrays[name] = _tile(arrays[name], axis, 2)
    return item.torch_inputs(arrays)


def _dynamic_shapes(item: ModelInput, auto: bool) -> Any:
    import torch

    spec: dict[str, Any] = {}
    for name in item.inputs:
        axes = item.dynamic.get(name, {})
        spec[name] = {a: (torch.export.Dim.AUTO if auto else d) for a, d in axes.items()} or None
    return spec if item.call_style == "kwargs" else tuple(spec.values())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    from helpers.export import quiet_failed_export

    with warnings.catch_warnings(), quiet_failed_export(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


class Artifacts:
    """Each artefact built once, on first use (content-keyed in the suite's cache where a file)."""

    def __init__(self, item: ModelInput, settings: Settings) -> None:
        self.item, self.settings = item, settings
        self._made: dict[str, Any] = {}
        self._failed: dict[str, BaseException] = {}
        self.log: list[dict[str, str]] = []

    def get(self, kind: str) -> Any:
        """The artefact ``kind`` (``onnx-fp32``, ``onnx-int8-dynamic``, ``torchscript``...); raises the
        build's own error (again) when it failed."""
        if kind in self._failed:
            raise self._failed[kind]
        if kind not in self._made:
            try:
                with _quiet():
                    self._made[kind] = getattr(self, "_" + kind.replace("-", "_"))()
                self.log.append({"artifact": kind, "status": "ok"})
            except Exception as error:
                self._failed[kind] = error
                meaning, fix = explain(error)
                self.log.append({"artifact": kind, "status": "failed", "error": error_line(error, max_chars=300),
                                 "explanation": meaning, "fix": fix})
                raise
        return self._made[kind]

    def _module(self) -> Any:
        return self.item.module

    def _onnx_fp32(self) -> Path:
        from helpers.cache import cached_export
        from helpers.export import export_onnx

        item = self.item
        if item.onnx_path is not None:
            return item.onnx_path
        dims = {n: {a: d for a, d in axes.items()} for n, axes in item.dynamic.items()}
        return cached_export(
            item.module,
            lambda path: export_onnx(item.module, _export_example(item), path, input_names=list(item.inputs),
                                     output_names=item.output_names,
                                     dynamic_shapes={n: dims.get(n) for n in item.inputs} if dims else None),
            what=f"model-report {item.name}",
            settings={"inputs": [str(s) for s in item.specs()], "outputs": item.output_names},
        )

    def _onnx_int8_dynamic(self) -> Path:
        from helpers.quantize.cached import cached_dynamic_int8

        return cached_dynamic_int8(self.get("onnx-fp32"), what=f"model-report {self.item.name} int8 dynamic")

    def _onnx_int8_static(self) -> Path:
        from helpers.quantize.cached import cached_static_int8

        given = self.settings.eval_inputs
        calibration = list(given or generated_inputs(self.item, max(8, self.settings.samples), seed=1))
        return cached_static_int8(self.get("onnx-fp32"), calibration,
                                  what=f"model-report {self.item.name} int8 static")

    def _torchscript(self) -> Any:
        import torch

        example = self.item.torch_inputs()
        if isinstance(example, dict):
            return torch.jit.trace(self.item.module, example_kwarg_inputs=example, strict=False)
        return torch.jit.trace(self.item.module, example, strict=False)

    def _exported_program(self) -> Any:
        import torch

        example = _export_example(self.item)
        shapes = _dynamic_shapes(self.item, True)
        if isinstance(example, dict):  # the runner calls the program positionally, in input order
            example, shapes = tuple(example.values()), tuple(shapes.values())
        return torch.export.export(self.item.module, example, dynamic_shapes=shapes)

    def _aoti_package(self) -> Path:
        import torch

        from helpers.cache import cached_export

        program = self.get("exported-program")
        return cached_export(
            self.item.module,
            lambda path: torch._inductor.aoti_compile_and_package(program, package_path=str(path)),
            what=f"model-report {self.item.name} aoti", filename="model.pt2",
            settings={"inputs": [str(s) for s in self.item.specs()]},
        )


_ARTIFACT_OF = {"module": "module", "torchscript": "torchscript", "exported-program": "exported-program",
                "aoti-package": "aoti-package"}


def artifact_kind(spec_artifact: str, precision: str) -> str | None:
    """Which artefact a runtime needs at ``precision`` (None: that runtime does not run it)."""
    if spec_artifact == "onnx":
        return {"fp32": "onnx-fp32", "bf16": "onnx-fp32", "int8-dynamic": "onnx-int8-dynamic",
                "int8-static": "onnx-int8-static"}.get(precision)
    return _ARTIFACT_OF.get(spec_artifact) if precision == "fp32" else None


def _size_mib(artifact: Any, item: ModelInput) -> float | None:
    if isinstance(artifact, (str, Path)):
        path = Path(artifact)
        extra = path.with_name(path.name + ".data")
        return round((path.stat().st_size + (extra.stat().st_size if extra.exists() else 0)) / 2**20, 3)
    module = item.module
    if module is None:
        return None
    total = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return round(total / 2**20, 3)


def _concat(outputs: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {n: np.concatenate([np.atleast_1d(o[n]) for o in outputs]) for n in outputs[0]}


def top1_agreement(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> float | None:
    """Share of rows whose arg-max over the last axis agrees, on the first output that has classes
    (a float array with a last axis > 1); None when no output has one."""
    for name, ref in reference.items():
        if ref.dtype.kind == "f" and ref.ndim >= 2 and ref.shape[-1] > 1 and name in candidate:
            a = ref.reshape(-1, ref.shape[-1]).argmax(-1)
            b = np.asarray(candidate[name]).reshape(-1, ref.shape[-1]).argmax(-1)
            return float((a == b).mean())
    return None


def collect(item: ModelInput, settings: Settings, *, bar: Any = None) -> tuple[list[Row], dict[str, Any]]:
    """Run every (runtime, precision) pair; returns the rows and the facts around them."""
    from helpers import runners
    from helpers.benchmark import benchmark
    from helpers.benchmark.limits import precision_hardware
    from helpers.parity import compare_outputs

    available = runners.available_runtimes()
    torch_model = item.module is not None
    specs = [s for s in runners.runtime_specs() if torch_model or s.artifact == "onnx"]
    wanted = list(settings.runtimes) if settings.runtimes else None
    rows: list[Row] = []
    artifacts = Artifacts(item, settings)
    samples = [item.inputs, *(settings.eval_inputs or generated_inputs(item, settings.samples))]
    facts: dict[str, Any] = {"reference": "PyTorch eager" if torch_model else "ONNX Runtime (CPU) fp32",
                             "artifacts": artifacts.log}
    reference = _reference(item, samples, artifacts)
    dynamic_batch = all(0 in item.dynamic.get(n, {}) for n in item.inputs)
    planned: list[tuple[Row, Any, str]] = []
    for precision in settings.precisions:
        for spec in specs:
            kind = artifact_kind(spec.artifact, precision)
            if kind is None or (precision == "bf16" and not spec.reduced_precision):
                continue
            row = Row(spec.key, spec.label, precision)
            rows.append(row)
            if wanted is not None and spec.key not in wanted:
                row.status, row.error = "skipped", "not asked for (--runtimes)"
            elif wanted is None and spec.key in SLOW_RUNTIMES:
                row.status, row.error = "skipped", f"slow to build here: ask for it with --runtimes {spec.key}"
            elif not available.get(spec.key):
                row.status, row.error = "skipped", f"not available here (needs {spec.needs})"
            elif precision == "bf16" and not precision_hardware("bf16")["native"]:
                row.status, row.error = "skipped", "this CPU has no bf16 instructions"
            if row.status != "skipped":
                planned.append((row, spec, kind))
    if bar is not None:
        bar.total = len(planned)  # the bar counts the runtime x precision pairs that run
    for row, spec, kind in planned:
        if bar is not None:
            bar.set_postfix_str(f"{spec.label} {row.precision}")
        _run_row(row, spec, kind, item, settings, artifacts, samples, reference, dynamic_batch,
                 benchmark, compare_outputs)
        if bar is not None:
            bar.update(1)
    facts["dynamic_batch"] = dynamic_batch
    return rows, facts


def _reference(item: ModelInput, samples: Sequence[Mapping[str, np.ndarray]], artifacts: Artifacts) -> dict:
    from helpers import runners

    if item.module is not None:
        runner = runners.for_runtime("pytorch", item.module, inputs=item.specs(), output_names=item.output_names)
    else:
        runner = runners.for_runtime("onnxruntime", artifacts.get("onnx-fp32"), precision="float32")
    return _concat([runner.run(s) for s in samples])


def _run_row(row: Row, spec: Any, kind: str, item: ModelInput, settings: Settings, artifacts: Artifacts,
             samples: Sequence[Mapping[str, np.ndarray]], reference: Mapping[str, np.ndarray],
             dynamic_batch: bool, benchmark: Any, compare_outputs: Any) -> None:
    from helpers import runners

    try:
        artifact = artifacts.get(kind)
        row.artifact = str(artifact) if isinstance(artifact, (str, Path)) else type(artifact).__name__
        row.size_mib = _size_mib(artifact, item)
        precision = {"fp32": "float32", "bf16": "bf16"}.get(row.precision) if spec.artifact == "onnx" else None
        with _quiet():
            runner = runners.for_runtime(spec.key, artifact, settings.threads, inputs=item.specs(),
                                         output_names=item.output_names, precision=precision, trusted=True)
            outputs = _concat([runner.run(s) for s in samples])
        row.computes = str(runner.describe().get("precision", ""))
    except Exception as error:
        meaning, fix = explain(error)
        row.status, row.error, row.explanation, row.fix = "failed", error_line(error, max_chars=300), meaning, fix
        return
    parity_precision = "int8" if row.precision.startswith("int8") else _LIMIT_NAMES[row.precision]
    parity = compare_outputs(reference, outputs, runtime=spec.key, precision=parity_precision)
    row.max_abs = max(float(p.get("max_abs", np.inf)) for p in parity.values())
    row.max_rel = max(float(p.get("max_rel", np.inf)) for p in parity.values())
    row.parity_ok = all(bool(p.get("allclose")) for p in parity.values())
    first = next(iter(parity.values()))
    row.tolerance = f"rtol {first.get('rtol')}, atol {first.get('atol')}"
    if settings.task is not None:
        row.quality, row.quality_metric = float(settings.task(reference, outputs)), "task score"
    else:
        row.quality, row.quality_metric = top1_agreement(reference, outputs), "top-1 agreement"
    if row.quality is not None:
        row.quality_ok = row.quality >= settings.quality_threshold
    for batch in settings.batch_sizes:
        if batch != next(iter(item.inputs.values())).shape[0] and not dynamic_batch:
            row.latency[batch] = {"p50": None, "note": None}
            continue
        inputs = batched(item, batch)
        try:
            result = benchmark(runner, inputs, runs=settings.runs, max_seconds=settings.time_budget,
                               warmup=3, min_runs=3, batch_size=batch, progress=False)
        except Exception as error:
            row.latency[batch] = {"p50": None}
            row.error = error_line(error)
            continue
        row.latency[batch] = {"p50": result.p50, "p90": result.p90, "p99": result.p99,
                              "items_per_s": batch * 1000.0 / result.p50}
