"""helpers.display: tables are shown uncut, without touching pandas' global options."""

from __future__ import annotations

import pandas as pd

from helpers import display


def test_show_prints_long_cells_whole_and_leaves_options_alone(capsys) -> None:
    sentence = "47% of the fp32 limit, measured on this machine in this run, " * 2
    before = pd.get_option("display.max_colwidth")
    display.show(pd.DataFrame({"result": [sentence.strip()]}))
    out = capsys.readouterr().out
    assert sentence.strip() in out and "…" not in out and "..." not in out
    assert pd.get_option("display.max_colwidth") == before
    display.show(pd.Series({"note": sentence}), max_colwidth=20)
    assert sentence.strip() not in capsys.readouterr().out  # a narrower width, on request


def test_banner_prints_a_marked_block_outside_jupyter(capsys) -> None:
    display.banner("Title", "body line", kind="warning")
    out = capsys.readouterr().out
    assert "WARNING: Title" in out and "body line" in out
