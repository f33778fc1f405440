"""Exercise 07.1: teacher forcing through the KV cache, checked against the notebook's own logits."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fakes import torch_step  # noqa: E402

from helpers import generation  # noqa: E402
from helpers.course import exercises  # noqa: E402


class StepSession:
    """The minimal ONNX Runtime session interface (``run(None, feed)`` -> list of outputs in
    order) around a PyTorch step function: the exercise's checks without an export."""

    def __init__(self, model) -> None:
        self.step = torch_step(model)
        self.layout = generation.CacheLayout.from_config(model.config)
        self.calls = 0

    def run(self, output_names, feed):
        self.calls += 1
        out = self.step(feed)
        return [out[name] for name in self.layout.output_names]


@pytest.fixture(scope="module")
def context():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=200, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.3,
    )
    model = transformers.LlamaForCausalLM(cfg).eval()
    session = StepSession(model)
    layout = session.layout
    token_ids = [5, 17, 3, 99, 42, 7, 150, 8, 61, 23, 4, 77]
    reference = generation.teacher_forced_logits(session.step, layout, token_ids)
    return {"session": session, "layout": layout, "token_ids": token_ids, "reference": reference}


def solution(layout):
    def teacher_forced_top1(session, token_ids):
        past, top1 = layout.empty_past(batch=1), []
        for t, token in enumerate(token_ids):
            feed = {"input_ids": np.array([[token]]), "attention_mask": np.ones((1, t + 1), np.int64),
                    "position_ids": np.array([[t]]), **past}
            logits, *presents = session.run(None, feed)
            top1.append(int(logits[0, -1].argmax()))
            past = dict(zip(layout.past_names, presents, strict=True))
        return top1

    return teacher_forced_top1


def test_the_solution_is_right_and_says_it_ran_one_token_a_step(context) -> None:
    feedback = exercises.evaluate("07.1", solution(context["layout"]), **context)
    assert feedback.ok, feedback.text()
    assert f"{len(context['token_ids'])} session calls of one token each" in feedback.message


def test_a_single_prefill_pass_is_right_too(context) -> None:
    layout = context["layout"]

    def prefill(session, token_ids):
        n = len(token_ids)
        feed = {"input_ids": np.array([token_ids]), "attention_mask": np.ones((1, n), np.int64),
                "position_ids": np.arange(n)[None], **layout.empty_past(1)}
        return session.run(None, feed)[0][0].argmax(-1)

    assert exercises.evaluate("07.1", prefill, **context).ok


def test_the_last_prediction_is_optional(context) -> None:
    full = solution(context["layout"])
    assert exercises.evaluate("07.1", lambda s, ids: full(s, ids)[:-1], **context).ok


def test_mistakes_get_their_hint(context) -> None:
    layout, full = context["layout"], solution(context["layout"])

    def no_past(session, token_ids):  # forgets the cache: every token alone at position t
        top1 = []
        for t, token in enumerate(token_ids):
            feed = {"input_ids": np.array([[token]]), "attention_mask": np.ones((1, 1), np.int64),
                    "position_ids": np.array([[t]]), **layout.empty_past(1)}
            top1.append(int(session.run(None, feed)[0][0, -1].argmax()))
        return top1

    feedback = exercises.evaluate("07.1", no_past, **context)
    assert not feedback.ok and "empty past" in feedback.hint
    shifted = exercises.evaluate("07.1", lambda s, ids: [0, *full(s, ids)[:-1]], **context)
    assert not shifted.ok and "shifted" in shifted.message
    echoed = exercises.evaluate("07.1", lambda s, ids: list(ids), **context)
    assert not echoed.ok and "tokens you fed" in echoed.message
    short = exercises.evaluate("07.1", lambda s, ids: full(s, ids)[:3], **context)
    assert not short.ok and "3 predictions" in short.message
    assert not exercises.evaluate("07.1", None, **context).answered
