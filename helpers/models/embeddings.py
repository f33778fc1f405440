"""Sentence embeddings: mean pooling over the attention mask, and cosine similarity.

all-MiniLM-L6-v2 (the catalog's ``sentence-embedding`` model) was trained to be used this way —
sentence-transformers' pooling: average the encoder's last hidden state over the *real* tokens
(padding masked out), then L2-normalise. One pooling function serves both paths:

- :class:`MeanPooledEncoder` puts encoder + pooling into one module, so an ONNX export (and every
  runtime running it) computes the finished embedding;
- :func:`sentence_embeddings` runs the loaded model eagerly, batch by batch, as the reference.

:func:`cosine_similarity` compares the results (numpy, any runtime's output).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MeanPooledEncoder", "cosine_similarity", "mean_pool", "sentence_embeddings"]


def mean_pool(last_hidden_state: Any, attention_mask: Any, *, normalize: bool = True) -> Any:
    """Average of the token vectors over unmasked tokens (torch tensors ``[B, S, H]``, ``[B, S]``),
    L2-normalised unless ``normalize=False``; returns ``[B, H]``."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
    pooled = (last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled


def _module_base() -> type:
    import torch

    return torch.nn.Module


class MeanPooledEncoder(_module_base()):  # type: ignore[misc]
    """An encoder (e.g. ``BertModel``) followed by :func:`mean_pool`, as one module.

    ``forward(input_ids, attention_mask, token_type_ids=None)`` returns the normalised sentence
    embedding ``[batch, hidden]`` — export it and the pooling is part of the graph.
    """

    def __init__(self, encoder: Any, *, normalize: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize

    def forward(self, input_ids, attention_mask, token_type_ids=None):  # noqa: D102
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        return mean_pool(out.last_hidden_state, attention_mask, normalize=self.normalize)


def sentence_embeddings(
    loaded: Any, sentences: Sequence[str], *, normalize: bool = True, batch_size: int = 32
) -> np.ndarray:
    """Embeddings ``float32 [N, hidden]`` of ``sentences`` with a loaded text encoder.

    ``loaded`` is a :class:`helpers.catalog.LoadedModel` (``.model`` and ``.tokenizer``), e.g.
    ``catalog.load("sentence-embedding")``. Runs under ``torch.inference_mode()`` in batches of
    ``batch_size``; pooling as :func:`mean_pool`.
    """
    import torch

    if getattr(loaded, "tokenizer", None) is None:
        raise ValueError(f"{getattr(loaded, 'name', loaded)} has no tokenizer; load a text model")
    out = []
    with torch.inference_mode():
        for i in range(0, len(sentences), batch_size):
            batch = loaded.tokenizer(
                list(sentences[i : i + batch_size]),
                padding=True,
                truncation=True,
                return_tensors="pt",
            )
            hidden = loaded.model(**batch)
            hidden = hidden.last_hidden_state if hasattr(hidden, "last_hidden_state") else hidden[0]
            pooled = mean_pool(hidden, batch["attention_mask"], normalize=normalize)
            out.append(pooled.float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity matrix ``[len(a), len(b)]`` between two sets of vectors."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), 1e-12, None)
    return a @ b.T
