"""Exercise 09.1 (your own model through the report) accepts a complete report with parity and rejects
the rest with a hint."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from helpers.course.exercises import framework, nb09
from helpers.model_report import ModelReport, model_report


class TinyTagger(nn.Module):
    """The solution's model: embeddings, a 1-D convolution, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.conv = nn.Conv1d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens).transpose(1, 2)
        return self.head(torch.relu(self.conv(x)).mean(dim=2))


@pytest.fixture(scope="module")
def report() -> ModelReport:
    torch.manual_seed(0)
    return model_report(TinyTagger().eval(), (torch.randint(0, 100, (2, 12)),), name="tiny-tagger", runs=3,
                        time_budget=0.1, limits=False, progress=False)


def check(answer: object, **context: object) -> framework.Feedback:
    return framework.REGISTRY["09.1"].checker(answer, **context)


def test_a_complete_report_with_parity_is_right(report: ModelReport) -> None:
    feedback = check(report, taught=["cnn", "classifier"])
    assert feedback.ok, feedback
    assert set(nb09.expected_runtimes(report)) <= set(report.ran)


def test_not_a_report_or_a_taught_model_is_wrong(report: ModelReport) -> None:
    with pytest.raises(framework.Wrong, match="Expected the report"):
        check(None)
    with pytest.raises(framework.Wrong, match="one of the notebook's models"):
        check(report, taught=["tiny-tagger"])


def test_a_report_that_skipped_or_failed_a_runtime_is_wrong(report: ModelReport) -> None:
    partial = copy.copy(report)
    partial.rows = [r for r in report.rows if r.runtime != "onnxruntime"]
    with pytest.raises(framework.Wrong, match="did not run onnxruntime") as caught:
        check(partial)
    assert "runtimes=" in caught.value.hint
    failed = copy.deepcopy(report)
    row = next(r for r in failed.rows if r.runtime == "torch.export")
    row.status, row.error, row.explanation, row.fix = "failed", "Err: boom", "it broke", "torch.cond"
    with pytest.raises(framework.Wrong, match="torch.export failed|failed on your model"):
        check(failed)


def test_a_report_without_parity_is_wrong(report: ModelReport) -> None:
    off = copy.deepcopy(report)
    next(r for r in off.rows if r.runtime == "openvino").parity_ok = False
    with pytest.raises(framework.Wrong, match="Parity failed"):
        check(off)
