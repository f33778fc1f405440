"""Runtimes are records: one spec registered is a runtime everywhere, with no other edit.

A fake runtime — ONNX's own reference evaluator (``onnx.reference``), a real, slow, pure-Python
runtime the suite does not ship — is registered as one :class:`RuntimeSpec` and must show up in
``available_runtimes``, ``for_runtime``, the labels, the environment report and the classroom
widget's choices. It is unregistered afterwards.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from helpers import envreport, hardware, runners
from helpers.course import widgets
from helpers.models import tiny as tiny_models
from helpers.runners import Runner, RuntimeSpec, TensorSpec

ROOT = Path(__file__).resolve().parents[1]
FAKE = "onnx-reference"
FAKE_GPU = "onnx-reference-gpu"


class ReferenceRunner(Runner):
    """ONNX's reference evaluator behind the Runner interface (the fake runtime's runner)."""

    runtime = "onnx.reference"

    def __init__(self, path: Path, *, name: str, threads: int | None, strict: bool) -> None:
        import onnx
        from onnx.reference import ReferenceEvaluator

        model = onnx.load(str(path))
        self.session = ReferenceEvaluator(model)
        self.name, self.threads, self.strict, self.path = name, threads, strict, path
        elem = {onnx.TensorProto.FLOAT: "float32"}
        self.inputs = [
            TensorSpec(
                i.name,
                tuple(d.dim_param or d.dim_value or None for d in i.type.tensor_type.shape.dim),
                elem[i.type.tensor_type.elem_type],
            )
            for i in model.graph.input
        ]
        self.output_names = [o.name for o in model.graph.output]

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, dict(inputs))
        return dict(zip(self.output_names, values, strict=True))

    def describe(self) -> dict[str, Any]:
        return runners.base.base_description(
            self, version="reference", device="cpu", threads={"intra_op": self.threads},
            artifact=str(self.path),
        )


made: list[dict[str, Any]] = []


def make_reference(artifact: Any, *, name: str, threads: int | None = None, strict: bool = False,
                   **_: object) -> Runner:
    made.append({"name": name, "threads": threads, "strict": strict})
    return ReferenceRunner(Path(artifact), name=name, threads=threads, strict=strict)


@pytest.fixture
def fake_runtimes() -> Iterator[tuple[RuntimeSpec, RuntimeSpec]]:
    plain = RuntimeSpec(key=FAKE, label="ONNX reference evaluator", needs="onnx (onnx.reference)",
                        artifact="onnx", available=lambda: True, make=make_reference)
    gpu = RuntimeSpec(key=FAKE_GPU, label="ONNX reference evaluator (GPU)", needs="a GPU",
                      artifact="onnx", available=lambda: True, make=make_reference, needs_gpu=True)
    before = list(runners.available_runtimes())
    runners.register(plain)
    runners.register(gpu)
    made.clear()
    try:
        yield plain, gpu
    finally:
        runners.unregister(FAKE)
        runners.unregister(FAKE_GPU)
    assert list(runners.available_runtimes()) == before


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = tiny_models.TinyClassifier().eval()
    return model, widgets.export_for_demo(model, 32, tmp_path_factory.mktemp("onnx"))


def test_a_registered_spec_is_a_runtime_everywhere(fake_runtimes, toy) -> None:
    plain, gpu = fake_runtimes
    model, onnx_path = toy

    # available_runtimes: installed, and the GPU one only where a GPU is visible
    available = runners.available_runtimes()
    assert available[FAKE] is True
    assert available[FAKE_GPU] is hardware.gpu_present()
    assert list(available)[-2:] == [FAKE, FAKE_GPU]  # registered last, listed last
    assert runners.RUNTIME_LABELS[FAKE] == plain.label and runners.RUNTIME_NEEDS[FAKE] == plain.needs
    assert FAKE in runners.ONNX_RUNTIMES and FAKE not in runners.TORCH_RUNTIMES
    assert runners.runtime_specs(artifact="onnx")[-2:] == (plain, gpu)

    # for_runtime: the spec's factory, with the label as name and the strict default of its kind
    runner = runners.for_runtime(FAKE, onnx_path, 1)
    assert isinstance(runner, ReferenceRunner) and runner.name == plain.label
    assert made[-1] == {"name": plain.label, "threads": 1, "strict": False}
    runners.for_runtime(FAKE_GPU, onnx_path, 2)
    assert made[-1]["strict"] is True  # a GPU request never falls back silently
    x = tiny_models.example_images(2, 32).numpy()
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(runner({"pixels": x})["logits"], expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="only OpenVINO"):
        runners.for_runtime(FAKE, onnx_path, precision="bf16")
    with pytest.raises(ValueError, match="pass it as the artifact"):
        runners.for_runtime(FAKE, None)

    # the environment report runs it next to the others
    matrix = envreport.runtime_matrix()
    row = matrix.loc[plain.label]
    assert row["installed"] and row["works here"], row.to_dict()
    assert row["max abs diff vs eager"] < 1e-4
    assert bool(matrix.loc[gpu.label, "works here"]) == hardware.gpu_present()

    # the classroom widget offers it, and its runner works on the demo's ONNX export
    assert widgets.RUNTIMES[FAKE] == (plain.label, FAKE, f"needs {plain.needs}")
    options = {o.key: o for o in widgets.runtime_options()}
    assert options[FAKE].usable and options[FAKE].label == plain.label
    assert FAKE in widgets.usable_runtimes()
    demo_runner = widgets.build_runner(FAKE, model, input_size=32, onnx_path=onnx_path)
    assert demo_runner.name == plain.label


def test_register_refuses_duplicates_and_unknown_keys_name_the_choices(fake_runtimes) -> None:
    plain, _ = fake_runtimes
    with pytest.raises(ValueError, match="already registered"):
        runners.register(plain)
    assert runners.register(plain, replace=True) is plain
    with pytest.raises(ValueError, match=f"unknown runtime 'nope'.*{FAKE}"):
        runners.for_runtime("nope", "x.onnx")
    with pytest.raises(ValueError, match="artifact must be one of"):
        RuntimeSpec(key="x", label="X", needs="", artifact="saved_model",  # type: ignore[arg-type]
                    available=lambda: True, make=make_reference)


def test_the_builtin_specs() -> None:
    specs = runners.runtime_specs()
    keys = [s.key for s in specs]
    assert len(keys) == len(set(keys)) and len({s.label for s in specs}) == len(specs)
    assert keys[:2] == ["pytorch", "pytorch-cuda"] and "openvino" in keys
    assert all(s.artifact in runners.ARTIFACT_KINDS for s in specs)
    by_key = {s.key: s for s in specs}
    assert by_key["pytorch"].needs_signature and not by_key["onnxruntime"].needs_signature
    assert by_key["onnxruntime-cuda"].strict_by_default and by_key["onnxruntime-openvino"].strict_by_default
    assert not by_key["onnxruntime"].strict_by_default and not by_key["openvino"].strict_by_default
    assert [s.key for s in specs if s.reduced_precision] == ["openvino"]
    assert by_key["torchscript"].legacy
    # the modules of RUNTIME_MODULES are where every built-in spec comes from
    import importlib

    declared = [s.key for m in runners.RUNTIME_MODULES for s in importlib.import_module(m).RUNTIMES]
    assert declared == keys


# --------------------------------------------------------------------------------------------
# No runtime key is listed by hand outside its own module and the registry
# --------------------------------------------------------------------------------------------
#: Where runtime keys may be listed: the runtime modules and the registry.
OWNERS = {"helpers/runners/torch_family.py", "helpers/runners/ort.py", "helpers/runners/openvino.py",
          "helpers/runners/runtimes.py", "helpers/runners/spec.py"}
#: Collections that hold other names that happen to be spelled like runtime keys.
NOT_KEYS = {
    ("helpers/parity.py", "_SAME_GRAPH_RUNTIMES"): "Runner.runtime values (what ran), not registry keys",
    ("helpers/hardware.py", "ORT_DISTRIBUTIONS"): "PyPI distributions of ONNX Runtime",
    ("helpers/envreport.py", "ENVIRONMENT_OF"): "PyPI distributions of ONNX Runtime",
}


def key_tables(source: str, keys: set[str]) -> list[tuple[str, list[str]]]:
    """``(name, keys)`` of every tuple/list/set/dict literal in ``source`` holding 2+ of ``keys``
    (``name``: the variable it is assigned to, else its line)."""
    tree = ast.parse(source)
    owners: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            name = next((t.id for t in targets if isinstance(t, ast.Name)), "")
            for inner in ast.walk(node.value):
                owners.setdefault(id(inner), name)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        listed = [i.value for i in items if isinstance(i, ast.Constant) and i.value in keys]
        if len(listed) >= 2:
            found.append((owners.get(id(node)) or f"line {node.lineno}", listed))
    return found


def test_the_key_table_finder_finds_tables() -> None:
    keys = {"pytorch", "onnxruntime", "openvino"}
    source = ('RUNTIMES = {k: k for k in ("pytorch", "openvino")}\n'
              'def f(key):\n    return key in ["onnxruntime", "openvino", "x"]\n'
              'LABELS = {"pytorch": "PyTorch", "onnxruntime": "ORT"}\nONE = ("pytorch", "torch")\n')
    assert sorted(key_tables(source, keys)) == [
        ("LABELS", ["pytorch", "onnxruntime"]),
        ("RUNTIMES", ["pytorch", "openvino"]),
        ("line 3", ["onnxruntime", "openvino"]),
    ]


def test_no_runtime_key_is_listed_by_hand_outside_the_registry() -> None:
    keys = set(runners.RUNTIMES)
    found = []
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        if relative not in OWNERS:
            found += [(relative, name, listed) for name, listed in key_tables(path.read_text(), keys)
                      if (relative, name) not in NOT_KEYS]
    assert found == [], "list runtimes by looping over helpers.runners.runtime_specs()"
