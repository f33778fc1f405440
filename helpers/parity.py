"""Do two runners compute the same thing? Numeric and task-level parity.

Two questions, answered separately:

1. **Numeric**: how far apart are the outputs? :func:`compare_outputs` reports, per output, the
   largest absolute difference, the largest relative difference and whether
   ``|candidate - reference| <= atol + rtol * |reference|`` holds everywhere (``np.allclose``).
2. **Task level**: does the difference matter for the task? Same top-1 class
   (:func:`top1_agreement`), same top-k (:func:`topk_agreement`), same generated tokens
   (:func:`same_tokens`); same answer spans are :func:`helpers.qa.same_answers`.
   :func:`classification_agreement` gathers a classifier's numbers in one row, and
   :func:`agreement_floor` says how low an agreement measured on ``n`` examples may fall by
   chance alone — the floor to assert, so that a failure means a real loss, not noise.

:func:`parity_table` runs a reference and candidates on the same inputs and returns one
DataFrame; :func:`assert_parity` turns it into a test with a readable failure report.

Default tolerances (:func:`default_tolerances`) depend on the precision of the computation and
on the runtime — see its docstring for the table and the reasoning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.precisions import precision_family

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from helpers.runners import Runner

__all__ = [
    "default_tolerances",
    "compare_outputs",
    "parity_table",
    "assert_parity",
    "top1_agreement",
    "topk_agreement",
    "topk_overlap",
    "same_tokens",
    "classification_agreement",
    "agreement_floor",
]

# (rtol, atol) by precision of the computation.
_TOLERANCES: dict[str, tuple[float, float]] = {
    "exact": (0.0, 0.0),
    "float64": (1e-7, 1e-9),
    "float32-same": (1e-4, 1e-5),  # PyTorch vs its own graph captures (TorchScript, torch.export)
    "float32": (1e-3, 1e-4),  # another runtime or compiler (ORT, OpenVINO, AOTInductor)
    "float16": (1e-2, 1e-2),
    "bfloat16": (5e-2, 5e-2),
    "int8": (1e-1, 5e-1),
}
_SAME_GRAPH_RUNTIMES = {"pytorch", "torchscript", "torch.export"}


def _precision_key(dtype: Any) -> str:
    family = precision_family(dtype)
    if family is not None:
        return "int8" if family == "int4" else family  # int4 weights: int8's tolerances
    text = str(getattr(dtype, "name", dtype)).lower()
    try:
        kind = np.dtype(text).kind
    except TypeError:
        return "float32"
    return "exact" if kind in "biuUSO" else "float32"


def default_tolerances(dtype: Any, runtime: str) -> tuple[float, float]:
    """``(rtol, atol)`` that a correct candidate is expected to meet.

    ``dtype`` is the precision of the candidate's *computation* (``"float32"``, ``"float16"``,
    ``"bfloat16"``, ``"int8"``; a numpy dtype works) and ``runtime`` the candidate's runtime
    (``Runner.runtime``; a runtime name containing ``int8`` or ``quant`` counts as int8).

    ======================================  ==========  ==========
    case                                    rtol        atol
    ======================================  ==========  ==========
    integer / bool outputs (token ids)      0           0 (exact)
    fp32, PyTorch / TorchScript / export    1e-4        1e-5
    fp32, ORT / OpenVINO / AOTInductor      1e-3        1e-4
    fp16                                    1e-2        1e-2
    bf16 (e.g. OpenVINO's CPU default)      5e-2        5e-2 (× scale in compare_outputs)
    int8-quantised                          1e-1        5e-1
    ======================================  ==========  ==========

    Why: the same fp32 graph in PyTorch differs only by kernel choice (~1e-6). Another runtime
    fuses and reorders floating-point sums (conv + bias + activation, different GEMM blocking),
    which moves results by ~1e-6 relative per layer and grows with depth; 1e-3 / 1e-4 leaves room
    for deep models while still catching a wrong op or a wrong weight (those give O(1) errors).
    fp16 keeps ~3 decimal digits and bf16 ~2, so their bounds follow the format. A bf16 network's
    error is relative to the magnitudes flowing through it, not to each output element: a logit
    near 0 next to logits of ±10 carries the same absolute error as they do. So
    :func:`compare_outputs` scales bf16's ``atol`` by ``max(1, max |reference|)`` (a wrong op still
    gives errors of the size of that scale, 20x the bound). For int8 the
    numeric bound is only a sanity check (a wrong scale or zero point gives errors of the size of
    the logits): judge quantised models by task-level agreement (top-1, span, tokens).
    """
    key = _precision_key(dtype)
    if key == "exact":
        return _TOLERANCES["exact"]
    runtime_l = (runtime or "").lower()
    if "int8" in runtime_l or "quant" in runtime_l:
        return _TOLERANCES["int8"]
    if key == "float32" and runtime_l in _SAME_GRAPH_RUNTIMES:
        return _TOLERANCES["float32-same"]
    return _TOLERANCES[key]


def _max_rel(diff: np.ndarray, ref: np.ndarray, floor: float) -> float:
    """Largest ``|c - r| / |r|`` over elements whose reference magnitude exceeds ``floor``."""
    magnitude = np.abs(ref)
    mask = magnitude > floor
    if not mask.any():
        return 0.0
    return float((diff[mask] / magnitude[mask]).max())


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    *,
    rtol: float | None = None,
    atol: float | None = None,
    runtime: str = "",
    precision: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Compare named outputs; returns ``{output: {max_abs, max_rel, allclose, rtol, atol, ...}}``.

    - ``max_abs``: largest ``|candidate - reference|``.
    - ``max_rel``: largest ``|candidate - reference| / |reference|`` over elements where
      ``|reference| > atol`` (relative error is meaningless next to zero).
    - ``allclose``: ``|candidate - reference| <= atol + rtol * |reference|`` everywhere, and equal
      shapes, and no NaN where the reference has none.
    - ``worst_ratio``: the largest ``|c - r| / (atol + rtol * |r|)``; ``<= 1`` means allclose.
    - ``note``: why a comparison failed outright (missing output, shape mismatch, NaN).

    Tolerances left ``None`` come from :func:`default_tolerances` for ``precision`` (default:
    the reference output's dtype) and ``runtime``; for bf16 the default ``atol`` is scaled by
    ``max(1, max |reference|)`` (see :func:`default_tolerances`). Outputs only in the reference
    are reported as missing; outputs only in the candidate are ignored.
    """
    report: dict[str, dict[str, Any]] = {}
    for name, ref_value in reference.items():
        ref = np.asarray(ref_value)
        exact = ref.dtype.kind in "biuUSO"  # ids, masks, strings: compare exactly
        d_rtol, d_atol = default_tolerances(
            ref.dtype if exact else (precision or ref.dtype), runtime
        )
        r_tol = d_rtol if rtol is None else rtol
        a_tol = d_atol if atol is None else atol
        scaled = (
            atol is None
            and not exact
            and ref.size
            and ref.dtype.kind == "f"
            and _precision_key(precision or ref.dtype) == "bfloat16"
            and (d_rtol, d_atol) == _TOLERANCES["bfloat16"]
        )
        if scaled:
            a_tol = d_atol * max(1.0, float(np.nanmax(np.abs(ref))))
        row: dict[str, Any] = {
            "max_abs": float("nan"),
            "max_rel": float("nan"),
            "allclose": False,
            "rtol": r_tol,
            "atol": a_tol,
            "worst_ratio": float("nan"),
            "shape": tuple(ref.shape),
            "note": "",
        }
        if name not in candidate:
            row["note"] = "missing in candidate"
            report[name] = row
            continue
        cand = np.asarray(candidate[name])
        if cand.shape != ref.shape:
            row["note"] = f"shape {tuple(cand.shape)} != reference {tuple(ref.shape)}"
            report[name] = row
            continue
        if ref.dtype.kind in "USO" or cand.dtype.kind in "USO":  # strings/objects: equality only
            equal = bool(np.array_equal(ref, cand))
            row.update(allclose=equal, note="" if equal else "values differ")
            report[name] = row
            continue
        if ref.size == 0:
            row.update(max_abs=0.0, max_rel=0.0, allclose=True, worst_ratio=0.0)
            report[name] = row
            continue
        ref64 = ref.astype(np.float64)
        cand64 = cand.astype(np.float64)
        ref_nan, cand_nan = np.isnan(ref64), np.isnan(cand64)
        if cand_nan.any() and not ref_nan.any():
            row["note"] = f"{int(cand_nan.sum())} NaN value(s) in candidate"
        both = ~(ref_nan | cand_nan)
        diff = np.abs(cand64 - ref64)
        diff_valid = diff[both]
        row["max_abs"] = float(diff_valid.max()) if diff_valid.size else float("nan")
        row["max_rel"] = _max_rel(diff_valid, ref64[both], a_tol)
        bound = a_tol + r_tol * np.abs(ref64[both])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(bound > 0, diff_valid / bound, np.where(diff_valid > 0, np.inf, 0.0))
        row["worst_ratio"] = float(ratio.max()) if ratio.size else 0.0
        row["allclose"] = bool(
            np.allclose(cand64, ref64, rtol=r_tol, atol=a_tol, equal_nan=True)
            and np.array_equal(ref_nan, cand_nan)
        )
        if not row["note"] and not np.array_equal(ref_nan, cand_nan):
            row["note"] = "NaN positions differ"
        report[name] = row
    return report


def parity_table(
    reference: Runner,
    candidates: Sequence[Runner] | Mapping[str, Runner],
    inputs: Mapping[str, np.ndarray],
    *,
    task_checks: Mapping[str, Callable[[dict, dict], bool | float]] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> pd.DataFrame:
    """Run ``reference`` and every candidate on ``inputs``; one DataFrame of the differences.

    One row per (candidate, output): ``runner``, ``runtime``, ``precision``, ``output``,
    ``max_abs_diff``, ``max_rel_diff``, ``rtol``, ``atol``, ``allclose``, ``worst_ratio``,
    ``note``, then one column per task check. A task check gets ``(reference_outputs,
    candidate_outputs)`` (dicts of numpy arrays) and returns a bool or a number (e.g.
    ``lambda r, c: top1_agreement(r["logits"], c["logits"])``); it is computed once per
    candidate and repeated on that candidate's rows. Tolerances default per candidate to
    :func:`default_tolerances` for its ``precision`` and ``runtime``. ``table.attrs`` holds the
    reference's name and description.
    """
    import pandas as pd

    ref_out = reference(inputs)
    items = (
        list(candidates.items())
        if isinstance(candidates, Mapping)
        else [(c.name, c) for c in candidates]
    )
    rows: list[dict[str, Any]] = []
    for label, runner in items:
        cand_out = runner(inputs)
        precision = getattr(runner, "precision", None)
        comparison = compare_outputs(
            ref_out,
            cand_out,
            rtol=rtol,
            atol=atol,
            runtime=runner.runtime,
            precision=precision,
        )
        checks = {key: fn(ref_out, cand_out) for key, fn in (task_checks or {}).items()}
        for output, stats in comparison.items():
            row = {
                "runner": label,
                "runtime": runner.runtime,
                "precision": precision,
                "output": output,
                "max_abs_diff": stats["max_abs"],
                "max_rel_diff": stats["max_rel"],
                "rtol": stats["rtol"],
                "atol": stats["atol"],
                "allclose": stats["allclose"],
                "worst_ratio": stats["worst_ratio"],
                "note": stats["note"],
            }
            row.update(checks)
            rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["reference"] = reference.name
    table.attrs["reference_runtime"] = reference.runtime
    return table


def _failed(value: Any, threshold: float | None) -> bool:
    if value is None:
        return True
    if isinstance(value, (bool, np.bool_)):
        return not bool(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return True
    if np.isnan(number):
        return True
    return number < (1.0 if threshold is None else threshold)


def assert_parity(
    table: pd.DataFrame,
    *,
    columns: Sequence[str] = ("allclose",),
    thresholds: Mapping[str, float] | None = None,
) -> None:
    """Raise ``AssertionError`` listing every row that fails one of ``columns``.

    A boolean column fails on ``False``; a numeric column (e.g. a top-1 agreement) fails below
    its threshold in ``thresholds`` (default 1.0, i.e. full agreement). The message names the
    runner, the output, the differences and the tolerance, e.g.::

        parity failed against 'PyTorch eager' (1 of 3 rows):
          - ORT CPU / logits: allclose=False — max |diff| 3.1e-02 vs atol 1e-04 + rtol 1e-03·|ref|
            (worst element at 310x the tolerance); max rel diff 2.0e-02
    """
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise KeyError(f"parity table has no column(s) {missing}; columns: {list(table.columns)}")
    lines: list[str] = []
    failing_rows = 0
    for _, row in table.iterrows():
        failures = [c for c in columns if _failed(row[c], (thresholds or {}).get(c))]
        if not failures:
            continue
        failing_rows += 1
        label = f"{row.get('runner', '?')} / {row.get('output', '?')}"
        parts = []
        for column in failures:
            if column == "allclose":
                detail = (
                    f"allclose=False — max |diff| {row.get('max_abs_diff', float('nan')):.3g} vs "
                    f"atol {row.get('atol', float('nan')):.0e} + rtol "
                    f"{row.get('rtol', float('nan')):.0e}·|ref|"
                )
                ratio = row.get("worst_ratio")
                if ratio is not None and np.isfinite(ratio):
                    detail += f" (worst element at {ratio:.3g}x the tolerance)"
                detail += f"; max rel diff {row.get('max_rel_diff', float('nan')):.3g}"
            else:
                threshold = (thresholds or {}).get(column)
                if isinstance(row[column], (bool, np.bool_)):
                    need = "True"
                else:
                    need = f">= {1.0 if threshold is None else threshold}"
                detail = f"{column}={row[column]!r} (needs {need})"
            parts.append(detail)
        note = row.get("note")
        if isinstance(note, str) and note:
            parts.append(f"note: {note}")
        lines.append(f"  - {label}: " + "; ".join(parts))
    if lines:
        reference = table.attrs.get("reference", "the reference")
        raise AssertionError(
            f"parity failed against {reference!r} ({failing_rows} of {len(table)} rows):\n"
            + "\n".join(lines)
        )


# --------------------------------------------------------------------------------------------
# Task-level checks
# --------------------------------------------------------------------------------------------


def _rows(logits: np.ndarray) -> np.ndarray:
    array = np.asarray(logits)
    if array.ndim == 0:
        raise ValueError("logits must have at least one dimension (the classes)")
    return array.reshape(-1, array.shape[-1])


def _check_shapes(reference_logits: np.ndarray, candidate_logits: np.ndarray) -> None:
    if np.shape(reference_logits) != np.shape(candidate_logits):
        raise ValueError(
            f"logit shapes differ: {np.shape(reference_logits)} vs {np.shape(candidate_logits)}"
        )


def top1_agreement(reference_logits: np.ndarray, candidate_logits: np.ndarray) -> float:
    """Fraction of rows whose arg-max class is the same (classes on the last axis).

    ``[N, C]`` gives N rows, ``[C]`` one, ``[B, S, V]`` B·S rows (e.g. next-token predictions).
    """
    _check_shapes(reference_logits, candidate_logits)
    ref, cand = _rows(reference_logits), _rows(candidate_logits)
    return float(np.mean(ref.argmax(axis=-1) == cand.argmax(axis=-1)))


def _topk_indices(rows: np.ndarray, k: int) -> np.ndarray:
    k = min(k, rows.shape[-1])
    return np.argsort(-rows, axis=-1, kind="stable")[:, :k]


def topk_agreement(reference_logits: np.ndarray, candidate_logits: np.ndarray, k: int = 5) -> float:
    """Fraction of rows where the top-1 class is the same **and** the top-k sets are equal.

    The order inside the top-k may differ (near-ties swap places under tiny numeric changes
    without changing what a user sees in a "top-5" list), but the same k classes must be there and
    the winner must agree. With ``k=1`` this is :func:`top1_agreement`. A softer number is
    :func:`topk_overlap`.
    """
    _check_shapes(reference_logits, candidate_logits)
    ref, cand = _rows(reference_logits), _rows(candidate_logits)
    ref_top, cand_top = _topk_indices(ref, k), _topk_indices(cand, k)
    same_top1 = ref.argmax(axis=-1) == cand.argmax(axis=-1)
    same_set = np.array(
        [set(a.tolist()) == set(b.tolist()) for a, b in zip(ref_top, cand_top, strict=True)]
    )
    return float(np.mean(same_top1 & same_set))


def topk_overlap(reference_logits: np.ndarray, candidate_logits: np.ndarray, k: int = 5) -> float:
    """Mean fraction of the reference's top-k classes that are also in the candidate's top-k."""
    _check_shapes(reference_logits, candidate_logits)
    ref_top = _topk_indices(_rows(reference_logits), k)
    cand_top = _topk_indices(_rows(candidate_logits), k)
    overlaps = [
        len(set(a.tolist()) & set(b.tolist())) / len(a)
        for a, b in zip(ref_top, cand_top, strict=True)
    ]
    return float(np.mean(overlaps))


def same_tokens(a: Sequence[int], b: Sequence[int]) -> bool:
    """True when two token sequences are identical (lists, tuples or numpy arrays of ids)."""
    first = np.asarray(a).reshape(-1).tolist()
    second = np.asarray(b).reshape(-1).tolist()
    return [int(t) for t in first] == [int(t) for t in second]


def classification_agreement(
    reference_logits: np.ndarray,
    candidate_logits: np.ndarray,
    *,
    margin: float = 0.2,
    k: int = 5,
) -> dict[str, float]:
    """A classifier's task-level agreement with its reference, as one row.

    Keys: ``top1_agreement``; ``top1_agreement_confident`` — the same over the rows where the
    reference is *confident* (its top-1 probability beats the runner-up by more than ``margin``;
    NaN when there is none), because near-tied classes swap under any small numeric change;
    ``confident`` (how many rows that is); ``topk_overlap`` (:func:`topk_overlap`) and
    ``max_abs_diff`` of the logits.
    """
    _check_shapes(reference_logits, candidate_logits)
    ref, cand = _rows(reference_logits).astype(np.float64), _rows(candidate_logits)
    shifted = np.exp(ref - ref.max(axis=-1, keepdims=True))
    probs = np.sort(shifted / shifted.sum(axis=-1, keepdims=True), axis=-1)
    confident = (
        (probs[:, -1] - probs[:, -2]) > margin if ref.shape[-1] > 1 else np.ones(len(ref), bool)
    )
    same = ref.argmax(axis=-1) == cand.argmax(axis=-1)
    return {
        "top1_agreement": float(same.mean()),
        "top1_agreement_confident": float(same[confident].mean())
        if confident.any()
        else float("nan"),
        "confident": int(confident.sum()),
        "topk_overlap": topk_overlap(ref, cand, k=k),
        "max_abs_diff": float(np.abs(cand - ref).max()),
    }


def agreement_floor(n: int, expected: float, *, alpha: float = 0.001) -> float:
    """The lowest agreement ``n`` examples show, with probability at least ``1 - alpha``, when
    the candidate's true agreement is ``expected``.

    Disagreements on ``n`` independent examples follow a binomial distribution with
    ``p = 1 - expected``; the floor is ``(n - m) / n`` for the smallest ``m`` with
    ``P(disagreements <= m) >= 1 - alpha``. Asserting ``measured >= agreement_floor(n,
    expected)`` fails by chance in fewer than ``alpha`` of runs for a candidate that is as good
    as ``expected``: a failure means the agreement really is lower. On few examples the floor is
    necessarily loose (24 examples, expected 0.97: 0.833).
    """
    if n < 1:
        raise ValueError("agreement_floor: n must be >= 1")
    if not 0 <= expected <= 1 or not 0 < alpha < 1:
        raise ValueError("agreement_floor: expected must be in [0, 1] and alpha in (0, 1)")
    from math import comb

    p = 1.0 - expected
    cumulative = 0.0
    for misses in range(n + 1):
        cumulative += comb(n, misses) * p**misses * (1 - p) ** (n - misses)
        if cumulative >= 1 - alpha:
            return (n - misses) / n
    return 0.0
