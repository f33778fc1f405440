"""Banners and tables that render nicely in Jupyter and read well as plain text elsewhere."""

from __future__ import annotations

import contextlib
import html
import sys
from typing import Any, Literal

Kind = Literal["info", "success", "warning", "error"]

_COLOURS = {
    "info": ("#e8f1fb", "#1f5fa8"),
    "success": ("#e9f7ef", "#1e7a43"),
    "warning": ("#fff6e0", "#9a6700"),
    "error": ("#fdecea", "#b3261e"),
}
_ICONS = {"info": "ℹ️", "success": "✅", "warning": "⚠️", "error": "⛔"}


def in_notebook() -> bool:
    """True when running inside a Jupyter kernel (so rich HTML output will be rendered)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except AttributeError:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def banner(title: str, body: str = "", kind: Kind = "info") -> None:
    """Show a coloured box in a notebook, or a clearly marked block of text in a terminal.

    Used wherever the learner must not miss something: which model ran and why, a fallback to
    another device, a legacy API.
    """
    if in_notebook():
        from IPython.display import HTML, display

        bg, fg = _COLOURS[kind]
        body_html = html.escape(body).replace("\n", "<br>")
        display(
            HTML(
                f'<div style="border-left:6px solid {fg};background:{bg};padding:8px 12px;'
                f'margin:6px 0;color:#1d1d1d"><b style="color:{fg}">{_ICONS[kind]} '
                f"{html.escape(title)}</b><br>{body_html}</div>"
            )
        )
    else:
        line = "=" * 78
        print(f"{line}\n{_ICONS[kind]} {kind.upper()}: {title}")
        if body:
            print(body)
        print(line)


#: Characters a table cell shows before pandas cuts it with "…" (pandas' own default is 50).
MAX_COLWIDTH = 200


def show(obj: Any, *, max_colwidth: int | None = MAX_COLWIDTH) -> None:
    """Display a DataFrame/figure/object richly in Jupyter, or print it elsewhere.

    Tables (pandas DataFrames and Series) show up to ``max_colwidth`` characters per cell
    (``None``: everything) instead of pandas' 50, so sentences about results are not cut. The
    option holds for this call only (``pandas.option_context``); global options are untouched.
    """
    table = type(obj).__module__.startswith("pandas")
    context: Any = contextlib.nullcontext()
    if table:
        import pandas as pd

        context = pd.option_context("display.max_colwidth", max_colwidth)
    with context:
        if in_notebook():
            from IPython.display import display

            display(obj)
        else:
            print(obj)
