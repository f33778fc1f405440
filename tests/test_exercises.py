"""Every exercise accepts the right answer (derived from its context) and rejects a wrong one with feedback."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import envreport, generation, runners
from helpers.course import exercises
from helpers.models import tiny as tiny_models

torch.set_num_threads(1)


def wrong(key: str, answer, **context) -> exercises.Feedback:
    feedback = exercises.evaluate(key, answer, **context)
    assert not feedback.ok and feedback.answered, feedback
    assert feedback.message
    return feedback


def right(key: str, answer, **context) -> exercises.Feedback:
    feedback = exercises.evaluate(key, answer, **context)
    assert feedback.ok, feedback.text()
    return feedback


NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_every_lesson_has_exercises_and_its_notebook_asks_each_one() -> None:
    lessons = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert len(lessons) >= 11
    for path in lessons:
        keys = exercises.all_keys(path.name[:2])
        assert 1 <= len(keys) <= 3, (path.name, keys)
        text = path.read_text(encoding="utf-8")
        unasked = [k for k in keys if f'exercises.check(\\"{k}\\"' not in text]
        assert not unasked, f"{path.name} never calls exercises.check for {unasked}"
    for key in exercises.all_keys():
        ex = exercises.get(key)
        assert ex.prompt and ex.solution and ex.title
        assert ex.call.startswith(f'exercises.check("{key}"'), key


def test_unanswered_never_raises_and_returns_false(capsys) -> None:
    for key in exercises.all_keys():
        assert exercises.check(key, None) is None  # nothing for a notebook cell to display
        assert exercises.evaluate(key, None).ok is False
    assert "not answered yet" in capsys.readouterr().out


def test_show_and_solution_print_outside_jupyter(capsys) -> None:
    exercises.show("04.1")
    exercises.solution("04.1")
    out = capsys.readouterr().out
    assert "Exercise 04.1" in out and "Solution to exercise 04.1" in out and "idxmin" in out


def test_unknown_key_is_an_author_error() -> None:
    with pytest.raises(KeyError, match="known: 00.1"):
        exercises.check("99.9", 1)


def test_missing_context_and_raising_answers_are_feedback() -> None:
    fb = wrong("04.1", ("x", 1.0))
    assert "table=" in fb.message

    def broken(*args):
        raise ZeroDivisionError("oops")

    fb = wrong("07.1", broken, attention_mask=np.ones((1, 3), np.int64))
    assert "ZeroDivisionError" in fb.message


@pytest.fixture(scope="module")
def report():
    return envreport.report()


def test_00_environment(report) -> None:
    right("00.1", list(report.ort_usable_providers), report=report)
    fb = wrong("00.1", [*report.ort_usable_providers, "CUDAExecutionProvider"], report=report)
    assert "CUDAExecutionProvider" in fb.message
    right("00.2", report.environment.upper(), report=report)
    other = next(e for e in ("cpu", "gpu", "openvino") if e != report.environment)
    assert "ONNX Runtime package" in wrong("00.2", other, report=report).hint


def bn_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(4 * 6 * 6, 5),
    ).eval()


def test_01_inference_done_right() -> None:
    model, x = bn_model(), torch.randn(2, 3, 8, 8)

    def good(m, batch):
        m.eval()
        with torch.inference_mode():
            return m(batch)

    def no_eval(m, batch):
        with torch.inference_mode():
            return m(batch)

    def no_inference_mode(m, batch):
        return m.eval()(batch)

    right("01.1", good, model=model, x=x)
    assert "eval()" in wrong("01.1", no_eval, model=model, x=x).hint
    assert "inference_mode" in wrong("01.1", no_inference_mode, model=model, x=x).hint
    right("01.2", ["b", "d", "e"])
    assert "(a)" in wrong("01.2", ["a", "b", "d", "e"]).message


def test_02_trace_and_export() -> None:
    gate = tiny_models.SignGate()
    positive, _ = tiny_models.positive_and_negative_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(gate, positive)
    right("02.1", -positive, traced=traced, model=gate)
    assert "other sign" in wrong("02.1", positive * 2, traced=traced, model=gate).hint

    model = tiny_models.TinyClassifier().eval()
    x = tiny_models.example_images(batch=2, size=32)
    batch = torch.export.Dim("batch", min=1, max=32)
    right("02.2", torch.export.export(model, (x,), dynamic_shapes=({0: batch},)), model=model, x=x)
    fb = wrong("02.2", torch.export.export(model, (x,)), model=model, x=x)
    assert "Dim" in fb.hint
    wrong("02.2", model, model=model, x=x)


def gemm_onnx(path: Path, seed: int = 0, noise: float = 0.0) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(seed)
    linear = torch.nn.Linear(6, 10).eval()
    weight = linear.weight.detach().numpy().copy()
    if noise:
        weight = weight + np.random.default_rng(1).normal(0, noise, weight.shape).astype(np.float32)
    envreport._probe_onnx_file(weight, linear.bias.detach().numpy(), path)
    return path, torch.nn.Sequential(linear, torch.nn.ReLU()).eval()


def test_03_parity_and_session(tmp_path: Path) -> None:
    path, module = gemm_onnx(tmp_path / "m.onnx")
    spec = [runners.TensorSpec("x", ("batch", 6), "float32")]
    eager = runners.torch_runner(module, spec, ["y"])
    ort = runners.ort_runner(path)
    inputs = {"x": np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)}
    diff = float(np.abs(eager(inputs)["y"] - ort(inputs)["y"]).max())
    right("03.1", diff, reference=eager, candidate=ort, inputs=inputs)
    wrong("03.1", diff + 1.0, reference=eager, candidate=ort, inputs=inputs)

    import onnxruntime

    def session(threads: int, level: str, model: Path = path) -> onnxruntime.InferenceSession:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, level)
        return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    right("03.2", session(1, "ORT_ENABLE_BASIC"), onnx_path=path, inputs=inputs)
    fb = wrong("03.2", session(2, "ORT_ENABLE_BASIC"), onnx_path=path, inputs=inputs)
    assert "intra_op_num_threads = 1" in fb.hint
    fb = wrong("03.2", session(1, "ORT_ENABLE_ALL"), onnx_path=path, inputs=inputs)
    assert "ORT_ENABLE_ALL" in fb.message and "ORT_ENABLE_BASIC" in fb.hint
    fb = wrong("03.2", runners.ort_runner(path, threads=1), onnx_path=path, inputs=inputs)
    assert "InferenceSession" in fb.hint
    other, _ = gemm_onnx(tmp_path / "other.onnx", noise=0.5)
    fb = wrong("03.2", session(1, "ORT_ENABLE_BASIC", other), onnx_path=path, inputs=inputs)
    assert "same file" in fb.hint


def test_04_benchmark_table_and_int8_agreement(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "runner": ["PyTorch eager", "ORT CPU EP", "OpenVINO"] * 2,
            "batch": [1, 1, 1, 8, 8, 8],
            "threads": [2] * 6,
            "p50_ms": [30.0, 20.0, 24.0, 200.0, 90.0, 80.0],
        }
    )
    right("04.1", ("ORT CPU EP", 1.5), table=table, threads=2)
    assert "faster" in wrong("04.1", ("OpenVINO", 1.25), table=table, threads=2).message
    assert "Upside down" in wrong("04.1", ("ORT CPU EP", 1 / 1.5), table=table, threads=2).message

    fp32 = runners.ort_runner(gemm_onnx(tmp_path / "a.onnx")[0])
    int8 = runners.ort_runner(gemm_onnx(tmp_path / "b.onnx", noise=0.3)[0])
    pixels = np.random.default_rng(2).standard_normal((32, 6)).astype(np.float32)
    expected = float(
        (fp32({"x": pixels})["y"].argmax(-1) == int8({"x": pixels})["y"].argmax(-1)).mean()
    )
    assert 0 < expected < 1

    def agreement(a, b, p):
        top = [r({r.inputs[0].name: p})[r.output_names[0]].argmax(-1) for r in (a, b)]
        return float((top[0] == top[1]).mean())

    right("04.2", agreement, fp32=fp32, int8=int8, pixels=pixels)
    right("04.2", expected, fp32=fp32, int8=int8, pixels=pixels)
    assert (
        "percentage" in wrong("04.2", 100 * expected, fp32=fp32, int8=int8, pixels=pixels).message
    )
    assert (
        "disagreement" in wrong("04.2", 1 - expected, fp32=fp32, int8=int8, pixels=pixels).message
    )


def test_05_best_span() -> None:
    rng = np.random.default_rng(0)
    start, end = rng.standard_normal((3, 40)), rng.standard_normal((3, 40))
    mask = np.zeros((3, 40), bool)
    mask[:, 8:38] = True

    def good(s, e, m, max_len):
        m = np.asarray(m, bool)
        scores = np.add.outer(s, e)
        si, ei = np.indices(scores.shape)
        valid = np.outer(m, m) & (ei >= si) & (ei - si < max_len)
        return np.unravel_index(np.where(valid, scores, -np.inf).argmax(), scores.shape)

    def naive(s, e, m, max_len):
        return int(np.argmax(s)), int(np.argmax(e))

    ctx = dict(start_logits=start, end_logits=end, context_mask=mask, max_answer_len=5)
    right("06.1", good, **ctx)
    assert wrong("06.1", naive, **ctx).hint


def test_06_positions_and_cache() -> None:
    mask = np.array([[0, 1, 1], [1, 1, 1]], np.int64)
    right("07.1", lambda m: np.cumsum(m, -1) - 1, attention_mask=mask)
    assert (
        "cumsum"
        in wrong(
            "07.1", lambda m: np.tile(np.arange(m.shape[1]), (len(m), 1)), attention_mask=mask
        ).hint
    )

    layout = generation.CacheLayout(num_layers=3, num_kv_heads=2, head_dim=32)
    expected = layout.cache_bytes_per_token(3) * 10
    right("07.2", expected, layout=layout, batch=3, tokens=10)
    assert "AND values" in wrong("07.2", expected // 2, layout=layout, batch=3, tokens=10).hint
