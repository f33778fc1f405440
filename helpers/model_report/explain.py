"""Plain explanations and the usual fixes for the errors a step of the report can hit."""

from __future__ import annotations

import re

__all__ = ["explain"]

#: (pattern in the error text, what it means, the usual fix), first match wins.
_KNOWN: tuple[tuple[str, str, str], ...] = (
    (r"data.dependent|GuardOnDataDependent|Could not guard on|Could not extract specialized integer",
     "the model branches (if/while) on the *values* of a tensor, which a graph captured ahead of time "
     "cannot know",
     "express the branch with torch.cond, move it into a custom op (torch.library.custom_op), or "
     "compute it outside the model"),
    (r"Constraints violated|specializ|specialis|DynamicShapeError|dynamic_shapes",
     "a dimension declared dynamic was fixed by the code (a shape check or a size-dependent branch)",
     "declare it with torch.export.Dim.AUTO (--dynamic lets you drop or rename axes), or remove the "
     "code that pins the size"),
    (r"opset|Unsupported|not supported|No decomposition|no symbolic function|OnnxExporterError",
     "an operator has no translation in this exporter or runtime",
     "try a newer opset, register a custom translation (torch.onnx.export(custom_translation_table=...)), "
     "or replace the operator"),
    (r"NOT_IMPLEMENTED|Could not find an implementation|not implemented",
     "the runtime has no kernel for an operator (or for its data type) in this graph",
     "upgrade the runtime, export with another opset, or run this model on another runtime"),
)


def explain(error: BaseException | str) -> tuple[str, str]:
    """``(plain explanation, usual fix)`` for an error raised by an export, a build or a run."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    for pattern, meaning, fix in _KNOWN:
        if re.search(pattern, text, flags=re.IGNORECASE):
            return meaning, fix
    return ("the step raised an error the report does not recognise",
            "read the runtime's own message; the other runtimes' results are still valid")
