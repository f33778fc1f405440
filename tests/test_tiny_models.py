"""The tiny models behave as the lessons claim."""

from __future__ import annotations

import warnings

import torch

from helpers.models import tiny as tiny_models


def test_classifier_is_deterministic_and_in_eval_mode():
    a, b = tiny_models.TinyClassifier(seed=3), tiny_models.TinyClassifier(seed=3)
    assert not a.training
    x = tiny_models.example_images(batch=2, size=16)
    with torch.inference_mode():
        torch.testing.assert_close(a(x), b(x))
        assert a(x).shape == (2, 10)


def test_classifier_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    tiny_models.TinyClassifier()
    assert torch.equal(torch.rand(1), expected)


def test_train_mode_changes_outputs_and_running_stats():
    model = tiny_models.TinyClassifier()
    x = tiny_models.example_images(batch=4, size=16)
    with torch.inference_mode():
        eval_out = model(x)
        torch.testing.assert_close(model(x), eval_out)  # eval is repeatable
        model.train()
        train_out = model(x)
        model.eval()
        assert not torch.allclose(eval_out, train_out)
        # a train-mode forward pass updated batch-norm's running statistics, even without grad
        assert not torch.allclose(model(x), eval_out)


def test_sign_gate_branches_and_tracing_pitfall():
    model = tiny_models.SignGate()
    pos, neg = tiny_models.positive_and_negative_inputs()
    assert pos.sum() > 0 > neg.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, pos)
    with torch.inference_mode():
        torch.testing.assert_close(traced(pos), model(pos))
        assert not torch.allclose(traced(neg), model(neg))  # traced kept only the positive branch


def test_sign_gate_cond_matches_and_exports():
    eager, cond = tiny_models.SignGate(), tiny_models.SignGateCond()
    pos, neg = tiny_models.positive_and_negative_inputs()
    with torch.inference_mode():
        for x in (pos, neg):
            torch.testing.assert_close(cond(x), eager(x))
    program = torch.export.export(cond, (pos,))
    for x in (pos, neg):
        torch.testing.assert_close(program.module()(x), eager(x))
