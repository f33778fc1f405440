"""Tests for helpers.export: dynamo ONNX export of tiny models, checked with ONNX Runtime."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from helpers.export import (
    DynamicShapeError,
    export_onnx,
    input_specs_from_onnx,
    onnx_summary,
    op_histogram,
)

ort = pytest.importorskip("onnxruntime")


class TinyConvNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 5)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(pixels))
        return self.head(x.mean(dim=(2, 3)))


class TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 8)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (self.embed(ids) * mask.unsqueeze(-1)).sum(dim=1)


@pytest.fixture(scope="module")
def tiny() -> TinyConvNet:
    return TinyConvNet().eval()


@pytest.fixture(scope="module")
def exported(tiny: TinyConvNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "tiny.onnx"
    with warnings.catch_warnings():
        # the dynamo path must be free of deprecation warnings (CONTRIBUTING.md)
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", FutureWarning)
        return export_onnx(
            tiny,
            (torch.randn(2, 3, 8, 8),),
            path,
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_shapes={"pixels": {0: "batch"}},
        )


def test_single_file_has_no_data_sibling(exported: Path) -> None:
    assert exported.exists()
    assert not exported.with_name(exported.name + ".data").exists()
    assert list(exported.parent.iterdir()) == [exported]
    onnx.checker.check_model(onnx.load(str(exported)))


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_dynamic_batch_runs_in_ort_and_matches_torch(
    exported: Path, tiny: TinyConvNet, batch: int
) -> None:
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(batch).standard_normal((batch, 3, 8, 8)).astype(np.float32)
    (logits,) = session.run(None, {"pixels": x})
    with torch.inference_mode():
        expected = tiny(torch.from_numpy(x)).numpy()
    assert logits.shape == (batch, 5)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_summary_shows_symbolic_batch(exported: Path) -> None:
    summary = onnx_summary(exported)
    assert list(summary["kind"]) == ["input", "output"]
    assert list(summary["name"]) == ["pixels", "logits"]
    assert summary.loc[0, "shape"] == ("batch", 3, 8, 8)
    assert summary.loc[1, "shape"] == ("batch", 5)
    assert set(summary["dtype"]) == {"float32"}
    assert summary.attrs["opset"] >= 18 and summary.attrs["nodes"] > 0


def test_op_histogram_matches_graph(exported: Path) -> None:
    hist = op_histogram(exported)
    graph = onnx.load(str(exported)).graph
    assert hist.sum() == len(graph.node)
    assert hist.to_dict() == dict(Counter(n.op_type for n in graph.node))
    assert list(hist) == sorted(hist, reverse=True)
    assert "Conv" in hist.index


def test_input_specs_from_onnx(exported: Path) -> None:
    pytest.importorskip("helpers.runners")
    (spec,) = input_specs_from_onnx(exported)
    assert (spec.name, spec.shape, spec.dtype) == ("pixels", ("batch", 3, 8, 8), "float32")


def test_batch_one_example_for_dynamic_dim_is_rejected(tiny: TinyConvNet, tmp_path: Path) -> None:
    with pytest.raises(DynamicShapeError, match=r"size >= 2") as info:
        export_onnx(
            tiny,
            (torch.randn(1, 3, 8, 8),),
            tmp_path / "bad.onnx",
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    assert "'pixels' axis 0" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / "bad.onnx").exists()


def test_keyword_inputs_external_data_and_reexport_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = TwoInputs().eval()
    example = {"ids": torch.randint(0, 10, (2, 3)), "mask": torch.ones(2, 3)}
    shapes = {"ids": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}}
    path = tmp_path / "two.onnx"
    export_onnx(
        model, example, path, input_names=["ids", "mask"], output_names=["pooled"],
        dynamic_shapes=shapes, single_file=False,
    )  # fmt: skip
    assert path.with_name("two.onnx.data").exists()
    assert "[torch.onnx]" not in capsys.readouterr().out  # exporter progress is silenced
    specs = onnx_summary(path)
    assert specs.loc[0, "shape"] == ("batch", "seq") and specs.loc[0, "dtype"] == "int64"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(
        None, {"ids": np.zeros((4, 7), np.int64), "mask": np.ones((4, 7), np.float32)}
    )
    assert out.shape == (4, 8)
    # exporting again as a single file at the same path removes the stale .data file
    export_onnx(
        model, example, path, input_names=["ids", "mask"], output_names=["pooled"],
        dynamic_shapes=shapes,
    )  # fmt: skip
    assert not path.with_name("two.onnx.data").exists()


def test_legacy_exporter_warns(tiny: TinyConvNet, tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning):
        path = export_onnx(
            tiny,
            (torch.randn(2, 3, 8, 8),),
            tmp_path / "legacy.onnx",
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_shapes={"pixels": {0: "batch"}},
            legacy=True,
        )
    assert onnx_summary(path).loc[0, "shape"] == ("batch", 3, 8, 8)


def test_dynamic_shapes_keyed_by_onnx_input_names_and_auto_warning() -> None:
    from helpers.export import _check_examples, _normalise_dynamic_shapes

    model = torch.nn.Sequential(torch.nn.Linear(4, 2))  # forward(input): name differs from ONNX
    example = (torch.randn(2, 4),)
    shapes, pairs = _normalise_dynamic_shapes(model, example, {}, {"x": {0: "batch"}}, ["x"])
    assert shapes == ({0: "batch"},)
    assert [(p[0], p[1], p[3]) for p in pairs] == [("'x'", "x", {0: "batch"})]
    _check_examples(pairs)  # batch 2: fine
    _, pairs = _normalise_dynamic_shapes(
        model, (torch.randn(1, 4),), {}, {"input": {0: torch.export.Dim.AUTO}}, ["x"]
    )
    with pytest.warns(UserWarning, match="Dim.AUTO"):
        _check_examples(pairs)  # AUTO lets torch decide: a warning, not an error


def test_error_line_skips_blank_lines_colours_and_cuts() -> None:
    from helpers.export import error_line

    assert error_line(RuntimeError("\n\n  'Tuple' has no attribute 'x'.:\n  File ...")) == (
        "RuntimeError: 'Tuple' has no attribute 'x'.:"
    )
    assert error_line(ValueError("\x1b[96mstep 1/3\x1b[0m failed\nmore")) == "ValueError: step 1/3 failed"
    assert error_line(KeyError()) == "KeyError"
    cut = error_line(RuntimeError("x" * 500), max_chars=20)
    assert cut == "RuntimeError: " + "x" * 19 + "…"


def test_quiet_failed_export_keeps_the_graph_once_on_the_error(
    capfd: pytest.CaptureFixture[str],
) -> None:
    import logging

    from helpers.export import quiet_failed_export
    from helpers.models.tiny import SignGate, positive_and_negative_inputs

    positive, _ = positive_and_negative_inputs()
    logger = logging.getLogger("torch.fx.experimental.symbolic_shapes")
    level = logger.level
    with quiet_failed_export() as captured, pytest.raises(Exception) as info:  # noqa: PT011
        torch.export.export(SignGate(), (positive,))
    err = capfd.readouterr().err
    assert "def forward" not in err and "Unable to find user code" not in err
    assert "def forward" in captured.getvalue()  # torch printed it (into the buffer)
    assert "item" in info.value.partial_fx_graph  # and the error carries it once
    assert logger.level == level
