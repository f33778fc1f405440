"""Custom operators from PyTorch to ONNX: the pieces around ``torch.library.custom_op``.

The journey of a custom operator (notebook 16):

1. ``torch.library.custom_op("ns::name", ...)`` defines it; ``register_fake`` tells
   ``torch.export`` its output shape without running it.
2. The dynamo ONNX exporter has no translation for it and fails;
   :func:`exporter_error_summary` extracts the exporter's own explanation from the long
   report (without terminal colour codes).
3. ``torch.onnx.export(..., custom_translation_table={op: fn})`` maps it either to an
   onnxscript function of standard ONNX operators (runs everywhere) or to a node of a custom
   domain. onnxscript only emits operators it knows the signature of: :func:`register_schema`
   declares the custom one to ONNX (idempotent, so re-running a notebook cell is fine).
4. ONNX Runtime runs a custom-domain node when a library implementing it is registered
   (``SessionOptions.register_custom_ops_library``); ``onnxruntime-extensions`` provides one
   that calls Python functions decorated with ``@onnx_op`` (domain :data:`EXTENSIONS_DOMAIN`).
   ``onnx.reference.ReferenceEvaluator(model, new_ops=[...])`` accepts a Python implementation
   too. :func:`custom_domain_nodes` lists what the exported graph needs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "EXTENSIONS_DOMAIN",
    "STANDARD_DOMAINS",
    "exporter_error_summary",
    "register_schema",
    "custom_domain_nodes",
    "extensions_library",
]

EXTENSIONS_DOMAIN = "ai.onnx.contrib"  # where onnxruntime-extensions registers @onnx_op ops
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def exporter_error_summary(error: BaseException, *, max_chars: int = 700) -> str:
    """The reason a dynamo ONNX export failed, as the exporter states it.

    ``torch.onnx.export`` raises an error whose message is a long report (next steps, a chain
    of causes, colour codes). This returns its ``Exception summary`` section — the chain of
    ``<class ...>: message`` lines, innermost cause first — without colour codes, cut to
    ``max_chars``. Other errors come back as ``Type: message``.
    """
    text = _ANSI.sub("", str(error))
    if "## Exception summary" in text:
        summary = text.split("## Exception summary", 1)[1]
        summary = summary.split("(Refer to the full stack trace", 1)[0]
        lines = [line.strip() for line in summary.splitlines()
                 if line.strip() and line.strip() != "⬆️"]
        text = "\n".join(lines)
    else:
        text = f"{type(error).__name__}: {text.strip()}"
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


_ATTR_TYPES = {"float": "FLOAT", "int": "INT", "string": "STRING", "floats": "FLOATS",
               "ints": "INTS", "strings": "STRINGS"}


def register_schema(
    op_type: str,
    domain: str,
    *,
    inputs: Sequence[str] = ("X",),
    outputs: Sequence[str] = ("Y",),
    attributes: Mapping[str, str] | None = None,
    types: Sequence[str] = ("tensor(float)",),
    version: int = 1,
    doc: str = "",
) -> Any:
    """Declare ``domain::op_type`` to ONNX (``onnx.defs.register_schema``); returns the schema.

    ``inputs``/``outputs`` name the formal parameters (all of one type variable ``T``, allowed
    to be any of ``types``); ``attributes`` maps names to ``float | int | string | floats |
    ints | strings``. An op already registered in this process is returned as it is (a schema
    cannot be registered twice), so a notebook cell can be re-run.
    """
    import onnx
    from onnx.defs import OpSchema

    if domain in STANDARD_DOMAINS:
        raise ValueError(f"{op_type}: custom operators need their own domain, not {domain!r}")
    if onnx.defs.has(op_type, domain):
        return onnx.defs.get_schema(op_type, version, domain)
    attrs = []
    for name, kind in (attributes or {}).items():
        if kind not in _ATTR_TYPES:
            raise ValueError(f"attribute {name!r}: type must be one of {list(_ATTR_TYPES)}")
        attrs.append(OpSchema.Attribute(name, getattr(OpSchema.AttrType, _ATTR_TYPES[kind]), ""))
    schema = OpSchema(
        op_type, domain, version, doc=doc,
        inputs=[OpSchema.FormalParameter(n, "T") for n in inputs],
        outputs=[OpSchema.FormalParameter(n, "T") for n in outputs],
        type_constraints=[("T", list(types), "allowed tensor types")],
        attributes=attrs,
    )
    onnx.defs.register_schema(schema)
    return schema


def custom_domain_nodes(onnx_path: str | Path) -> pd.DataFrame:
    """The nodes of a saved model that are outside the standard ONNX domains.

    Columns: ``domain, op_type, name, attributes`` (a dict of plain values). An empty table
    means every node is a standard ONNX operator that any runtime can run. The opset imports
    of the custom domains are in ``table.attrs["opsets"]``.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    rows = [
        {"domain": node.domain, "op_type": node.op_type, "name": node.name,
         "attributes": {a.name: helper.get_attribute_value(a) for a in node.attribute}}
        for node in model.graph.node if node.domain not in STANDARD_DOMAINS
    ]
    table = pd.DataFrame(rows, columns=["domain", "op_type", "name", "attributes"])
    table.attrs["opsets"] = {o.domain: o.version for o in model.opset_import
                             if o.domain not in STANDARD_DOMAINS}
    return table


def extensions_library() -> str:
    """Path of the ``onnxruntime-extensions`` custom-op library, for
    ``SessionOptions.register_custom_ops_library``; a clear error when it is not installed."""
    try:
        from onnxruntime_extensions import get_library_path
    except ImportError as error:
        raise ImportError(
            "onnxruntime-extensions is not installed in this environment; install it "
            "(pip install onnxruntime-extensions) to run custom-domain nodes written in Python"
        ) from error
    return str(get_library_path())
