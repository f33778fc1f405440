"""Decode speed: every graph a model needs (cached by content), the timed paths, the bound columns.

One model, several ways to generate the same tokens: ``transformers``' ``generate`` (with and
without its cache), the past → present loop of :class:`Generator`, and the I/O-binding loop of
:class:`BoundGenerator` on each weight format. :func:`decode_graphs` builds (once) and caches the
files, :func:`decode_workloads` turns the loops into :class:`helpers.benchmark.Workload` s for
:func:`helpers.benchmark.interleaved`, and :func:`with_bandwidth_bound` adds each row's bound
(``bandwidth / bytes read per token``) and its percentage.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.generation.kv_buffer import BoundGenerator, export_with_kv_buffer
from helpers.generation.kv_cache import export_with_kv_cache
from helpers.generation.loop import Generator, hf_generate
from helpers.generation.weights import (
    bandwidth_bound_tokens_per_s,
    bytes_read_per_token,
    prepared_copy,
)
from helpers.generation.weights import quantize_weight_only as _quantize_weight_only

__all__ = ["WEIGHT_FORMATS", "DecodeGraphs", "decode_graphs", "decode_workloads", "with_bandwidth_bound"]

#: The weight formats of the KV-buffer graph, in the order the tables show them.
WEIGHT_FORMATS = ("fp32", "dynamic INT8", "weight-only INT8", "weight-only INT4")


@dataclass
class DecodeGraphs:
    """The files of one model: ``past_present`` (section-4 graph, fp32) and ``buffer`` (KV-buffer
    graph per weight format)."""

    past_present: Path
    buffer: dict[str, Path] = field(default_factory=dict)

    def bytes_per_token(self) -> dict[str, int]:
        """Bytes one decode step reads, per weight format (:func:`bytes_read_per_token`)."""
        return {fmt: bytes_read_per_token(path) for fmt, path in self.buffer.items()}


def _dynamic_int8(buffer: Path, path: Path, reduce_range: bool) -> None:
    from helpers.generation.weights import _logger_level
    from helpers.quantize import quantize_dynamic_int8

    prepared = prepared_copy(buffer, path.with_name("prepared.onnx"))
    try:
        # The dynamic quantizer logs a hint about pre-processing on the root logger (WARNING).
        with _logger_level(None, logging.ERROR):
            quantize_dynamic_int8(prepared, path, reduce_range=reduce_range, preprocess=False)
    finally:
        prepared.unlink(missing_ok=True)


def decode_graphs(
    model: Any,
    *,
    digest: str | None = None,
    formats: tuple[str, ...] = WEIGHT_FORMATS,
    reduce_range: bool = False,
    rebuild: bool = False,
    progress: bool = True,
) -> DecodeGraphs:
    """Export ``model`` both ways and quantize the KV-buffer graph to ``formats``; every file is
    cached by the model's content (:func:`helpers.cache.cached_export`), so a re-run reuses them.

    ``reduce_range`` is passed to the dynamic INT8 recipe (7-bit weights on AVX2 CPUs without
    VNNI: :func:`helpers.quantize.needs_reduce_range`). Weight-only formats use
    ``MatMulNBits`` with blocks of 32 and ``accuracy_level=4`` (:func:`quantize_weight_only`).
    """
    from helpers.cache import cached_export, model_digest
    from helpers.display import progress as progress_bar

    unknown = set(formats) - set(WEIGHT_FORMATS)
    if unknown:
        raise ValueError(f"unknown weight formats {sorted(unknown)}; choose from {WEIGHT_FORMATS}")
    digest = digest or model_digest(model)
    kind = type(model).__name__.lower()
    steps = progress_bar(total=2 + len(formats) - ("fp32" in formats), desc="decode graphs", disable=not progress)

    def step(label: str, build: Callable[[Path], Any], filename: str, settings: dict | None = None) -> Path:
        steps.set_postfix_str(label)
        path = cached_export(digest, build, what=label, filename=filename, settings=settings, rebuild=rebuild)
        steps.update()
        return path

    try:
        past_present = step("KV-cache export", lambda p: export_with_kv_cache(model, p), f"{kind}_kv.onnx")
        buffer = step("KV-buffer export", lambda p: export_with_kv_buffer(model, p), f"{kind}_kv_buffer.onnx")
        graphs = DecodeGraphs(past_present, {"fp32": buffer} if "fp32" in formats else {})
        builders = {
            "dynamic INT8": (lambda p: _dynamic_int8(buffer, p, reduce_range), {"reduce_range": reduce_range}),
            "weight-only INT8": (functools.partial(_weight_only, buffer, bits=8), {"bits": 8, "block": 32}),
            "weight-only INT4": (functools.partial(_weight_only, buffer, bits=4), {"bits": 4, "block": 32}),
        }
        for fmt in formats:
            if fmt != "fp32":
                build, settings = builders[fmt]
                name = f"{kind}_kv_buffer_{fmt.replace(' ', '_').replace('-', '_').lower()}.onnx"
                graphs.buffer[fmt] = step(f"KV buffer {fmt}", build, name, settings)
    finally:
        steps.close()
    return graphs


def _weight_only(buffer: Path, path: Path, *, bits: int) -> None:
    _quantize_weight_only(buffer, path, bits=bits, block_size=32, accuracy_level=4)


def decode_workloads(
    model: Any,
    loops: Mapping[str, Generator],
    encoded: Mapping[str, Any],
    *,
    tokens: int,
    runs: int,
    nocache_tokens: int,
    extra: Mapping[str, Callable[[], Any]] | None = None,
) -> dict[str, Any]:
    """The timed paths for :func:`helpers.benchmark.interleaved` (EOS ignored: the same work each).

    ``loops`` maps labels to loops; the first :class:`BoundGenerator` also runs once without
    its cache. Rows: ``transformers generate`` (torch's threads as set, and with 1 thread),
    ``... (no cache)``, ``ORT loop (no cache)``, then every loop, then ``extra`` callables
    (e.g. ONNX Runtime GenAI), each producing ``tokens`` tokens. The no-cache paths produce
    ``nocache_tokens`` in a single call (their cost per token grows with the sequence).
    """
    from helpers.benchmark import Workload

    def call(generate: Callable[..., Any], n: int, **kw: Any) -> Callable[[], Any]:
        return functools.partial(generate, **encoded, max_new_tokens=n, stop_on_eos=False, **kw)

    fast, slow = {"items": tokens, "runs": runs}, {"items": nocache_tokens, "runs": 1, "warmup": 0}
    hf = functools.partial(hf_generate, model)
    work = {
        "transformers generate": Workload(call(hf, tokens), **fast),
        "transformers generate (1 thread)": Workload(call(hf, tokens), threads=1, **fast),
        "transformers generate (no cache)": Workload(call(hf, nocache_tokens, use_cache=False), **slow),
    }
    bound = next((loop for loop in loops.values() if isinstance(loop, BoundGenerator)), None)
    if bound is not None:
        work["ORT loop (no cache)"] = Workload(call(bound.generate, nocache_tokens, use_cache=False), **slow)
    for label, loop in loops.items():
        work[label] = Workload(call(loop.generate, tokens), **fast)
    for label, fn in (extra or {}).items():
        work[label] = Workload(fn, **fast)
    return work


def with_bandwidth_bound(
    speed: Any, bytes_per_token: Mapping[str, int], bandwidth_gb_s: float, *, baseline: str | list[str]
) -> Any:
    """Add ``speedup_vs_generate`` (against the fastest ``baseline`` row), ``MB_per_token``,
    ``bound_tokens_per_s`` and ``pct_of_bound`` to an :func:`interleaved` table (rows without a
    byte count -- the no-cache paths -- get NaN bounds)."""
    import pandas as pd

    table = speed.copy()
    base = table.loc[[baseline] if isinstance(baseline, str) else baseline, "tokens_per_s"].max()
    table["speedup_vs_generate"] = table.tokens_per_s / base
    known = pd.Series({k: v for k, v in bytes_per_token.items() if k in table.index}, dtype="float64")
    table["MB_per_token"] = known / 1e6
    table["bound_tokens_per_s"] = known.map(lambda b: bandwidth_bound_tokens_per_s(int(b), bandwidth_gb_s))
    table["pct_of_bound"] = 100 * table.tokens_per_s / table.bound_tokens_per_s
    return table
