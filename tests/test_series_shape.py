"""The series' shape: a core track a learner finishes, deep dives for the whole truth.

Each notebook's metadata says its ``track``: ``core`` lessons are one model and one idea, small
enough to study in a sitting; ``deep-dive`` notebooks hold the depth. The sizes are counted the way
a reader meets them: non-blank code lines and words of prose. ``minutes`` must cover reading the
prose (200 words a minute) and working through the code (12 lines a minute), rounded up to 5.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from helpers.course import exercises
from helpers.course.notebook_info import NotebookInfo, discover

ROOT = Path(__file__).resolve().parents[1]
INFOS = discover()
CORE = [info for info in INFOS if info.track == "core"]
TRACKS = {"core", "deep-dive"}
MAX_CORE_CODE_LINES = 150  # "~150 code lines at most": a lesson that grows moves depth to a deep dive
MAX_CORE_WORDS = 2000
MAX_CODE_LINES = 330  # "about 300"
WORDS_PER_MINUTE = 200
CODE_LINES_PER_MINUTE = 12


def cells(info: NotebookInfo, kind: str) -> list[str]:
    nb = json.loads(info.path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]


def code_lines(info: NotebookInfo) -> int:
    return sum(1 for cell in cells(info, "code") for line in cell.splitlines() if line.strip())


def prose_words(info: NotebookInfo) -> int:
    return len(" ".join(cells(info, "markdown")).split())


def honest_minutes(words: int, lines: int) -> int:
    """Reading the prose plus working through the code, rounded up to a multiple of 5."""
    return 5 * math.ceil((words / WORDS_PER_MINUTE + lines / CODE_LINES_PER_MINUTE) / 5)


def test_honest_minutes_rounds_up_to_five() -> None:
    assert honest_minutes(0, 0) == 0
    assert honest_minutes(200, 0) == 5  # one minute of prose still shows as 5
    assert honest_minutes(2000, 150) == 25  # 10 + 12.5 = 22.5
    assert honest_minutes(1000, 60) == 10  # 5 + 5, exactly


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.stem)
def test_every_notebook_is_on_a_track_and_its_minutes_are_honest(info: NotebookInfo) -> None:
    assert info.track in TRACKS, f"{info.stem}: metadata 'track' must be one of {sorted(TRACKS)}"
    words, lines = prose_words(info), code_lines(info)
    needed = honest_minutes(words, lines)
    assert (info.minutes or 0) >= needed, (
        f"{info.stem}: {words} words and {lines} code lines take about {needed} minutes "
        f"(words/{WORDS_PER_MINUTE} + lines/{CODE_LINES_PER_MINUTE}, rounded up to 5), the "
        f"metadata says {info.minutes}"
    )
    assert lines <= MAX_CODE_LINES, f"{info.stem}: {lines} code lines (at most {MAX_CODE_LINES}: split it)"


@pytest.mark.parametrize("info", CORE, ids=lambda i: i.stem)
def test_core_lessons_stay_small(info: NotebookInfo) -> None:
    lines, words = code_lines(info), prose_words(info)
    assert lines <= MAX_CORE_CODE_LINES, (
        f"{info.stem}: {lines} code lines in a core lesson (at most {MAX_CORE_CODE_LINES}): move depth "
        "to a deep dive"
    )
    assert words <= MAX_CORE_WORDS, f"{info.stem}: {words} words in a core lesson (at most {MAX_CORE_WORDS})"


def test_the_core_track_teaches_the_runtimes_own_apis() -> None:
    """A learner sees these calls in the code cells of the core track, not behind a helper."""
    code = "\n".join(cell for info in CORE for cell in cells(info, "code"))
    assert re.search(r"^class \w+\((?:\w+\.)*CalibrationDataReader\)", code, re.M), "a CalibrationDataReader"
    for call in ("quantize_static(", "quantize_dynamic(", "convert_model(", "save_model(",
                 "serve.deployment", "serve.batch", "torch.onnx.export(", "InferenceSession(",
                 "SessionOptions(", "torch.export.export(", "compile_model("):
        assert call in code, f"no core lesson's code calls {call}"


def test_no_notebook_names_a_removed_execution_provider() -> None:
    for info in INFOS:
        assert "ROCMExecutionProvider" not in info.path.read_text(), f"{info.stem}: ROCm EP (removed in ORT 1.23)"


@pytest.mark.parametrize("info", CORE, ids=lambda i: i.stem)
def test_every_core_lesson_has_an_exercise_that_writes_runtime_code(info: NotebookInfo) -> None:
    number = info.stem[:2]
    keys = exercises.all_keys(number)
    assert keys, f"{info.stem}: no exercises registered"
    assert any(exercises.get(key).writes_code for key in keys), (
        f"{info.stem}: none of {keys} asks the learner to write runtime code (Exercise.writes_code)"
    )
