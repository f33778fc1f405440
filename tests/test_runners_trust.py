"""helpers.runners refuses files that can run code: a .pt2 with a pickled weight or compiled code,
a planted TorchScript pickle, an AOTInductor package from outside the suite (``helpers.runners.trust``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_classifier import OUTPUTS, SPECS

from helpers import runners
from helpers.runners import TensorSpec, exported_program_runner, torchscript_runner

torch.set_num_threads(min(2, torch.get_num_threads()))

# ------------------------------------------------------------------ files that can run code


class _Payload:
    """Unpickled, it calls exec() to create a marker file: the probe's 'runs a command'."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _rewrite_pt2(good: Path, out: Path, change) -> None:
    """Copy a .pt2 archive member by member; ``change(name, data)`` returns new bytes or None."""
    import zipfile

    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info, change(info.filename, data) or data)


def _pt2_with_pickled_weight(program, tmp_path: Path, marker: Path) -> Path:
    """What torch.export.save writes for a tensor subclass (use_pickle: true), with a payload."""
    import io
    import json

    good = tmp_path / "good.pt2"
    torch.export.save(program, str(good))
    state = {}

    def mark_pickled(name: str, data: bytes) -> bytes | None:
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"], state["file"] = True, first["path_name"]
            return json.dumps(config).encode()
        return None

    _rewrite_pt2(good, tmp_path / "step.pt2", mark_pickled)
    buffer = io.BytesIO()
    torch.save({"weight": _Payload(marker)}, buffer)
    evil = tmp_path / "planted.pt2"
    _rewrite_pt2(tmp_path / "step.pt2", evil,
                 lambda name, data: buffer.getvalue() if name.endswith("/" + state["file"]) else None)
    return evil


def test_pt2_with_a_pickled_weight_is_refused_and_nothing_runs(program, batch, expected, tmp_path) -> None:
    marker = tmp_path / "payload_ran"
    evil = _pt2_with_pickled_weight(program, tmp_path, marker)
    try:
        exported_program_runner(evil, SPECS, OUTPUTS)
    except Exception as exc:  # checked below, after the marker
        error: Exception | None = exc
    else:
        error = None
    assert not marker.exists(), "the payload ran: torch.export.load unpickled the planted weight"
    assert type(error).__name__ == "UntrustedArtifactError", repr(error)
    message = str(error)
    assert "weights_only=True refuses" in message and "exec" in message
    assert "torch.export.load would run code" in message and "trusted=True" in message
    with pytest.raises(runners.UntrustedArtifactError):
        runners.for_runtime("torch.export", evil, 1, inputs=SPECS, output_names=OUTPUTS)
    assert not marker.exists(), "the payload ran"
    # what torch.export.save writes for plain tensors (raw bytes + JSON) is not refused
    assert runners.trust.pt2_problems((tmp_path / "good.pt2").read_bytes()) == []
    runner = exported_program_runner(tmp_path / "good.pt2", SPECS, OUTPUTS)
    np.testing.assert_allclose(runner(batch)["logits"], expected, rtol=1e-5, atol=1e-6)


def test_pt2_sha256_is_checked_and_compiled_code_is_refused(program, tmp_path) -> None:
    import hashlib

    good = tmp_path / "good.pt2"
    torch.export.save(program, str(good))
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    exported_program_runner(good, SPECS, OUTPUTS, sha256=digest[:8])
    exported_program_runner(good, SPECS, OUTPUTS, sha256=digest)
    with pytest.raises(runners.UntrustedArtifactError, match="not the file that was published"):
        exported_program_runner(good, SPECS, OUTPUTS, sha256="0" * 64)
    with pytest.raises(ValueError, match="at least 8 hex digits"):
        exported_program_runner(good, SPECS, OUTPUTS, sha256="abc")

    import shutil
    import zipfile

    with_code = tmp_path / "with_code.pt2"
    shutil.copyfile(good, with_code)
    with zipfile.ZipFile(with_code, "a") as archive:
        top = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{top}/data/aotinductor/model/model.wrapper.so", b"\x7fELF not really")
    with pytest.raises(runners.UntrustedArtifactError, match="AOTInductor compiled code"):
        exported_program_runner(with_code, SPECS, OUTPUTS)


def test_aoti_package_from_outside_the_suite_needs_trust(tmp_path, monkeypatch) -> None:
    package = tmp_path / "downloads" / "model.pt2"
    package.parent.mkdir()
    package.write_bytes(b"not a real package")
    monkeypatch.setenv("INFERENCE_SUITE_OUTPUT", str(tmp_path / "outputs"))
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path / "outputs" / "cache"))
    specs = [TensorSpec("x", ("batch", 4), "float32")]
    with pytest.raises(runners.UntrustedArtifactError, match="runs native code.*trusted=True"):
        runners.aoti_runner(package, specs, ["y"])
    with pytest.raises(runners.UntrustedArtifactError, match="not the file that was published"):
        runners.aoti_runner(package, specs, ["y"], sha256="0" * 8, trusted=True)
    with pytest.raises(runners.UntrustedArtifactError):
        runners.for_runtime("aoti", package, 1, inputs=specs, output_names=["y"])
    assert not runners.trust.is_suite_file(package)
    own = tmp_path / "outputs" / "02" / "model_aoti.pt2"
    own.parent.mkdir(parents=True)
    own.write_bytes(package.read_bytes())
    assert runners.trust.is_suite_file(own)
    for source, kwargs in ((own, {}), (package, {"trusted": True})):  # allowed: then torch tries
        with pytest.raises(Exception) as info:
            runners.aoti_runner(source, specs, ["y"], **kwargs)
        assert not isinstance(info.value, runners.UntrustedArtifactError)


def test_torchscript_loader_refuses_python_globals(model, tmp_path) -> None:
    """TorchScript's own unpickler refuses a Python global: a planted data.pkl cannot run code."""
    import pickle
    import zipfile

    with pytest.warns(FutureWarning):
        torch.jit.trace(model, torch.randn(2, 3, 8, 8)).save(str(tmp_path / "good.ts"))
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "planted.ts"
    with zipfile.ZipFile(tmp_path / "good.ts") as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info, pickle.dumps(_Payload(marker), protocol=2)
                         if info.filename.endswith("/data.pkl") else data)
    with pytest.warns(FutureWarning), pytest.raises(RuntimeError, match="builtins.exec|Unknown type"):
        torchscript_runner(evil, SPECS, OUTPUTS)
    assert not marker.exists()
