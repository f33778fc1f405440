"""Exercise 18.1: data-dependent control flow rewritten with torch.cond, checked through ONNX Runtime."""

from __future__ import annotations

import torch

from helpers.course import exercises


class Router(torch.nn.Module):
    def forward(self, x):
        if x.mean() > 0:
            return x.relu() * 3
        return x.abs() - 1


class BranchFree(torch.nn.Module):
    def forward(self, x):
        return torch.where(x.mean() > 0, x.relu() * 3, x.abs() - 1)


class SwappedBranches(torch.nn.Module):
    def forward(self, x):
        return torch.cond(x.mean() > 0, lambda t: t.abs() - 1, lambda t: t.relu() * 3, (x,))


def check(answer) -> exercises.Feedback:
    return exercises.evaluate("18.1", answer, original=Router())


def test_the_solution_is_accepted_and_has_an_if_node() -> None:
    scope = {"torch": torch}
    exec(exercises.get("18.1").solution, scope)  # our own solution text
    feedback = check(scope["answer"])
    assert feedback.ok, feedback.text()
    assert "If node" in feedback.message


def test_the_original_is_refused_by_the_exporter() -> None:
    feedback = check(Router())
    assert not feedback.ok and "exporter refused" in feedback.message and "torch.cond" in feedback.hint


def test_wrong_branches_are_caught_in_pytorch_before_exporting() -> None:
    feedback = check(SwappedBranches())
    assert not feedback.ok and "differs from Router" in feedback.message


def test_a_branch_free_formula_is_accepted_and_named_as_such() -> None:
    feedback = check(BranchFree())
    assert feedback.ok and "without an If node" in feedback.message


def test_not_a_module() -> None:
    feedback = check(lambda x: x)
    assert not feedback.ok and "nn.Module" in feedback.message
    assert not check(None).answered
