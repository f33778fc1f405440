"""Exercise of notebook 09 (your own model): write a module and its example inputs, run the report on
it, and have every available runtime keep parity; registered on import."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from helpers.course.exercises.framework import Exercise, Feedback, Wrong, correct, register


def expected_runtimes(report: Any) -> list[str]:
    """The runtime keys a complete report on a PyTorch model runs here: every available one that
    the report does not leave out for being slow to build (AOTInductor)."""
    from helpers import runners
    from helpers.model_report import SLOW_RUNTIMES

    return [key for key, here in runners.available_runtimes().items() if here and key not in SLOW_RUNTIMES]


def _check_09_1(answer: Any, taught: Sequence[str] = ()) -> Feedback:
    from helpers.model_report import ModelReport

    if not isinstance(answer, ModelReport):
        raise Wrong(f"Expected the report, got {type(answer).__name__}.",
                    "Set `answer = model_report(my_model, my_inputs, ...)` — the object it returns.")
    if answer.model in set(taught):
        raise Wrong(f"{answer.model!r} is one of the notebook's models; the exercise asks for your own.",
                    "Define a new `nn.Module` class (any layers you like) and pass `name=` to the report.")
    if answer.facts.get("reference") != "PyTorch eager":
        raise Wrong("This report started from an ONNX file; the exercise starts from a PyTorch module.",
                    "Pass the `nn.Module` and its example inputs to `model_report`.")
    rows = {r.runtime: r for r in answer.rows if r.precision == "fp32"}
    missing = [key for key in expected_runtimes(answer) if key not in rows or rows[key].status == "skipped"]
    if missing:
        raise Wrong(f"The report did not run {', '.join(missing)}, which this kernel has.",
                    "Leave `runtimes=` out: the report then runs every available runtime.")
    failed = [r for key, r in rows.items() if key in expected_runtimes(answer) and r.status == "failed"]
    if failed:
        first = failed[0]
        raise Wrong(f"{first.label} failed on your model: {first.error}",
                    f"{first.explanation}; the usual fix: {first.fix}.")
    off = [r.label for key, r in rows.items() if key in expected_runtimes(answer) and not r.parity_ok]
    if off:
        raise Wrong(f"Parity failed on {', '.join(off)}: the outputs differ from PyTorch eager beyond "
                    "the tolerance.", "Put the model in eval mode and avoid randomness (dropout, "
                    "torch.rand) inside forward.")
    return correct(f"Right: {answer.model} ran on {len(expected_runtimes(answer))} runtimes with parity; the "
                   f"report recommends {answer.recommendation.get('runtime', 'nothing')} "
                   f"at {answer.recommendation.get('precision', '-')}.")


register(
    Exercise(
        key="09.1",
        title="Your own model, every runtime",
        prompt=(
            "Write a small `nn.Module` of your own (a few layers — an MLP, a 1-D convolution over a "
            "sequence, a GRU-free text classifier over embeddings...), create it and its **example "
            "inputs** (a tensor, a tuple or a dict of named tensors), and run `model_report` on it "
            "with a `name=` of your choice and without `runtimes=`, so that it runs every runtime this "
            "kernel has. Set `answer` to the report; the check verifies that every available runtime "
            "ran with parity against PyTorch eager."
        ),
        checker=_check_09_1,
        optional_context=("taught",),
        call='exercises.check("09.1", answer, taught=[cnn_report.model, classifier_report.model])',
        writes_code=True,
        solution=(
            "import torch\nfrom torch import nn\n\n\n"
            "class TinyTagger(nn.Module):\n"
            "    def __init__(self) -> None:\n"
            "        super().__init__()\n"
            "        self.embed = nn.Embedding(100, 16)\n"
            "        self.conv = nn.Conv1d(16, 16, 3, padding=1)\n"
            "        self.head = nn.Linear(16, 4)\n\n"
            "    def forward(self, tokens: torch.Tensor) -> torch.Tensor:\n"
            "        x = self.embed(tokens).transpose(1, 2)\n"
            "        x = torch.relu(self.conv(x)).mean(dim=2)\n"
            "        return self.head(x)\n\n\n"
            "torch.manual_seed(0)\n"
            "tokens = torch.randint(0, 100, (2, 12))\n"
            "answer = model_report(TinyTagger().eval(), (tokens,), name=\"tiny-tagger\", runs=bench_runs,\n"
            "                      time_budget=bench_seconds, limits=False, progress=False)\n"
            "answer"
        ),
    )
)
