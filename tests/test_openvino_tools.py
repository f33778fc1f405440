"""helpers.openvino_tools: throughput runner (and helpers.benchmark.measure_throughput on it), compile cache,
benchmark_app, AUTO."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from helpers import openvino_tools as ovt
from helpers.benchmark import benchmark, measure_throughput, throughput_frame
from helpers.models.tiny import tiny_classifier_onnx
from helpers.runners import (
    InputError,
    ProviderFallbackWarning,
    ProviderUnavailableError,
    openvino_runner,
)

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory):
    return tiny_classifier_onnx(tmp_path_factory.mktemp("ov") / "toy.onnx", num_classes=6)


@pytest.fixture(scope="module")
def latency(onnx_path):
    return openvino_runner(onnx_path, precision="f32", hint="LATENCY")


@pytest.fixture(scope="module")
def throughput(onnx_path):
    return ovt.openvino_throughput_runner(onnx_path, precision="f32", streams=2, num_requests=3)


def pixels(seed: int, batch: int = 1, size: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"pixel_values": rng.normal(size=(batch, 3, size, size)).astype(np.float32)}


@pytest.mark.parametrize(("batch", "size"), [(1, 16), (4, 9), (2, 32)])
def test_throughput_mode_gives_the_same_outputs_as_latency_mode(latency, throughput, batch, size) -> None:
    feed = pixels(batch * size, batch, size)
    want = latency(feed)["logits"]
    got = throughput(feed)["logits"]
    assert got.shape == (batch, 6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    many = throughput.run_many([feed] * 5)
    assert len(many) == 5
    for item in many:
        np.testing.assert_allclose(item["logits"], want, rtol=1e-5, atol=1e-6)


def test_concurrent_calls_from_many_threads_are_all_correct(latency, throughput) -> None:
    feeds = [pixels(seed) for seed in range(48)]
    expected = [latency(f)["logits"] for f in feeds]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(offset: int) -> None:
        barrier.wait()
        try:
            for index in range(offset, len(feeds), 8):
                results[index] = throughput(feeds[index])["logits"]
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    def bulk() -> None:  # run_many at the same time as the threaded calls
        try:
            for index, out in enumerate(throughput.run_many(feeds[:16])):
                np.testing.assert_allclose(out["logits"], expected[index], rtol=1e-5, atol=1e-6)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    threads.append(threading.Thread(target=bulk))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(results) == list(range(len(feeds)))
    for index, want in enumerate(expected):  # every caller got its own answer, not a neighbour's
        np.testing.assert_allclose(results[index], want, rtol=1e-5, atol=1e-6)


def test_describe_reports_what_openvino_chose(throughput, onnx_path) -> None:
    info = throughput.describe()
    assert info["runtime"] == "openvino" and info["performance_hint"] == "THROUGHPUT"
    assert info["threads"]["streams"] == 2 and info["infer_requests"] == 3
    assert info["threads"]["intra_op"] >= 1
    assert info["providers_actual"] == ["CPU"] and info["precision"] == "float32"
    default = ovt.openvino_throughput_runner(onnx_path, hint="LATENCY")
    assert default.settings["NUM_STREAMS"] == 1
    assert default.num_requests == default.settings["OPTIMAL_NUMBER_OF_INFER_REQUESTS"]
    assert throughput.output_specs[0].name == "logits" and throughput.output_specs[0].dtype == "float32"


def test_bad_inputs_are_clear_and_do_not_poison_the_runner(throughput) -> None:
    good = pixels(1)
    with pytest.raises(InputError, match="float64"):
        throughput({"pixel_values": good["pixel_values"].astype(np.float64)})
    with pytest.raises(InputError, match=r"batches\[1\]"):
        throughput.run_many([good, {"pixel_values": good["pixel_values"][0]}])
    with pytest.raises(InputError, match="missing"):
        throughput({"x": good["pixel_values"]})
    assert throughput(good)["logits"].shape == (1, 6)
    assert len(throughput.run_many([good, good])) == 2


def test_benchmark_and_measure_throughput_accept_the_runner(latency, throughput) -> None:
    feed = pixels(2)
    result = benchmark(throughput, feed, runs=5, warmup=1, progress=False)
    assert result.runs == 5 and result.threads == {"intra_op": throughput.settings["INFERENCE_NUM_THREADS"],
                                                   "streams": 2}
    fast = measure_throughput(throughput, feed, requests=20)
    assert fast.method == "async" and fast.in_flight == 3 and fast.requests == 20
    assert len(fast.latencies_ms) == 20 and fast.items_per_s > 0
    threaded = measure_throughput(latency, pixels(3, batch=2), requests=10, in_flight=2)
    assert threaded.method == "threads" and threaded.batch_size == 2 and threaded.in_flight == 2
    assert threaded.items_per_s == pytest.approx(20 / threaded.seconds)
    table = throughput_frame([fast, threaded])
    assert list(table["runner"]) == [throughput.name, latency.name]
    with pytest.raises(TypeError, match="queues requests itself"):
        measure_throughput(latency, feed, method="async")
    with pytest.raises(ValueError, match="request count"):
        measure_throughput(throughput, feed, in_flight=7)


def test_cache_dir_is_created_under_the_given_folder(onnx_path, tmp_path) -> None:
    cache = tmp_path / "outputs" / "ov_cache"
    first = ovt.openvino_throughput_runner(onnx_path, cache_dir=cache)
    assert cache.is_dir() and ovt.cache_files(cache), list(cache.iterdir())
    assert first.describe()["cache_dir"] == str(cache) and first.describe()["loaded_from_cache"] is False
    second = ovt.openvino_throughput_runner(onnx_path, cache_dir=cache)
    assert second.settings["LOADED_FROM_CACHE"] is True
    np.testing.assert_array_equal(first(pixels(5))["logits"], second(pixels(5))["logits"])


@pytest.mark.parametrize("truncate", [False, True], ids=["junk", "truncated"])
def test_a_corrupt_cache_is_recompiled_not_trusted(onnx_path, tmp_path, truncate: bool) -> None:
    cache = tmp_path / "cache"
    _, record = ovt.timed_compile(onnx_path, cache_dir=cache)
    assert record.loaded_from_cache is False and record.cache_files == 1
    damaged = ovt.corrupt_cache(cache, truncate=truncate)
    assert len(damaged) == 1
    compiled, record = ovt.timed_compile(onnx_path, cache_dir=cache)
    assert record.loaded_from_cache is False  # recompiled from the model
    want = openvino_runner(onnx_path)(pixels(9))["logits"]
    got = compiled.create_infer_request().infer({0: pixels(9)["pixel_values"]})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    _, record = ovt.timed_compile(onnx_path, cache_dir=cache)
    assert record.loaded_from_cache is True  # the blob was rewritten


def test_cache_experiment_table(onnx_path, tmp_path) -> None:
    table = ovt.cache_experiment(onnx_path, tmp_path / "c", reference_inputs=pixels(4))
    assert list(table["loaded_from_cache"]) == [False, False, True, False, True]
    assert list(table["cache_files"]) == [0, 1, 1, 1, 1]
    assert (table["max_abs_diff"] == 0).all() and (table["seconds"] > 0).all()
    again = ovt.cache_experiment(onnx_path, tmp_path / "c")  # a warm cache is emptied first
    assert list(again["loaded_from_cache"]) == [False, False, True, False, True]


def test_benchmark_app_runs_and_is_parsed(onnx_path, tmp_path) -> None:
    result = ovt.run_benchmark_app(onnx_path, tmp_path / "report", hint="latency", seconds=1,
                                   data_shape="[1,3,16,16]", timeout_s=120)
    assert "-ip" in result.command and "f32" in result.command
    assert result.api == "sync" and result.requests == 1
    assert result.mode == "inference only"
    assert result.settings["PERFORMANCE_HINT"] == "LATENCY" and result.settings["NUM_STREAMS"] == "1"
    row = result.row()
    assert row["items_per_s"] > 0 and row["latency_p50_ms"] > 0 and row["requests"] >= 1
    assert row["in_flight"] == 1 and row["streams"] == 1
    with pytest.raises(RuntimeError, match="benchmark_app failed"):
        ovt.run_benchmark_app(tmp_path / "missing.onnx", tmp_path / "r2", seconds=1, timeout_s=120)


def test_command_line_follows_the_options(onnx_path) -> None:
    cmd = ovt.benchmark_app_command(onnx_path, hint="throughput", requests=4, streams=2, threads=1,
                                    cache_dir="/tmp/c", inference_only=False, input_precision=None)
    joined = " ".join(cmd)
    assert "-hint throughput" in joined and "-nireq 4" in joined and "-nstreams 2" in joined
    assert "-nthreads 1" in joined and "-cdir /tmp/c" in joined
    assert "-inference_only" not in cmd and "-ip" not in cmd


def test_missing_device_falls_back_loudly(onnx_path) -> None:
    import openvino as ov

    if "GPU" in ov.Core().available_devices:
        pytest.skip("this machine has an OpenVINO GPU device")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner = ovt.openvino_throughput_runner(onnx_path, device="GPU")
    assert any(issubclass(w.category, ProviderFallbackWarning) for w in caught)
    assert runner.describe()["providers_actual"] == ["CPU"] and "GPU not available" in runner.fallback
    with pytest.raises(ProviderUnavailableError):
        ovt.openvino_throughput_runner(onnx_path, device="GPU", strict=True)


def test_auto_device_report(onnx_path) -> None:
    report = ovt.auto_device_report(onnx_path)
    assert report["execution_devices"]
    assert all(d.split(".")[0] in {a.split(".")[0] for a in report["available_devices"]}
               for d in report["execution_devices"])
    assert report["gpu_present"] == any(d.startswith("GPU") for d in report["available_devices"])
    if not report["gpu_present"]:
        assert report["execution_devices"] == ["CPU"]
    assert "NUM_STREAMS" not in ovt.compiled_settings(report["compiled"])
