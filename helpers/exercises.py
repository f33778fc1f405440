"""Exercises with automatic checks, one or two per notebook (keys ``"00.1"``, ``"04.2"``, ...).

In a notebook::

    from helpers import exercises

    exercises.show("04.1")                               # the question
    answer = None                                        # the learner replaces None
    exercises.check("04.1", answer, table=latency, threads=threads)   # feedback + True/False
    exercises.solution("04.1")                           # a collapsed solution, on request

Checks compute the right answer from the **context** passed in (the notebook's own runner,
table, model, ...) instead of comparing with numbers written down in advance, so they hold on
every machine, profile and environment. :func:`check` never raises for a learner's mistake: an
unanswered exercise (``None``), a wrong type, a missing context value or an exception inside the
learner's function all become feedback and ``False`` — notebooks keep executing headless in CI.
Only an unknown exercise key (an author's typo) raises :class:`KeyError`.

:func:`evaluate` is the same check without display; it returns a :class:`Feedback`.
"""

from __future__ import annotations

import contextlib
import copy
import html
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from helpers.display import banner, in_notebook

__all__ = [
    "Exercise",
    "Feedback",
    "REGISTRY",
    "check",
    "evaluate",
    "get",
    "all_keys",
    "show",
    "solution",
]


@dataclass(frozen=True)
class Feedback:
    """The outcome of a check: whether it passed, what was found, and a hint when it did not."""

    ok: bool
    message: str
    hint: str = ""
    answered: bool = True

    def __bool__(self) -> bool:
        return self.ok

    def text(self) -> str:
        """Message and hint as plain text."""
        return self.message + (f"\nHint: {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class Exercise:
    """One exercise: a prompt (markdown), a checker and a solution (Python code or prose)."""

    key: str
    title: str
    prompt: str
    checker: Callable[..., Feedback]
    solution: str
    context: tuple[str, ...] = ()  # keyword arguments check() needs, e.g. ("table", "threads")
    optional_context: tuple[str, ...] = ()
    call: str = ""  # how the notebook calls check(), shown under the prompt
    notebook: str = field(default="")

    def __post_init__(self) -> None:
        if not self.notebook:
            object.__setattr__(self, "notebook", self.key.split(".")[0])


class _Wrong(Exception):
    """Raised inside a checker: the answer is wrong; message and hint are the feedback."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


REGISTRY: dict[str, Exercise] = {}


def _register(exercise: Exercise) -> Exercise:
    if exercise.key in REGISTRY:  # pragma: no cover - guards against copy-paste slips
        raise ValueError(f"duplicate exercise key {exercise.key}")
    REGISTRY[exercise.key] = exercise
    return exercise


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def all_keys(notebook: str | None = None) -> list[str]:
    """All exercise keys in order, or those of one notebook (``keys("04")``)."""
    found = sorted(REGISTRY, key=lambda k: tuple(int(p) for p in k.split(".")))
    return [k for k in found if notebook is None or k.split(".")[0] == notebook]


def get(key: str) -> Exercise:
    """The :class:`Exercise` for ``key``; :class:`KeyError` naming the known keys otherwise."""
    try:
        return REGISTRY[str(key)]
    except KeyError:
        raise KeyError(f"no exercise {key!r}; known: {', '.join(all_keys())}") from None


def show(key: str) -> None:
    """Render the exercise's prompt (markdown in Jupyter, plain text elsewhere)."""
    ex = get(key)
    how = f"\n\nCheck your answer with `{ex.call}`." if ex.call else ""
    body = f"**✏️ Exercise {ex.key} — {ex.title}**\n\n{ex.prompt.strip()}{how}"
    if in_notebook():
        from IPython.display import Markdown, display

        display(Markdown(body))
    else:
        print(body.replace("**", ""))


def evaluate(key: str, answer: Any, **context: Any) -> Feedback:
    """Check ``answer`` against the context and return :class:`Feedback`; never raises for answers."""
    ex = get(key)
    if answer is None:
        return Feedback(
            False,
            f"Exercise {key} is not answered yet: replace `None` with your answer and run the cell again.",
            answered=False,
        )
    missing = [name for name in ex.context if context.get(name) is None]
    if missing:
        return Feedback(
            False,
            f"This check needs {', '.join(f'`{m}=`' for m in missing)} from the notebook "
            f"(call it as `{ex.call or f'exercises.check({key!r}, answer, ...)'}`).",
        )
    unknown = [name for name in context if name not in ex.context + ex.optional_context]
    if unknown:
        return Feedback(
            False,
            f"Unexpected context {', '.join(unknown)} for exercise {key}; it takes "
            f"{', '.join(ex.context + ex.optional_context) or 'no context'}.",
        )
    try:
        return ex.checker(answer, **context)
    except _Wrong as wrong:
        return Feedback(False, wrong.message, wrong.hint)
    except Exception as exc:  # noqa: BLE001 - a learner's code may raise anything; report it
        return Feedback(
            False,
            f"Checking your answer raised {type(exc).__name__}: {str(exc)[:300]}",
            "Run your answer on its own first; the check calls it the way the prompt describes.",
        )


def check(key: str, answer: Any, **context: Any) -> bool:
    """Check ``answer``, show the feedback (a coloured box in Jupyter), return whether it passed."""
    feedback = evaluate(key, answer, **context)
    if not feedback.answered:
        banner(f"Exercise {key}: not answered yet", feedback.message, kind="info")
    elif feedback.ok:
        banner(f"Exercise {key}: correct", feedback.message, kind="success")
    else:
        body = feedback.message + (f"\nHint: {feedback.hint}" if feedback.hint else "")
        banner(f"Exercise {key}: not yet", body, kind="warning")
    return feedback.ok


def solution(key: str) -> None:
    """Show the solution, collapsed (an HTML ``<details>`` block) in Jupyter; printed elsewhere."""
    ex = get(key)
    if in_notebook():
        from IPython.display import HTML, display

        display(
            HTML(
                f"<details><summary><b>Solution to exercise {html.escape(ex.key)}</b> "
                f"(click to open — try it yourself first)</summary>"
                f"<pre style='padding:8px;background:#f6f8fa'>{html.escape(ex.solution.strip())}</pre>"
                "</details>"
            )
        )
    else:
        print(f"Solution to exercise {ex.key}:\n{ex.solution.strip()}")


# --------------------------------------------------------------------------------------------
# Small helpers for checkers
# --------------------------------------------------------------------------------------------
def _ok(message: str) -> Feedback:
    return Feedback(True, message)


def _names(answer: Any) -> list[str]:
    if isinstance(answer, str):
        return [answer]
    if isinstance(answer, Iterable):
        return [str(a) for a in answer]
    raise _Wrong(f"Expected a list of names, got {type(answer).__name__}.")


def _number(answer: Any, what: str) -> float:
    if isinstance(answer, bool):
        raise _Wrong(f"Expected {what} as a number, got a boolean.")
    try:
        value = float(answer)
    except (TypeError, ValueError):
        raise _Wrong(f"Expected {what} as a number, got {type(answer).__name__}.") from None
    if not math.isfinite(value):
        raise _Wrong(f"{what} must be a finite number, got {value}.")
    return value


def _close(a: float, b: float, rel: float, abs_: float = 0.0) -> bool:
    return abs(a - b) <= max(rel * abs(b), abs_)


def _callable(answer: Any, signature: str) -> Callable[..., Any]:
    if not callable(answer):
        raise _Wrong(
            f"Expected a function `{signature}`, got {type(answer).__name__}.",
            "Define it with `def ...:` and pass the function itself (no parentheses).",
        )
    return answer


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _first_output(runner: Any, feed: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.asarray(runner(feed)[runner.output_names[0]])


def _feed(runner: Any, pixels: np.ndarray) -> dict[str, np.ndarray]:
    return {runner.inputs[0].name: np.ascontiguousarray(pixels, dtype=np.float32)}


# --------------------------------------------------------------------------------------------
# 00 — environment check
# --------------------------------------------------------------------------------------------
def _check_00_1(answer: Any, report: Any) -> Feedback:
    given = set(_names(answer))
    usable = set(report.ort_usable_providers)
    listed = set(report.ort_listed_providers)
    if given == usable:
        return _ok(f"Yes: {', '.join(sorted(usable))} really run in this kernel.")
    extra, missing = given - usable, usable - given
    parts = []
    if extra & listed:
        parts.append(
            f"{', '.join(sorted(extra & listed))} is listed by the build but does not really run here"
        )
    if extra - listed:
        parts.append(f"{', '.join(sorted(extra - listed))} is not even listed by this build")
    if missing:
        parts.append(f"missing: {', '.join(sorted(missing))}")
    raise _Wrong(
        "Not quite — " + "; ".join(parts) + ".",
        "Listed is not usable: look at `report.ort_usable_providers`, or the 'really runs here' "
        "column of section 2.",
    )


_register(
    Exercise(
        key="00.1",
        title="Which execution providers really run here?",
        prompt=(
            "Give the list of ONNX Runtime execution providers that **really run** in this kernel "
            '(not just those the package lists), e.g. `["CPUExecutionProvider", ...]`.'
        ),
        checker=_check_00_1,
        context=("report",),
        call='exercises.check("00.1", answer, report=report)',
        solution="answer = list(report.ort_usable_providers)\n"
        "# onnxruntime.get_available_providers() lists what the package was built with;\n"
        "# the report ran a one-node model on each provider and kept those still active.",
    )
)


def _check_00_2(answer: Any, report: Any) -> Feedback:
    if not isinstance(answer, str):
        raise _Wrong(f"Expected the environment name as a string, got {type(answer).__name__}.")
    given = answer.strip().lower()
    expected = report.environment
    if given == expected:
        dist = ", ".join(f"{k} {v}" for k, v in report.packages.items() if k == "onnxruntime")
        return _ok(f"Yes: '{expected}' — decided by the installed ONNX Runtime package ({dist}).")
    if given not in ("cpu", "gpu", "openvino"):
        raise _Wrong(f"'{answer}' is not one of the suite's environments (cpu, gpu, openvino).")
    raise _Wrong(
        f"This kernel is not '{given}'.",
        "The environment is decided by which ONNX Runtime package is installed "
        "(`envreport.ort_distribution()`), not by the hardware.",
    )


_register(
    Exercise(
        key="00.2",
        title="Which environment is this kernel?",
        prompt=(
            'Which of the suite\'s environments — `"cpu"`, `"gpu"` or `"openvino"` — is this kernel? '
            "Answer with the name as a string. (What decides it?)"
        ),
        checker=_check_00_2,
        context=("report",),
        call='exercises.check("00.2", answer, report=report)',
        solution="answer = report.environment\n"
        "# envreport.environment_name() looks at which ONNX Runtime package is installed:\n"
        "# onnxruntime -> cpu, onnxruntime-gpu -> gpu, onnxruntime-openvino -> openvino.",
    )
)


# --------------------------------------------------------------------------------------------
# 01 — native PyTorch
# --------------------------------------------------------------------------------------------
def _check_01_1(answer: Any, model: Any, x: Any) -> Feedback:
    import torch

    predict = _callable(answer, "predict(model, batch) -> logits")
    reference = copy.deepcopy(model).eval()
    with torch.inference_mode():
        expected = reference(x)
    trial = copy.deepcopy(model).train()  # as it might come out of a training loop
    before = {k: v.clone() for k, v in trial.state_dict().items()}
    out = predict(trial, x)
    if not isinstance(out, torch.Tensor):
        raise _Wrong(f"predict returned {type(out).__name__}, expected the logits tensor.")
    if out.requires_grad or out.grad_fn is not None:
        raise _Wrong(
            "Autograd recorded a graph for this forward pass (the output has a grad_fn): memory "
            "and time spent for a backward pass that never comes.",
            "Run the model inside `with torch.inference_mode():` (or `torch.no_grad()`).",
        )
    drifted = [k for k, v in trial.state_dict().items() if not torch.equal(v, before[k])]
    if drifted:
        raise _Wrong(
            f"Your function changed the model: {len(drifted)} buffers moved (e.g. {drifted[0]}).",
            "In training mode batch-norm updates its running statistics on every forward pass, "
            "even under inference_mode. Call `model.eval()` before running it.",
        )
    if out.shape != expected.shape or not torch.allclose(out, expected, rtol=1e-4, atol=1e-5):
        raise _Wrong(
            "The logits differ from the eval-mode reference.",
            "The model is handed to predict() in training mode: call `model.eval()` first.",
        )
    return _ok("Correct: eval mode, no autograd graph, the model unchanged, the reference logits.")


_register(
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
    letters = {str(a).strip().lower().strip("()") for a in _names(answer)}
    letters = {a for a in letters if a}
    unknown = letters - set(_SAFE_LOADS)
    if unknown:
        raise _Wrong(f"Unknown option(s): {', '.join(sorted(unknown))}; choose among a-e.")
    safe = {k for k, (_, ok, _) in _SAFE_LOADS.items() if ok}
    if letters == safe:
        return _ok("Right: b, d and e cannot run code hidden in the file.")
    notes = [f"({k}) {_SAFE_LOADS[k][2]}" for k in sorted(letters - safe)]
    notes += [f"({k}) is safe too: {_SAFE_LOADS[k][2]}" for k in sorted(safe - letters)]
    raise _Wrong(
        "Not quite:\n" + "\n".join(notes), "A checkpoint is a pickle unless it is safetensors."
    )


_register(
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


# --------------------------------------------------------------------------------------------
# 02 — TorchScript and torch.export
# --------------------------------------------------------------------------------------------
def _check_02_1(answer: Any, traced: Any, model: Any) -> Feedback:
    import torch

    x = answer if isinstance(answer, torch.Tensor) else torch.as_tensor(np.asarray(answer))
    x = x.to(torch.float32)
    try:
        with torch.inference_mode():
            got, expected = traced(x), model(x)
    except Exception as exc:  # noqa: BLE001
        raise _Wrong(
            f"The models could not run your input ({type(exc).__name__}: {str(exc)[:160]}).",
            "Use the shape of the tracing example, e.g. `-positive` or `torch.randn_like(positive)`.",
        ) from None
    diff = float((got - expected).abs().max())
    if diff > 1e-6:
        return _ok(
            f"Yes: the traced model is wrong by {diff:.3g} on your input — its sum takes the branch the "
            "tracing example did not, and tracing only recorded one branch."
        )
    raise _Wrong(
        "On this input the traced model happens to be right.",
        f"The trace baked in the branch of its example (input sum {'>' if float(x.sum()) > 0 else '<='} 0 "
        "here). Try an input whose sum has the other sign.",
    )


_register(
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
        solution="answer = -positive   # negative sum: the other branch, which the trace does not contain",
    )
)


def _check_02_2(answer: Any, model: Any, x: Any) -> Feedback:
    import torch

    if not isinstance(answer, torch.export.ExportedProgram):
        raise _Wrong(
            f"Expected the ExportedProgram returned by torch.export.export, got {type(answer).__name__}."
        )
    module = answer.module()
    eval_model = copy.deepcopy(model).eval()
    for batch in (1, 3):
        feed = torch.cat([x[:1]] * batch)
        try:
            with torch.inference_mode():
                got = module(feed)
        except Exception as exc:  # noqa: BLE001
            raise _Wrong(
                f"The program refused a batch of {batch} ({type(exc).__name__}: {' '.join(str(exc).split())[:140]}).",
                "Declare the batch dynamic: dynamic_shapes=({0: torch.export.Dim('batch', max=32)},), and "
                "export with an example batch of at least 2 (a size-1 example is specialised).",
            ) from None
        with torch.inference_mode():
            expected = eval_model(feed)
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise _Wrong(
                f"Batch {batch} gives different outputs from the eval-mode model.",
                "Export the model in eval mode (model.eval()).",
            )
    return _ok("Correct: one program, batches of 1 and 3, the same outputs as the model.")


_register(
    Exercise(
        key="02.2",
        title="torch.export with a dynamic batch",
        prompt=(
            "Export `model` with `torch.export.export` so that the program accepts **any batch size "
            "from 1 to 32**, and give the `ExportedProgram` as your answer. The check runs it on "
            "batches of 1 and 3 and compares with the model."
        ),
        checker=_check_02_2,
        context=("model", "x"),
        call='exercises.check("02.2", answer, model=model, x=x)',
        solution='batch = torch.export.Dim("batch", min=1, max=32)\n'
        "answer = torch.export.export(model.eval(), (x,), dynamic_shapes=({0: batch},))  # x has batch >= 2",
    )
)


# --------------------------------------------------------------------------------------------
# 03 — ONNX export
# --------------------------------------------------------------------------------------------
def _check_03_1(answer: Any, reference: Any, candidate: Any, inputs: Any) -> Feedback:
    value = _number(answer, "the maximum absolute difference")
    ref, cand = reference(inputs), candidate(inputs)
    common = [n for n in ref if n in cand]
    if not common:
        common = [reference.output_names[0]]
        cand = {common[0]: next(iter(cand.values()))}
    diffs = [
        np.abs(np.asarray(ref[n], np.float64) - np.asarray(cand[n], np.float64)) for n in common
    ]
    expected = float(max(d.max() for d in diffs))
    mean = float(np.mean([d.mean() for d in diffs]))
    if _close(value, expected, 1e-3, 1e-9):
        return _ok(
            f"Right: max |PyTorch - ONNX Runtime| = {expected:.3g} — float32 rounding, not a bug."
        )
    if _close(value, mean, 1e-3, 1e-12):
        raise _Wrong(
            "That is the mean absolute difference.",
            "Parity is judged on the worst element: np.max.",
        )
    raise _Wrong(
        f"{value:.3g} is not the maximum absolute difference of the outputs.",
        "Run both runners on `inputs`, subtract the logits as float arrays, take np.abs(...).max().",
    )


_register(
    Exercise(
        key="03.1",
        title="Parity by hand",
        prompt=(
            "Run `eager` and `ort_cpu` on `inputs` yourself and compute the **maximum absolute "
            "difference** of their logits with NumPy. Answer with the number."
        ),
        checker=_check_03_1,
        context=("reference", "candidate", "inputs"),
        call='exercises.check("03.1", answer, reference=eager, candidate=ort_cpu, inputs=inputs)',
        solution='ref = eager(inputs)["logits"]\ncand = ort_cpu(inputs)["logits"]\n'
        "answer = float(np.abs(ref - cand).max())",
    )
)


def _check_03_2(answer: Any, onnx_path: Any, inputs: Any) -> Feedback:
    from helpers import runners

    if not isinstance(answer, runners.Runner):
        raise _Wrong(
            f"Expected a runner from helpers.runners, got {type(answer).__name__}.",
            "Use runners.ort_runner(onnx_path, ...).",
        )
    info = answer.describe()
    if info.get("runtime") != "onnxruntime":
        raise _Wrong(f"This is a {info.get('runtime')} runner; the exercise asks for ONNX Runtime.")
    threads = info.get("threads") or {}
    if threads.get("intra_op") != 1:
        raise _Wrong(
            f"intra-op threads are {threads.get('intra_op')}, not 1.", "Pass intra_op_threads=1."
        )
    if info.get("graph_optimization_level") != "basic":
        raise _Wrong(
            f"graph optimisation level is {info.get('graph_optimization_level')!r}, not 'basic'.",
            'Pass graph_optimization_level="basic".',
        )
    default = runners.ort_runner(onnx_path)
    name = default.output_names[0]
    got, expected = answer(inputs)[name], default(inputs)[name]
    scale = max(1.0, float(np.abs(expected).max()))  # fusions reorder float32 sums
    if not np.allclose(got, expected, rtol=1e-3, atol=1e-4 * scale):
        raise _Wrong(
            "Your runner's outputs differ from the default session's.",
            "Did you load the same file (onnx_path)?",
        )
    return _ok(
        "Correct: one intra-op thread, basic optimisations, and the same outputs as the default session."
    )


_register(
    Exercise(
        key="03.2",
        title="An ONNX Runtime session, configured",
        prompt=(
            "Create a runner for `onnx_path` with the suite's `runners.ort_runner` that uses exactly "
            "**one intra-op thread** and only the **basic** graph optimisations. Give the runner as "
            "your answer."
        ),
        checker=_check_03_2,
        context=("onnx_path", "inputs"),
        call='exercises.check("03.2", answer, onnx_path=onnx_path, inputs=inputs)',
        solution='answer = runners.ort_runner(onnx_path, intra_op_threads=1, graph_optimization_level="basic")',
    )
)


# --------------------------------------------------------------------------------------------
# 04 — one classifier, every runtime; INT8
# --------------------------------------------------------------------------------------------
def _check_04_1(answer: Any, table: Any, threads: Any = None, batch: Any = 1) -> Feedback:
    if isinstance(answer, str) or not isinstance(answer, Iterable):
        raise _Wrong('Expected a pair (runner name, speed-up), e.g. ("ORT CPU EP", 1.5).')
    items = list(answer)
    if len(items) != 2:
        raise _Wrong(f"Expected a pair (runner name, speed-up), got {len(items)} values.")
    name, speedup = str(items[0]), _number(items[1], "the speed-up")
    rows = table
    if "batch" in rows.columns and batch is not None:
        rows = rows[rows["batch"] == batch]
    if threads is not None and "threads" in rows.columns:
        same = rows[rows["threads"].astype(str) == str(threads)]
        rows = same if len(same) else rows
    rows = rows.set_index("runner")
    best = str(rows["p50_ms"].idxmin())
    baseline = next((r for r in rows.index if "eager" in str(r).lower()), None)
    if baseline is None:
        raise _Wrong("The table has no PyTorch eager row to compare with.")
    expected = float(rows.loc[baseline, "p50_ms"] / rows.loc[best, "p50_ms"])
    if name != best:
        if name not in rows.index:
            raise _Wrong(
                f"There is no runner {name!r} in the table (batch {batch}).",
                f"Runners: {', '.join(map(str, rows.index))}.",
            )
        raise _Wrong(
            f"{name} has p50 {rows.loc[name, 'p50_ms']:.2f} ms; another runner is faster at batch {batch}.",
            "Filter batch 1 (and the thread count), then take the row with the smallest p50_ms.",
        )
    if not _close(speedup, expected, 0.03):
        if _close(speedup, 1 / expected, 0.03):
            raise _Wrong(
                "Upside down: that is eager's speed relative to the winner.",
                "speed-up = p50 of PyTorch eager / p50 of the runner (> 1 means faster).",
            )
        raise _Wrong(
            f"{best} is right, but its speed-up is not {speedup:.2f}.",
            "speed-up = p50 of PyTorch eager / p50 of the runner.",
        )
    return _ok(
        f"Correct: {best}, {expected:.2f}x PyTorch eager at batch {batch} (medians, this run)."
    )


_register(
    Exercise(
        key="04.1",
        title="Read the benchmark",
        prompt=(
            "From the benchmark table `latency`: at **batch 1** with `threads` threads, which runner has "
            "the lowest median latency (p50), and what is its **speed-up over PyTorch eager** "
            "(p50 of eager / p50 of that runner)? Answer with a pair `(runner_name, speedup)`."
        ),
        checker=_check_04_1,
        context=("table",),
        optional_context=("threads", "batch"),
        call='exercises.check("04.1", answer, table=latency, threads=threads)',
        solution='rows = latency[(latency["batch"] == 1) & (latency["threads"] == threads)].set_index("runner")\n'
        'best = rows["p50_ms"].idxmin()\n'
        'answer = (best, rows.loc["PyTorch eager", "p50_ms"] / rows.loc[best, "p50_ms"])',
    )
)


def _check_04_2(answer: Any, fp32: Any, int8: Any, pixels: Any) -> Feedback:
    pixels = np.asarray(pixels, dtype=np.float32)
    ref = _first_output(fp32, _feed(fp32, pixels)).argmax(-1)
    cand = _first_output(int8, _feed(int8, pixels)).argmax(-1)
    expected = float((ref == cand).mean())
    got = _number(answer(fp32, int8, pixels) if callable(answer) else answer, "the agreement")
    if _close(got, expected, 0.0, 1e-9):
        return _ok(
            f"Correct: INT8 picks the fp32 top-1 class on {expected:.1%} of these {len(pixels)} images."
        )
    if _close(got, 100 * expected, 0.0, 1e-6) and expected > 0:
        raise _Wrong("That is a percentage.", "Return a fraction between 0 and 1.")
    if _close(got, 1 - expected, 0.0, 1e-9):
        raise _Wrong(
            "That is the disagreement.", "Count the images where the two arg-max classes are equal."
        )
    raise _Wrong(
        f"{got:.3f} is not the top-1 agreement on these images.",
        "Run both runners on the same pixels, take logits.argmax(-1) for each, and the mean of (a == b).",
    )


_register(
    Exercise(
        key="04.2",
        title="Did INT8 change the answers?",
        prompt=(
            "Write `agreement(fp32_runner, int8_runner, pixels)` returning the fraction of images "
            "(0..1) on which the INT8 model's **top-1 class** equals the fp32 model's. The runners take "
            "`{input name: pixels}` and return `{output name: logits}`. (A number computed on the "
            "same pixels is accepted too.)"
        ),
        checker=_check_04_2,
        context=("fp32", "int8", "pixels"),
        call='exercises.check("04.2", agreement, fp32=all_runners["ORT CPU EP"], int8=int8_runners[chosen], '
        "pixels=eval_pixels[:16])",
        solution="def agreement(fp32_runner, int8_runner, pixels):\n"
        "    def top1(runner):\n"
        "        logits = runner({runner.inputs[0].name: pixels})[runner.output_names[0]]\n"
        "        return logits.argmax(-1)\n"
        "    return float((top1(fp32_runner) == top1(int8_runner)).mean())",
    )
)


# --------------------------------------------------------------------------------------------
# 05 — BERT question answering
# --------------------------------------------------------------------------------------------
def _best_span_scores(
    start: np.ndarray, end: np.ndarray, mask: np.ndarray, max_len: int
) -> np.ndarray:
    """score[s, e] = start[s] + end[e] over valid spans, -inf elsewhere."""
    ctx = np.asarray(mask, dtype=bool)
    scores = np.add.outer(np.asarray(start, np.float64), np.asarray(end, np.float64))
    n = len(ctx)
    s_idx, e_idx = np.indices((n, n))
    valid = np.outer(ctx, ctx) & (e_idx >= s_idx) & (e_idx - s_idx < max_len)
    return np.where(valid, scores, -np.inf)


def _check_05_1(
    answer: Any, start_logits: Any, end_logits: Any, context_mask: Any, max_answer_len: Any = 30
) -> Feedback:
    fn = _callable(
        answer, "best_span(start_logits, end_logits, context_mask, max_answer_len) -> (s, e)"
    )
    starts, ends = np.atleast_2d(_to_numpy(start_logits)), np.atleast_2d(_to_numpy(end_logits))
    masks = np.atleast_2d(_to_numpy(context_mask)).astype(bool)
    # Traps: the best in-context start lies after the best in-context end; the largest logits sit
    # in the question (outside the context); and a long span wins unless max_answer_len forbids it.
    trap_mask = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 0], dtype=bool)
    trap_start = np.array([0, 9, 0, 1, 2, 0, 0, 5, 0, 0], dtype=np.float32)
    trap_end = np.array([0, 9, 0, 0, 6, 1, 0, 0, 0, 0], dtype=np.float32)
    long_end = trap_end.copy()
    long_end[8] = 7.0
    cases = [
        (
            "trap 1 (best start after best end, big logits in the question)",
            trap_start,
            trap_end,
            trap_mask,
            4,
        ),
        ("trap 2 (a two-token span wins)", trap_start, long_end, trap_mask, 4),
        ("trap 2 with max_answer_len=1", trap_start, long_end, trap_mask, 1),
    ]
    limit = int(max_answer_len)
    for i in range(min(len(starts), 8)):
        cases.append((f"window {i} of the notebook", starts[i], ends[i], masks[i], limit))
    for label, s_log, e_log, mask, max_len in cases:
        result = fn(s_log, e_log, mask, max_len)
        try:
            s, e = (int(v) for v in result)
        except (TypeError, ValueError):
            raise _Wrong(
                f"best_span returned {result!r}; expected a pair of token indices (s, e)."
            ) from None
        table = _best_span_scores(s_log, e_log, mask, max_len)
        n = len(mask)
        if not (0 <= s < n and 0 <= e < n):
            raise _Wrong(f"On {label}: ({s}, {e}) is outside the window of {n} tokens.")
        if e < s:
            raise _Wrong(
                f"On {label}: end {e} comes before start {s}.",
                "Arg-max of start and end separately is the classic bug: search pairs with s <= e.",
            )
        if not (mask[s] and mask[e]):
            raise _Wrong(
                f"On {label}: ({s}, {e}) uses tokens outside the context (question, [SEP], padding).",
                "Only positions where context_mask is true may start or end an answer.",
            )
        if e - s + 1 > max_len:
            raise _Wrong(
                f"On {label}: the span has {e - s + 1} tokens, more than max_answer_len={max_len}.",
                "The length limit is part of the search, not a filter afterwards.",
            )
        if table[s, e] < table.max() - 1e-5:
            best = np.unravel_index(int(np.argmax(table)), table.shape)
            raise _Wrong(
                f"On {label}: ({s}, {e}) is valid but not the best span; ({best[0]}, {best[1]}) scores higher.",
                "Maximise start_logits[s] + end_logits[e] over all valid pairs.",
            )
    return _ok(f"Correct on the trap windows and on {len(cases) - 3} windows of the notebook.")


_register(
    Exercise(
        key="05.1",
        title="Extract the answer span properly",
        prompt=(
            "Write `best_span(start_logits, end_logits, context_mask, max_answer_len)` for **one window** "
            "(1-D arrays): return the token pair `(s, e)` with the highest `start_logits[s] + end_logits[e]` "
            "such that both tokens are in the context, `s <= e` and the span has at most `max_answer_len` "
            "tokens. (Maximising the logit sum is the same as maximising `p_start * p_end`.)"
        ),
        checker=_check_05_1,
        context=("start_logits", "end_logits", "context_mask"),
        optional_context=("max_answer_len",),
        call='exercises.check("05.1", best_span, start_logits=start_logits, end_logits=end_logits, '
        "context_mask=features.context_mask, max_answer_len=max_answer_len)",
        solution="def best_span(start_logits, end_logits, context_mask, max_answer_len):\n"
        "    mask = np.asarray(context_mask, dtype=bool)\n"
        "    scores = np.add.outer(start_logits, end_logits)            # scores[s, e]\n"
        "    s, e = np.indices(scores.shape)\n"
        "    valid = np.outer(mask, mask) & (e >= s) & (e - s < max_answer_len)\n"
        "    flat = np.where(valid, scores, -np.inf).argmax()\n"
        "    return np.unravel_index(flat, scores.shape)",
    )
)


# --------------------------------------------------------------------------------------------
# 06 — generation
# --------------------------------------------------------------------------------------------
def _check_06_1(answer: Any, attention_mask: Any) -> Feedback:
    from helpers.generation import position_ids_from_mask

    fn = _callable(answer, "position_ids(attention_mask) -> position ids")
    masks = [
        (
            "a hand-made left-padded mask",
            np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]]),
        ),
        ("the notebook's attention_mask", np.asarray(attention_mask, dtype=np.int64)),
    ]
    for label, mask in masks:
        got = np.asarray(fn(mask.copy()))
        if got.shape != mask.shape:
            raise _Wrong(f"On {label}: shape {got.shape}, expected {mask.shape}.")
        expected = position_ids_from_mask(mask)
        real = mask == 1
        if not np.array_equal(got[real], expected[real]):
            row = int(np.argwhere((got != expected) & real)[0][0])
            raise _Wrong(
                f"On {label}, row {row}: got {got[row].tolist()} for mask {mask[row].tolist()}.",
                "The first *real* token of every row is position 0, whatever the padding: cumsum(mask) - 1.",
            )
    return _ok(
        "Correct: positions count real tokens only (padding slots are ignored by the model)."
    )


_register(
    Exercise(
        key="06.1",
        title="Position ids of a left-padded batch",
        prompt=(
            "Write `position_ids(attention_mask)` for a **left-padded** batch (`int64[batch, seq]`, 0 = "
            "padding): the first real token of every row gets position 0, the next 1, ... Values at "
            "padding positions are not checked."
        ),
        checker=_check_06_1,
        context=("attention_mask",),
        call='exercises.check("06.1", position_ids, attention_mask=enc["attention_mask"])',
        solution="def position_ids(attention_mask):\n"
        "    pos = np.cumsum(attention_mask, axis=-1) - 1\n"
        "    return np.where(attention_mask == 1, pos, 1)   # padding: any value (transformers uses 1)",
    )
)


def _check_06_2(answer: Any, layout: Any, batch: Any, tokens: Any) -> Feedback:
    got = _number(answer, "the number of bytes")
    itemsize = np.dtype(getattr(layout, "dtype", "float32")).itemsize
    per_kv = (
        layout.num_layers
        * layout.num_kv_heads
        * layout.head_dim
        * itemsize
        * int(batch)
        * int(tokens)
    )
    expected = 2 * per_kv
    if _close(got, expected, 1e-6):
        return _ok(
            f"Correct: 2 (keys, values) x {layout.num_layers} layers x {layout.num_kv_heads} KV heads x "
            f"{layout.head_dim} x {itemsize} bytes x batch {batch} x {tokens} tokens = {expected / 1e6:.2f} MB."
        )
    hints = {
        per_kv: "Keys AND values are cached: multiply by 2.",
        expected
        / layout.num_layers: "Every layer has its own cache: multiply by the number of layers.",
        expected
        / int(batch): "Each sequence of the batch has its own cache: multiply by the batch size.",
        expected
        / int(tokens): "The cache grows with every token: multiply by the sequence length.",
        expected / itemsize: f"That counts elements; {layout.dtype} takes {itemsize} bytes each.",
    }
    for value, hint in hints.items():
        if value != expected and _close(got, value, 1e-6):
            raise _Wrong(f"{got:.0f} bytes is not it.", hint)
    raise _Wrong(
        f"{got:.0f} bytes is not it.",
        "2 x layers x KV heads x head size x bytes per element x batch x tokens.",
    )


_register(
    Exercise(
        key="06.2",
        title="How big is the KV cache?",
        prompt=(
            "How many **bytes** does the KV cache hold at the end of `generate` on the batch of "
            'section 4 — `len(prompts)` sequences of `enc["input_ids"].shape[1] + max_new_tokens` '
            "tokens each (prompt + generated)? Use `layout.num_layers`, `layout.num_kv_heads`, "
            "`layout.head_dim` and the cache's dtype (`layout.dtype`)."
        ),
        checker=_check_06_2,
        context=("layout", "batch", "tokens"),
        call='exercises.check("06.2", answer, layout=layout, batch=len(prompts), '
        'tokens=enc["input_ids"].shape[1] + max_new_tokens)',
        solution='batch, tokens = len(prompts), enc["input_ids"].shape[1] + max_new_tokens\n'
        "itemsize = np.dtype(layout.dtype).itemsize\n"
        "answer = 2 * layout.num_layers * layout.num_kv_heads * layout.head_dim * itemsize * batch * tokens\n"
        "# = layout.cache_bytes_per_token(batch) * tokens",
    )
)


# --------------------------------------------------------------------------------------------
# 07 — serving
# --------------------------------------------------------------------------------------------
def _check_07_1(answer: Any, image_bytes: Any) -> Feedback:
    import base64
    import binascii

    if isinstance(answer, (bytes, str)):
        try:
            answer = json.loads(answer)
        except json.JSONDecodeError as exc:
            raise _Wrong(f"That is not valid JSON ({exc.msg}).") from None
    if not isinstance(answer, Mapping):
        raise _Wrong(f"Expected a dict (the JSON body), got {type(answer).__name__}.")
    try:
        json.dumps(answer)
    except TypeError as exc:
        raise _Wrong(
            f"The body cannot be serialised as JSON: {exc}.",
            "JSON has no bytes type: base64-encode the image and .decode('ascii') it.",
        ) from None
    if "image" not in answer:
        raise _Wrong(f"No 'image' field (keys: {', '.join(map(str, answer))}).")
    unknown = set(answer) - {"image", "top_k", "return_logits"}
    if unknown:
        raise _Wrong(
            f"Unknown field(s) {', '.join(sorted(map(str, unknown)))}; the API takes image, top_k, "
            "return_logits."
        )
    try:
        decoded = base64.b64decode(answer["image"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise _Wrong(
            "'image' is not valid base64.", "base64.b64encode(image_bytes).decode('ascii')"
        ) from None
    if decoded != bytes(image_bytes):
        raise _Wrong(
            "'image' decodes to different bytes than the file.",
            "Encode the file's raw bytes (not a decoded array or a path).",
        )
    top_k = answer.get("top_k")
    if top_k != 3 or isinstance(top_k, bool):
        raise _Wrong(f"top_k is {top_k!r}; the exercise asks for 3 (an integer).")
    return _ok("Correct: a JSON body the /predict endpoint accepts, asking for the top 3 classes.")


_register(
    Exercise(
        key="07.1",
        title="A JSON request for /predict",
        prompt=(
            'The server\'s `POST /predict` accepts JSON `{"image": "<base64>", "top_k": k, '
            '"return_logits": false}`. Build the **body as a Python dict** asking for the **top 3** '
            "classes of the photo whose JPEG bytes are `jpeg`."
        ),
        checker=_check_07_1,
        context=("image_bytes",),
        call='exercises.check("07.1", answer, image_bytes=jpeg)',
        solution='import base64\n\nanswer = {"image": base64.b64encode(jpeg).decode("ascii"), "top_k": 3}',
    )
)


def _field(result: Any, name: str) -> float:
    if isinstance(result, Mapping):
        return float(result[name])
    if hasattr(result, "row") and callable(result.row):
        return float(result.row()[name])
    if hasattr(result, "index") and hasattr(result, "__getitem__"):  # pandas Series
        return float(result[name])
    return float(getattr(result, name))


def _check_07_2(answer: Any, result: Any) -> Feedback:
    got = _number(answer, "the throughput")
    concurrency, p50 = _field(result, "concurrency"), _field(result, "p50_ms")
    expected = concurrency / (p50 / 1e3)
    measured = ""
    with contextlib.suppress(KeyError, AttributeError, TypeError, ValueError):
        measured = f" The load test measured {_field(result, 'req_per_s'):.0f} req/s."
    if _close(got, expected, 0.05):
        return _ok(
            f"Right: {concurrency:.0f} requests in flight, each taking ~{p50:.1f} ms, complete "
            f"~{expected:.0f} requests per second (Little's law).{measured}"
        )
    if _close(got, 1e3 / p50, 0.05):
        raise _Wrong(
            "That is the throughput of a single client.",
            f"{concurrency:.0f} requests are in flight at once: multiply by the concurrency.",
        )
    if _close(got, concurrency / p50, 0.05):
        raise _Wrong(
            "Check the units: p50 is in milliseconds.",
            "requests per *second*: divide by p50 / 1000.",
        )
    raise _Wrong(
        f"{got:.1f} req/s is not what Little's law predicts.",
        "throughput = requests in flight / time per request.",
    )


_register(
    Exercise(
        key="07.2",
        title="Little's law",
        prompt=(
            "A closed-loop load test keeps `concurrency` requests in flight; each takes about the "
            "median latency `p50_ms`. Without looking at its `req_per_s`, what **throughput "
            "(requests per second)** do you expect from the FastAPI load test `load_results[0]`? Answer "
            "with the number."
        ),
        checker=_check_07_2,
        context=("result",),
        call='exercises.check("07.2", answer, result=load_results[0])',
        solution="result = load_results[0]\n"
        "answer = result.concurrency / (result.p50_ms / 1000)\n"
        "# Little's law: L = lambda * W  ->  lambda = L / W. The measured req/s is close when the\n"
        "# client and server do not queue elsewhere.",
    )
)
