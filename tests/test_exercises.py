"""Every exercise accepts the right answer (derived from its context) and rejects a wrong one with feedback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import envreport
from helpers.course import exercises

torch.set_num_threads(1)


def wrong(key: str, answer, **context) -> exercises.Feedback:
    feedback = exercises.evaluate(key, answer, **context)
    assert not feedback.ok and feedback.answered, feedback
    assert feedback.message
    return feedback


def right(key: str, answer, **context) -> exercises.Feedback:
    feedback = exercises.evaluate(key, answer, **context)
    assert feedback.ok, feedback.text()
    return feedback


NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_every_lesson_has_exercises_and_its_notebook_asks_each_one() -> None:
    lessons = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert len(lessons) >= 11
    for path in lessons:
        keys = exercises.all_keys(path.name[:2])
        assert 1 <= len(keys) <= 3, (path.name, keys)
        text = path.read_text(encoding="utf-8")
        unasked = [k for k in keys if f'exercises.check(\\"{k}\\"' not in text]
        assert not unasked, f"{path.name} never calls exercises.check for {unasked}"
    for key in exercises.all_keys():
        ex = exercises.get(key)
        assert ex.prompt and ex.solution and ex.title
        assert ex.call.startswith(f'exercises.check("{key}"'), key


def test_unanswered_never_raises_and_returns_false(capsys) -> None:
    for key in exercises.all_keys():
        assert exercises.check(key, None) is None  # nothing for a notebook cell to display
        assert exercises.evaluate(key, None).ok is False
    assert "not answered yet" in capsys.readouterr().out


def test_show_and_solution_print_outside_jupyter(capsys) -> None:
    exercises.show("04.1")
    exercises.solution("04.1")
    out = capsys.readouterr().out
    assert "Exercise 04.1" in out and "Solution to exercise 04.1" in out and "InferenceSession" in out


def test_unknown_key_is_an_author_error() -> None:
    with pytest.raises(KeyError, match="known: 00.1"):
        exercises.check("99.9", 1)


def test_missing_context_and_raising_answers_are_feedback() -> None:
    fb = wrong("04.1", lambda path, providers, threads: None)
    assert "onnx_path=" in fb.message

    def broken(*args):
        raise ZeroDivisionError("oops")

    fb = wrong("12.3", broken, attention_mask=np.ones((1, 3), np.int64))
    assert "ZeroDivisionError" in fb.message


def gemm_onnx(path: Path, seed: int = 0, noise: float = 0.0) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(seed)
    linear = torch.nn.Linear(6, 10).eval()
    weight = linear.weight.detach().numpy().copy()
    if noise:
        weight = weight + np.random.default_rng(1).normal(0, noise, weight.shape).astype(np.float32)
    envreport._probe_onnx_file(weight, linear.bias.detach().numpy(), path)
    return path, torch.nn.Sequential(linear, torch.nn.ReLU()).eval()


