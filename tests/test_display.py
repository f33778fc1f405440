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


class _Shell:
    """Just enough of IPython's display machinery to see what a progress bar shows."""

    def __init__(self) -> None:
        self.shown: dict[str, str] = {}
        self.order: list[str] = []


def _notebook_progress(monkeypatch, batch: bool):
    """``display.progress`` as it behaves in a Jupyter kernel, recording what each display shows."""
    import IPython.display as ipd

    shell = _Shell()

    class Handle:
        def __init__(self, key: str) -> None:
            self.key = key

        def update(self, obj) -> None:
            shell.shown[self.key] = repr(obj) if isinstance(obj, display.Progress) else ""

    def fake_display(obj, display_id=None):
        key = f"out{len(shell.order)}"
        shell.order.append(key)
        shell.shown[key] = repr(obj)
        return Handle(key) if display_id else None

    monkeypatch.setattr(display, "in_notebook", lambda: True)
    monkeypatch.setattr(ipd, "display", fake_display)
    if batch:
        monkeypatch.setenv(display.BATCH_ENV, "1")
    else:
        monkeypatch.delenv(display.BATCH_ENV, raising=False)
    return shell


def test_progress_in_a_live_notebook_updates_one_output_to_its_final_state(monkeypatch) -> None:
    shell = _notebook_progress(monkeypatch, batch=False)
    items = list(display.progress(range(7), desc="photos", unit="img"))
    assert items == list(range(7))
    assert len(shell.order) == 1, "one output, updated in place"
    final = shell.shown[shell.order[0]]
    assert final.startswith("photos: 100%") and "7/7" in final


def test_progress_in_a_batch_run_shows_only_the_final_state(monkeypatch) -> None:
    shell = _notebook_progress(monkeypatch, batch=True)
    bar = display.progress(total=3, desc="steps")
    bar.update()
    bar.set_postfix(loss="0.25", refresh=False)  # tqdm's keyword: a value for the next redraw, not a postfix
    assert shell.order == [], "nothing is drawn while it runs"
    bar.update(2)
    bar.close()
    bar.close()  # closing twice shows it once
    assert len(shell.order) == 1
    assert shell.shown[shell.order[0]].startswith("steps: 100%") and "loss=0.25" in shell.shown[shell.order[0]]
    assert "refresh" not in shell.shown[shell.order[0]]


def test_a_transient_progress_bar_leaves_nothing(monkeypatch) -> None:
    shell = _notebook_progress(monkeypatch, batch=False)
    with display.progress(total=2, desc="timing", leave=False) as bar:
        bar.update(2)
    assert all(text == "" for text in shell.shown.values())
    shell = _notebook_progress(monkeypatch, batch=True)
    with display.progress(total=2, desc="timing", leave=False) as bar:
        bar.update(2)
    assert shell.order == []


def test_progress_outside_jupyter_is_plain_tqdm() -> None:
    from tqdm.std import tqdm

    bar = display.progress(total=2, disable=True)
    assert isinstance(bar, tqdm)
    bar.close()
