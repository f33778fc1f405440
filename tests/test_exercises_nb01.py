"""Exercises 01.1 (safetensors round trip) and 01.2 (inference done right) accept the right answer
and reject each way of getting it wrong, on a small model with batch-norm and dropout."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers.course.exercises import framework

torch.set_num_threads(1)


def build_model() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(4 * 6 * 6, 5),
    )


@pytest.fixture()
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    trained = build_model().eval()
    with torch.no_grad():
        trained[1].running_mean.uniform_(-0.5, 0.5)  # as if trained: not the initial statistics
    return trained


def x() -> torch.Tensor:
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def check(key, answer, **context):
    return framework.evaluate(key, answer, **context)


def test_both_are_registered() -> None:
    assert framework.all_keys("01") == ["01.1", "01.2"]


def test_01_1_the_solution_passes(model, tmp_path) -> None:
    def round_trip(m, path):
        save_file(m.state_dict(), path)
        fresh = build_model()
        fresh.load_state_dict(load_file(path))
        return fresh.eval()

    feedback = check("01.1", round_trip, model=model, x=x(), folder=tmp_path)
    assert feedback.ok, feedback.text()
    assert "safetensors" in feedback.message


def test_01_1_rejects_pickles_shortcuts_and_training_mode(model, tmp_path) -> None:
    def pickled(m, path):
        torch.save(m.state_dict(), path)
        fresh = build_model()
        fresh.load_state_dict(m.state_dict())
        return fresh.eval()

    def same_object(m, path):
        save_file(m.state_dict(), path)
        return m

    def deep_copy(m, path):
        save_file(m.state_dict(), path)
        return copy.deepcopy(m).eval()

    def shared(m, path):
        save_file(m.state_dict(), path)
        fresh = build_model().eval()
        for mine, theirs in zip(fresh.parameters(), m.parameters(), strict=True):
            mine.data = theirs.data
        return fresh

    def training(m, path):
        save_file(m.state_dict(), path)
        fresh = build_model()
        fresh.load_state_dict(load_file(path))
        return fresh

    def weights_only_params(m, path):
        save_file({k: v for k, v in m.named_parameters()}, path)
        fresh = build_model()
        fresh.load_state_dict(load_file(path), strict=False)
        return fresh.eval()

    def not_loaded(m, path):
        save_file(m.state_dict(), path)
        return build_model().eval()

    context = {"model": model, "x": x(), "folder": tmp_path}
    assert "zip archive" in check("01.1", pickled, **context).message
    assert "new model object" in check("01.1", same_object, **context).message
    assert "copy of the model object" in check("01.1", deep_copy, **context).message
    assert "shares its weights" in check("01.1", shared, **context).message
    assert "training mode" in check("01.1", training, **context).message
    assert "lacks 3 of the model's tensors" in check("01.1", weights_only_params, **context).message
    assert "outputs differ" in check("01.1", not_loaded, **context).message
    assert not check("01.1", None, **context).answered


def test_01_2_inference_done_right(model) -> None:
    def good(m, batch):
        m.eval()
        with torch.inference_mode():
            return m(batch)

    def no_eval(m, batch):
        with torch.inference_mode():
            return m(batch)

    def no_inference_mode(m, batch):
        return m.eval()(batch)

    assert check("01.2", good, model=model, x=x()).ok
    assert "eval()" in check("01.2", no_eval, model=model, x=x()).hint
    assert "inference_mode" in check("01.2", no_inference_mode, model=model, x=x()).hint
    assert not check("01.2", lambda m, b: "logits", model=model, x=x()).ok
