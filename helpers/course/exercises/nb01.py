"""Exercises of notebook 01 (native PyTorch); registered on import."""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path
from typing import Any

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    correct,
    register,
)

#: The file exercise 01.1 asks the learner's function to write, inside the notebook's folder.
EXERCISE_FILE = "exercise_weights.safetensors"


def _safetensors_keys(path: Path) -> set[str]:
    """The tensor names in a safetensors file's JSON header; :class:`Wrong` when it is not one."""
    raw = path.read_bytes()
    if raw[:2] == b"PK":
        raise Wrong(
            f"{path.name} is a zip archive — what torch.save writes (a pickle inside), not "
            "safetensors.",
            "Write it with safetensors.torch.save_file(model.state_dict(), path).",
        )
    try:
        (length,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + length])
    except (struct.error, ValueError):
        raise Wrong(f"{path.name} is not a safetensors file (no JSON header).") from None
    return set(header) - {"__metadata__"}


def _check_01_1(answer: Any, model: Any, x: Any, folder: Any) -> Feedback:
    import torch

    round_trip = as_function(answer, "round_trip(model, path) -> a new model")
    path = Path(folder) / EXERCISE_FILE
    path.unlink(missing_ok=True)
    source = copy.deepcopy(model)
    source.exercise_marker = True  # a plain attribute: copies carry it, build_model() does not
    fresh = round_trip(source, path)
    if not path.is_file():
        raise Wrong(f"round_trip did not write {path}.", "Save to the `path` it is given.")
    missing = set(source.state_dict()) - _safetensors_keys(path)
    if missing:
        raise Wrong(
            f"The file lacks {len(missing)} of the model's tensors (e.g. {sorted(missing)[0]}).",
            "Save the whole state_dict: save_file(model.state_dict(), path).",
        )
    if not isinstance(fresh, torch.nn.Module) or fresh is source:
        raise Wrong(
            "round_trip must return a new model object (not the one it was given).",
            "Build one from code — build_model() — and load the file into it.",
        )
    if getattr(fresh, "exercise_marker", False):
        raise Wrong(
            "round_trip returned a copy of the model object, not a model built from code.",
            "fresh = build_model(); fresh.load_state_dict(load_file(path)).",
        )
    ours = {p.data_ptr() for p in source.parameters()}
    if any(p.data_ptr() in ours for p in fresh.parameters()):
        raise Wrong(
            "The returned model shares its weights' memory with the original: nothing was loaded.",
            "fresh = build_model(); fresh.load_state_dict(load_file(path)).",
        )
    if fresh.training:
        raise Wrong(
            "The returned model is in training mode.", "Call fresh.eval() before returning it."
        )
    with torch.inference_mode():
        same = torch.equal(fresh(x), copy.deepcopy(model).eval()(x))
    if not same:
        raise Wrong(
            "The new model's outputs differ from the original's.",
            "Load every tensor from the file: fresh.load_state_dict(load_file(path)).",
        )
    size = path.stat().st_size / 1e6
    return correct(
        f"Correct: {path.name} ({size:.1f} MB) is safetensors — a JSON header and raw bytes, "
        "nothing to unpickle — and the model rebuilt from code gives identical outputs."
    )


register(
    Exercise(
        key="01.1",
        title="Save with safetensors, load into a model built from code",
        prompt=(
            "Write `round_trip(model, path)` that saves `model`'s weights to `path` with "
            "**safetensors**, builds a *new* model from code (`build_model()`), loads the file "
            "into it and returns it, ready for inference. The check calls it on this notebook's "
            "model and compares the outputs."
        ),
        checker=_check_01_1,
        context=("model", "x", "folder"),
        call='exercises.check("01.1", round_trip, model=model, x=x, folder=out)',
        writes_code=True,
        solution="from safetensors.torch import load_file, save_file\n\n"
        "def round_trip(model, path):\n"
        "    save_file(model.state_dict(), path)\n"
        "    fresh = build_model()\n"
        "    fresh.load_state_dict(load_file(path))  # tensors only: nothing in the file runs\n"
        "    return fresh.eval()",
    )
)


def _check_01_2(answer: Any, model: Any, x: Any) -> Feedback:
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
    return correct(
        "Correct: eval mode, no autograd graph, the model unchanged, the reference logits."
    )


register(
    Exercise(
        key="01.2",
        title="Inference done right",
        prompt=(
            "Write a function `predict(model, batch)` that returns the model's logits for "
            "`batch` the right way for inference. The check hands it a copy of `model` **in "
            "training mode** (as it comes out of a training loop) and verifies the logits, that "
            "no autograd graph was built, and that the model was not changed by the call."
        ),
        checker=_check_01_2,
        context=("model", "x"),
        call='exercises.check("01.2", predict, model=model, x=x)',
        writes_code=True,
        solution="def predict(model, batch):\n"
        "    model.eval()                      # dropout off, batch-norm uses running statistics\n"
        "    with torch.inference_mode():      # no graph, no saved tensors\n"
        "        return model(batch)",
    )
)
