"""The tiny image classifier of the runner tests (test_runners.py, test_runners_trust.py).

tests/conftest.py makes their module-scoped fixtures (``model``, ``batch``, ``expected``,
``program``) from these factories. Kept apart from fakes.py: both modules run in every environment
(ENV_SPECIFIC_MODULES), so everything this file imports is needed there too, and fakes.py reaches
helpers.generation.
"""

from __future__ import annotations

import numpy as np
import torch

from helpers.runners import TensorSpec

SPECS = [TensorSpec("input", ("batch", 3, 8, 8), "float32")]
OUTPUTS = ["logits"]


class TinyConvNet(torch.nn.Module):
    """Conv -> ReLU -> global average pool -> Linear: 5 classes from 3x8x8 images."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def tiny_conv_net() -> TinyConvNet:
    """The same weights every time (seed 0), in eval mode."""
    torch.manual_seed(0)
    return TinyConvNet().eval()


def tiny_batch() -> dict[str, np.ndarray]:
    return {"input": np.random.default_rng(0).standard_normal((3, 3, 8, 8), dtype=np.float32)}


def tiny_expected(model: TinyConvNet, batch: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(batch["input"])).numpy()


def tiny_program(model: TinyConvNet) -> torch.export.ExportedProgram:
    example = (torch.randn(2, 3, 8, 8),)  # batch >= 2, or the dynamic batch specialises to 1
    return torch.export.export(model, example, dynamic_shapes=({0: torch.export.Dim("batch")},))
