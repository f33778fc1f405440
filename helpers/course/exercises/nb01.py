"""Exercises of notebook 01 (native PyTorch); registered on import."""

from __future__ import annotations

import copy
from typing import Any

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    as_names,
    correct,
    register,
)


def _check_01_1(answer: Any, model: Any, x: Any) -> Feedback:
    import torch

    predict = as_function(answer, "predict(model, batch) -> logits")
    reference = copy.deepcopy(model).eval()
    with torch.inference_mode():
        expected = reference(x)
    trial = copy.deepcopy(model).train()  # as it might come out of a training loop
    before = {k: v.clone() for k, v in trial.state_dict().items()}
    out = predict(trial, x)
    if not isinstance(out, torch.Tensor):
        raise Wrong(f"predict returned {type(out).__name__}, expected the logits tensor.")
    if out.requires_grad or out.grad_fn is not None:
        raise Wrong(
            "Autograd recorded a graph for this forward pass (the output has a grad_fn): memory "
            "and time spent for a backward pass that never comes.",
            "Run the model inside `with torch.inference_mode():` (or `torch.no_grad()`).",
        )
    drifted = [k for k, v in trial.state_dict().items() if not torch.equal(v, before[k])]
    if drifted:
        raise Wrong(
            f"Your function changed the model: {len(drifted)} buffers moved (e.g. {drifted[0]}).",
            "In training mode batch-norm updates its running statistics on every forward pass, "
            "even under inference_mode. Call `model.eval()` before running it.",
        )
    if out.shape != expected.shape or not torch.allclose(out, expected, rtol=1e-4, atol=1e-5):
        raise Wrong(
            "The logits differ from the eval-mode reference.",
            "The model is handed to predict() in training mode: call `model.eval()` first.",
        )
    return correct("Correct: eval mode, no autograd graph, the model unchanged, the reference logits.")


register(
    Exercise(
        key="01.1",
        title="Inference done right",
        prompt=(
            "Write a function `predict(model, batch)` that returns the model's logits for `batch` the "
            "right way for inference. The check hands it a copy of `model` **in training mode** "
            "(as it comes out of a training loop) and verifies the logits, that no autograd graph was "
            "built, and that the model was not changed by the call."
        ),
        checker=_check_01_1,
        context=("model", "x"),
        call='exercises.check("01.1", predict, model=model, x=x)',
        solution="def predict(model, batch):\n"
        "    model.eval()                      # dropout off, batch-norm uses running statistics\n"
        "    with torch.inference_mode():      # no graph, no saved tensors\n"
        "        return model(batch)",
    )
)

_SAFE_LOADS = {
    "a": (
        'torch.load("model.pt", weights_only=False)',
        False,
        "weights_only=False unpickles anything: the file can call any importable function.",
    ),
    "b": (
        'torch.load("model.pt")  # PyTorch >= 2.6',
        True,
        "since PyTorch 2.6 weights_only=True is the default: tensors and an allow-list only.",
    ),
    "c": (
        'pickle.load(open("model.pkl", "rb"))',
        False,
        "a plain pickle runs whatever __reduce__ the file's author chose.",
    ),
    "d": (
        'safetensors.torch.load_file("model.safetensors")',
        True,
        "safetensors is a JSON header plus raw bytes: nothing in it is executed.",
    ),
    "e": (
        'torch.load("model.pt", weights_only=True, mmap=True)',
        True,
        "weights_only=True is what makes it safe; mmap only changes how bytes are read.",
    ),
}


def _check_01_2(answer: Any) -> Feedback:
    letters = {str(a).strip().lower().strip("()") for a in as_names(answer)}
    letters = {a for a in letters if a}
    unknown = letters - set(_SAFE_LOADS)
    if unknown:
        raise Wrong(f"Unknown option(s): {', '.join(sorted(unknown))}; choose among a-e.")
    safe = {k for k, (_, ok, _) in _SAFE_LOADS.items() if ok}
    if letters == safe:
        return correct("Right: b, d and e cannot run code hidden in the file.")
    notes = [f"({k}) {_SAFE_LOADS[k][2]}" for k in sorted(letters - safe)]
    notes += [f"({k}) is safe too: {_SAFE_LOADS[k][2]}" for k in sorted(safe - letters)]
    raise Wrong(
        "Not quite:\n" + "\n".join(notes), "A checkpoint is a pickle unless it is safetensors."
    )


register(
    Exercise(
        key="01.2",
        title="Which loads are safe?",
        prompt=(
            "You downloaded a checkpoint from a forum. Which of these calls **cannot** run code hidden in "
            'the file? Answer with the letters, e.g. `["a", "c"]`.\n\n'
            + "\n".join(f"- **{k}**: `{v[0]}`" for k, v in _SAFE_LOADS.items())
        ),
        checker=_check_01_2,
        call='exercises.check("01.2", answer)',
        solution='answer = ["b", "d", "e"]\n'
        "# a and c unpickle arbitrary objects: a pickle can call exec() while loading.\n"
        "# b/e: weights_only=True (the default since 2.6) only rebuilds tensors and plain containers.\n"
        "# d: safetensors holds no code at all.",
    )
)
