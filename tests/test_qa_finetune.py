"""Fine-tuning MiniLM for QA: labels, cache key, cached build (and rebuild), a model that learns."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from helpers.cache import CacheWarning
from helpers.qa import finetune as qa_finetune
from helpers.qa.dataset import generate
from helpers.qa.finetune import (
    TINY,
    TrainSettings,
    cache_key,
    evaluate,
    hand_written_questions,
    load_qa_model,
    training_threads,
)

#: Smaller than TINY: just enough to exercise the cache (build, reuse, rebuild) in seconds.
MICRO = TrainSettings(
    name="micro",
    layers=1,
    epochs=1.0,
    train_examples=32,
    validation_examples=16,
    data=(("paragraphs_per_entity", 1), ("validation_paragraphs_per_entity", 1)),
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("qa_cache")
        mp.setenv("INFERENCE_SUITE_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def base():
    from helpers.catalog import minilm_dir

    return minilm_dir()


@pytest.fixture(scope="module")
def tokenizer(base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base)  # BERT's uncased WordPiece (MiniLM's folder)


@pytest.fixture(scope="module")
def data():
    return generate(0, paragraphs_per_entity=1, validation_paragraphs_per_entity=1)


def test_cache_key_follows_seed_settings_and_base_weights():
    key = cache_key(TINY, seed=0, base_sha256="a" * 64)
    assert key == cache_key(TINY, seed=0, base_sha256="a" * 64)
    assert key.startswith("minilm-l6-qa-tiny-")
    assert cache_key(TINY, seed=1, base_sha256="a" * 64) != key
    assert cache_key(TINY, seed=0, base_sha256="b" * 64) != key
    assert (
        cache_key(dataclasses.replace(TINY, learning_rate=1e-5), seed=0, base_sha256="a" * 64)
        != key
    )
    assert cache_key(qa_finetune.FULL, seed=0, base_sha256="a" * 64) != key


def test_base_model_hash_is_of_the_weights(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    first = qa_finetune.base_model_sha256(tmp_path)
    assert first == hashlib.sha256(b"weights").hexdigest()
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert qa_finetune.base_model_sha256(tmp_path) != first
    with pytest.raises(FileNotFoundError, match="minilm_dir"):
        qa_finetune.base_model_sha256(tmp_path / "missing")


def test_training_labels_point_at_the_answer_tokens(tokenizer, data):
    rows = data.train[:60]
    features = qa_finetune._training_features(tokenizer, rows, max_length=192)
    assert len(features) == len(rows)  # short contexts: one window each
    for row, feature in zip(rows, features, strict=True):
        if not row["answers"]["text"]:
            assert (feature["start"], feature["end"]) == (0, 0)  # [CLS]: no answer
            continue
        assert 0 < feature["start"] <= feature["end"]
        span = tokenizer.decode(feature["input_ids"][feature["start"] : feature["end"] + 1])
        assert span.replace(" ", "") == row["answers"]["text"][0].lower().replace(" ", "")


def test_an_answer_outside_the_window_is_labelled_as_no_answer(tokenizer):
    context = "Filler words come first. " * 30 + "The capital of Peru is Lima."
    row = {
        "question": "What is the capital of Peru?",
        "context": context,
        "answers": {"text": ["Lima"], "answer_start": [context.index("Lima")]},
    }
    features = qa_finetune._training_features(tokenizer, [row], max_length=64, stride=16)
    assert len(features) > 1
    labels = [(f["start"], f["end"]) for f in features]
    assert labels[0] == (0, 0) and labels[-1] != (0, 0)


def test_hand_written_questions_are_located_in_their_contexts(tmp_path):
    questions = hand_written_questions()
    assert 10 <= len(questions) <= 20
    assert any(not q["answers"]["text"] for q in questions)
    for q in questions:
        for text, start in zip(q["answers"]["text"], q["answers"]["answer_start"], strict=True):
            assert q["context"][start : start + len(text)] == text
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "contexts": {"c": "Lima is the capital of Peru."},
                "questions": [{"context": "c", "question": "Capital?", "answers": ["Quito"]}],
            }
        )
    )
    with pytest.raises(ValueError, match="Quito"):
        hand_written_questions(bad)


def test_training_threads_leave_busy_cores_alone():
    import torch

    assert training_threads(load=0.0, cores=2) == min(2, torch.get_num_threads())
    assert training_threads(load=5.0, cores=2) == 1
    assert training_threads(load=1.0, cores=4) == min(3, torch.get_num_threads())


def test_unknown_preset_is_explained():
    with pytest.raises(ValueError, match="tiny"):
        load_qa_model(Path("unused"), "huge")


def test_build_once_then_load_from_cache_and_rebuild_a_corrupt_entry(base, cache, monkeypatch):
    first = load_qa_model(base, MICRO, progress=False)
    assert "built" in first.note and first.folder.parent == cache / "catalog"
    assert first.metrics["validation"]["total"] == 16
    assert first.metrics["hand_written"]["total"] == len(hand_written_questions())

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model must not be trained again")

    with monkeypatch.context() as mp:
        mp.setattr(qa_finetune, "train_qa_model", no_training)
        again = load_qa_model(base, MICRO, progress=False)
    assert again.note.startswith("cached") and again.folder == first.folder

    weights = first.folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated, as by a full disk
    with pytest.warns(CacheWarning, match="damaged.*truncated"):  # said, not silently repaired
        rebuilt = load_qa_model(base, MICRO, progress=False)
    assert "rebuilt" in rebuilt.note and weights.stat().st_size > 1000


def test_tiny_model_learns_its_training_data(base, cache, data):
    tiny = load_qa_model(base, TINY, progress=False)
    stats = tiny.metrics["training"]
    assert stats["final_loss"] < stats["first_loss"]
    seen = data.train[:80]  # TINY trains on the first examples of this same data set
    assert TINY.data_kwargs() == {"paragraphs_per_entity": 1, "validation_paragraphs_per_entity": 1}
    trained, _ = evaluate(tiny.model, tiny.tokenizer, seen)
    untrained, _ = qa_finetune._base_model(base, TINY, seed=0)
    baseline, _ = evaluate(untrained.eval(), tiny.tokenizer, seen)
    assert trained["exact_match"] > baseline["exact_match"] + 15
    assert trained["f1"] > baseline["f1"] + 15
    assert tiny.validation_scores["total"] == TINY.validation_examples
    text = tiny.describe()
    assert f"{tiny.metrics['validation']['exact_match']:.1f}%" in text
    assert "2 layers" in text


def test_held_out_examples_are_the_validation_entities_evenly_spread(data, cache):
    metrics = {
        "seed": 0,
        "settings": dataclasses.asdict(TINY),  # as stored in qa_metrics.json
    }
    rows = qa_finetune.held_out_examples(metrics)
    assert rows == data.validation[: TINY.validation_examples]
    spread = qa_finetune.held_out_examples(metrics, limit=10)
    assert len(spread) == 10 and spread[0] == rows[0] and spread[-1] != rows[9]
    assert {r["entity"] for r in spread} <= data.validation_entities
    assert not {r["entity"] for r in spread} & data.train_entities
    assert qa_finetune.held_out_examples(metrics, limit=0) == rows  # 0: all of them
    (entry,) = cache.glob("catalog/qa-held-out-*")  # generated once, then read from the cache
    assert (entry / "held_out.json").is_file()


def test_held_out_defaults_are_the_full_presets(cache, monkeypatch):
    """No metrics (a canonical model): the held-out questions of the full preset, seed 0."""
    from helpers.qa import questions

    calls = []

    def generate(seed, **data):
        calls.append((seed, data))
        return type("Data", (), {"validation": [{"id": "x"}] * 3})()

    monkeypatch.setattr(questions.qa_dataset, "generate", generate)
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(cache / "defaults"))
    assert questions.held_out_examples(None) == [{"id": "x"}] * 3
    assert calls == [(0, qa_finetune.FULL.data_kwargs())]
    assert qa_finetune.FULL.validation_examples is None  # no cap, as held_out_examples assumes
