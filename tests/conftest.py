"""Fixtures shared by test modules: the tiny image classifier of the runner tests.

Module-scoped, so each module gets its own (a module that defines a fixture of the same name uses
its own). The factories live in tiny_classifier.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_classifier import TinyConvNet, tiny_batch, tiny_conv_net, tiny_expected, tiny_program


@pytest.fixture(scope="module")
def model() -> TinyConvNet:
    return tiny_conv_net()


@pytest.fixture(scope="module")
def batch() -> dict[str, np.ndarray]:
    return tiny_batch()


@pytest.fixture(scope="module")
def expected(model: TinyConvNet, batch: dict[str, np.ndarray]) -> np.ndarray:
    return tiny_expected(model, batch)


@pytest.fixture(scope="module")
def program(model: TinyConvNet) -> torch.export.ExportedProgram:
    return tiny_program(model)
