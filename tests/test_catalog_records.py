"""Tasks are records: a task registered as one TaskRecord loads through ``catalog.load`` with the
same banners, fallbacks and errors as the built-in ones; catalog.py itself has no per-task code."""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from helpers import catalog
from helpers.catalog import CatalogError, CatalogWarning, ModelFields, ModelSource, TaskRecord

ROOT = Path(__file__).resolve().parents[1]
TOY = "toy-regression"


def _toy_model(variant: str, how: str) -> ModelFields:
    torch.manual_seed(0)
    return {"model": torch.nn.Linear(3, 1).eval(), "notes": [f"toy variant {variant}"]}


def _broken(variant: str, how: str) -> ModelFields:
    raise RuntimeError("weights file is truncated")


@pytest.fixture
def toy_task() -> Iterator[TaskRecord]:
    record = TaskRecord(
        task=TOY,
        variants=("one", "two"),
        canonical=ModelSource(lambda v: f"toy canonical {v}", _toy_model,
                              lambda v: (False, "no toy hub in this test")),
        offline=ModelSource("toy offline", _broken, lambda v: (True, "found in the test")),
        tiny=ModelSource("toy tiny (random)", _toy_model),
    )
    catalog.register_task(record)
    try:
        yield record
    finally:
        catalog.unregister_task(TOY)
    assert TOY not in catalog.TASKS


def test_a_registered_task_loads_through_catalog_load(toy_task, capsys) -> None:
    assert TOY in catalog.TASKS and catalog.VARIANTS[TOY] == ("one", "two")
    with pytest.warns(CatalogWarning, match="not using the offline model toy offline.*truncated"):
        lm = catalog.load(TOY)  # auto: canonical skipped, offline fails, tiny loads
    shown = capsys.readouterr().out
    assert isinstance(lm, catalog.LoadedModel) and lm.task == TOY and lm.variant == "one"
    assert lm.source == "tiny" and lm.name == "toy tiny (random)"
    assert not lm.pretrained and not lm.meaningful_outputs  # the tiny source's defaults
    assert lm.reason.startswith("auto → tiny: small random model built locally. Skipped: ")
    assert "canonical (toy canonical one): no toy hub in this test" in lm.reason
    assert "offline (toy offline) failed to load: RuntimeError" in lm.reason
    assert lm.problems and "truncated" in lm.problems[0] and lm.notes == ["toy variant one"]
    assert "NOT USED" in shown and "toy tiny (random)" in shown and "random weights" in shown
    assert lm.num_parameters == 4

    two = catalog.load(TOY, "tiny", variant="two", show_banner=False)
    assert two.variant == "two" and two.reason == "requested tiny: small random model built locally"
    with pytest.raises(CatalogError, match="canonical model for 'toy-regression' is not available: "
                                           "toy canonical two no toy hub"):
        catalog.load(TOY, "canonical", variant="two")
    with pytest.raises(CatalogError, match=r"loading the offline model .*\(toy offline\) failed: "
                                           "RuntimeError: weights file is truncated"):
        catalog.load(TOY, "offline")
    with pytest.raises(CatalogError, match="unknown variant 'three'.*one, two"):
        catalog.load(TOY, variant="three")
    with pytest.raises(ValueError, match="already registered"):
        catalog.register_task(toy_task)


def test_an_unknown_task_names_the_registered_ones(toy_task) -> None:
    with pytest.raises(CatalogError, match=f"unknown task 'translation'.*image-classification.*{TOY}"):
        catalog.load("translation")


def test_the_builtin_records() -> None:
    assert list(catalog.TASKS) == [
        "image-classification", "question-answering", "text-generation", "sentence-embedding"
    ]
    assert catalog.VARIANTS["question-answering"] == ("large", "small")
    qa = catalog.task_record("question-answering")
    assert qa.canonical.label("small") == "distilbert/distilbert-base-cased-distilled-squad"
    assert catalog.SOURCES == ("auto", "canonical", "offline", "tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert catalog.task_record("image-classification").tiny.check("default") == (
            True, "small random model built locally")


def _catalog_tree() -> ast.Module:
    return ast.parse((ROOT / "helpers" / "catalog.py").read_text())


def test_catalog_has_no_per_task_branch_and_builds_loaded_model_once() -> None:
    tree = _catalog_tree()
    task_compares = [
        node.lineno for node in ast.walk(tree) if isinstance(node, ast.Compare)
        and any(isinstance(n, ast.Name) and n.id == "task" for n in [node.left, *node.comparators])
    ]
    assert task_compares == [], f"per-task branches in catalog.py at lines {task_compares}"
    task_names = set(catalog.TASKS)
    literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in task_names]
    assert literals == [], f"task names written in catalog.py: {literals}"
    builds = []
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "LoadedModel":
                builds.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert len(builds) == 1 and builds[0].startswith("helpers/catalog.py:"), builds


def test_catalog_does_not_import_qa_training() -> None:
    from test_package_structure import import_graph

    graph = import_graph()
    assert "helpers.qa.finetune" not in graph["helpers.catalog"]
    assert "helpers.models.question_answering" in graph["helpers.catalog"]  # via TASK_MODULES
    assert "helpers.qa.finetune" in graph["helpers.models.question_answering"]  # resolved at load
