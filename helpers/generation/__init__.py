"""Autoregressive text generation outside PyTorch: KV-cache export, an ONNX Runtime decode loop.

``transformers``' ``model.generate`` hides three things that every deployment has to rebuild:

1. **The KV cache as plain tensors.** In transformers 5 the cache is a ``DynamicCache`` object,
   which an ONNX graph cannot take. :class:`KVCacheWrapper` wraps a causal LM (GPT-2 or Llama
   style) so that its graph takes ``past_key_values.{i}.key/value`` and returns
   ``present.{i}.key/value`` as flat ``[batch, kv_heads, length, head_dim]`` tensors.
   :func:`export_with_kv_cache` exports it with the dynamo exporter (examples of batch 2 /
   sequence 3 -- batch 1 or sequence 1 examples get specialised away; the attention mask length
   is a fully dynamic dimension because ``past + seq`` cannot be expressed).
2. **The loop.** A *prefill* step runs the whole (left-padded) prompt with a past of length 0;
   each *decode* step feeds one new token per sequence, the attention mask grown by one column,
   the next position, and the presents of the previous step as the new past.
   :class:`Generator` does this in NumPy around any step function (an ORT session, a
   ``helpers.runners`` runner, or the PyTorch wrapper itself).
3. **Choosing the next token.** :func:`greedy`, :func:`sample` (temperature, top-k, top-p with a
   seeded ``numpy.random.Generator``), :func:`next_token_candidates` (a one-step search: the
   top-k next tokens with their probabilities), stopping on EOS or after ``max_new_tokens``, and
   :meth:`Generator.stream`, which yields text pieces as tokens are produced.

Layout: :mod:`.kv_cache` (1), :mod:`.tokens` (prompts and 3), :mod:`.loop` (2, the reference
``generate`` and the memory-bandwidth bound). Import everything from ``helpers.generation``.

Positions follow transformers' rule for left padding: ``cumsum(attention_mask) - 1``, with the
padded slots set to 1. A prompt plus the requested tokens beyond the model's context raises
:class:`ContextLengthError` (or, with ``truncate_prompt=True``, keeps the prompt's last tokens --
a documented truncation).
"""

from helpers.generation.kv_cache import CacheLayout, KVCacheWrapper, export_with_kv_cache
from helpers.generation.loop import (
    ContextLengthError,
    GenerationOutput,
    Generator,
    StepFn,
    bandwidth_bound_tokens_per_s,
    hf_generate,
    next_token_candidates,
    onnx_weight_bytes,
    step_function,
)
from helpers.generation.tokens import (
    encode_prompts,
    filter_logits,
    greedy,
    position_ids_from_mask,
    sample,
)

__all__ = [
    "CacheLayout",
    "ContextLengthError",
    "GenerationOutput",
    "Generator",
    "KVCacheWrapper",
    "StepFn",
    "bandwidth_bound_tokens_per_s",
    "encode_prompts",
    "export_with_kv_cache",
    "filter_logits",
    "greedy",
    "hf_generate",
    "next_token_candidates",
    "onnx_weight_bytes",
    "position_ids_from_mask",
    "sample",
    "step_function",
]
