"""Exercise 14.1 (check the published hash, then load weights only) accepts the right answer and
rejects a loader that skips the hash or unpickles with weights_only=False — whose payload, a
marker file written by exec(), is the evidence."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from helpers.course.exercises import framework


class Payload:
    """Unpickling it calls exec(), which writes a marker file (harmless)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


@pytest.fixture()
def files(tmp_path) -> dict:
    torch.manual_seed(0)
    state = torch.nn.Linear(4, 3).state_dict()
    torch.save(state, tmp_path / "weights.pt")
    published = hashlib.sha256((tmp_path / "weights.pt").read_bytes()).hexdigest()
    state["bias"][0] += 100.0
    torch.save(state, tmp_path / "tampered.pt")
    marker = tmp_path / "ran.txt"
    torch.save({"weight": torch.ones(2), "extra": Payload(marker)}, tmp_path / "trapped.pt")
    return {"weights": tmp_path / "weights.pt", "published": published,
            "tampered": tmp_path / "tampered.pt", "trapped": tmp_path / "trapped.pt",
            "marker": marker}


def checked(path, sha256):
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if digest != sha256:
        raise ValueError("not the published file")
    return torch.load(path, weights_only=True)


def test_registered() -> None:
    assert framework.all_keys("14") == ["14.1"]


def test_the_solution_passes(files) -> None:
    feedback = framework.evaluate("14.1", checked, **files)
    assert feedback.ok, feedback.text()
    assert not files["marker"].exists()


def test_skipping_the_hash_is_caught(files) -> None:
    def unchecked(path, sha256):
        return torch.load(path, weights_only=True)

    feedback = framework.evaluate("14.1", unchecked, **files)
    assert not feedback.ok and "tampered.pt" in feedback.message and "hashlib" in feedback.hint


def test_weights_only_false_runs_the_payload_and_is_caught(files) -> None:
    def trusting(path, sha256):
        if hashlib.sha256(Path(path).read_bytes()).hexdigest() != sha256:
            raise ValueError("mismatch")
        return torch.load(path, weights_only=False)

    feedback = framework.evaluate("14.1", trusting, **files)
    assert not feedback.ok and "payload" in feedback.message
    assert "weights_only=True" in feedback.hint
    assert not files["marker"].exists(), "the check removes the marker it found"


def test_wrong_return_values(files) -> None:
    assert "not its state_dict" in framework.evaluate("14.1", lambda p, s: "ok", **files).message
    assert not framework.evaluate("14.1", None, **files).answered
