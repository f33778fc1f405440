"""Autoregressive text generation outside PyTorch: KV-cache export, decode loops, search, speed.

``transformers``' ``model.generate`` hides what every deployment has to rebuild:

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
   seeded ``numpy.random.Generator``), :func:`beam_search` (transformers' algorithm, token for
   token), :func:`next_token_candidates` (the top-k next tokens of one step, with their
   probabilities), stopping on EOS or after ``max_new_tokens``, and :meth:`Generator.stream`,
   which yields text pieces as tokens are produced.
4. **Quality.** :mod:`.quality`: teacher-forced next-token agreement with fp32 and perplexity
   on held-out public-domain text (:func:`held_out_text`), per precision, and "fastest" as the
   fastest path that keeps quality (whether Hugging Face Optimum runs here:
   :mod:`helpers.models.optimum`).
5. **Speed.** :mod:`.kv_buffer`: a graph that reads a preallocated KV buffer and returns only
   the new keys/values, run with ONNX Runtime I/O binding (:class:`BoundGenerator`);
   :mod:`.weights`: bytes read per token, the memory-bandwidth bound, weight-only INT8/INT4
   (``MatMulNBits``); :mod:`.genai`: ONNX Runtime GenAI's builder and loop side by side.

Layout: :mod:`.kv_cache` (1), :mod:`.tokens` (prompts, checks and 3), :mod:`.loop` (2 and the
reference ``hf_generate``), :mod:`.beam`, :mod:`.kv_buffer`, :mod:`.weights`, :mod:`.genai`,
:mod:`.speed` (every graph of a model, cached; the timed paths; the bound columns).
Import everything from ``helpers.generation``.

Positions follow transformers' rule for left padding: ``cumsum(attention_mask) - 1``, with the
padded slots set to 1. Every loop checks its prompt before any compute (:func:`check_prompt`):
an empty prompt is an :class:`EmptyPromptError`; a prompt plus the requested tokens beyond the
model's context a :class:`ContextLengthError` (or, with ``truncate_prompt=True``, the prompt's
last tokens are kept -- a documented truncation).
"""

from helpers.generation.beam import BeamSearchOutput, beam_search
from helpers.generation.genai import (
    GenAIBuildError,
    GenAIGenerator,
    build_genai_model,
    genai_available,
    tiny_llama,
)
from helpers.generation.kv_buffer import (
    BUFFER_ATTENTION,
    BoundGenerator,
    KVBufferWrapper,
    export_with_kv_buffer,
)
from helpers.generation.kv_cache import CacheLayout, KVCacheWrapper, export_with_kv_cache
from helpers.generation.loop import (
    GenerationOutput,
    Generator,
    StepFn,
    hf_generate,
    next_token_candidates,
    step_function,
)
from helpers.generation.quality import (
    HeldOutText,
    QualityBar,
    fastest_keeping_quality,
    held_out_text,
    perplexity,
    quality_table,
    teacher_forced_logits,
)
from helpers.generation.speed import (
    WEIGHT_FORMATS,
    DecodeGraphs,
    decode_graphs,
    decode_workloads,
    with_bandwidth_bound,
)
from helpers.generation.tokens import (
    ContextLengthError,
    EmptyPromptError,
    check_prompt,
    encode_prompts,
    filter_logits,
    greedy,
    position_ids_from_mask,
    sample,
)
from helpers.generation.weights import (
    bandwidth_bound_tokens_per_s,
    bytes_read_per_token,
    onnx_weight_bytes,
    prepare_for_weight_only,
    prepared_copy,
    quantize_weight_only,
)

__all__ = [
    "BUFFER_ATTENTION",
    "WEIGHT_FORMATS",
    "DecodeGraphs",
    "BeamSearchOutput",
    "BoundGenerator",
    "CacheLayout",
    "ContextLengthError",
    "EmptyPromptError",
    "GenAIBuildError",
    "GenAIGenerator",
    "GenerationOutput",
    "HeldOutText",
    "QualityBar",
    "Generator",
    "KVBufferWrapper",
    "KVCacheWrapper",
    "StepFn",
    "bandwidth_bound_tokens_per_s",
    "beam_search",
    "build_genai_model",
    "decode_graphs",
    "decode_workloads",
    "fastest_keeping_quality",
    "held_out_text",
    "perplexity",
    "quality_table",
    "teacher_forced_logits",
    "bytes_read_per_token",
    "check_prompt",
    "encode_prompts",
    "export_with_kv_buffer",
    "export_with_kv_cache",
    "filter_logits",
    "genai_available",
    "greedy",
    "hf_generate",
    "next_token_candidates",
    "onnx_weight_bytes",
    "position_ids_from_mask",
    "prepare_for_weight_only",
    "prepared_copy",
    "quantize_weight_only",
    "sample",
    "step_function",
    "tiny_llama",
    "with_bandwidth_bound",
]
