"""Small fakes and references shared by several test modules."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np

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
