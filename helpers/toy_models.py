"""Small, hand-written models that make one point each in the early notebooks.

They are tiny on purpose (milliseconds per call on two cores) so a lesson can run them many times:

- :class:`TinyClassifier` a conv net with batch-norm and dropout: its output depends on
  ``train()`` / ``eval()``, it saves and loads, traces and exports cleanly.
- :class:`SignGate` data-dependent control flow (``if x.sum() > 0``): tracing records only the
  branch the example input took, scripting keeps both, ``torch.export`` refuses it unless the
  branch is written with ``torch.cond``.
- :class:`SignGateCond` the same model written with ``torch.cond`` so that it exports.

Every model is deterministic for a given ``seed`` (weights come from ``torch.manual_seed``).
"""

from __future__ import annotations

import torch
from torch import nn


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class TinyClassifier(nn.Module):
    """Conv → BatchNorm → ReLU → pool → Dropout → Linear: 3×H×W images to ``num_classes`` logits.

    Batch-norm and dropout are the two layers whose behaviour differs between ``train()`` and
    ``eval()``. The batch-norm running statistics are set to non-trivial values at construction
    (as if the model had been trained), so forgetting ``eval()`` visibly changes the outputs.
    """

    def __init__(self, num_classes: int = 10, channels: int = 16, dropout: float = 0.5,
                 seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # seed the weights without touching global RNG
            torch.manual_seed(seed)
            self._build(channels, num_classes, dropout)
        generator = _seeded(seed + 1)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                    module.running_var.uniform_(0.5, 2.0, generator=generator)
                    module.weight.uniform_(0.8, 1.2, generator=generator)
                    module.bias.uniform_(-0.1, 0.1, generator=generator)
        self.eval()

    def _build(self, channels: int, num_classes: int, dropout: float) -> None:
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1, stride=2),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``[batch, num_classes]``."""
        return self.head(self.dropout(self.features(x)))


class SignGate(nn.Module):
    """Data-dependent control flow: doubles a linear map's output if the input sum is positive,
    otherwise negates it.

    ``torch.jit.trace`` runs the Python once and records only the branch that the example took,
    so a traced copy silently returns wrong answers for inputs that should take the other branch.
    """

    def __init__(self, features: int = 4, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.linear = nn.Linear(features, features)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``2·linear(x)`` if ``x.sum() > 0`` else ``-linear(x)``."""
        y = self.linear(x)
        if x.sum() > 0:
            return y * 2
        return -y


class SignGateCond(SignGate):
    """:class:`SignGate` with the branch written as ``torch.cond``, which ``torch.export`` and
    the ONNX exporter can capture (both branches end up in the graph)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same maths as :meth:`SignGate.forward`."""
        y = self.linear(x)
        return torch.cond(x.sum() > 0, lambda t: t * 2, lambda t: -t, (y,))


def positive_and_negative_inputs(features: int = 4, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Two inputs for :class:`SignGate`: one whose sum is positive, one whose sum is negative."""
    base = torch.linspace(0.1, 1.0, batch * features).reshape(batch, features)
    return base, -base


def example_images(batch: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    """A reproducible float32 batch ``[batch, 3, size, size]`` roughly like normalised images."""
    return torch.randn(batch, 3, size, size, generator=_seeded(seed))
