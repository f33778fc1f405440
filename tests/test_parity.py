"""helpers.parity: numeric and task-level comparison, with real runners on a tiny MLP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import parity
from helpers.parity import (
    assert_parity,
    compare_outputs,
    default_tolerances,
    parity_table,
    same_tokens,
    top1_agreement,
    topk_agreement,
    topk_overlap,
)
from helpers.runners import TensorSpec, available_runtimes, ort_runner, torch_runner

torch.set_num_threads(min(2, torch.get_num_threads()))

SPECS = [TensorSpec("x", ("batch", 6), "float32")]


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10)
    ).eval()


@pytest.fixture(scope="module")
def mlp() -> torch.nn.Module:
    return _mlp()


@pytest.fixture(scope="module")
def feed() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).standard_normal((8, 6), dtype=np.float32)}


@pytest.fixture(scope="module")
def onnx_path(mlp: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = tmp_path_factory.mktemp("parity") / "mlp.onnx"
    torch.onnx.export(
        mlp,
        (torch.randn(2, 6),),
        str(path),
        dynamo=True,
        input_names=["x"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        external_data=False,
        verbose=False,
    )
    return path


# ------------------------------------------------------------------ tolerances and numbers


def test_default_tolerances_follow_precision_and_runtime() -> None:
    assert default_tolerances("float32", "onnxruntime") == (1e-3, 1e-4)
    assert default_tolerances(np.float32, "openvino") == (1e-3, 1e-4)
    assert default_tolerances("float32", "torch.export") == (1e-4, 1e-5)
    assert default_tolerances("int64", "onnxruntime") == (0.0, 0.0)  # token ids: exact
    loose = [default_tolerances(d, "onnxruntime") for d in ("float16", "bfloat16", "int8")]
    assert loose == sorted(loose) and all(r > 1e-3 for r, _ in loose)
    # the documented int8 row (rtol 1e-1, atol 5e-1), written out rather than read back from the function
    assert default_tolerances("int8", "onnxruntime") == (1e-1, 5e-1)
    assert default_tolerances("float32", "onnxruntime-int8") == (1e-1, 5e-1)  # named by its runtime
    assert default_tolerances("int4", "onnxruntime") == (1e-1, 5e-1)  # int4 weights: int8's bounds


def test_compare_outputs_reports_diffs_and_failures() -> None:
    ref = {"a": np.array([1.0, 2.0, 0.0], np.float32), "ids": np.array([1, 2, 3]), "b": np.ones(2)}
    cand = {"a": ref["a"] + np.float32(5e-5), "ids": np.array([1, 2, 4]), "b": np.ones(3)}
    report = compare_outputs(ref, cand, runtime="onnxruntime")
    assert report["a"]["allclose"] and report["a"]["max_abs"] == pytest.approx(5e-5, rel=1e-2)
    assert report["a"]["max_rel"] == pytest.approx(5e-5, rel=1e-2)  # zero reference excluded
    assert report["a"]["worst_ratio"] <= 1.0
    assert not report["ids"]["allclose"] and report["ids"]["rtol"] == 0.0
    assert not report["b"]["allclose"] and "shape" in report["b"]["note"]
    tight = compare_outputs(ref, cand, rtol=0.0, atol=1e-6)
    assert not tight["a"]["allclose"] and tight["a"]["worst_ratio"] > 1
    missing = compare_outputs(ref, {"a": ref["a"]})
    assert missing["ids"]["note"] == "missing in candidate"
    nan = compare_outputs({"a": ref["a"]}, {"a": np.array([1.0, np.nan, 0.0], np.float32)})
    assert not nan["a"]["allclose"] and "NaN" in nan["a"]["note"]


# ------------------------------------------------------------------ task level


def test_top1_and_topk_agreement() -> None:
    ref = np.array([[0.1, 0.9, 0.5, 0.0], [2.0, 1.0, 0.0, -1.0]])
    swapped_2_3 = np.array(
        [[0.1, 0.9, 0.5, 0.0], [2.0, 0.0, 1.0, -1.0]]
    )  # top-1 same, order differs
    assert top1_agreement(ref, swapped_2_3) == 1.0
    assert topk_agreement(ref, swapped_2_3, k=2) == 0.5  # row 2 top-2 sets {0,1} vs {0,2}
    assert topk_agreement(ref, swapped_2_3, k=3) == 1.0  # same sets, different order is fine
    assert topk_overlap(ref, swapped_2_3, k=2) == 0.75
    flipped = ref[:, ::-1].copy()
    assert top1_agreement(ref, flipped) == 0.0 and topk_agreement(ref, flipped, k=1) == 0.0
    assert top1_agreement(ref[0], ref[0]) == 1.0  # one row of logits
    seq = np.random.default_rng(0).standard_normal((2, 3, 7))  # [batch, seq, vocab]
    assert top1_agreement(seq, seq) == 1.0 and topk_agreement(seq, seq, k=3) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        top1_agreement(ref, ref[:1])


def test_same_tokens() -> None:
    assert same_tokens([1, 2, 3], np.array([[1, 2, 3]]))
    assert not same_tokens([1, 2, 3], [1, 2])


# ------------------------------------------------------------------ with real runners


def test_parity_table_and_assert_with_real_runners(mlp, feed, onnx_path) -> None:
    reference = torch_runner(mlp, SPECS, ["logits"])
    candidates = [ort_runner(onnx_path, threads=1)]
    if available_runtimes()["openvino"]:
        from helpers.runners import openvino_runner

        candidates.append(openvino_runner(onnx_path, threads=1))  # default precision, maybe bf16
    table = parity_table(
        reference,
        candidates,
        feed,
        task_checks={"top1": lambda r, c: top1_agreement(r["logits"], c["logits"])},
    )
    assert isinstance(table, pd.DataFrame) and len(table) == len(candidates)
    assert list(table.columns[:4]) == ["runner", "runtime", "precision", "output"]
    assert {"max_abs_diff", "max_rel_diff", "allclose", "rtol", "atol", "top1"} <= set(
        table.columns
    )
    assert table.attrs["reference"] == "PyTorch eager"
    ort_row = table.iloc[0]
    assert ort_row["runner"] == "ORT CPU" and ort_row["max_abs_diff"] < 1e-5
    assert (ort_row["rtol"], ort_row["atol"]) == (1e-3, 1e-4)
    assert_parity(table, columns=("allclose", "top1"))  # tolerances follow each runner's precision


def test_assert_parity_failure_is_readable(mlp, feed) -> None:
    reference = torch_runner(mlp, SPECS, ["logits"], name="reference")
    wrong = torch_runner(_mlp(seed=1), SPECS, ["logits"], name="wrong weights")
    table = parity_table(
        reference,
        {"same model": torch_runner(mlp, SPECS, ["logits"]), "wrong weights": wrong},
        feed,
        task_checks={
            "top1": lambda r, c: top1_agreement(r["logits"], c["logits"]),
            "top1_equal": lambda r, c: top1_agreement(r["logits"], c["logits"]) == 1.0,
        },
    )
    assert list(table["runner"]) == ["same model", "wrong weights"]
    assert_parity(
        table[table["runner"] == "same model"], columns=("allclose", "top1", "top1_equal")
    )
    with pytest.raises(AssertionError) as info:
        assert_parity(table, columns=("allclose", "top1_equal"))
    message = str(info.value)
    assert "against 'reference'" in message and "1 of 2 rows" in message
    assert "wrong weights / logits" in message and "atol 1e-05" in message
    assert "max |diff|" in message and "top1_equal=" in message and "same model /" not in message
    assert_parity(table, columns=("top1",), thresholds={"top1": 0.0})  # thresholds for numbers
    with pytest.raises(KeyError, match="no column"):
        assert_parity(table, columns=("nope",))


def test_int8_model_gets_int8_tolerances(mlp, feed, onnx_path, tmp_path) -> None:
    quantization = pytest.importorskip("onnxruntime.quantization")
    int8_path = tmp_path / "mlp.int8.onnx"
    quantization.quantize_dynamic(str(onnx_path), str(int8_path))
    runner = ort_runner(int8_path, threads=1, name="ORT int8")
    assert runner.precision == "int8"  # found from the quantisation ops in the graph
    table = parity_table(
        torch_runner(mlp, SPECS, ["logits"]),
        [runner],
        feed,
        task_checks={"top1": lambda r, c: top1_agreement(r["logits"], c["logits"])},
    )
    row = table.iloc[0]
    assert row["precision"] == "int8"
    assert (row["rtol"], row["atol"]) == (1e-1, 5e-1)  # the documented int8 tolerances
    assert row["max_abs_diff"] > 1e-5  # quantisation really changed the numbers
    assert_parity(table, columns=("allclose",))


def test_classification_agreement_separates_confident_rows() -> None:
    reference = np.array(
        [
            [5.0, 0.0, 0.0],  # confident: class 0
            [1.0, 0.9, 0.0],  # near-tie between 0 and 1
            [0.0, 0.0, 6.0],  # confident: class 2
        ]
    )
    candidate = np.array([[4.0, 0.0, 0.0], [0.9, 1.0, 0.0], [0.0, 7.0, 0.0]])
    row = parity.classification_agreement(reference, candidate, k=2)
    assert row["top1_agreement"] == pytest.approx(1 / 3)
    assert row["confident"] == 2
    assert row["top1_agreement_confident"] == pytest.approx(0.5)
    assert row["max_abs_diff"] == pytest.approx(7.0)
    tied = parity.classification_agreement(reference[1:2], reference[1:2])
    assert tied["top1_agreement"] == 1.0 and np.isnan(tied["top1_agreement_confident"])


def test_agreement_floor_is_the_binomial_quantile() -> None:
    # 24 examples at a true 97 %: P(<= 4 misses) = 0.9992 >= 0.999, P(<= 3) = 0.994 < 0.999
    assert parity.agreement_floor(24, 0.97) == pytest.approx(20 / 24)
    assert parity.agreement_floor(24, 0.97, alpha=0.01) == pytest.approx(21 / 24)
    assert parity.agreement_floor(96, 0.97) > parity.agreement_floor(24, 0.97)  # more data, tighter
    assert parity.agreement_floor(10, 1.0) == 1.0
    with pytest.raises(ValueError, match="n must be"):
        parity.agreement_floor(0, 0.9)
    with pytest.raises(ValueError, match="expected"):
        parity.agreement_floor(10, 1.5)


def test_bf16_atol_scales_with_the_reference_magnitude() -> None:
    reference = {"logits": np.array([[10.0, 0.0, -8.0]], dtype=np.float32)}
    near_zero_error = {"logits": np.array([[10.1, 0.3, -8.1]], dtype=np.float32)}
    row = compare_outputs(reference, near_zero_error, precision="bfloat16")["logits"]
    assert row["atol"] == pytest.approx(0.5) and row["allclose"]  # 5e-2 x max |ref| of 10
    wrong = {"logits": np.array([[0.0, 10.0, -8.0]], dtype=np.float32)}
    assert not compare_outputs(reference, wrong, precision="bfloat16")["logits"]["allclose"]
    # fp32 and explicit tolerances are not scaled
    assert compare_outputs(reference, reference, precision="float32")["logits"]["atol"] == 1e-4
    explicit = compare_outputs(reference, near_zero_error, precision="bfloat16", atol=0.05)
    assert explicit["logits"]["atol"] == 0.05 and not explicit["logits"]["allclose"]
