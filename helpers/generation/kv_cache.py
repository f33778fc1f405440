"""The KV cache as plain tensors: its layout, a wrapper for export, the dynamo export itself."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CacheLayout", "KVCacheWrapper", "export_with_kv_cache"]


# ---------------------------------------------------------------------------------------------
# Cache layout and the export wrapper
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheLayout:
    """Shape of a decoder's KV cache and the names the exported graph uses for it.

    Built from a transformers config with :meth:`from_config`; works for GPT-2 (``n_layer``,
    ``n_head``, ``n_positions``) and Llama-style models (``num_key_value_heads`` for grouped-query
    attention, ``head_dim``, ``max_position_embeddings``).
    """

    num_layers: int
    num_kv_heads: int
    head_dim: int
    max_positions: int | None = None
    dtype: str = "float32"

    @classmethod
    def from_config(cls, config: Any) -> CacheLayout:
        """Read layer count, KV heads, head size and context length from a transformers config."""
        layers = int(config.num_hidden_layers)
        heads = int(config.num_attention_heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        max_pos = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )
        return cls(layers, kv_heads, int(head_dim), int(max_pos) if max_pos else None)

    @property
    def past_names(self) -> list[str]:
        """Graph input names: ``past_key_values.{layer}.key`` / ``.value``, layer by layer."""
        return [f"past_key_values.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    @property
    def present_names(self) -> list[str]:
        """Graph output names: ``present.{layer}.key`` / ``.value``, in the same order as the past."""
        return [f"present.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    @property
    def new_names(self) -> list[str]:
        """Outputs of the KV-buffer graph (:func:`helpers.generation.export_with_kv_buffer`): the
        keys and values of the *new* tokens only, ``new.{layer}.key`` / ``.value``."""
        return [f"new.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    @property
    def input_names(self) -> list[str]:
        """All graph inputs in positional order."""
        return ["input_ids", "attention_mask", "position_ids", *self.past_names]

    @property
    def output_names(self) -> list[str]:
        """All graph outputs in positional order."""
        return ["logits", *self.present_names]

    def empty_past(self, batch: int, length: int = 0) -> dict[str, np.ndarray]:
        """Zero-filled past tensors (length 0 for the prefill step)."""
        shape = (batch, self.num_kv_heads, length, self.head_dim)
        return {name: np.zeros(shape, dtype=self.dtype) for name in self.past_names}

    def cache_bytes_per_token(self, batch: int = 1) -> int:
        """Bytes the cache grows by for every token (keys and values, all layers)."""
        itemsize = np.dtype(self.dtype).itemsize
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * itemsize * batch


def _torch_module_base() -> type:
    import torch

    return torch.nn.Module


class KVCacheWrapper(_torch_module_base()):  # type: ignore[misc]
    """A causal LM whose forward takes and returns the KV cache as flat tensors.

    ``forward(input_ids, attention_mask, position_ids, past)`` where ``past`` is a list of
    ``2 * num_layers`` tensors ``[batch, kv_heads, past_len, head_dim]`` (key, value, key, ...).
    Returns ``(logits, *presents)`` with the presents ``past_len + seq`` long. Inside, the tensors
    are put into a transformers ``DynamicCache``, which is what transformers 5 models expect.

    Notebook 07 writes the same module out in a cell (``FlatCacheLM``) and exports it with the
    same inputs, outputs and file name under the same model digest, so the lesson's export and
    :func:`helpers.generation.decode_graphs`' past → present graph are one cache entry.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model.eval()
        self.layout = CacheLayout.from_config(model.config)

    def forward(self, input_ids, attention_mask, position_ids, past):  # noqa: D102
        from transformers import DynamicCache

        n = self.layout.num_layers
        cache = DynamicCache([(past[2 * i], past[2 * i + 1]) for i in range(n)], config=self.model.config)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        )
        presents = []
        for layer in out.past_key_values.layers:
            presents += [layer.keys, layer.values]
        return (out.logits, *presents)


def export_with_kv_cache(
    model: Any,
    path: str | Path,
    *,
    opset: int | None = None,
    example_batch: int = 2,
    example_seq: int = 3,
    example_past: int = 4,
) -> Path:
    """Export a causal LM (GPT-2 or Llama style) to one ONNX file with a flat KV cache.

    Inputs: ``input_ids``/``position_ids`` ``int64[batch, seq]``, ``attention_mask``
    ``int64[batch, total]``, ``past_key_values.{i}.key/value`` ``float32[batch, kv_heads, past,
    head_dim]``. Outputs: ``logits`` ``float32[batch, seq, vocab]`` and ``present.{i}.key/value``.

    The example is batch 2 / sequence 3 / past 4 on purpose: examples of size 1 get specialised
    to constants by ``torch.export``. ``total`` (the mask length) is its own dynamic dimension,
    since ``past + seq`` is not expressible. A past of length 0 works in ONNX Runtime, so the
    same graph serves the prefill step. Written as a single file (no external ``.data``).
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = KVCacheWrapper(model).eval()
    layout = wrapper.layout
    b, s, p = example_batch, example_seq, example_past
    gen = torch.Generator().manual_seed(0)
    vocab = int(model.config.vocab_size)
    input_ids = torch.randint(0, vocab, (b, s), generator=gen)
    attention_mask = torch.ones(b, p + s, dtype=torch.long)
    position_ids = torch.arange(p, p + s).unsqueeze(0).expand(b, s).contiguous()
    param_dtype = next(model.parameters()).dtype
    past = [
        torch.randn(b, layout.num_kv_heads, p, layout.head_dim, generator=gen).to(param_dtype)
        for _ in range(2 * layout.num_layers)
    ]
    dynamic_shapes = (
        {0: "batch", 1: "seq"},
        {0: "batch", 1: "total"},
        {0: "batch", 1: "seq"},
        [{0: "batch", 2: "past"}] * (2 * layout.num_layers),
    )
    kwargs: dict[str, Any] = {}
    if opset is not None:
        kwargs["opset_version"] = opset
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The exporter renames dynamic dims and says so with a UserWarning on every input.
        warnings.filterwarnings("ignore", message=".*dynamic_shapes.*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx.*")
        torch.onnx.export(
            wrapper,
            (input_ids, attention_mask, position_ids, past),
            str(path),
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            input_names=layout.input_names,
            output_names=layout.output_names,
            external_data=False,
            verbose=False,
            **kwargs,
        )
    import onnx

    onnx.checker.check_model(str(path))
    return path
