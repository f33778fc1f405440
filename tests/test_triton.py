"""helpers.triton: model repository export, strict config.pbtxt parsing, offline validation, client."""

from __future__ import annotations

import socket
import time

import pytest

from helpers.serving import toy_classifier_onnx
from helpers.triton import (
    ConfigError,
    export_model_repository,
    parse_config,
    render_config,
    triton_ready,
    validate_repository,
)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory):
    return toy_classifier_onnx(tmp_path_factory.mktemp("triton") / "toy.onnx", num_classes=7)


def test_export_writes_repository_layout(onnx_path, tmp_path) -> None:
    model_dir = export_model_repository(onnx_path, tmp_path / "repo", "toy", max_batch_size=16,
                                        preferred_batch_sizes=(4, 16), instance_count=2)
    assert model_dir == tmp_path / "repo" / "toy"
    assert (model_dir / "1" / "model.onnx").read_bytes() == onnx_path.read_bytes()
    config = parse_config(model_dir / "config.pbtxt")
    assert config["name"] == "toy" and config["backend"] == "onnxruntime"
    assert config["max_batch_size"] == 16
    assert config["input"] == [{"name": "pixel_values", "data_type": "TYPE_FP32", "dims": [3, -1, -1]}]
    assert config["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": [7]}]
    assert config["dynamic_batching"] == {"preferred_batch_size": [4, 16],
                                          "max_queue_delay_microseconds": 500}
    assert config["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
    report = validate_repository(tmp_path / "repo", "toy")
    assert report["ok"].all(), report[~report["ok"]]


def test_parser_accepts_text_format_variants() -> None:
    text = """
    # comment
    name: 'm'  platform: "onnxruntime_onnx"
    max_batch_size: 4
    input { name: "a" data_type: TYPE_INT64 dims: 8 dims: -1 }
    input < name: "b", data_type: TYPE_FP16, dims: [ 2 ] >
    output [ { name: "y" data_type: TYPE_FP32 dims: [ ] } ]
    dynamic_batching { }
    instance_group [ { kind: KIND_CPU count: 1 }, { kind: KIND_CPU } ]
    """
    config = parse_config(text)
    assert [i["name"] for i in config["input"]] == ["a", "b"]
    assert config["input"][0]["dims"] == [8, -1]
    assert config["output"][0]["dims"] == []
    assert config["dynamic_batching"] == {}
    assert len(config["instance_group"]) == 2


BAD_CONFIGS = [
    ('name: "x" colour: "red"', "unknown field 'colour'"),
    ("name: x", "quoted string"),
    ('max_batch_size: "8"', "integer"),
    ("max_batch_size: 8.5", "integer"),
    ('input [ { name: "a" data_type: TYPE_FLOAT } ]', "must be one of"),
    ("dynamic_batching { preferred_batch_size: [4, 8 }", "expected ',' or ']'"),
    ('name: "a" name: "b"', "more than once"),
    ('input { name: "a"', "unexpected end of file"),
    ("max_batch_size 8", "expected ':'"),
    ('name: "a" $', "unexpected character"),
    ("dynamic_batching { preserve_ordering: maybe }", "true or false"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS, ids=[b[1] for b in BAD_CONFIGS])
def test_parser_is_strict(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"line \d+") as info:
        parse_config(text)
    assert message in str(info.value)


def test_validation_catches_mismatch_with_onnx(onnx_path, tmp_path) -> None:
    model_dir = export_model_repository(onnx_path, tmp_path, "toy")
    config = model_dir / "config.pbtxt"
    good = config.read_text()
    config.write_text(good.replace("dims: [ 7 ]", "dims: [ 1000 ]").replace("TYPE_FP32", "TYPE_FP16", 1))
    report = validate_repository(tmp_path, "toy").set_index("check")
    assert not report.loc["output logits dims", "ok"]
    assert not report.loc["input pixel_values dtype", "ok"]
    config.write_text(good.replace("preferred_batch_size: [ 4, 8 ]", "preferred_batch_size: [ 4, 32 ]"))
    report = validate_repository(tmp_path, "toy").set_index("check")
    assert not report.loc["preferred batch sizes in range", "ok"]
    config.write_text(good.replace('name: "toy"', 'name: "other"'))
    assert not validate_repository(tmp_path, "toy").set_index("check").loc["name matches folder", "ok"]
    config.write_text(good + "bogus: 1\n")
    report = validate_repository(tmp_path, "toy")
    assert len(report) == 1 and not report["ok"][0] and "bogus" in report["detail"][0]


def test_export_needs_dynamic_batch(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ConfigError, match="dynamic first"):
        export_model_repository(path, tmp_path / "repo", "fixed")
    # Without batching the full shape goes into dims.
    model_dir = export_model_repository(path, tmp_path / "repo", "fixed", max_batch_size=0)
    config = parse_config(model_dir / "config.pbtxt")
    assert config["input"][0]["dims"] == [1, 4] and "dynamic_batching" not in config
    with pytest.raises(ValueError):
        export_model_repository(path, tmp_path / "repo", "bad name!")


def test_render_round_trip() -> None:
    text = render_config("m", [("x", "TYPE_FP32", [3, -1])], [("y", "TYPE_INT64", [1])],
                         max_batch_size=4, preferred_batch_sizes=(2, 4), max_queue_delay_us=100)
    config = parse_config(text)
    assert config["dynamic_batching"]["preferred_batch_size"] == [2, 4]
    assert config["input"][0]["dims"] == [3, -1]


def test_triton_ready_is_quick_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t0 = time.perf_counter()
    ok, reason = triton_ready(f"http://127.0.0.1:{port}", timeout_s=0.5)
    assert not ok and reason
    assert time.perf_counter() - t0 < 3
