"""A decode loop at the memory-bandwidth bound: a preallocated KV buffer and ONNX Runtime I/O binding.

The graph of :func:`helpers.generation.export_with_kv_cache` takes ``past`` and returns
``present = concat(past, new)``: every step ONNX Runtime allocates a new cache one token longer
and copies the whole old one into it, for every layer, and the loop hands it back as the next
``past``. This module's design removes those copies:

- **The graph** (:func:`export_with_kv_buffer`) takes a fixed-size buffer per layer
  (``past_key_values.{i}.key/value``, ``[batch, kv_heads, slots, head_dim]``) plus an attention
  mask over ``slots + seq`` columns (1 = a slot holding a real token, then the new tokens' own
  mask), and returns only the new tokens' keys and values (``new.{i}.key/value``) and the last
  position's logits. Inside, attention scores are computed against the buffer and against the
  new tokens separately and only the *scores* are concatenated -- the cache itself is read once
  and never copied.
- **The loop** (:class:`BoundGenerator`) allocates the buffers once per call (prompt +
  ``max_new_tokens`` slots), wraps them, the mask, the token and position inputs, and the
  outputs in ``OrtValue`` s that share the NumPy memory, and binds them once with
  ``session.io_binding()``. A decode step is then ``run_with_iobinding``, a copy of the new
  token's keys and values into slot ``t`` (a few KB per layer) and one mask entry set to 1:
  no allocation, no concatenation, no conversion of outputs.

The attention is plugged into the transformers model itself through transformers'
``AttentionInterface`` (registered under :data:`BUFFER_ATTENTION`), so GPT-2 and Llama-style
models export with their own modules; only the attention kernel is replaced, during the export.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers.generation.kv_cache import CacheLayout, _torch_module_base
from helpers.generation.loop import Generator
from helpers.generation.tokens import position_ids_from_mask

__all__ = ["BUFFER_ATTENTION", "BoundGenerator", "KVBufferWrapper", "export_with_kv_buffer"]

#: The name the buffer attention is registered under in transformers' ``AttentionInterface``.
BUFFER_ATTENTION = "suite_kv_buffer"


def _buffer_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Attention of the new tokens over [KV buffer | new tokens], without concatenating K/V.

    ``query`` ``[b, heads, s, d]``; ``key``/``value`` ``[b, kv_heads, s, d]`` (the new tokens,
    rotary already applied). The buffers and the ``[b, slots + s]`` mask come in ``kwargs``
    (transformers passes a model's extra keyword arguments down to the attention function);
    the new keys/values are handed back through ``kwargs["kv_new"]``.
    """
    import torch

    layer = module.layer_idx
    kwargs["kv_new"][layer] = (key, value)
    past_k, past_v = kwargs["kv_buffers"][2 * layer], kwargs["kv_buffers"][2 * layer + 1]
    batch, heads, seq, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads  # grouped-query attention: `groups` query heads share a KV head
    slots = past_k.shape[2]
    q = query.reshape(batch, kv_heads, groups * seq, dim)  # no copy of the buffer (no repeat_kv)
    scores = torch.cat(
        [torch.matmul(q, past_k.transpose(2, 3)), torch.matmul(q, key.transpose(2, 3))], dim=-1
    ) * scaling
    row_position = torch.arange(seq).repeat(groups)
    causal = torch.arange(seq)[None, :] <= row_position[:, None]
    allowed = torch.cat([torch.ones(groups * seq, slots, dtype=torch.bool), causal], dim=1)
    allowed = allowed[None, None] & kwargs["kv_mask"][:, None, None, :].bool()
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores.float(), dim=-1).to(query.dtype)
    out = torch.matmul(probs[..., :slots], past_v) + torch.matmul(probs[..., slots:], value)
    return out.reshape(batch, heads, seq, dim).transpose(1, 2).contiguous(), None


@contextlib.contextmanager
def _attention_implementation(model: Any, name: str) -> Iterator[None]:
    """Run a transformers model with another registered attention for the duration of a block."""
    from transformers import AttentionInterface

    if name not in AttentionInterface._global_mapping:
        AttentionInterface.register(name, _buffer_attention)
    config = model.config
    previous = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = previous


class KVBufferWrapper(_torch_module_base()):  # type: ignore[misc]
    """A causal LM whose forward reads a KV buffer and returns the new tokens' keys/values.

    ``forward(input_ids, position_ids, attention_mask, buffers)``: ``attention_mask`` is
    ``[batch, slots + seq]`` (buffer slots, then the new tokens), ``buffers`` the ``2 * layers``
    tensors ``[batch, kv_heads, slots, head_dim]``. Returns ``(logits[batch, 1, vocab],
    *new)`` with ``new`` the ``[batch, kv_heads, seq, head_dim]`` keys and values of this call's
    tokens. Run it inside :func:`_attention_implementation` (as :func:`export_with_kv_buffer` does).
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model.eval()
        self.layout = CacheLayout.from_config(model.config)

    def forward(self, input_ids, position_ids, attention_mask, buffers):  # noqa: D102
        new: dict[int, tuple[Any, Any]] = {}
        out = self.model(
            input_ids=input_ids, position_ids=position_ids, use_cache=False, logits_to_keep=1,
            kv_buffers=list(buffers), kv_mask=attention_mask, kv_new=new,
        )
        flat = []
        for layer in range(self.layout.num_layers):
            flat += list(new[layer])
        return (out.logits, *flat)


def export_with_kv_buffer(model: Any, path: str | Path, *, opset: int | None = None) -> Path:
    """Export a causal LM (GPT-2 or Llama style) to the KV-buffer graph described above.

    Inputs: ``input_ids``/``position_ids`` ``int64[batch, seq]``, ``attention_mask``
    ``int64[batch, total]`` (``total = slots + seq``), ``past_key_values.{i}.key/value``
    ``float32[batch, kv_heads, slots, head_dim]``. Outputs: ``logits`` ``float32[batch, 1,
    vocab]`` (last position only) and ``new.{i}.key/value``. Examples of batch 2, sequence 3 and
    5 slots keep every dimension dynamic (see :func:`export_with_kv_cache`); 0 slots is valid, so
    the same graph runs the prefill and the whole sequence without a cache. One file.
    """
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = KVBufferWrapper(model).eval()
    layout = wrapper.layout
    batch, seq, slots = 2, 3, 5
    gen = torch.Generator().manual_seed(0)
    dtype = next(model.parameters()).dtype
    example = (
        torch.randint(0, int(model.config.vocab_size), (batch, seq), generator=gen),
        torch.arange(slots, slots + seq).unsqueeze(0).expand(batch, seq).contiguous(),
        torch.ones(batch, slots + seq, dtype=torch.long),
        [torch.randn(batch, layout.num_kv_heads, slots, layout.head_dim, generator=gen).to(dtype)
         for _ in range(2 * layout.num_layers)],
    )
    dynamic_shapes = (
        {0: "batch", 1: "seq"},
        {0: "batch", 1: "seq"},
        {0: "batch", 1: "total"},
        [{0: "batch", 2: "slots"}] * (2 * layout.num_layers),
    )
    kwargs: dict[str, Any] = {} if opset is None else {"opset_version": opset}
    with _attention_implementation(model, BUFFER_ATTENTION), warnings.catch_warnings(), \
            torch.inference_mode(False), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*dynamic_shapes.*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx.*")
        torch.onnx.export(
            wrapper, example, str(path), dynamo=True, dynamic_shapes=dynamic_shapes,
            input_names=["input_ids", "position_ids", "attention_mask", *layout.past_names],
            output_names=["logits", *layout.new_names], external_data=False, verbose=False, **kwargs,
        )
    onnx.checker.check_model(str(path))
    return path


class BoundGenerator(Generator):
    """The decode loop on the KV-buffer graph with ONNX Runtime I/O binding (see the module docstring).

    Same interface as :class:`Generator` (``generate``, ``generate_text``, ``stream``,
    ``iter_steps``) around an ``InferenceSession`` of a graph from :func:`export_with_kv_buffer`.
    ``use_cache=False`` runs the same graph with an empty buffer over the whole sequence.
    """

    uses_buffer = True

    def __init__(
        self,
        session: Any,
        layout: CacheLayout,
        *,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        name: str = "ORT I/O-binding loop",
    ) -> None:
        names = [o.name for o in session.get_outputs()]
        if names[1:] != layout.new_names:
            raise ValueError(
                "BoundGenerator needs a graph from export_with_kv_buffer (outputs logits, new.{i}.key/value); "
                f"this one returns {names[:3]}..."
            )
        super().__init__(session, layout, eos_token_id=eos_token_id, pad_token_id=pad_token_id, name=name)
        self.session = session

    @classmethod
    def from_onnx(
        cls,
        onnx_path: str | Path,
        config: Any,
        *,
        threads: int | None = None,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        name: str = "ORT I/O-binding loop",
    ) -> BoundGenerator:
        """Open the graph with ``onnxruntime.InferenceSession`` on the CPU (``threads`` intra-op
        threads, one inter-op thread); EOS/pad ids default to the config's."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        return cls(
            session, CacheLayout.from_config(config),
            eos_token_id=getattr(config, "eos_token_id", None) if eos_token_id is None else eos_token_id,
            pad_token_id=getattr(config, "pad_token_id", None) if pad_token_id is None else pad_token_id,
            name=name,
        )

    def iter_steps(  # noqa: D102 -- as Generator.iter_steps; ``last`` is valid until the next step
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray | None = None,
        *,
        max_new_tokens: int = 20,
        strategy: str = "greedy",
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = 0,
        use_cache: bool = True,
        stop_on_eos: bool = True,
        truncate_prompt: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if strategy not in ("greedy", "sample"):
            raise ValueError("strategy must be 'greedy' or 'sample'")
        ids, mask = self.check_context(input_ids, attention_mask, max_new_tokens, truncate_prompt=truncate_prompt)
        rng = np.random.default_rng(seed)
        choice: dict[str, Any] = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
        finished = np.zeros(ids.shape[0], dtype=bool)
        eos = np.array(self.eos_token_ids, dtype=np.int64)
        decode = (_BufferedDecode if use_cache else _UncachedDecode)(self, ids, mask, max_new_tokens)
        last = decode.prefill()
        for step in range(max_new_tokens):
            nxt = np.where(finished, self.pad_token_id, self.choose(last, strategy, rng, **choice))
            yield nxt, last
            if stop_on_eos and eos.size:
                finished |= np.isin(nxt, eos)
                if finished.all():
                    return
            if step < max_new_tokens - 1:
                last = decode.advance(nxt)


class _UncachedDecode:
    """No cache: every step runs the whole sequence so far, with an empty buffer."""

    def __init__(self, gen: BoundGenerator, ids: np.ndarray, mask: np.ndarray, max_new_tokens: int) -> None:
        self.run, self.ids, self.mask = gen.run, ids, mask
        self.positions = position_ids_from_mask(mask)
        self.empty = gen.layout.empty_past(ids.shape[0])

    def prefill(self) -> np.ndarray:
        feed = {"input_ids": self.ids, "position_ids": self.positions, "attention_mask": self.mask}
        return self.run({**feed, **self.empty})["logits"][:, -1]

    def advance(self, nxt: np.ndarray) -> np.ndarray:
        self.ids = np.concatenate([self.ids, nxt[:, None]], axis=1)
        self.mask = np.concatenate([self.mask, np.ones_like(nxt)[:, None]], axis=1)
        self.positions = np.concatenate([self.positions, self.positions[:, -1:] + 1], axis=1)
        return self.prefill()


class _BufferedDecode:
    """The prefill with an empty buffer, then decode steps on bound, preallocated memory."""

    def __init__(self, gen: BoundGenerator, ids: np.ndarray, mask: np.ndarray, max_new_tokens: int) -> None:
        self.gen, self.ids, self.mask = gen, ids, mask
        self.slots = ids.shape[1] + max_new_tokens  # every token this call will ever attend to

    def prefill(self) -> np.ndarray:
        import onnxruntime as ort

        layout, (batch, width) = self.gen.layout, self.ids.shape
        positions = position_ids_from_mask(self.mask)
        out = self.gen.run({"input_ids": self.ids, "position_ids": positions, "attention_mask": self.mask,
                            **layout.empty_past(batch)})
        shape = (batch, layout.num_kv_heads, self.slots, layout.head_dim)
        self.buffers = {name: np.zeros(shape, dtype=layout.dtype) for name in layout.past_names}
        self.pairs = [(self.buffers[p], n) for p, n in zip(layout.past_names, layout.new_names, strict=True)]
        for buffer, name in self.pairs:
            buffer[:, :, :width] = out[name]
        self.slot_mask = np.zeros((batch, self.slots + 1), dtype=np.int64)
        self.slot_mask[:, :width], self.slot_mask[:, self.slots] = self.mask, 1  # last column: the new token
        self.token, self.position = np.zeros((batch, 1), dtype=np.int64), positions[:, -1:].copy()
        self.logits = np.zeros((batch, 1, out["logits"].shape[-1]), dtype=np.float32)
        self.new = {name: np.zeros((batch, layout.num_kv_heads, 1, layout.head_dim), dtype=layout.dtype)
                    for name in layout.new_names}
        self.binding = self.gen.session.io_binding()
        inputs = {"input_ids": self.token, "position_ids": self.position, "attention_mask": self.slot_mask,
                  **self.buffers}
        for name, array in inputs.items():  # OrtValues on the CPU share the NumPy memory: bound once
            self.binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array))
        for name, array in {"logits": self.logits, **self.new}.items():
            self.binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(array))
        self.slot = width
        return out["logits"][:, -1]

    def advance(self, nxt: np.ndarray) -> np.ndarray:
        self.token[:, 0] = nxt
        self.position += 1
        self.gen.session.run_with_iobinding(self.binding)
        for buffer, name in self.pairs:  # the only copy: this token's keys and values, into its slot
            buffer[:, :, self.slot] = self.new[name][:, :, 0]
        self.slot_mask[:, self.slot] = 1
        self.slot += 1
        return self.logits[:, -1]
