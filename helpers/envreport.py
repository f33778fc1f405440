"""What this kernel can do: environment, runtimes, execution providers, hardware.

``report()`` gathers everything into an :class:`EnvReport` that renders as a table in a notebook
and as text in a terminal (``python -m helpers.envreport``). Machine facts come from :mod:`helpers.hardware`
and the runners from :mod:`helpers.runners`; this module only reports. The checks are real, not
read from lists: an execution provider counts as *usable* only if a one-node ONNX model actually ran on it,
because ``onnxruntime-gpu`` lists CUDA as available on machines without a GPU and then silently
runs on the CPU.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers import runners
from helpers.hardware import (
    cpu_info,
    gpu_name,
    gpu_present,
    ort_distributions,
    package_versions,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch

ENVIRONMENTS = ("cpu", "gpu", "openvino")
#: The suite environment each ONNX Runtime distribution stands for.
ENVIRONMENT_OF = {"onnxruntime": "cpu", "onnxruntime-gpu": "gpu", "onnxruntime-openvino": "openvino"}


def environment_name() -> str:
    """``cpu``, ``gpu`` or ``openvino``, decided by the installed ONNX Runtime package.

    ``unknown`` when no ONNX Runtime package, or more than one (they overwrite each other's files),
    is installed.
    """
    found = ort_distributions()
    if len(found) != 1:
        return "unknown"
    return ENVIRONMENT_OF[next(iter(found))]


def _probe_model_bytes() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def listed_providers() -> list[str]:
    """Execution providers this ONNX Runtime build lists (not proof that they work here)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


@functools.cache
def usable_providers() -> list[str]:
    """Execution providers that really ran a one-node model in this process.

    A provider counts only if it is still in ``session.get_providers()`` after the session was
    created, since ONNX Runtime drops providers it cannot initialise and carries on with the CPU.
    """
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return []
    usable = []
    probe = _probe_model_bytes()
    options = ort.SessionOptions()
    options.log_severity_level = 4  # the failed providers log errors we report ourselves
    for provider in listed_providers():
        if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") and not gpu_present():
            continue  # would only log errors and fall back to the CPU
        try:
            session = ort.InferenceSession(probe, sess_options=options, providers=[provider])
            session.run(None, {"x": np.ones((1, 4), dtype=np.float32)})
        except Exception:  # noqa: BLE001 - any failure means "not usable"
            continue
        if provider in session.get_providers():
            usable.append(provider)
    return usable


@functools.cache
def openvino_devices() -> list[str]:
    """Devices native OpenVINO can compile for here (e.g. ``["CPU"]``); empty if not installed."""
    try:
        import openvino as ov
    except ImportError:
        return []
    try:
        return list(ov.Core().available_devices)
    except Exception:  # noqa: BLE001
        return []


#: What each ONNX Runtime execution provider is: the report's explanation of a listed provider.
PROVIDER_NOTES = {
    "CPUExecutionProvider": "ONNX Runtime's own CPU kernels: always present, and the fallback "
    "for every node no other provider takes",
    "CUDAExecutionProvider": "NVIDIA GPUs through CUDA and cuDNN (onnxruntime-gpu); needs a "
    "visible GPU",
    "TensorrtExecutionProvider": "NVIDIA TensorRT (onnxruntime-gpu); needs a GPU and the "
    "TensorRT libraries",
    "OpenVINOExecutionProvider": "Intel OpenVINO inside ONNX Runtime (onnxruntime-openvino): "
    "Intel CPUs, GPUs and NPUs",
    "AzureExecutionProvider": "calls models hosted on Azure endpoints over the network "
    "(operators from onnxruntime-extensions); not local compute: an ordinary model's nodes run "
    "on another provider",
    "DmlExecutionProvider": "DirectML: GPUs on Windows",
    "CoreMLExecutionProvider": "Apple Core ML (macOS, iOS)",
    "MIGraphXExecutionProvider": "AMD GPUs through MIGraphX",
    "DnnlExecutionProvider": "Intel oneDNN (builds from source)",
    "XnnpackExecutionProvider": "XNNPACK kernels for Arm and x86 CPUs (mobile builds)",
    "QNNExecutionProvider": "Qualcomm NPUs (Snapdragon)",
    "WebGpuExecutionProvider": "GPUs through WebGPU",
}


def explain_provider(provider: str) -> str:
    """One line saying what an execution provider is (:data:`PROVIDER_NOTES`), for any name."""
    return PROVIDER_NOTES.get(
        provider, "not described here: see ONNX Runtime's documentation of execution providers"
    )


def write_probe_model(path: str | os.PathLike[str]) -> str:
    """Write the report's one-node probe as ONNX (``y = Relu(x)``, ``x``: float32 ``[1, 4]``).

    Returns the path, as a string.
    """
    with open(path, "wb") as file:
        file.write(_probe_model_bytes())
    return str(path)


def probe_node_providers(provider: str) -> list[str]:
    """The providers that computed the probe's nodes in a session asking for ``provider`` (then the
    CPU), read from ONNX Runtime's own profile; ``[]`` when no session could be made."""
    import json
    import tempfile
    from pathlib import Path

    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        options.profile_file_prefix = str(Path(tmp) / "probe")
        try:
            session = ort.InferenceSession(
                _probe_model_bytes(), sess_options=options, providers=[provider]
            )
            session.run(None, {"x": np.ones((1, 4), dtype=np.float32)})
        except Exception:  # noqa: BLE001 - a provider that cannot start computed nothing
            return []
        events = json.loads(Path(session.end_profiling()).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and "provider" in e.get("args", {})]
    return sorted({e["args"]["provider"] for e in nodes})


def provider_table(rep: EnvReport):  # -> pandas.DataFrame (import kept lazy)
    """One row per provider the build lists: what it is, whether a session keeps it, and which
    provider really computed the probe's node when it was asked for first (ONNX Runtime's profile).
    CUDA and TensorRT are not tried without a GPU (they would only log errors)."""
    import pandas as pd

    rows = {}
    for provider in rep.ort_listed_providers:
        untried = provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") and not rep.gpu
        ran_on = "not tried: no GPU" if untried else ", ".join(probe_node_providers(provider))
        rows[provider] = {
            "kept by a session": provider in rep.ort_usable_providers,
            "probe node ran on": ran_on or "-",
            "what it is": explain_provider(provider),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "provider"
    return frame


def torch_threads() -> dict[str, int]:
    """PyTorch's intra- and inter-op thread counts for this process."""
    import torch

    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}


@dataclass
class EnvReport:
    """Everything a learner needs to know about the kernel they are running in."""

    environment: str
    expected_environment: str | None
    packages: dict[str, str | None]
    cpu: dict[str, Any]
    torch_threads: dict[str, int]
    gpu: str | None
    ort_listed_providers: list[str]
    ort_usable_providers: list[str]
    openvino_devices: list[str]
    problems: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str, str]]:
        """(section, item, value) rows, the basis of both the table and the text form."""
        rows = [("environment", "detected from installed ONNX Runtime", self.environment)]
        if self.expected_environment:
            rows.append(("environment", "kernel was started for", self.expected_environment))
        rows += [("package", name, version or "not installed") for name, version in self.packages.items()]
        flags = ", ".join(f for f, on in self.cpu["flags"].items() if on) or "none of interest"
        if self.cpu.get("flags_source") is None:
            flags = "unknown (this system does not expose them to programs)"
        rows += [
            ("hardware", "CPU", str(self.cpu["model"])),
            ("hardware", "cores (logical / physical)", f"{self.cpu['logical_cores']} / {self.cpu['physical_cores']}"),
            ("hardware", "SIMD flags", flags),
            ("hardware", "GPU", self.gpu or "none visible"),
            ("threads", "torch intra-op / inter-op",
             f"{self.torch_threads['intra_op']} / {self.torch_threads['inter_op']}"),
            ("onnxruntime", "providers listed by the build", ", ".join(self.ort_listed_providers) or "-"),
            ("onnxruntime", "providers that really run here", ", ".join(self.ort_usable_providers) or "-"),
            ("openvino", "devices", ", ".join(self.openvino_devices) or "-"),
        ]
        return rows

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows(), columns=["section", "item", "value"]).set_index(["section", "item"])

    def __str__(self) -> str:
        width = max(len(item) for _, item, _ in self.rows())
        lines = [f"{section:<12} {item:<{width}}  {value}" for section, item, value in self.rows()]
        lines += [f"PROBLEM: {p}" for p in self.problems] + [f"advice: {a}" for a in self.advice]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import pandas as pd

        from helpers.display import MAX_COLWIDTH

        with pd.option_context("display.max_colwidth", MAX_COLWIDTH):
            return self.to_frame()._repr_html_()


def _diagnose(rep: EnvReport) -> None:
    found = ort_distributions()
    if len(found) > 1:
        rep.problems.append(
            f"more than one ONNX Runtime package is installed ({', '.join(found)}): they overwrite "
            "each other's files. Recreate the environment with `make setup`."
        )
    if not found:
        rep.problems.append("ONNX Runtime is not installed in this kernel's environment.")
    if rep.expected_environment and rep.expected_environment != rep.environment:
        rep.problems.append(
            f"this kernel was started for '{rep.expected_environment}' but its packages are those "
            f"of '{rep.environment}'."
        )
    listed, usable = set(rep.ort_listed_providers), set(rep.ort_usable_providers)
    if "CUDAExecutionProvider" in listed and "CUDAExecutionProvider" not in usable:
        rep.advice.append(
            "CUDAExecutionProvider is listed but cannot run here (no GPU visible): ONNX Runtime "
            "would silently use the CPU. The suite's runners warn when that happens."
        )
    if rep.environment != "gpu":
        rep.advice.append("For NVIDIA GPUs use the kernel 'Python 3.11 (inference: gpu)'.")
    if "OpenVINOExecutionProvider" not in usable:
        rep.advice.append(
            "ONNX Runtime's OpenVINO execution provider is only in the 'openvino' environment "
            "(kernel 'Python 3.11 (inference: openvino)'); native OpenVINO works in every environment."
        )
    if not rep.openvino_devices:
        rep.problems.append("native OpenVINO is not importable: run `make setup`.")


def report() -> EnvReport:
    """Collect the environment report (takes about a second: it runs a real probe per provider)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            importlib.import_module("torch")
            threads = torch_threads()
        except ImportError:
            threads = {"intra_op": 0, "inter_op": 0}
    rep = EnvReport(
        environment=environment_name(),
        expected_environment=os.environ.get("INFERENCE_SUITE_ENV"),
        packages=package_versions(),
        cpu=cpu_info(),
        torch_threads=threads,
        gpu=gpu_name(),
        ort_listed_providers=listed_providers(),
        ort_usable_providers=usable_providers(),
        openvino_devices=openvino_devices(),
    )
    _diagnose(rep)
    return rep


def _probe_onnx_file(weight: np.ndarray, bias: np.ndarray, path: Path) -> None:
    """Write Gemm+Relu with the given weights: the ONNX twin of ``Linear`` + ``ReLU``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", weight.shape[1]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", weight.shape[0]])
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")]
    graph = helper.make_graph(nodes, "probe", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


#: Artifact kinds the matrix does not build (too slow for a report), and what it says instead.
_NOT_BUILT = {
    "aoti-package": "available; not compiled here (tens of seconds: see notebook 02)",
}


def runtime_matrix() -> pd.DataFrame:
    """Run one tiny model on every registered runtime and compare it with PyTorch eager.

    One row per runtime of :func:`helpers.runners.runtime_specs` (labelled with its
    ``label``); columns say whether the runtime is installed, whether it really ran here, the
    max abs difference of its output against eager PyTorch (the model called directly), and a
    note. Every runner comes from :func:`helpers.runners.for_runtime`, with the probe artifact
    its spec asks for (the module, a TorchScript file, a ``.pt2`` or an ONNX file).
    AOTInductor packages are not compiled here (that takes tens of seconds, see notebook 02):
    such a runtime counts as working when it is available.
    """
    import tempfile

    import numpy as np
    import pandas as pd
    import torch

    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 3)
    model = torch.nn.Sequential(linear, torch.nn.ReLU()).eval()
    specs = [runners.TensorSpec("x", ("batch", 4), "float32")]
    x = {"x": np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)}
    with torch.inference_mode():
        reference = model(torch.from_numpy(x["x"])).numpy()
    available = runners.available_runtimes()
    rows: dict[str, dict[str, object]] = {}

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _probe_onnx_file(linear.weight.detach().numpy(), linear.bias.detach().numpy(), folder / "probe.onnx")
        probes = _probe_artifacts(model, torch.from_numpy(x["x"]), folder)
        for spec in runners.runtime_specs():
            row: dict[str, object] = {"installed": bool(available.get(spec.key)), "works here": False,
                                      "max abs diff vs eager": np.nan, "note": ""}
            notes = ["deprecated upstream"] if spec.legacy else []
            rows[spec.label] = row
            if not row["installed"]:
                if spec.needs_gpu and _installed(spec):  # a CUDA build without a GPU
                    row["installed"] = True
                    notes.append("listed by the build but no GPU: would silently run on the CPU"
                                 if spec.execution_provider else "installed, but no GPU is visible")
                else:
                    notes.append(f"needs {spec.needs}")
            elif spec.artifact in _NOT_BUILT:
                row["works here"] = True
                notes.append(_NOT_BUILT[spec.artifact])
            else:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        signature = (specs, ["y"]) if spec.needs_signature else (None, None)
                        runner = runners.for_runtime(spec.key, probes[spec.artifact](),
                                                     inputs=signature[0], output_names=signature[1])
                        out = runner.run(x)
                    diff = float(np.abs(next(iter(out.values())) - reference).max())
                    row["max abs diff vs eager"] = diff
                    precision = getattr(runner, "precision", "float32")
                    if precision != "float32":
                        notes.append(f"computes in {precision} by default")
                    # reduced-precision defaults (bf16 on CPUs that have it) differ by ~1e-3
                    row["works here"] = diff < (1e-4 if precision == "float32" else 5e-2)
                except Exception as exc:  # noqa: BLE001 - the matrix reports, it does not crash
                    notes = [f"failed: {type(exc).__name__}: {exc}"[:160]]
            row["note"] = "; ".join(notes)
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "runtime"
    return frame


def _installed(spec: runners.RuntimeSpec) -> bool:
    try:
        return bool(spec.available())
    except Exception:  # noqa: BLE001 - a broken install counts as absent
        return False


def _probe_artifacts(
    model: torch.nn.Module, example: torch.Tensor, folder: Path
) -> dict[str, Callable[[], object]]:
    """How to make the probe model in each artifact kind (built on first use, in ``folder``)."""
    import torch

    def traced() -> Path:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.trace(model, example).save(str(folder / "probe.ts"))
        return folder / "probe.ts"

    def exported() -> Path:
        program = torch.export.export(model, (example,))
        torch.export.save(program, str(folder / "probe.pt2"))
        return folder / "probe.pt2"

    return {
        "module": lambda: model,
        "torchscript": traced,
        "exported-program": exported,
        "onnx": lambda: folder / "probe.onnx",
    }


if __name__ == "__main__":
    print(report())
