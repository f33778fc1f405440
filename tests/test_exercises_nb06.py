"""Exercise 06.1 (your own ONNX Runtime session, your own answers) accepts the right code and
rejects a misconfigured session or a naive span search, with hints."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
import torch

from helpers import export, qa, runners
from helpers.course.exercises import framework, nb06  # noqa: F401 - registers 06.1
from helpers.models import tiny

NAMES = ["input_ids", "attention_mask", "token_type_ids"]
EXAMPLES = [
    {
        "question": "What is the capital of France?",
        "context": "Paris is the capital of France. It lies on the Seine.",
    },
    {
        "question": "Which river flows through Vienna?",
        "context": "Vienna lies on the Danube, in the east of Austria.",
    },
    {
        "question": "Who wrote Faust?",
        "context": "Goethe wrote Faust. Schiller wrote plays in Weimar too.",
    },
]


@pytest.fixture(scope="module")
def qa_model(tmp_path_factory):
    """A tiny random BERT QA model exported to ONNX, and its tokenizer (the real WordPiece)."""
    from transformers import AutoTokenizer, BertForQuestionAnswering

    from helpers.catalog import minilm_dir

    folder = tmp_path_factory.mktemp("tiny_qa")
    tiny.build_tiny_bert(folder, minilm_dir(), question_answering=True, seed=0)
    model = BertForQuestionAnswering.from_pretrained(folder, use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(
        [e["question"] for e in EXAMPLES[:2]],
        [e["context"] for e in EXAMPLES[:2]],
        padding=True,
        return_tensors="pt",
    )
    path = export.export_onnx(
        model,
        {n: batch[n] for n in NAMES},
        folder / "qa.onnx",
        input_names=NAMES,
        output_names=["start_logits", "end_logits"],
        dynamic_shapes={n: {0: "batch", 1: "sequence"} for n in NAMES},
    )
    return path, tokenizer


def _session(path, threads=1, level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = level
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _expected(path, tokenizer):
    """The notebook's answers: helpers.qa on ORT, one question per call (no "no answer" rule)."""
    runner = runners.ort_runner(path, threads=1)
    return qa.answer_questions(
        runner,
        tokenizer,
        [e["question"] for e in EXAMPLES],
        [e["context"] for e in EXAMPLES],
        batch_size=1,
        padding="longest",
        max_length=384,
        stride=128,
        max_answer_len=30,
    )


def _asker(session, tokenizer, naive=False):
    def ask(question, context):
        enc = tokenizer(
            question,
            context,
            truncation="only_second",
            max_length=384,
            return_offsets_mapping=True,
            return_tensors="np",
        )
        offsets = enc.pop("offset_mapping")[0]
        in_context = np.array(enc.sequence_ids(0)) == 1
        start, end = session.run(["start_logits", "end_logits"], {n: enc[n] for n in NAMES})
        if naive:  # the classic bug: arg-max of start and end separately, anywhere in the window
            s, e = int(start[0].argmax()), int(end[0].argmax())
        else:
            scores = start[0][:, None] + end[0][None, :]
            s_idx, e_idx = np.indices(scores.shape)
            valid = np.outer(in_context, in_context) & (e_idx >= s_idx) & (e_idx - s_idx < 30)
            s, e = np.unravel_index(np.where(valid, scores, -np.inf).argmax(), scores.shape)
        return context[offsets[s][0] : offsets[e][1]]

    return ask


def _check(answer, session, path, expected):
    return framework.evaluate(
        "06.1",
        answer,
        session=session,
        onnx_path=path,
        examples=EXAMPLES,
        expected=expected,
        max_answer_len=30,
    )


def test_the_right_session_and_span_search_pass(qa_model):
    path, tokenizer = qa_model
    session = _session(path)
    feedback = _check(_asker(session, tokenizer), session, path, _expected(path, tokenizer))
    assert feedback.ok, feedback.text()
    assert "3 held-out questions" in feedback.message


def test_a_misconfigured_session_is_named(qa_model):
    path, tokenizer = qa_model
    expected = _expected(path, tokenizer)
    two_threads = _session(path, threads=2)
    feedback = _check(_asker(two_threads, tokenizer), two_threads, path, expected)
    assert not feedback.ok and "intra_op_num_threads = 2" in feedback.message
    all_level = _session(path, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    feedback = _check(_asker(all_level, tokenizer), all_level, path, expected)
    assert not feedback.ok and "ORT_ENABLE_ALL" in feedback.message
    runner = runners.ort_runner(path, threads=1)
    feedback = _check(_asker(_session(path), tokenizer), runner, path, expected)
    assert not feedback.ok and "suite's runner" in feedback.message


def test_another_model_file_is_caught(qa_model, tmp_path):
    path, tokenizer = qa_model
    other = tmp_path / "other.onnx"
    model = torch.nn.Linear(3, 3)
    export.export_onnx(model, (torch.zeros(2, 3),), other, input_names=["x"], output_names=["y"])
    session = _session(other)
    feedback = _check(_asker(_session(path), tokenizer), session, path, _expected(path, tokenizer))
    assert not feedback.ok and "inputs are" in feedback.message


def test_a_naive_span_search_is_caught_with_a_hint(qa_model):
    path, tokenizer = qa_model
    session = _session(path)
    expected = _expected(path, tokenizer)
    naive = _asker(session, tokenizer, naive=True)
    differs = [
        naive(e["question"], e["context"]) != a.text
        for e, a in zip(EXAMPLES, expected, strict=True)
    ]
    assert any(differs), "the random model happens to give the naive answers: pick other examples"
    feedback = _check(naive, session, path, expected)
    assert not feedback.ok and "the notebook's answer is" in feedback.message
    assert "offsets" in feedback.hint
    feedback = _check(lambda q, c: 42, session, path, expected)
    assert not feedback.ok and "expected the answer's text" in feedback.message


def test_unanswered_and_nothing_to_compare(qa_model):
    path, tokenizer = qa_model
    session = _session(path)
    expected = _expected(path, tokenizer)
    assert not framework.evaluate(
        "06.1", None, session=session, onnx_path=path, examples=EXAMPLES, expected=expected
    ).answered
    nulls = [dataclasses.replace(a, text="", start=-1, end=-1) for a in expected]
    feedback = _check(_asker(session, tokenizer), session, path, nulls)
    assert not feedback.ok and "None of the examples" in feedback.message
