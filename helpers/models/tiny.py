"""Tiny models, made locally: each makes one point in a lesson or serves as a fast test fixture.

They are tiny on purpose (milliseconds per call on two cores) so a lesson can run them many times:

- :class:`TinyClassifier` a conv net with batch-norm and dropout: its output depends on
  ``train()`` / ``eval()``, it saves and loads, traces and exports cleanly.
- :class:`SignGate` data-dependent control flow (``if x.sum() > 0``): tracing records only the
  branch the example input took, scripting keeps both, ``torch.export`` refuses it unless the
  branch is written with ``torch.cond``.
- :class:`SignGateCond` the same model written with ``torch.cond`` so that it exports.
- :func:`tiny_classifier_onnx` an ONNX image classifier written with ``onnx.helper`` (no torch
  involved): microseconds per call, so a server test can send hundreds of requests.
- :func:`build_tiny_image_classifier`, :func:`build_tiny_gpt2`, :func:`build_tiny_bert` small
  random versions of the catalog's architectures (MobileNetV3-Small, GPT-2, BERT) with the real
  tokenizers: what ``helpers.catalog.load(task, "tiny")`` loads (and caches) for tests and the
  quick ``test`` profile.

Every model is deterministic for a given ``seed`` (:func:`seeded`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "TINY_IMAGE_FILE",
    "SignGate",
    "SignGateCond",
    "TinyClassifier",
    "build_tiny_bert",
    "build_tiny_gpt2",
    "build_tiny_image_classifier",
    "example_images",
    "positive_and_negative_inputs",
    "seeded",
    "tiny_classifier_onnx",
]


@contextlib.contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """Deterministic random initialisation inside the block, without disturbing the caller's
    random state (``torch.random.fork_rng``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


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
        with seeded(seed):  # seed the weights without touching the global random state
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
        with seeded(seed):
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


def tiny_classifier_onnx(
    path: str | os.PathLike[str], *, num_classes: int = 10, seed: int = 0
) -> Path:
    """Write a tiny ONNX image classifier (no torch needed) for tests and quick demos; return its path.

    ``pixel_values: float32[batch, 3, H, W]`` → global average pool → linear →
    ``logits: float32[batch, num_classes]``, with seeded random weights. Any image size works; it
    runs in microseconds, so a test can send hundreds of requests.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 4.0, size=(3, num_classes)).astype(np.float32)
    bias = rng.normal(0, 0.1, size=(num_classes,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["pixel_values"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "weight", "bias"], ["logits"]),
        ],
        "tiny_classifier",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes])],
        [numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# --------------------------------------------------------------------------------------------
# Tiny random versions of the catalog's architectures (its "tiny" source)
# --------------------------------------------------------------------------------------------
#: The state_dict file :func:`build_tiny_image_classifier` writes.
TINY_IMAGE_FILE = "mobilenet_v3_small-random.pth"


def build_tiny_image_classifier(folder: Path, *, seed: int = 0) -> None:
    """Write ``folder / TINY_IMAGE_FILE``: torchvision's MobileNetV3-Small for the 1,000 ImageNet
    classes with seeded random weights (load it with ``mobilenet_v3_small(num_classes=1000)``)."""
    import torchvision

    with seeded(seed):
        model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=1000)
        # torchvision's init makes a random MobileNet's logits ~1e-9 and identical for every
        # input. Give the head PyTorch's default init (scaled up), and set the BatchNorm
        # statistics from a few inputs, so outputs depend on the image and top-1 comparisons
        # between runtimes are not decided by rounding noise.
        linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
        for layer in linears:
            layer.reset_parameters()
        with torch.no_grad():
            linears[-1].weight.mul_(10.0)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = None  # cumulative average
        model.train()
        with torch.no_grad():
            model(torch.randn(4, 3, 160, 160))
        model.eval()
    torch.save(model.state_dict(), Path(folder) / TINY_IMAGE_FILE)


def build_tiny_gpt2(folder: Path, tokenizer_dir: Path, *, seed: int = 0) -> None:
    """Save a 2-layer GPT-2 (``n_embd`` 64) with seeded random weights and the tokenizer in
    ``tokenizer_dir`` (GPT-2's real BPE) into ``folder`` (a transformers folder)."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from helpers.models.hub import quiet_transformers

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=1024,
        n_embd=64,
        n_layer=2,
        n_head=2,
        initializer_range=0.1,  # 5x GPT-2's: less degenerate random text, clear top-1
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with seeded(seed), quiet_transformers():
        model = GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def build_tiny_bert(
    folder: Path, tokenizer_dir: Path, *, question_answering: bool, seed: int = 0
) -> None:
    """Save a 2-layer BERT (hidden 64) — with a span head when ``question_answering`` — with
    seeded random weights and the tokenizer in ``tokenizer_dir`` into ``folder``."""
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering, BertModel

    from helpers.models.hub import quiet_transformers

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        initializer_range=0.1,  # 5x BERT's: clearer span logits
    )
    cls = BertForQuestionAnswering if question_answering else BertModel
    with seeded(seed), quiet_transformers():
        model = cls(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
