"""helpers.serving.triton: model repository export, config.pbtxt with Triton's own schema, validation, client."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers.models.tiny import tiny_classifier_onnx
from helpers.serving.triton import (
    ConfigError,
    export_model_repository,
    parse_config,
    parse_config_message,
    render_config,
    triton_infer,
    triton_ready,
    validate_repository,
)

LABEL_FILE = "étiquettes_猫.txt"


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory):
    return tiny_classifier_onnx(tmp_path_factory.mktemp("triton") / "toy.onnx", num_classes=7)


def failed_checks(repository, name: str) -> dict[str, str]:
    report = validate_repository(repository, name)
    return dict(zip(report.loc[~report["ok"], "check"], report.loc[~report["ok"], "detail"], strict=True))


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
    assert "optimization" not in config and "model_warmup" not in config
    assert failed_checks(tmp_path / "repo", "toy") == {}


def test_round_trip_with_openvino_warmup_and_non_ascii_labels(onnx_path, tmp_path) -> None:
    labels = [f"clase {i} — gato 猫" for i in range(7)]
    model_dir = export_model_repository(
        onnx_path, tmp_path, "toy", openvino_accelerator=True, warmup=True,
        warmup_dims={"pixel_values": [3, 32, 32]}, labels=labels, labels_filename=LABEL_FILE)
    text = (model_dir / "config.pbtxt").read_text(encoding="utf-8")
    assert 'cpu_execution_accelerator {\n      name: "openvino"' in text
    assert f'label_filename: "{LABEL_FILE}"' in text  # raw UTF-8, not escaped or garbled
    config = parse_config(model_dir / "config.pbtxt")
    assert config["optimization"] == {
        "execution_accelerators": {"cpu_execution_accelerator": [{"name": "openvino"}]}}
    assert config["model_warmup"] == [{
        "name": "random batch of 1", "batch_size": 1, "count": 1,
        "inputs": {"pixel_values": {"data_type": "TYPE_FP32", "dims": [3, 32, 32], "random_data": True}},
    }]
    assert config["output"][0]["label_filename"] == LABEL_FILE
    assert (model_dir / LABEL_FILE).read_text(encoding="utf-8").splitlines() == labels
    assert failed_checks(tmp_path, "toy") == {}
    # Text -> message -> text is stable, and the message equals a fresh parse of the text.
    from google.protobuf import text_format

    message = parse_config_message(model_dir / "config.pbtxt")
    again = text_format.MessageToString(message, as_utf8=True, use_short_repeated_primitives=True)
    assert parse_config_message(again) == message
    assert text.endswith(again)


def test_schema_accepts_valid_triton_fields_and_text_format_variants() -> None:
    text = """
    # comment
    name: 'm'  platform: "onnxruntime_onnx"
    max_batch_size: 4
    input { name: "a" data_type: TYPE_INT64 dims: 8 dims: -1 }
    input < name: "b", data_type: TYPE_FP16, dims: [ 2 ] >
    output [ { name: "y" data_type: TYPE_FP32 dims: [ ] label_filename: "ラベル.txt" } ]
    dynamic_batching { }
    instance_group [ { kind: KIND_CPU count: 1 }, { kind: KIND_CPU } ]
    optimization { execution_accelerators { cpu_execution_accelerator: [
        { name: "openvino" parameters { key: "num_threads" value: "2" } } ] } }
    model_warmup [ { name: "zeros" batch_size: 2
        inputs { key: "a" value: { data_type: TYPE_INT64 dims: [8, 3] zero_data: true } } } ]
    parameters { key: "note" value: { string_value: "ünïcødé" } }
    response_cache { enable: true }
    version_policy: { specific: { versions: [1, 3] } }
    """
    config = parse_config(text)
    assert [i["name"] for i in config["input"]] == ["a", "b"]
    assert config["input"][0]["dims"] == [8, -1]
    assert "dims" not in config["output"][0] and config["output"][0]["label_filename"] == "ラベル.txt"
    assert config["dynamic_batching"] == {}
    assert len(config["instance_group"]) == 2
    accelerator = config["optimization"]["execution_accelerators"]["cpu_execution_accelerator"][0]
    assert accelerator == {"name": "openvino", "parameters": {"num_threads": "2"}}
    assert config["model_warmup"][0]["inputs"]["a"]["zero_data"] is True
    assert config["parameters"] == {"note": {"string_value": "ünïcødé"}}
    assert config["version_policy"] == {"specific": {"versions": [1, 3]}}


BAD_CONFIGS = [
    ('colour: "red"', 'no field named "colour"'),
    ("name: x", "Expected string"),
    ('max_batch_size: "8"', "Couldn't parse integer"),
    ("max_batch_size: 8.5", "Couldn't parse integer"),
    ('input [ { name: "a" data_type: TYPE_FLOAT } ]', 'no value named TYPE_FLOAT'),
    ("dynamic_batching { preferred_batch_size: [4, 8 }", 'Expected ","'),
    ('name: "b"', 'multiple "name" fields'),
    ("max_batch_size 8", 'Expected ":"'),
    ("dynamic_batching { preserve_ordering: maybe }", 'Expected "true" or "false"'),
    ("input { dims: [99999999999999999999] }", "out of range"),
    ("optimization { execution_accelerators { cpu_execution_accelerator { nam: 'x' } } }",
     'no field named "nam"'),
]


@pytest.mark.parametrize(("bad_line", "message"), BAD_CONFIGS, ids=[b[1] for b in BAD_CONFIGS])
def test_malformed_config_reports_line_and_column(bad_line: str, message: str) -> None:
    text = f'name: "a"\nmax_batch_size: 0\n{bad_line}\n'
    with pytest.raises(ConfigError, match=r"^<config>:3:\d+: ") as info:
        parse_config(text)
    assert message in str(info.value)


def test_errors_name_the_file_and_unclosed_blocks(tmp_path) -> None:
    path = tmp_path / "config.pbtxt"
    path.write_text('name: "a"\ninput {\n  name: "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:\d+:\d+: .*Expected \"}}\""):
        parse_config(path)


def test_validation_catches_mismatch_with_onnx(onnx_path, tmp_path) -> None:
    model_dir = export_model_repository(onnx_path, tmp_path, "toy", warmup=True,
                                        warmup_dims={"pixel_values": [3, 8, 8]},
                                        labels=list("abcdefg"), labels_filename=LABEL_FILE)
    config = model_dir / "config.pbtxt"
    good = config.read_text(encoding="utf-8")

    def failures_with(text: str) -> dict[str, str]:
        config.write_text(text, encoding="utf-8")
        return failed_checks(tmp_path, "toy")

    bad = failures_with(good.replace("dims: [7]", "dims: [1000]").replace("TYPE_FP32", "TYPE_FP16", 1))
    assert {"output logits dims", "input pixel_values dtype", f"label file {LABEL_FILE}"} <= set(bad)
    assert "7 labels for 1000 classes" in bad[f"label file {LABEL_FILE}"]
    assert "warm-up 'random batch of 1' input pixel_values" in bad  # warm-up FP32, input FP16 now
    assert set(failures_with(good.replace("preferred_batch_size: [4, 8]",
                                          "preferred_batch_size: [4, 32]"))) == {"preferred batch sizes in range"}
    assert set(failures_with(good.replace('name: "toy"', 'name: "other"'))) == {"name matches folder"}
    accelerated = good + 'optimization { execution_accelerators { cpu_execution_accelerator { name: "tensorrt" } } }\n'
    assert set(failures_with(accelerated)) == {"cpu accelerator 'tensorrt'"}
    warm = failures_with(good.replace("dims: [3, 8, 8]", "dims: [3, -1, 8]").replace("batch_size: 1", "batch_size: 9"))
    assert set(warm) == {"warm-up 'random batch of 1' batch size", "warm-up 'random batch of 1' input pixel_values"}
    assert set(failures_with(good.replace("random_data: true", ""))) == {
        "warm-up 'random batch of 1' input pixel_values"}
    (model_dir / LABEL_FILE).unlink()
    assert set(failures_with(good)) == {f"label file {LABEL_FILE}"}
    config.write_text(good + "bogus: 1\n", encoding="utf-8")
    report = validate_repository(tmp_path, "toy")
    assert len(report) == 1 and not report["ok"][0] and "bogus" in report["detail"][0]
    assert re.search(r"config\.pbtxt:\d+:\d+: ", report["detail"][0])


def test_export_needs_dynamic_batch_and_concrete_warmup_dims(onnx_path, tmp_path) -> None:
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
    # Without batching the full shape goes into dims; fixed dims need no warmup_dims.
    model_dir = export_model_repository(path, tmp_path / "repo", "fixed", max_batch_size=0, warmup=True)
    config = parse_config(model_dir / "config.pbtxt")
    assert config["input"][0]["dims"] == [1, 4] and "dynamic_batching" not in config
    assert config["model_warmup"][0]["inputs"]["x"]["dims"] == [1, 4]
    with pytest.raises(ValueError, match="warmup_dims"):
        export_model_repository(onnx_path, tmp_path / "repo", "toy", warmup=True)
    with pytest.raises(ValueError):
        export_model_repository(path, tmp_path / "repo", "bad name!")


def test_render_round_trip() -> None:
    text = render_config("m", [("x", "TYPE_FP32", [3, -1])], [("y", "TYPE_INT64", [1])],
                         max_batch_size=4, preferred_batch_sizes=(2, 4), max_queue_delay_us=100,
                         openvino_accelerator=True, accelerator_parameters={"device": "CPU"})
    config = parse_config(text)
    assert config["dynamic_batching"]["preferred_batch_size"] == [2, 4]
    assert config["input"][0]["dims"] == [3, -1]
    assert config["output"][0]["data_type"] == "TYPE_INT64"
    assert config["optimization"]["execution_accelerators"]["cpu_execution_accelerator"] == [
        {"name": "openvino", "parameters": {"device": "CPU"}}]


def test_schema_loads_without_grpc() -> None:
    code = ("import sys; from helpers.serving.triton import model_config_pb2; m = model_config_pb2(); "
            "m.ModelConfig(name='x'); "
            "print(sorted(k for k in sys.modules if k.startswith(('grpc', 'tritonclient.grpc'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_triton_ready_is_quick_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t0 = time.perf_counter()
    ok, reason = triton_ready(f"http://127.0.0.1:{port}", timeout_s=0.5)
    assert not ok and reason
    assert time.perf_counter() - t0 < 3


def test_triton_client_talks_to_any_v2_server(onnx_path) -> None:
    from fastapi import FastAPI

    from helpers.runners import ort_runner
    from helpers.serving import kserve, serve_in_background

    runner = ort_runner(onnx_path, threads=1)
    app = FastAPI()
    app.include_router(kserve.router({"toy": runner}))
    pixels = np.random.default_rng(0).random((3, 3, 16, 16), dtype=np.float32)
    with serve_in_background(app) as server:
        assert triton_ready(server.url, timeout_s=10) == (True, "ready")
        got = triton_infer(server.url, "toy", {"pixel_values": pixels})
        with pytest.raises(kserve.V2ClientError, match="FP64"):
            triton_infer(server.url, "toy", {"pixel_values": pixels.astype(np.float64)})
    np.testing.assert_array_equal(got["logits"], runner({"pixel_values": pixels})["logits"])
