"""helpers.generation's fast decode paths: the KV-buffer graph with I/O binding, weight-only
INT8/INT4, bytes read per token, and ONNX Runtime GenAI side by side.

A tiny random GPT-2 (the Gemm/tied-embedding export) and a tiny random Llama (grouped-query
attention, plain MatMuls) exported once per module.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from helpers import generation as g  # noqa: E402

CONTEXT = 48
IDS = np.array([[50256, 50256, 5, 6, 7], [8, 9, 10, 11, 12]])
MASK = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    """(model, KV-buffer ONNX path) of a tiny random GPT-2."""
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=CONTEXT, initializer_range=0.2)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    return model, g.export_with_kv_buffer(model, tmp_path_factory.mktemp("buf") / "gpt2_buffer.onnx")


def _llama(vocab=300, **extra):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        bos_token_id=1, eos_token_id=2, pad_token_id=3, initializer_range=0.2, **extra,
    )
    return transformers.LlamaForCausalLM(cfg).eval()


def test_buffer_graph_has_fixed_inputs_and_new_only_outputs(gpt2):
    model, path = gpt2
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert list(inputs)[:3] == ["input_ids", "position_ids", "attention_mask"]
    assert isinstance(inputs["past_key_values.0.key"][2], str)  # the number of slots is dynamic
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert list(outputs) == ["logits", *g.CacheLayout.from_config(model.config).new_names]
    assert outputs["logits"][1] == 1  # last position only
    assert model.config._attn_implementation != g.BUFFER_ATTENTION  # restored after the export


def test_bound_generator_matches_transformers_with_and_without_cache(gpt2):
    model, path = gpt2
    gen = g.BoundGenerator.from_onnx(path, model.config, threads=2)
    ref, ref_logits = g.hf_generate(model, IDS, MASK, max_new_tokens=10, stop_on_eos=False, return_logits=True)
    out = gen.generate(IDS, MASK, max_new_tokens=10, stop_on_eos=False, return_logits=True)
    assert np.array_equal(out.new_tokens, ref)
    assert max(float(np.abs(a - b).max()) for a, b in zip(out.step_logits, ref_logits, strict=True)) < 1e-3
    no_cache = gen.generate(IDS, MASK, max_new_tokens=10, stop_on_eos=False, use_cache=False)
    assert np.array_equal(no_cache.new_tokens, ref)
    # Sampling goes through the same choice as the plain loop: seeded, reproducible.
    a = gen.generate(IDS, MASK, max_new_tokens=5, strategy="sample", top_k=5, seed=3).new_tokens
    assert np.array_equal(a, gen.generate(IDS, MASK, max_new_tokens=5, strategy="sample", top_k=5, seed=3).new_tokens)


def test_bound_generator_stops_on_eos_and_checks_prompts(gpt2):
    model, path = gpt2
    free = g.BoundGenerator.from_onnx(path, model.config, eos_token_id=[])
    first = int(free.generate(IDS[1:], MASK[1:], max_new_tokens=3).new_tokens[0, 0])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = g.BoundGenerator(session, free.layout, eos_token_id=first, pad_token_id=7)
    out = gen.generate(IDS[1:], MASK[1:], max_new_tokens=6)
    assert out.steps == 1 and out.stopped_by == "eos"
    with pytest.raises(g.EmptyPromptError):
        gen.generate(np.zeros((1, 0), np.int64), max_new_tokens=3)
    with pytest.raises(g.ContextLengthError):
        gen.generate(IDS, MASK, max_new_tokens=CONTEXT)
    with pytest.raises(TypeError, match="past -> present"):
        g.beam_search(gen, IDS, MASK, num_beams=2)


def test_bound_generator_refuses_a_past_present_graph(tmp_path):
    model = _llama()
    path = g.export_with_kv_cache(model, tmp_path / "kv.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="export_with_kv_buffer"):
        g.BoundGenerator(session, g.CacheLayout.from_config(model.config))


@pytest.mark.slow
def test_buffer_export_handles_grouped_query_attention(tmp_path):
    model = _llama()
    path = g.export_with_kv_buffer(model, tmp_path / "llama_buffer.onnx")
    gen = g.BoundGenerator.from_onnx(path, model.config)
    ids = np.array([[3, 3, 5, 6, 7], [8, 9, 10, 11, 12]])
    mask = (ids != 3).astype(np.int64)
    ref, _ = g.hf_generate(model, ids, mask, max_new_tokens=8, stop_on_eos=False)
    assert np.array_equal(gen.generate(ids, mask, max_new_tokens=8, stop_on_eos=False).new_tokens, ref)


def test_prepare_for_weight_only_keeps_the_outputs(gpt2, tmp_path):
    """Gemm -> MatMul + Add and the tied LM head's Transpose folded: same numbers, all MatMuls."""
    _, path = gpt2
    model, counts = g.prepare_for_weight_only(onnx.load(str(path)))
    assert counts["gemm_to_matmul"] == 2 * 4 and counts["folded_transposes"] >= 1  # 4 Conv1D per layer
    assert not [n for n in model.graph.node if n.op_type == "Gemm"]
    prepared = g.prepared_copy(path, tmp_path / "prepared.onnx")
    layout = g.CacheLayout.from_config(transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2))
    feed = {"input_ids": IDS, "position_ids": np.maximum(np.cumsum(MASK, 1) - 1, 0), "attention_mask": MASK,
            **layout.empty_past(2)}
    a = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    b = ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"]).run(None, feed)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-4)


@pytest.mark.parametrize("bits", [8, 4])
def test_weight_only_quantization_reads_fewer_bytes_and_stays_close(gpt2, tmp_path, bits):
    model, path = gpt2
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = g.quantize_weight_only(path, tmp_path / f"wo{bits}.onnx", bits=bits)
    assert (list(root.handlers), root.level) == (handlers, level)  # ORT's basicConfig undone
    ops = [n.op_type for n in onnx.load(str(out), load_external_data=False).graph.node]
    assert ops.count("MatMulNBits") == 2 * 4 + 1  # every Conv1D and the LM head
    assert "Gemm" not in ops
    fp32, quantized = g.bytes_read_per_token(path), g.bytes_read_per_token(out)
    assert quantized < fp32 * (0.36 if bits == 8 else 0.25)  # int8/int4 + block scales
    gen = g.BoundGenerator.from_onnx(out, model.config)
    ref = g.BoundGenerator.from_onnx(path, model.config)
    logits = gen.generate(IDS, MASK, max_new_tokens=1, return_logits=True).step_logits[0]
    ref_logits = ref.generate(IDS, MASK, max_new_tokens=1, return_logits=True).step_logits[0]
    spread = float(ref_logits.max() - ref_logits.min())
    assert float(np.abs(logits - ref_logits).max()) < (0.05 if bits == 8 else 0.25) * spread
    with pytest.raises(ValueError, match="bits"):
        g.quantize_weight_only(path, tmp_path / "x.onnx", bits=3)


def test_bytes_read_per_token_counts_one_row_of_a_lookup_table(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.zeros((1000, 8), np.float32), "table")
    weight = numpy_helper.from_array(np.zeros((8, 4), np.float32), "weight")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["x"]), helper.make_node("MatMul", ["x", "weight"], ["y"])],
        "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [table, weight],
    )
    path = tmp_path / "lookup.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert g.onnx_weight_bytes(path) == (1000 * 8 + 8 * 4) * 4
    assert g.bytes_read_per_token(path) == (8 + 8 * 4) * 4
    assert g.bandwidth_bound_tokens_per_s(10**9, 20.0) == pytest.approx(20.0)
    with pytest.raises(ValueError):
        g.bandwidth_bound_tokens_per_s(0, 20.0)


def test_teacher_forcing_runs_the_bound_loop_itself(gpt2):
    """Teacher forcing through the I/O-binding loop (the text's tokens forced as its choices)
    gives PyTorch's logits of every position."""
    model, path = gpt2
    loop = g.BoundGenerator.from_onnx(path, model.config, threads=1)
    ids = [5, 6, 7, 8, 9, 10, 11, 12, 13]
    with torch.inference_mode():
        reference = model(torch.tensor([ids])).logits[0].numpy()
    got = g.teacher_forced_logits(loop, g.CacheLayout.from_config(model.config), ids)
    assert got.shape == reference.shape
    assert np.allclose(got, reference, atol=1e-4)
    assert loop.eos_token_ids == (model.config.eos_token_id,)  # the loop itself is left as it was


@pytest.mark.slow
def test_genai_builder_and_generator_match_transformers(tmp_path):
    """ORT GenAI's model builder on a local tiny Llama folder: the same greedy tokens."""
    if not g.genai_available():
        pytest.skip("onnxruntime-genai is not installed in this environment")
    from helpers import catalog

    tokenizer = catalog.load("text-generation", "tiny", show_banner=False).tokenizer  # GPT-2's BPE
    model = g.tiny_llama(len(tokenizer))
    folder = tmp_path / "llama"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    out = g.build_genai_model(folder, tmp_path / "genai", precision="fp32")
    gen = g.GenAIGenerator(out, threads=2)
    assert gen.describe()["GroupQueryAttention nodes"] == 2
    ids = np.array([[5, 6, 7, 8], [9, 10, 11, 12]])
    ref, _ = g.hf_generate(model, ids, np.ones_like(ids), max_new_tokens=8, stop_on_eos=False)
    assert np.array_equal(gen.generate(ids, max_new_tokens=8, stop_on_eos=False), ref)
    text = [5, 6, 7, 8, 9, 10, 11, 12]
    with torch.inference_mode():
        reference = model(torch.tensor([text])).logits[0].numpy()
    assert np.allclose(gen.teacher_forced_logits(text), reference, atol=1e-3)
    with pytest.raises(g.EmptyPromptError):
        gen.generate(np.zeros((1, 0), np.int64))
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(g.GenAIBuildError, match="config.json"):
        g.build_genai_model(tmp_path / "not-a-model", tmp_path / "out")
