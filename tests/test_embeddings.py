"""helpers.models.embeddings: mean pooling (eager and in-graph) and cosine similarity."""

from __future__ import annotations

import numpy as np
import torch
from transformers import BertConfig, BertModel

from helpers.models import embeddings


def test_mean_pool_and_cosine():
    hidden = np.array([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    pooled = embeddings.mean_pool(torch.from_numpy(hidden), torch.from_numpy(mask)).numpy()
    assert np.allclose(pooled, [[np.sqrt(0.5), np.sqrt(0.5)]], atol=1e-6)
    raw = embeddings.mean_pool(torch.from_numpy(hidden), torch.from_numpy(mask), normalize=False)
    assert np.allclose(raw.numpy(), [[0.5, 0.5]])
    sims = embeddings.cosine_similarity(np.eye(2), np.array([[1.0, 0.0], [1.0, 1.0]]))
    assert np.allclose(sims, [[1.0, np.sqrt(0.5)], [0.0, np.sqrt(0.5)]])


class _Loaded:
    """The two attributes of a catalog LoadedModel that sentence_embeddings uses."""

    def __init__(self, model, tokenizer) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, "tiny encoder"


def test_in_graph_pooling_equals_the_eager_reference():
    from transformers import AutoTokenizer

    from helpers.catalog import minilm_dir

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64)
    encoder = BertModel(config, add_pooling_layer=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    sentences = ["A short one.", "A rather longer sentence with more tokens in it."]
    reference = embeddings.sentence_embeddings(_Loaded(encoder, tokenizer), sentences, batch_size=1)
    assert reference.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(reference, axis=1), 1, atol=1e-5)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")  # padding must not matter
    with torch.inference_mode():
        pooled = embeddings.MeanPooledEncoder(encoder)(**batch).numpy()
    np.testing.assert_allclose(pooled, reference, atol=1e-5)
