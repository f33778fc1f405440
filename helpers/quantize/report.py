"""Quality next to speed for quantized classifiers: one row per variant, and the fastest that keeps quality.

A *variant* is any callable ``pixels -> logits`` (a raw ``InferenceSession`` wrapped in a lambda,
an OpenVINO compiled model) or a suite runner (:mod:`helpers.runners`: fed ``{its input: pixels}``).
:func:`speed_and_agreement` runs every variant on
the same evaluation photos, compares its top-1 answers with the reference's (the fp32 model), and
times one image per call in **interleaved rounds** (:func:`helpers.benchmark.interleaved`), so
a change in the machine's load hits every variant alike. A variant *keeps quality* when its
top-1 agreement reaches ``floor`` — from :func:`helpers.parity.agreement_floor`, the agreement
a variant as good as expected shows on this many photos except by rare chance.
:func:`fastest_keeping_quality` reads the answer off the table: the fastest row that keeps
quality — the fp32 reference itself when no quantized variant is both faster and good enough.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "compiled_precisions",
    "fastest_keeping_quality",
    "logits_in_chunks",
    "plot_speed_and_agreement",
    "speed_and_agreement",
]

Variant = Callable[[np.ndarray], Any]


def _as_call(variant: Any) -> Variant:
    """``pixels -> output`` for a plain callable or a suite runner (fed by its first input name)."""
    from helpers.benchmark.timing import is_runner

    if is_runner(variant):
        name = variant.inputs[0].name
        return lambda pixels: variant({name: pixels})
    if not callable(variant):
        raise TypeError(f"a variant must be callable or a runner, got {type(variant).__name__}")
    return variant


def logits_in_chunks(variant: Any, pixels: np.ndarray, chunk: int = 8) -> np.ndarray:
    """``variant`` over ``pixels`` in chunks of ``chunk`` images, concatenated (float32 logits).

    Chunks keep a session's memory arena small; a variant may return an array, a list whose
    first item is the logits (``session.run``), or a mapping with one output.
    """
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    call = _as_call(variant)
    parts = []
    for start in range(0, len(pixels), chunk):
        out = call(np.ascontiguousarray(pixels[start : start + chunk]))
        if isinstance(out, Mapping):
            out = next(iter(out.values()))
        elif isinstance(out, list | tuple):
            out = out[0]
        parts.append(np.asarray(out, dtype=np.float32))
    return np.concatenate(parts)


def speed_and_agreement(
    variants: Mapping[str, Any],
    pixels: np.ndarray,
    *,
    reference: str,
    floor: float,
    runs: int = 20,
    warmup: int = 2,
    chunk: int = 8,
    logits: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per variant: its top-1 agreement with ``reference`` on ``pixels`` and its speed.

    Columns: ``top1_agreement``, ``top1_agreement_confident`` and ``topk_overlap`` (see
    :func:`helpers.parity.classification_agreement`), ``keeps_quality`` (agreement ≥ ``floor``),
    ``p50_ms`` (median of ``runs`` calls on one image, interleaved) and ``speedup`` (the
    reference's p50 / the row's). ``logits``: outputs already computed on ``pixels``, by variant
    name, so they are not computed again. ``frame.attrs`` holds ``floor``, ``photos``,
    ``reference`` and ``fastest`` (:func:`fastest_keeping_quality`).
    """
    from helpers.benchmark import Workload, interleaved
    from helpers.parity import classification_agreement

    if reference not in variants:
        raise ValueError(f"reference {reference!r} is not one of {list(variants)}")
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must be a fraction in [0, 1], got {floor}")
    if len(pixels) < 1:
        raise ValueError("speed_and_agreement needs at least one image")
    known = dict(logits or {})
    for name, values in known.items():
        if name not in variants or len(values) != len(pixels):
            raise ValueError(f"logits[{name!r}]: not a variant, or not one row per image")
    outputs = {name: known[name] if name in known else logits_in_chunks(v, pixels, chunk)
               for name, v in variants.items()}
    rows = {}
    for name in variants:
        agreement = classification_agreement(outputs[reference], outputs[name])
        rows[name] = {key: agreement[key] for key in ("top1_agreement", "top1_agreement_confident",
                                                      "topk_overlap")}
    one = np.ascontiguousarray(pixels[:1])
    calls = {name: _as_call(v) for name, v in variants.items()}
    timing = interleaved(
        {name: Workload(call=functools.partial(c, one), runs=runs, warmup=warmup) for name, c in calls.items()}
    )
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame["keeps_quality"] = frame["top1_agreement"] >= floor
    frame["p50_ms"] = timing["s_per_call"] * 1e3
    frame["speedup"] = frame.loc[reference, "p50_ms"] / frame["p50_ms"]
    frame.index.name = "variant"
    frame.attrs.update(floor=floor, photos=len(pixels), reference=reference)
    frame.attrs["fastest"] = fastest_keeping_quality(frame)
    return frame


def fastest_keeping_quality(table: pd.DataFrame) -> str:
    """The fastest row whose agreement keeps quality — the reference itself (agreement 1.0 by
    definition) when no quantized variant is both faster and good enough."""
    kept = table[table["keeps_quality"]]
    if kept.empty:  # only when the reference row is missing or the floor is above 1.0
        raise ValueError("no row keeps quality; is the reference in the table?")
    return str(kept["p50_ms"].idxmin())


def plot_speed_and_agreement(table: pd.DataFrame, *, title: str = "", ax: Any = None) -> Any:
    """Each variant as a point: speed-up (x) against top-1 agreement (y), with the floor drawn.

    The points above the dashed line keep quality; the fastest of them is the answer. Returns
    the figure (not left open in pyplot's state); pass ``ax`` to draw into an existing one.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        plt.close(fig)
    else:
        fig = ax.figure
    kept = table["keeps_quality"].astype(bool)
    ax.scatter(table.loc[kept, "speedup"], table.loc[kept, "top1_agreement"], color="tab:green",
               label="keeps quality")
    ax.scatter(table.loc[~kept, "speedup"], table.loc[~kept, "top1_agreement"], color="tab:red",
               marker="x", label="below the floor")
    for name, row in table.iterrows():
        ax.annotate(str(name), (row["speedup"], row["top1_agreement"]), fontsize=8,
                    xytext=(4, 3), textcoords="offset points")
    floor = table.attrs.get("floor")
    if floor is not None:
        ax.axhline(floor, color="grey", linestyle="--", linewidth=1,
                   label=f"floor {floor:.1%} ({table.attrs.get('photos', '?')} photos)")
    ax.axvline(1.0, color="grey", linewidth=0.5)
    reference = table.attrs.get("reference", "the reference")
    ax.set(xlabel=f"speed-up over {reference} (one image per call)",
           ylabel=f"top-1 agreement with {reference}", title=title)
    speedups = table["speedup"].astype(float)
    if speedups.max() / max(speedups.min(), 1e-9) > 8:  # a slow variant (dynamic INT8): log scale
        from matplotlib.ticker import LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    ax.margins(x=0.3, y=0.08)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def compiled_precisions(compiled: Any, layer_types: tuple[str, ...] = ("Convolution",
                                                                      "FullyConnected")) -> pd.Series:
    """What an OpenVINO compiled model really computes in: how many operations of each of
    ``layer_types`` run in each precision (``u8``/``i8`` for integer kernels, ``f32``, ``bf16``),
    read from ``compiled.get_runtime_model()`` — e.g. ``Convolution u8: 48, Convolution f32: 1``.
    """
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str)
        if layer in layer_types:
            key = f"{layer} {info['runtimePrecision'].astype(str)}"
            counts[key] = counts.get(key, 0) + 1
    return pd.Series(counts, dtype=int, name="operations").sort_index()
