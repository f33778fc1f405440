"""One name for each numeric precision, however a runtime or a user spells it.

:func:`precision_family` maps ``"fp32"``, ``"f32"``, ``torch.bfloat16``, ``"bf16 autocast"``,
``"int8 static QDQ"``, ``"uint8"``, ``"qint8"`` … to ``"float32"``, ``"bfloat16"``, ``"float16"``,
``"float64"``, ``"int8"`` or ``"int4"``, and returns ``None`` for a name it does not know. The
parity tolerances (:mod:`helpers.parity`) and the hardware limits (:mod:`helpers.benchmark`)
both read precisions through it, so the two always agree on what a runner computes in.
"""

from __future__ import annotations

from typing import Any

__all__ = ["precision_family"]

_INT8_TAGS = ("int8", "uint8", "qint", "qdq", "quant", "u8")
_EXACT = {
    "float16": ("f16", "fp16", "float16", "half"),
    "float64": ("f64", "fp64", "float64", "double"),
    "float32": ("f32", "fp32", "float32", "float", "single"),
}


def precision_family(precision: Any) -> str | None:
    """The canonical precision of ``precision`` (a string, numpy/torch dtype or ``None`` = fp32)."""
    text = str(getattr(precision, "name", precision) or "float32").lower().replace("torch.", "")
    if "int4" in text:
        return "int4"
    if any(tag in text for tag in _INT8_TAGS):
        return "int8"
    if "bf16" in text or "bfloat16" in text:
        return "bfloat16"
    for family, names in _EXACT.items():
        if text in names:
            return family
    return None
