"""Exercises 02.1 (break the trace) and 02.2 (torch.export with a dynamic batch) accept the right
answer and reject wrong ones."""

from __future__ import annotations

import warnings

import torch

from helpers.course.exercises import framework
from helpers.models import tiny as tiny_models

torch.set_num_threads(1)


def test_both_are_registered() -> None:
    assert framework.all_keys("02") == ["02.1", "02.2"]


def test_02_1_break_the_trace() -> None:
    gate = tiny_models.SignGate()
    positive, _ = tiny_models.positive_and_negative_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(gate, positive)
    assert framework.evaluate("02.1", -positive, traced=traced, model=gate).ok
    feedback = framework.evaluate("02.1", positive * 2, traced=traced, model=gate)
    assert not feedback.ok and "other sign" in feedback.hint
    assert not framework.evaluate("02.1", torch.ones(7), traced=traced, model=gate).ok


def test_02_2_export_with_a_dynamic_batch() -> None:
    model = tiny_models.TinyClassifier().eval()
    x = tiny_models.example_images(batch=2, size=32)
    batch = torch.export.Dim("batch", min=1, max=32)
    good = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    assert framework.evaluate("02.2", good, model=model, x=x).ok
    auto = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    assert framework.evaluate("02.2", auto, model=model, x=x).ok
    static = framework.evaluate("02.2", torch.export.export(model, (x,)), model=model, x=x)
    assert not static.ok and "Dim" in static.hint
    trained = torch.export.export(tiny_models.TinyClassifier().train(), (x,),
                                  dynamic_shapes=({0: batch},))
    assert "eval" in framework.evaluate("02.2", trained, model=model, x=x).hint
    assert not framework.evaluate("02.2", model, model=model, x=x).ok
