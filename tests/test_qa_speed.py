"""helpers.qa.speed: ORT fusions on a dynamo BERT export (counts per release), the BERT-base
timing model, OpenVINO's bf16 offer, bf16 autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.qa import speed as qa_speed


@pytest.fixture(scope="module")
def small_bert():
    return qa_speed.bert_qa_for_timing("small")


@pytest.fixture(scope="module")
def small_export(small_bert, tmp_path_factory):
    from helpers.export import export_onnx

    path = tmp_path_factory.mktemp("bert_small") / "model.onnx"
    example = {k: torch.from_numpy(v) for k, v in qa_speed.example_inputs(16, batch=2).items()}
    names = list(example)
    export_onnx(
        small_bert,
        example,
        path,
        input_names=names,
        output_names=["start_logits", "end_logits"],
        dynamic_shapes={n: {0: "batch", 1: "sequence"} for n in names},
    )
    return path


def _run(path, feeds):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["start_logits", "end_logits"], feeds)


def test_the_timing_model_has_bert_base_shape_or_a_small_one(small_bert):
    from transformers import BertConfig

    assert qa_speed.SIZES["base"] == {}  # BertConfig() defaults: bert-base-uncased's shape
    base = BertConfig(**qa_speed.SIZES["base"])
    assert (base.num_hidden_layers, base.hidden_size, base.num_attention_heads) == (12, 768, 12)
    assert small_bert.config.model_type == "bert" and small_bert.config.num_hidden_layers == 2
    again = qa_speed.bert_qa_for_timing("small")
    assert torch.equal(again.qa_outputs.weight, small_bert.qa_outputs.weight)  # seeded
    with pytest.raises(ValueError, match="size must be one of"):
        qa_speed.bert_qa_for_timing("large")


def test_onnxscript_fuses_every_layer_and_keeps_the_outputs(small_export, tmp_path):
    fused = qa_speed.fuse_for_ort(small_export, tmp_path / "fused.onnx")
    want, release = qa_speed.expected_fusions("onnxscript", 2)
    assert want is not None, release  # a new release: record its counts (the message says how)
    assert fused.operators == want
    assert fused.reported["attention"] == 2
    feeds = qa_speed.example_inputs(24, batch=2, seed=1)
    feeds["attention_mask"][1, 18:] = 0  # padding must be masked inside the fused Attention too
    for a, b in zip(_run(small_export, feeds), _run(fused.path, feeds), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_ort_transformer_optimizer_counts_follow_the_installed_release(small_export, tmp_path):
    result = qa_speed.ort_transformer_optimizer(
        small_export, tmp_path / "ortopt.onnx", num_heads=2, hidden_size=128
    )
    want, release = qa_speed.expected_fusions("ort", 2)
    assert want is not None, release  # a new release: record its counts (the message says how)
    assert result.operators == want, release
    assert "Attention" not in result.operators  # the dynamo graph's attention is not matched
    feeds = qa_speed.example_inputs(24, batch=2, seed=2)
    for a, b in zip(_run(small_export, feeds), _run(result.path, feeds), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_expected_fusions_are_recorded_for_the_installed_releases():
    want, release = qa_speed.expected_fusions("onnxscript", 12)
    assert want == {"Attention": 12, "SkipLayerNormalization": 24, "BiasGelu": 12}, release
    assert release.startswith("onnxscript ")
    want, release = qa_speed.expected_fusions("ort", 12)
    assert want is not None, release
    assert want["BiasGelu"] == 12 and "Attention" not in want, (release, want)


def test_a_release_without_a_record_says_how_to_record_it(monkeypatch):
    monkeypatch.setattr(qa_speed, "_version", lambda dist: "9.9.0")
    want, release = qa_speed.expected_fusions("onnxscript", 12)
    assert want is None
    assert "onnxscript 9.9.0: no recorded expectation" in release
    assert "helpers/qa/speed.py" in release and "RECORDED_FUSIONS" in release
    with pytest.raises(ValueError, match="'onnxscript' or 'ort'"):
        qa_speed.expected_fusions("tensorrt", 12)


def test_openvino_bf16_follows_the_cpu_plugins_capabilities():
    ov = pytest.importorskip("openvino")
    offered = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert qa_speed.openvino_bf16() is offered


def test_autocast_runs_in_bf16_and_returns_fp32(small_bert):
    wrapped = qa_speed.Autocast(small_bert)
    feeds = {k: torch.from_numpy(v) for k, v in qa_speed.example_inputs(32).items()}
    with torch.inference_mode():
        start, end = wrapped(*feeds.values())
        reference = small_bert(**feeds)
    assert start.dtype == torch.float32 and start.shape == (1, 32)
    diff = (start - reference.start_logits).abs().max().item()
    assert 0 < diff < 0.1  # bf16 arithmetic: close, but not the fp32 numbers


def test_bf16_rows_are_bounded_by_fp32_without_bf16_instructions(monkeypatch):
    import helpers.benchmark as benchmark

    timing = qa_speed.TimingSet(
        runners={},
        precisions={"eager": "float32", "autocast": "bfloat16", "int8": "int8"},
        files={},
        fusion=qa_speed.FusionResult(path=None, tool="", operators={}),
        notes=[],
    )
    monkeypatch.setattr(benchmark, "precision_hardware", lambda p: {"native": False})
    assert timing.limit_precisions() == {"eager": "float32", "autocast": "float32", "int8": "int8"}
    monkeypatch.setattr(benchmark, "precision_hardware", lambda p: {"native": True})
    assert timing.limit_precisions()["autocast"] == "bfloat16"
