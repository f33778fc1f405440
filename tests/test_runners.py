"""helpers.runners: real tiny models through every runtime present in this environment.

Refusing files that can run code (planted pickles, compiled code, untrusted packages) is in
test_runners_trust.py.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_classifier import OUTPUTS, SPECS, TinyConvNet

from helpers import runners
from helpers.runners import (
    InputError,
    ProviderFallbackWarning,
    ProviderUnavailableError,
    Runner,
    TensorSpec,
    available_runtimes,
    exported_program_runner,
    ort_providers_for,
    ort_runner,
    torch_runner,
    torchscript_runner,
    validate_inputs,
)

torch.set_num_threads(min(2, torch.get_num_threads()))

def _has_ort_provider(name: str) -> bool:
    ort = pytest.importorskip("onnxruntime")
    return name in ort.get_available_providers()


def _gpu_present() -> bool:
    try:
        from helpers.hardware import gpu_present

        return gpu_present()
    except ImportError:
        return torch.cuda.is_available()


@pytest.fixture(scope="module")
def onnx_path(model: TinyConvNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.onnx.export(
        model,
        (torch.randn(2, 3, 8, 8),),
        str(path),
        dynamo=True,
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        external_data=False,
        verbose=False,
    )
    return path


# ------------------------------------------------------------------ PyTorch eager


def test_torch_runner_matches_model_and_describes_its_threads(model, batch, expected) -> None:
    before = torch.get_num_threads()
    runner = torch_runner(model, SPECS, OUTPUTS, threads=1)
    out = runner(batch)
    assert set(out) == {"logits"} and isinstance(out["logits"], np.ndarray)
    np.testing.assert_allclose(out["logits"], expected, rtol=1e-5, atol=1e-6)
    assert torch.get_num_threads() == before  # a call never changes the process's setting
    info = runner.describe()
    assert info["runtime"] == "pytorch" and info["device"] == "cpu"
    assert info["threads"]["intra_op"] == 1 and info["version"] == torch.__version__
    assert runner.signature() == "input: float32[batch, 3, 8, 8]"


class _DictModel(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        return OrderedDict(total=a + b, diff=a - b)


class _TupleModel(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return a + b, (a - b, a * b)


def test_torch_runner_maps_dict_and_nested_tuple_outputs() -> None:
    specs = [TensorSpec("a", (None,), "float32"), TensorSpec("b", (None,), "float32")]
    feed = {"a": np.ones(3, np.float32), "b": np.full(3, 2.0, np.float32)}
    by_key = torch_runner(_DictModel(), specs, ["diff", "total"])(feed)  # keys, not order
    assert by_key["diff"].tolist() == [-1.0] * 3 and by_key["total"].tolist() == [3.0] * 3
    flat = torch_runner(_TupleModel(), specs, ["sum", "diff", "prod"])(feed)
    assert flat["prod"].tolist() == [2.0] * 3
    with pytest.raises(ValueError, match="output_names lists only 2"):
        torch_runner(_TupleModel(), specs, ["sum", "diff"])(feed)


def test_torch_runner_cuda_request_without_gpu_warns(model) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is usable here, so there is no fallback to show")
    with pytest.warns(ProviderFallbackWarning, match="running on 'cpu'"):
        runner = torch_runner(model, SPECS, OUTPUTS, device="cuda")
    assert runner.describe()["device"] == "cpu"
    with pytest.raises(ProviderUnavailableError):
        torch_runner(model, SPECS, OUTPUTS, device="cuda", strict=True)
    model.to("cpu")


@pytest.mark.envs("gpu")
def test_torch_runner_on_cuda(model, batch, expected) -> None:
    if not _gpu_present() or not torch.cuda.is_available():
        pytest.skip("no usable NVIDIA GPU in this machine")
    import copy

    runner = torch_runner(copy.deepcopy(model), SPECS, OUTPUTS, device="cuda")
    np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=1e-3, atol=1e-4)
    assert runner.describe()["device"] == "cuda" and runner.describe()["device_name"]


# ------------------------------------------------------------------ input validation


@pytest.mark.parametrize(
    ("feed", "match"),
    [
        ({}, r"missing input\(s\) \['input'\]"),
        ({"input": np.zeros((1, 3, 8, 8), np.float32), "extra": np.zeros(1)}, "unexpected input"),
        ({"input": torch.zeros(1, 3, 8, 8)}, r"torch tensor.*\.numpy\(\)"),
        ({"input": [[0.0]]}, r"np\.asarray"),
        ({"input": np.zeros((1, 3, 8, 8), np.float64)}, r"float64.*\.astype\(np\.float32\)"),
        ({"input": np.zeros((3, 8, 8), np.float32)}, "rank 3"),
        ({"input": np.zeros((1, 1, 8, 8), np.float32)}, "size 1 on axis 1"),
        (np.zeros((1, 3, 8, 8), np.float32), "must be a dict"),
    ],
    ids=["missing", "extra", "torch-tensor", "list", "float64", "rank", "fixed-dim", "not-a-dict"],
)
def test_bad_inputs_raise_input_error_with_signature(model, feed, match) -> None:
    runner = torch_runner(model, SPECS, OUTPUTS)
    with pytest.raises(InputError, match=match) as info:
        runner(feed)
    assert "expected inputs: input: float32[batch, 3, 8, 8]" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_shared_symbolic_dimension_must_agree() -> None:
    specs = [
        TensorSpec("input_ids", ("batch", "seq"), "int64"),
        TensorSpec("attention_mask", ("batch", "seq"), "int64"),
    ]
    ok = {"input_ids": np.zeros((2, 5), np.int64), "attention_mask": np.ones((2, 5), np.int64)}
    validate_inputs(specs, ok)
    bad = dict(ok, attention_mask=np.ones((2, 4), np.int64))
    with pytest.raises(InputError, match="dimension 'seq' is 5 in input 'input_ids' but 4"):
        validate_inputs(specs, bad)
    with pytest.raises(InputError, match=r"int32.*\.astype\(np\.int64\)"):
        validate_inputs(specs, dict(ok, input_ids=np.zeros((2, 5), np.int32)))


# ------------------------------------------------------------------ ONNX Runtime


def test_ort_runner_parity_dynamic_batch_and_describe(onnx_path, batch, expected) -> None:
    runner = ort_runner(onnx_path, threads=1, graph_optimization_level="extended")
    assert runner.inputs == [TensorSpec("input", ("batch", 3, 8, 8), "float32")]
    assert runner.output_names == ["logits"]
    np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=1e-4, atol=1e-5)
    one = {"input": batch["input"][:1]}
    assert runner(one)["logits"].shape == (1, 5)  # dynamic batch really is dynamic
    info = runner.describe()
    assert (
        info["runtime"] == "onnxruntime"
        and info["providers_actual"][0] in info["providers_requested"]
    )
    assert info["threads"] == {"intra_op": 1, "inter_op": 1}
    assert info["graph_optimization_level"] == "extended" and info["artifact"] == str(onnx_path)
    assert info["fallback"] is None and info["precision"] == "float32"
    with pytest.raises(InputError, match=r"torch tensor"):  # seed pitfall: tensors into ORT
        runner({"input": torch.from_numpy(batch["input"])})


def test_ort_runner_writes_optimized_model(onnx_path, tmp_path) -> None:
    target = tmp_path / "optimized" / "tiny.opt.onnx"
    runner = ort_runner(onnx_path, optimized_model_path=target, threads=1)
    assert target.exists() and target.stat().st_size > 0
    assert runner.describe()["optimized_model_path"] == str(target)
    assert runner.describe()["threads"]["intra_op"] == 1


def test_ort_default_threads_are_explicit(onnx_path) -> None:
    runner = ort_runner(onnx_path)
    assert runner.describe()["threads"] == {"intra_op": runners.default_threads(), "inter_op": 1}
    with pytest.raises(ValueError, match="graph_optimization_level"):
        ort_runner(onnx_path, graph_optimization_level="max")


def test_ort_cuda_request_falls_back_loudly(onnx_path, batch, expected) -> None:
    if _has_ort_provider("CUDAExecutionProvider") and _gpu_present():
        pytest.skip("CUDA really runs here; see test_ort_cuda_runs_on_gpu")
    # cpu env: CUDA is not in the build; gpu env without GPU: listed, then silently CPU.
    with pytest.warns(ProviderFallbackWarning, match="CPUExecutionProvider") as record:
        runner = ort_runner(onnx_path, providers=ort_providers_for("cuda"), threads=1)
    assert any("CUDAExecutionProvider" in str(w.message) for w in record)
    info = runner.describe()
    assert info["providers_actual"] == ["CPUExecutionProvider"]
    assert info["providers_requested"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert info["fallback"] and "CUDA" in runner.name and "fallback" in runner.name
    np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ProviderUnavailableError, match="CUDAExecutionProvider"):
        ort_runner(onnx_path, providers=["CUDAExecutionProvider"], strict=True)


@pytest.mark.envs("gpu")
def test_ort_cuda_runs_on_gpu(onnx_path, batch, expected) -> None:
    if not _gpu_present() or not _has_ort_provider("CUDAExecutionProvider"):
        pytest.skip("no usable NVIDIA GPU / CUDA execution provider in this machine")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProviderFallbackWarning)
        runner = ort_runner(onnx_path, providers=ort_providers_for("cuda"), strict=True)
    assert runner.describe()["providers_actual"][0] == "CUDAExecutionProvider"
    assert runner.name == "ORT CUDA"
    np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=1e-3, atol=1e-4)


@pytest.mark.envs("openvino")
def test_ort_openvino_execution_provider(onnx_path, batch, expected) -> None:
    if not _has_ort_provider("OpenVINOExecutionProvider"):
        pytest.skip("this ONNX Runtime build has no OpenVINOExecutionProvider")
    runner = ort_runner(
        onnx_path,
        providers=ort_providers_for("openvino"),
        provider_options={"OpenVINOExecutionProvider": {"device_type": "CPU"}},
        strict=True,
    )
    info = runner.describe()
    assert info["providers_actual"][0] == "OpenVINOExecutionProvider"
    assert info["device"] == "openvino:CPU" and runner.name == "ORT OpenVINO"
    np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=5e-2, atol=5e-2)


def test_ort_providers_for_targets() -> None:
    assert ort_providers_for("cpu") == ["CPUExecutionProvider"]
    assert ort_providers_for("CUDA")[0] == "CUDAExecutionProvider"
    assert ort_providers_for("openvino") == ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ValueError, match="unknown target"):
        ort_providers_for("tpu")


# ------------------------------------------------------------------ OpenVINO


def test_openvino_runner_from_onnx_dynamic_batch(onnx_path, batch, expected) -> None:
    pytest.importorskip("openvino")
    runner = runners.openvino_runner(onnx_path, precision="f32", threads=1)
    assert [s.name for s in runner.inputs] == ["input"] and runner.output_names == ["logits"]
    assert runner.inputs[0].shape[0] is None  # dynamic batch survives the conversion
    np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=1e-4, atol=1e-5)
    assert runner({"input": batch["input"][:1]})["logits"].shape == (1, 5)
    info = runner.describe()
    assert info["runtime"] == "openvino" and info["providers_actual"] == ["CPU"]
    assert info["threads"]["intra_op"] == 1 and info["performance_hint"] == "LATENCY"
    assert info["precision"] == "float32" and runner.name == "OpenVINO CPU"


def test_openvino_default_precision_is_reported(onnx_path, batch, expected, tmp_path) -> None:
    pytest.importorskip("openvino")
    cache = tmp_path / "ov_cache"
    runner = runners.openvino_runner(onnx_path, hint="throughput", threads=1, cache_dir=cache)
    assert any(cache.iterdir())  # the compiled blob is cached for the next start
    # bf16 on CPUs with native bf16 (OpenVINO's default there), else fp32: never hidden.
    assert runner.precision in ("float32", "bfloat16")
    assert (runner.precision == "bfloat16") == ("bf16" in runner.name)
    tol = 5e-2 if runner.precision == "bfloat16" else 1e-4
    np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=tol, atol=tol)
    assert runner.describe()["performance_hint"] == "THROUGHPUT"


def test_openvino_runner_from_module_with_names(model, program, batch, expected) -> None:
    pytest.importorskip("openvino")
    runner = runners.openvino_runner(
        program, input_names=["input"], output_names=["logits"], precision="f32", threads=1
    )
    np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=1e-4, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no TorchScript tracing on this path
        from_module = runners.openvino_runner(
            model,
            example_input=batch["input"][:2],
            input_names=["input"],
            output_names=["logits"],
            precision="f32",
            threads=1,
        )
    np.testing.assert_allclose(from_module(batch)["logits"], expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="example_input"):
        runners.openvino_runner(model)


def test_openvino_missing_device_falls_back_loudly(onnx_path) -> None:
    ov = pytest.importorskip("openvino")
    if any(d.startswith("NPU") for d in ov.Core().available_devices):
        pytest.skip("an NPU is present")
    with pytest.warns(ProviderFallbackWarning, match="NPU"):
        runner = runners.openvino_runner(onnx_path, device="NPU", threads=1)
    assert runner.describe()["providers_actual"] == ["CPU"] and runner.describe()["fallback"]
    with pytest.raises(ProviderUnavailableError):
        runners.openvino_runner(onnx_path, device="NPU", strict=True)


def _layouts(x: np.ndarray) -> dict[str, np.ndarray]:
    """The same values in every memory layout numpy allows: other byte order, Fortran order,
    a strided view, a transposed view, read-only."""
    read_only = x.copy()
    read_only.flags.writeable = False
    padded = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    padded[..., ::2] = x
    layouts = {
        "big-endian": x.astype(x.dtype.newbyteorder(">")),
        "little-endian (explicit)": x.astype(x.dtype.newbyteorder("<")),
        "fortran": np.asfortranarray(x),
        "strided view": padded[..., ::2],
        "transposed view": np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2),
        "read-only": read_only,
    }
    assert all(np.array_equal(v, x) and v.dtype.name == x.dtype.name for v in layouts.values())
    return layouts


class _ThreadsSeen(torch.nn.Module):
    """Records the torch intra-op thread count each forward pass ran with."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return x * 2


def test_a_torch_runner_never_toggles_the_process_thread_count_per_call() -> None:
    """PyTorch's thread count is shared by every thread of the process: a call used to set it to
    the runner's count and back, racing with any other thread. Now plain calls run with the
    process's setting, and the timing loops set the runner's count once around a measurement."""
    from helpers.benchmark import benchmark, measure_throughput

    module = _ThreadsSeen()
    specs = [TensorSpec("x", ("batch", 2), "float32")]
    runner = torch_runner(module, specs, ["y"], threads=1)
    x = {"x": np.ones((1, 2), np.float32)}
    with runners.torch_threads(2):
        runner(x)
        assert module.seen == [2]  # the process's count, untouched
        with runner.thread_scope():
            runner(x)
        assert module.seen[-1] == 1 and torch.get_num_threads() == 2
        module.seen.clear()
        result = benchmark(runner, x, warmup=1, runs=3, min_runs=3, progress=False)
        assert module.seen == [1] * 4 and result.threads["intra_op"] == 1
        module.seen.clear()
        measure_throughput(runner, x, requests=4, in_flight=2, warmup=0)
        assert module.seen == [1] * 4 and torch.get_num_threads() == 2


def test_every_runtime_gives_the_same_outputs_for_any_byte_order_and_layout(
    model, program, onnx_path, batch, expected, tmp_path
) -> None:
    """x.astype(">f4") is float32 to numpy: ONNX Runtime read it as garbage (NaN) without an
    error and torch.from_numpy refused it deep inside the runner. Every runner now converts it
    to native byte order; other layouts work as they are."""
    available = available_runtimes()
    made: dict[str, Runner] = {
        "pytorch": torch_runner(model, SPECS, OUTPUTS, threads=1),
        "torch.export": exported_program_runner(program, SPECS, OUTPUTS),
    }
    with pytest.warns(FutureWarning):
        traced = torch.jit.trace(model, torch.randn(2, 3, 8, 8))
        traced.save(str(tmp_path / "tiny.ts"))
        made["torchscript"] = torchscript_runner(tmp_path / "tiny.ts", SPECS, OUTPUTS)
    for key in ("onnxruntime", "onnxruntime-openvino", "openvino"):
        if available[key]:
            made[key] = runners.for_runtime(key, onnx_path, 1, precision="float32")
    assert "onnxruntime" in made or "openvino" in made
    for layout, x in _layouts(batch["input"]).items():
        for key, runner in made.items():
            out = runner({"input": x})["logits"]
            assert np.isfinite(out).all(), (layout, key)
            np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-4, err_msg=f"{layout} {key}")
    x = _layouts(batch["input"])["big-endian"]
    assert runners.native_byte_order({"input": x})["input"].dtype.isnative
    assert not x.dtype.isnative  # the caller's array is not changed
    native = batch["input"]
    assert runners.native_byte_order({"input": native})["input"] is native  # no copy when native


def test_big_endian_integer_inputs_are_converted_too() -> None:
    embed = torch.nn.Embedding(10, 3).eval()
    specs = [TensorSpec("ids", ("batch", "seq"), "int64")]
    runner = torch_runner(embed, specs, ["vectors"])
    ids = np.array([[1, 2, 9]], dtype=np.int64)
    np.testing.assert_array_equal(
        runner({"ids": ids.astype(">i8")})["vectors"], runner({"ids": ids})["vectors"]
    )


# ------------------------------------------------------------------ TorchScript, torch.export, AOTI


def test_torchscript_runner_is_legacy_and_warns(model, batch, expected, tmp_path) -> None:
    with pytest.warns(FutureWarning, match="deprecated"):
        traced = torch.jit.trace(model, torch.randn(2, 3, 8, 8))
    path = tmp_path / "tiny.ts"
    traced.save(str(path))
    with pytest.warns(FutureWarning, match="torch.jit.load"):  # expected, kept visible
        runner = torchscript_runner(path, SPECS, OUTPUTS, threads=1)
    np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=1e-5, atol=1e-6)
    info = runner.describe()
    assert info["runtime"] == "torchscript" and info["legacy"] is True
    assert "deprecated" in info["note"] and runner.name == "TorchScript (legacy)"


def test_exported_program_runner_file_and_object(program, batch, expected, tmp_path) -> None:
    path = tmp_path / "tiny.pt2"
    torch.export.save(program, str(path))
    for source in (path, program):
        runner = exported_program_runner(source, SPECS, OUTPUTS)
        np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=1e-5, atol=1e-6)
        assert runner({"input": batch["input"][:2]})["logits"].shape == (2, 5)
    assert runner.describe()["runtime"] == "torch.export"


@pytest.mark.slow
def test_aoti_runner_tiny_mlp(tmp_path) -> None:
    if not available_runtimes()["aoti"]:
        pytest.skip("AOTInductor needs a C++ compiler")
    import torch._inductor

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    program = torch.export.export(
        mlp, (torch.randn(2, 4),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    import torch._inductor.config

    with torch._inductor.config.patch(compile_threads=1):  # no worker pool for one tiny graph
        package = torch._inductor.aoti_compile_and_package(
            program, package_path=str(tmp_path / "mlp.pt2")
        )
    specs = [TensorSpec("x", ("batch", 4), "float32")]
    runner = runners.aoti_runner(package, specs, ["y"], trusted=True)  # made just above
    x = np.random.default_rng(1).standard_normal((3, 4), dtype=np.float32)
    with torch.no_grad():
        expected = mlp(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(runner({"x": x})["y"], expected, rtol=1e-4, atol=1e-5)
    assert runner.describe()["runtime"] == "aoti"


# ------------------------------------------------------------------ one interface


def test_swapping_the_runner_is_the_only_change(model, program, onnx_path, batch, expected) -> None:
    """Application code written against Runner works unchanged with every runtime here."""

    def classify(runner: Runner, images: np.ndarray) -> list[int]:
        return runner({"input": images})["logits"].argmax(axis=1).tolist()

    candidates: list[Runner] = [
        torch_runner(model, SPECS, OUTPUTS),
        exported_program_runner(program, SPECS, OUTPUTS),
    ]
    if available_runtimes()["onnxruntime"]:
        candidates.append(ort_runner(onnx_path, threads=1))
    if available_runtimes()["openvino"]:
        candidates.append(runners.openvino_runner(onnx_path, precision="f32", threads=1))
    answers = {r.name: classify(r, batch["input"]) for r in candidates}
    assert all(a == expected.argmax(axis=1).tolist() for a in answers.values()), answers
    for runner in candidates:
        info = runner.describe()
        for key in (
            "name",
            "runtime",
            "version",
            "device",
            "providers_requested",
            "providers_actual",
            "threads",
            "artifact",
        ):
            assert key in info, (runner.name, key)


def test_available_runtimes_reports_this_environment() -> None:
    found = available_runtimes()
    assert found["pytorch"] and found["torch.export"] and found["torchscript"]
    assert set(found) >= {
        "pytorch",
        "torchscript",
        "torch.export",
        "aoti",
        "onnxruntime",
        "openvino",
    }
    assert all(isinstance(v, bool) for v in found.values())
    if not _gpu_present():
        assert not found["onnxruntime-cuda"] and not found["pytorch-cuda"]


def test_for_runtime_builds_every_available_runtime(model, batch, expected, onnx_path) -> None:
    available = available_runtimes()
    artifacts = {"pytorch": model, "onnxruntime": onnx_path, "openvino": onnx_path,
                 "onnxruntime-openvino": onnx_path}
    for key, artifact in artifacts.items():
        if not available[key]:
            continue
        runner = runners.for_runtime(key, artifact, 1, inputs=SPECS, output_names=OUTPUTS,
                                     precision="float32")
        assert runner.name == runners.RUNTIME_LABELS[key]
        np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=1e-3, atol=1e-4)
        assert runner.describe()["threads"]["intra_op"] == 1
    with pytest.raises(ValueError, match="inputs= and output_names="):
        runners.for_runtime("pytorch", model)
    with pytest.raises(ValueError, match="only OpenVINO"):
        runners.for_runtime("onnxruntime", onnx_path, precision="bf16")
    with pytest.raises(ValueError, match="unknown runtime"):
        runners.for_runtime("tensorflow", onnx_path)
    assert set(runners.RUNTIME_LABELS) == set(available) == set(runners.RUNTIME_NEEDS)
