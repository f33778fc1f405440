"""Exercises of notebook 02 (TorchScript and torch.export); registered on import."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    correct,
    register,
)


def _check_02_1(answer: Any, traced: Any, model: Any) -> Feedback:
    import torch

    x = answer if isinstance(answer, torch.Tensor) else torch.as_tensor(np.asarray(answer))
    x = x.to(torch.float32)
    try:
        with torch.inference_mode():
            got, expected = traced(x), model(x)
    except Exception as exc:  # noqa: BLE001
        raise Wrong(
            f"The models could not run your input ({type(exc).__name__}: {str(exc)[:160]}).",
            "Use the shape of the tracing example, e.g. `-positive` or "
            "`torch.randn_like(positive)`.",
        ) from None
    diff = float((got - expected).abs().max())
    if diff > 1e-6:
        return correct(
            f"Yes: the traced model is wrong by {diff:.3g} on your input — its sum takes the "
            "branch the tracing example did not, and tracing only recorded one branch."
        )
    raise Wrong(
        "On this input the traced model happens to be right.",
        "The trace baked in the branch of its example (input sum "
        f"{'>' if float(x.sum()) > 0 else '<='} 0 here). Try an input whose sum has the other "
        "sign.",
    )


register(
    Exercise(
        key="02.1",
        title="Break the trace",
        prompt=(
            "`traced_gate` was traced with a positive example. Give an input tensor (same shape as "
            "`positive`) on which `traced_gate` returns a **wrong** answer compared with `gate`."
        ),
        checker=_check_02_1,
        context=("traced", "model"),
        call='exercises.check("02.1", answer, traced=traced_gate, model=gate)',
        solution="answer = -positive  # negative sum: the branch the trace does not contain",
    )
)


def _check_02_2(answer: Any, model: Any, x: Any) -> Feedback:
    import torch

    if not isinstance(answer, torch.export.ExportedProgram):
        raise Wrong(
            "Expected the ExportedProgram returned by torch.export.export, got "
            f"{type(answer).__name__}."
        )
    module = answer.module()
    eval_model = copy.deepcopy(model).eval()
    for batch in (1, 3):
        feed = torch.cat([x[:1]] * batch)
        try:
            with torch.inference_mode():
                got = module(feed)
        except Exception as exc:  # noqa: BLE001
            raise Wrong(
                f"The program refused a batch of {batch} "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:140]}).",
                "Declare the batch dynamic — dynamic_shapes=({0: torch.export.Dim('batch', "
                "max=32)},) or ({0: torch.export.Dim.AUTO},) — and export with an example batch "
                "of at least 2 (a size-1 example is specialised).",
            ) from None
        with torch.inference_mode():
            expected = eval_model(feed)
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise Wrong(
                f"Batch {batch} gives different outputs from the eval-mode model.",
                "Export the model in eval mode (model.eval()).",
            )
    return correct("Correct: one program, batches of 1 and 3, the same outputs as the model.")


register(
    Exercise(
        key="02.2",
        title="torch.export with a dynamic batch",
        prompt=(
            "Export `model` with `torch.export.export` so that the program accepts **any batch "
            "size from 1 to 32**, and give the `ExportedProgram` as your answer. The check runs "
            "it on batches of 1 and 3 and compares with the model."
        ),
        checker=_check_02_2,
        context=("model", "x"),
        call='exercises.check("02.2", answer, model=model, x=x)',
        writes_code=True,
        solution='batch = torch.export.Dim("batch", min=1, max=32)\n'
        "answer = torch.export.export(model.eval(), (x,), dynamic_shapes=({0: batch},))\n"
        "# x has a batch of 2: an example batch of 1 would be specialised",
    )
)
