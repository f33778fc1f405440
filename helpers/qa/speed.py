"""BERT question answering on a CPU, made fast and measured: ORT's transformer fusions, a
BERT-base model for timing, and runners for every runtime and precision.

- :func:`fuse_for_ort` rewrites a dynamo export of a BERT-style encoder into ONNX Runtime's fused
  operators with onnxscript's ``ort_fusions.optimize_for_ort`` (``Attention``,
  ``SkipLayerNormalization``, ``BiasGelu``); :func:`ort_transformer_optimizer` runs ONNX Runtime's
  own ``onnxruntime.transformers.optimizer`` (``model_type="bert"``). Both return the fused
  operators found in the saved graph; :func:`expected_fusions` says what the installed releases
  are known to produce for a BERT encoder of ``n`` layers (the patterns change between releases).
- :func:`bert_qa_for_timing` builds ``BertForQuestionAnswering`` with ``BertConfig()`` defaults
  (the bert-base-uncased shape: 12 layers, hidden 768, 12 heads, ~109 M parameters) and seeded
  random weights — timing does not depend on the weights' values — or a small model of the same
  architecture for quick runs; :func:`timing_runners` exports, fuses and quantizes it (each file
  cached by content) and opens one runner per runtime and precision.
- :func:`dynamic_int8` is ONNX Runtime's ``quantize_dynamic`` with a recipe of
  :data:`INT8_RECIPES` (per-tensor or per-channel scales, with or without ``reduce_range``),
  minus its log line advising pre-processing.
- :func:`openvino_bf16` says whether OpenVINO's CPU plugin offers bf16 here (which instructions
  compute each precision on this CPU is :func:`helpers.benchmark.precision_hardware`);
  :func:`Autocast` runs a PyTorch module under ``torch.autocast("cpu", torch.bfloat16)``.

Timing them, each row against the limit of the arithmetic it runs, is
:func:`helpers.benchmark.compare` with ``limits=helpers.benchmark.measure_limits(...)`` and
``precisions=TimingSet.limit_precisions()``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Autocast",
    "FusionResult",
    "TimingFiles",
    "TimingSet",
    "INT8_RECIPES",
    "bert_qa_for_timing",
    "dynamic_int8",
    "example_inputs",
    "expected_fusions",
    "fuse_for_ort",
    "fused_operators",
    "openvino_bf16",
    "ort_transformer_optimizer",
    "timing_files",
    "timing_name",
    "timing_runners",
]

#: The operators ORT's fusions produce (domain ``com.microsoft``), in the order tables show them.
FUSED_OPERATORS = (
    "Attention",
    "MultiHeadAttention",
    "EmbedLayerNormalization",
    "SkipLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
)
#: Sizes for :func:`bert_qa_for_timing`: ``BertConfig()`` defaults, or the same architecture small.
SIZES: dict[str, dict[str, Any]] = {
    "base": {},
    "small": {
        "num_hidden_layers": 2,
        "hidden_size": 128,
        "num_attention_heads": 2,
        "intermediate_size": 512,
    },
}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OUTPUTS = ("start_logits", "end_logits")


@dataclass(frozen=True)
class FusionResult:
    """A fused graph: where it is, what the tool reported, and the fused operators it holds."""

    path: Path
    tool: str
    operators: dict[str, int]
    reported: dict[str, int] = field(default_factory=dict)
    messages: str = ""


def fused_operators(path: str | Path) -> dict[str, int]:
    """How many of each ORT fused operator (``com.microsoft`` domain) the graph at ``path`` has."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    found = Counter(n.op_type for n in model.graph.node if n.domain == "com.microsoft")
    return {op: found[op] for op in FUSED_OPERATORS if found[op]} | {
        op: n for op, n in found.items() if op not in FUSED_OPERATORS
    }


def fuse_for_ort(src: str | Path, dst: str | Path) -> FusionResult:
    """onnxscript's ``ort_fusions.optimize_for_ort`` on the dynamo export ``src``, saved as ``dst``.

    The rewriter matches the graph the dynamo exporter writes (scaled-dot-product attention
    included) and replaces it with ORT's fused operators; the result runs on ONNX Runtime (and
    OpenVINO, whose ONNX reader knows these operators), not on other ONNX engines.
    """
    import onnx_ir as ir
    from onnxscript.rewriter import ort_fusions

    model = ir.load(str(src))
    fused, reported = ort_fusions.optimize_for_ort(model)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    ir.save(fused, str(dst))
    return FusionResult(
        Path(dst),
        f"onnxscript {_version('onnxscript')} optimize_for_ort",
        fused_operators(dst),
        {k: int(v) for k, v in reported.items() if v},
    )


def ort_transformer_optimizer(
    src: str | Path, dst: str | Path, *, num_heads: int, hidden_size: int
) -> FusionResult:
    """ONNX Runtime's transformer optimizer (``model_type="bert"``, offline, ``opt_level=0``).

    Its pattern matcher was written for the graphs of the legacy TorchScript exporter; on a
    dynamo export it finds fewer patterns, and which ones depends on the ONNX Runtime release.
    What it prints while matching (e.g. that symbolic shape inference failed) is kept in
    ``messages`` instead of cluttering the output.
    """
    import onnxruntime
    from onnxruntime.transformers import optimizer

    out = io.StringIO()
    logger = logging.getLogger("onnxruntime.transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            optimized = optimizer.optimize_model(
                str(src),
                model_type="bert",
                num_heads=num_heads,
                hidden_size=hidden_size,
                opt_level=0,
            )
            stats = optimized.get_fused_operator_statistics()
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            optimized.save_model_to_file(str(dst))
    finally:
        logger.setLevel(level)
    return FusionResult(
        Path(dst),
        f"onnxruntime {onnxruntime.__version__} transformers.optimizer",
        fused_operators(dst),
        {k: int(v) for k, v in stats.items() if v},
        out.getvalue().strip(),
    )


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def _minor(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


#: Fused operators per release of each tool on a dynamo export of a BERT encoder of ``n`` layers
#: (measured on BERT-style QA exports). ``(major, minor) -> {operator: count per n layers}``.
RECORDED_FUSIONS: dict[str, dict[tuple[int, int], dict[str, int]]] = {
    # onnxscript 0.7: every layer's attention, both residual LayerNorms and the GELU
    "onnxscript": {(0, 7): {"Attention": 1, "SkipLayerNormalization": 2, "BiasGelu": 1}},
    # ONNX Runtime's optimizer: 1.32 fuses the LayerNorms and GELU, not attention;
    # onnxruntime-openvino 1.24 only the GELU
    "ort": {
        (1, 32): {"SkipLayerNormalization": 2, "BiasGelu": 1},
        (1, 24): {"BiasGelu": 1},
    },
}


def expected_fusions(tool: str, n_layers: int) -> tuple[dict[str, int] | None, str]:
    """The fused operators the *installed* release of ``tool`` is known to produce on a dynamo
    export of a BERT encoder with ``n_layers`` layers, and a sentence saying which release.

    ``tool``: ``"onnxscript"`` (:func:`fuse_for_ort`) or ``"ort"``
    (:func:`ort_transformer_optimizer` on the plain export). For a release without a record in
    :data:`RECORDED_FUSIONS` it returns ``(None, why)``, where ``why`` says how to record one:
    callers assert on it, so a new release fails loudly instead of going unchecked.
    """
    if tool not in RECORDED_FUSIONS:
        raise ValueError(f"tool must be 'onnxscript' or 'ort', got {tool!r}")
    if tool == "onnxscript":
        release, label = _version("onnxscript"), "onnxscript"
    else:
        import onnxruntime

        release, label = onnxruntime.__version__, "ONNX Runtime"
    per_layer = RECORDED_FUSIONS[tool].get(_minor(release))
    if per_layer is None:
        how = (
            "run fuse_for_ort / ort_transformer_optimizer on a BERT export (tests/test_qa_speed.py "
            "does), check the outputs still match, and add the counts per layer under "
            f"RECORDED_FUSIONS[{tool!r}][{_minor(release)}] in helpers/qa/speed.py"
        )
        return None, f"{label} {release}: no recorded expectation for this release — {how}"
    return {op: n * n_layers for op, n in per_layer.items()}, f"{label} {release}"


# --------------------------------------------------------------------------------------------
# bf16
# --------------------------------------------------------------------------------------------
def openvino_bf16() -> bool | None:
    """True when OpenVINO's CPU plugin offers bf16 here (``BF16`` in the CPU device's
    ``OPTIMIZATION_CAPABILITIES``: AMX or AVX512-BF16), None when OpenVINO is not installed."""
    try:
        import openvino as ov
    except ImportError:
        return None
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _autocast_module() -> type:
    import torch

    class _Autocast(torch.nn.Module):
        """Runs ``model`` under ``torch.autocast("cpu", torch.bfloat16)``; outputs back in fp32."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> tuple[Any, ...]:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = self.model(*args)
            return tuple(out[name].float() for name in _OUTPUTS)

    return _Autocast


def Autocast(model: Any) -> Any:  # noqa: N802 - reads like the class it returns
    """``model`` wrapped to run under bf16 autocast (a ``torch.nn.Module``; QA outputs in fp32)."""
    return _autocast_module()(model).eval()


# --------------------------------------------------------------------------------------------
# The BERT-base timing model and its runners
# --------------------------------------------------------------------------------------------
def bert_qa_for_timing(size: str = "base", *, seed: int = 0) -> Any:
    """``BertForQuestionAnswering`` with seeded random weights: ``"base"`` is ``BertConfig()``
    (bert-base-uncased's shape), ``"small"`` the same architecture with 2 layers of width 128."""
    from transformers import AutoModelForQuestionAnswering, BertConfig

    from helpers.models.hub import quiet_transformers
    from helpers.models.tiny import seeded

    if size not in SIZES:
        raise ValueError(f"size must be one of {list(SIZES)}, got {size!r}")
    with seeded(seed), quiet_transformers():
        model = AutoModelForQuestionAnswering.from_config(BertConfig(**SIZES[size]))
    return model.eval()


#: Dynamic INT8 recipes compared on the QA model (keyword arguments of ``quantize_dynamic``).
INT8_RECIPES: dict[str, dict[str, bool]] = {
    "per-tensor": {"per_channel": False, "reduce_range": False},
    "per-tensor, reduce_range": {"per_channel": False, "reduce_range": True},
    "per-channel": {"per_channel": True, "reduce_range": False},
    "per-channel, reduce_range": {"per_channel": True, "reduce_range": True},
}


def dynamic_int8(src: str | Path, dst: str | Path, **options: Any) -> Path:
    """ONNX Runtime's ``quantize_dynamic`` (QInt8 weights) from ``src`` to ``dst``, with ``options``
    (``per_channel``, ``reduce_range``, ...), without its log line advising pre-processing.

    ``quantize_dynamic`` logs "Please consider to run pre-processing before quantization" on the
    root logger for every model; dynamic quantization works without it (and ONNX Runtime's
    pre-processing cannot complete symbolic shape inference on dynamo transformer exports, see
    :func:`helpers.quantize.quantize_dynamic_int8`), so a comparison of several recipes would
    print it once per recipe. The root logger's level is restored afterwards.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, **options)
    finally:
        root.setLevel(level)
    return Path(dst)


def timing_name(size: str) -> str:
    """The cache name of :func:`bert_qa_for_timing`'s model of ``size`` (its files' prefix)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {list(SIZES)}, got {size!r}")
    return f"bert-{size}-qa-random"


def example_inputs(
    seq: int, *, batch: int = 1, vocab: int = 30522, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random token ids of shape ``[batch, seq]`` (all real tokens, one segment), int64."""
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(1000, vocab, (batch, seq), dtype=np.int64),
        "attention_mask": np.ones((batch, seq), dtype=np.int64),
        "token_type_ids": np.zeros((batch, seq), dtype=np.int64),
    }


@dataclass
class TimingSet:
    """Runners for one model, each with the precision it computes in, and the files and fusions
    behind them."""

    runners: dict[str, Any]
    precisions: dict[str, str]
    files: dict[str, Path]
    fusion: FusionResult
    notes: list[str]

    def limit_precisions(self) -> dict[str, str]:
        """The precision whose limit bounds each runner (for ``helpers.benchmark.compare``): its
        own, except bf16 on a CPU without bf16 instructions, whose arithmetic then runs in fp32."""
        from helpers.benchmark import precision_hardware

        native = precision_hardware("bfloat16")["native"]
        return {
            label: "float32" if p == "bfloat16" and not native else p
            for label, p in self.precisions.items()
        }


def _export(model: Any, digest: str, name: str) -> Path:
    import torch

    from helpers.cache import cached_export
    from helpers.export import export_onnx

    example = {k: torch.from_numpy(v) for k, v in example_inputs(16, batch=2).items()}

    def write(path: Path) -> None:
        export_onnx(
            model,
            example,
            path,
            input_names=list(_INPUTS),
            output_names=list(_OUTPUTS),
            dynamic_shapes={n: {0: "batch", 1: "sequence"} for n in _INPUTS},
        )

    return cached_export(digest, write, what=f"{name} fp32", filename="model.onnx")


@dataclass
class TimingFiles:
    """The ONNX files of one timing model: plain export, ORT-fused graph, dynamic INT8."""

    fp32: Path
    fused: Path
    int8: Path
    fusion: FusionResult
    notes: list[str]

    def as_dict(self) -> dict[str, Path]:
        """The files keyed by what they hold."""
        return {"fp32": self.fp32, "fp32 fused": self.fused, "int8 dynamic": self.int8}


def timing_files(model: Any, *, name: str) -> TimingFiles:
    """Export ``model`` (a BERT QA model) with dynamic batch and sequence, fuse the export for
    ORT (:func:`fuse_for_ort`) and quantize it to dynamic INT8 — each file cached by the model's
    content (:func:`helpers.cache.cached_export`), so a second call only verifies them.

    ``python -m helpers.models.build`` calls this for the timing models ahead of the lessons.
    """
    import onnxruntime

    from helpers.cache import cached_export, model_digest
    from helpers.quantize import quantize_dynamic_int8

    digest = model_digest(model, 12)
    plain = _export(model, digest, name)
    tools = {"onnxscript": _version("onnxscript"), "onnxruntime": onnxruntime.__version__}
    fused_path = cached_export(
        digest,
        lambda path: fuse_for_ort(plain, path),
        what=f"{name} fp32 ORT-fused",
        settings=tools,
    )
    fusion = FusionResult(
        fused_path, f"onnxscript {tools['onnxscript']}", fused_operators(fused_path)
    )
    with warnings.catch_warnings(record=True) as caught:  # pre-processing fallbacks: kept as notes
        warnings.simplefilter("always", UserWarning)
        int8_path = cached_export(
            digest,
            lambda path: quantize_dynamic_int8(plain, path),
            what=f"{name} int8 dynamic",
            settings=tools,
        )
    notes = [f"INT8: {w.message}" for w in caught if issubclass(w.category, UserWarning)]
    return TimingFiles(plain, fused_path, int8_path, fusion, notes)


def timing_runners(
    model: Any,
    *,
    name: str,
    threads: int,
    openvino: bool = True,
) -> TimingSet:
    """Export ``model`` (a BERT QA model) once, fuse it for ORT, quantize it to dynamic INT8
    (:func:`timing_files`), and open a runner per runtime and precision: PyTorch eager fp32 and
    bf16 autocast; ORT fp32 (plain and fused) and dynamic INT8; OpenVINO f32, and bf16 where its
    CPU plugin offers it. ``notes`` say what was left out and why.
    """
    from helpers import runners

    files = timing_files(model, name=name)
    plain, fused_path, int8_path = files.fp32, files.fused, files.int8
    fusion, notes = files.fusion, list(files.notes)
    specs = [runners.TensorSpec(n, ("batch", "sequence"), "int64") for n in _INPUTS]
    found = {
        "PyTorch eager fp32": (
            runners.torch_runner(model, specs, _OUTPUTS, threads=threads),
            "float32",
        ),
        "PyTorch bf16 autocast": (
            runners.torch_runner(
                Autocast(model), specs, _OUTPUTS, threads=threads, name="PyTorch bf16"
            ),
            "bfloat16",
        ),
        "ORT fp32": (runners.ort_runner(plain, threads=threads), "float32"),
        "ORT fp32 fused": (runners.ort_runner(fused_path, threads=threads), "float32"),
        "ORT int8 dynamic": (runners.ort_runner(int8_path, threads=threads), "int8"),
    }
    from helpers.benchmark import precision_hardware

    ov_bf16 = openvino_bf16()
    if openvino and ov_bf16 is not None:
        found["OpenVINO f32"] = (
            runners.openvino_runner(plain, threads=threads, precision="f32"),
            "float32",
        )
        if ov_bf16:
            found["OpenVINO bf16"] = (
                runners.openvino_runner(plain, threads=threads, precision="bf16"),
                "bfloat16",
            )
        else:
            notes.append(
                "OpenVINO bf16: not offered by this CPU's plugin (no AMX-BF16/AVX512-BF16); "
                "its default here is f32"
            )
    bf16 = precision_hardware("bfloat16")
    if not bf16["native"]:
        notes.append(f"PyTorch bf16 autocast: {bf16['path']} (expect it to be slower than fp32)")
    return TimingSet(
        runners={label: runner for label, (runner, _) in found.items()},
        precisions={label: precision for label, (_, precision) in found.items()},
        files=files.as_dict(),
        fusion=fusion,
        notes=notes,
    )
