"""Small fakes and references shared by several test modules."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import torch

from helpers.runners import TensorSpec

ROOT = Path(__file__).resolve().parents[1]


def fake_run(root: Path) -> None:
    """A run folder as the main job writes it: notebook 00 'executed' (one output added)."""
    executed = root / "run-cpu" / "executed"
    executed.mkdir(parents=True)
    nb = nbformat.read(ROOT / "notebooks" / "00_environment_check.ipynb", as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello from the kernel\n")]
    nbformat.write(nb, executed / "00_environment_check.ipynb")
    summary = {"notebooks": [{"notebook": "00_environment_check.ipynb", "status": "passed", "seconds": 12.0}]}
    (root / "run-cpu" / "summary.json").write_text(json.dumps(summary))


def torch_step(model):
    """A decode step in PyTorch eager through ``helpers.generation.KVCacheWrapper``: the same
    inputs and outputs as the exported graph, so a ``Generator`` can run it as a reference."""
    import torch

    from helpers.generation import KVCacheWrapper

    wrapper = KVCacheWrapper(model).eval()
    names, past_names = wrapper.layout.output_names, wrapper.layout.past_names

    def run(feed):
        tensor = lambda name: torch.from_numpy(np.ascontiguousarray(feed[name]))  # noqa: E731
        with torch.inference_mode():
            outs = wrapper(tensor("input_ids"), tensor("attention_mask"), tensor("position_ids"),
                           [tensor(n) for n in past_names])
        return {n: t.float().numpy() for n, t in zip(names, outs, strict=True)}

    return run


# The tiny image classifier of the runner tests (test_runners.py, test_runners_trust.py): each
# module makes its own module-scoped fixtures from these.
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
