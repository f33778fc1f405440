"""Banners, tables and progress bars that render in Jupyter and read well as plain text elsewhere.

**Progress bars.** ``tqdm.auto`` draws an ipywidget in Jupyter; a notebook executed by papermill or nbval saves that
widget without its state, so the rendered notebook shows the bar frozen where it was first drawn
("0/97"). :func:`progress` avoids that:

- **interactive Jupyter**: a bar drawn as one display output and updated in place
  (``display_id``), so the saved notebook holds its last state;
- **batch execution** (the suite's main job and test harness set ``INFERENCE_SUITE_BATCH=1``
  for their kernels): nothing while it runs, one line with the final state when it closes;
- **a terminal**: plain ``tqdm``.

The bar has the tqdm methods the suite uses (iteration, ``update``, ``set_postfix_str``,
``set_postfix``, ``close``, a context manager), and the familiar tqdm line as its text.
"""

from __future__ import annotations

import contextlib
import html
import os
import sys
import time
from collections.abc import Iterable, Iterator
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
        ip = shell.get_ipython()
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

            if type(obj).__module__.startswith("matplotlib") and hasattr(obj, "savefig"):
                # A Figure made without pyplot: make sure IPython has a PNG formatter for it
                # (pyplot registers one when imported; a notebook may never import pyplot).
                from matplotlib_inline.backend_inline import set_matplotlib_formats

                set_matplotlib_formats("png")
            display(obj)
        else:
            print(obj)


# --------------------------------------------------------------------------------------------
# Progress bars
# --------------------------------------------------------------------------------------------
#: Set to ``1`` in the environment of kernels that run without a person watching.
BATCH_ENV = "INFERENCE_SUITE_BATCH"
_REDRAW_S = 0.25


class Progress:
    """A progress bar for notebooks (see the module docstring); use :func:`progress` to make one."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | float | None = None,
        desc: str = "",
        unit: str = "it",
        unit_scale: bool = False,
        live: bool = True,
        leave: bool = True,
        delay: float = 0.0,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.unit_scale = unit_scale
        self.n: float = 0
        self.postfix = ""
        self.closed = False
        self._live = live
        self._leave = leave
        self._delay = delay
        self._started = time.perf_counter()
        self._drawn = 0.0
        self._handle: Any = None
        if live and delay <= 0:
            self._show()

    def _show(self) -> None:
        from IPython.display import display

        self._handle = display(self, display_id=True)
        self._drawn = time.perf_counter()

    def text(self) -> str:
        """The bar as one tqdm-style line (``desc: 42%|████▏     | 42/100 [00:03<00:04, 12.1it/s]``)."""
        from tqdm.std import tqdm

        return tqdm.format_meter(
            self.n,
            self.total,
            time.perf_counter() - self._started,
            ncols=80,
            prefix=self.desc,
            unit=self.unit,
            unit_scale=self.unit_scale,
            postfix=self.postfix or None,
        )

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        bar = ""
        if self.total:
            bar = f'<progress value="{self.n}" max="{self.total}" style="width:16em"></progress> '
        return f"<div>{bar}<code>{html.escape(self.text())}</code></div>"

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self._live and self._handle is None and now - self._started >= self._delay:
            self._show()
        if self._handle is not None and (force or now - self._drawn >= _REDRAW_S):
            self._handle.update(self)
            self._drawn = now

    def update(self, n: float = 1) -> None:
        self.n += n
        self._draw()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s
        if refresh:
            self._draw()

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.set_postfix_str(", ".join(f"{key}={value}" for key, value in values.items()), refresh=refresh)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self._leave:
            if self._handle is not None:  # a transient bar: leave no trace
                from IPython.display import HTML

                self._handle.update(HTML(""))
        elif self._live:
            if self._handle is None:
                self._show()
            self._draw(force=True)
        else:
            from IPython.display import display

            display(self)

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress bar was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | float | None = None,
    desc: str = "",
    unit: str = "it",
    unit_scale: bool = False,
    disable: bool = False,
    leave: bool = True,
    delay: float = 0.0,
) -> Any:
    """A progress bar over ``iterable`` (or one to ``update`` by hand with ``total``).

    Returns a :class:`Progress` in Jupyter (live, or final-state-only when ``INFERENCE_SUITE_BATCH``
    is set) and a plain ``tqdm`` bar elsewhere; ``disable=True`` gives a tqdm bar that draws
    nothing. ``leave=False``: the bar disappears when it closes; ``delay``: seconds before it first
    appears (a bar for quick work never shows).
    """
    if disable or not in_notebook():
        from tqdm.std import tqdm

        return tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=unit_scale,
            disable=disable,
            leave=leave,
            delay=delay,
            # a log file (CI, make test) gets a line every 30 s, not one per update
            mininterval=0.1 if sys.stderr.isatty() else 30.0,
        )
    live = os.environ.get(BATCH_ENV, "") not in ("1", "true", "yes")
    return Progress(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit_scale,
        live=live,
        leave=leave,
        delay=delay,
    )
