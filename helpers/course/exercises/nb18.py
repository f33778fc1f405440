"""Exercises of notebook 18 (ONNX in depth); registered on import."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from helpers.course.exercises.framework import Exercise, Feedback, Wrong, correct, register

_COND_HINT = (
    "Compute the condition as a tensor and give both branches to torch.cond: "
    "torch.cond(x.mean() > 0, lambda t: t.relu() * 3, lambda t: t.abs() - 1, (x,))."
)


def _inputs() -> dict[str, Any]:
    import torch

    base = torch.linspace(-1.0, 2.0, 10).reshape(2, 5)
    return {"mean above 0": base, "mean below 0": -base}


def _check_18_1(answer: Any, original: Any) -> Feedback:
    import onnx
    import onnxruntime as ort
    import torch

    if not isinstance(answer, torch.nn.Module):
        raise Wrong(f"Expected an instance of your nn.Module, got {type(answer).__name__}.",
                    "Define a class with a forward that uses torch.cond, and pass an instance: RouterCond().")
    cases = _inputs()
    for label, x in cases.items():
        with torch.inference_mode():
            got, want = answer(x), original(x)
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-6):
            raise Wrong(f"In PyTorch your module differs from Router for an input with {label}.",
                        "Both branches must compute what Router's branches compute.")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "router.onnx"
        try:
            torch.onnx.export(answer.eval(), (cases["mean above 0"],), path, dynamo=True, input_names=["x"],
                              output_names=["y"], external_data=False, verbose=False)
        except Exception as error:  # noqa: BLE001 - the exporter raises several types
            raise Wrong(f"The exporter refused your module: {type(error).__name__}.", _COND_HINT) from None
        ops = {node.op_type for node in onnx.load(path).graph.node}
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for label, x in cases.items():
            got = session.run(None, {"x": x.numpy()})[0]
            want = original(x).detach().numpy()
            if not np.allclose(got, want, atol=1e-6):
                raise Wrong(f"The exported file is wrong for an input with {label}: the export kept one branch.",
                            _COND_HINT)
    if "If" not in ops:
        return correct("Right in ONNX Runtime for both signs, without an If node: you found a branch-free "
                       f"formula ({', '.join(sorted(ops))}). torch.cond is the general tool.")
    return correct("Correct: the file holds an ONNX If node with both branches, and ONNX Runtime matches Router "
                   "for inputs of either sign.")


register(
    Exercise(
        key="18.1",
        title="Data-dependent control flow with torch.cond",
        prompt=(
            "`Router` branches on the *values* of its input (`x.mean() > 0`), so the dynamo exporter "
            "cannot capture it. Write `RouterCond`, an `nn.Module` that computes the same thing with "
            "`torch.cond`, and give an instance as your answer. The check exports it with "
            "`torch.onnx.export(..., dynamo=True)` and runs inputs of both signs through ONNX Runtime."
        ),
        checker=_check_18_1,
        context=("original",),
        call='exercises.check("18.1", answer, original=Router())',
        solution=(
            "class RouterCond(torch.nn.Module):\n"
            "    def forward(self, x):\n"
            "        return torch.cond(x.mean() > 0, lambda t: t.relu() * 3, lambda t: t.abs() - 1, (x,))\n\n\n"
            "answer = RouterCond()"
        ),
        writes_code=True,
    )
)
