"""Exercises of notebook 14 (model file safety); registered on import."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpers.course.exercises.framework import (
    Exercise,
    Feedback,
    Wrong,
    as_function,
    correct,
    register,
)


def _raises(load_checked: Any, path: Path, sha256: str) -> BaseException | None:
    """The exception ``load_checked(path, sha256)`` raised, or None when it returned."""
    try:
        load_checked(path, sha256)
    except Exception as exc:  # noqa: BLE001 - refusing is the expected answer
        return exc
    return None


def _check_14_1(
    answer: Any, weights: Any, published: Any, tampered: Any, trapped: Any, marker: Any
) -> Feedback:
    import torch

    load_checked = as_function(answer, "load_checked(path, sha256) -> state_dict")
    weights, tampered, trapped, marker = Path(weights), Path(tampered), Path(trapped), Path(marker)
    marker.unlink(missing_ok=True)
    state = load_checked(weights, published)
    expected = torch.load(weights, weights_only=True)
    if not isinstance(state, Mapping) or set(state) != set(expected):
        raise Wrong(
            f"For the published file, load_checked returned {type(state).__name__}, not its "
            "state_dict.",
            "Return torch.load(path, weights_only=True) once the hash matches.",
        )
    if not all(torch.equal(state[k], expected[k]) for k in expected):
        raise Wrong("The returned tensors differ from the file's.", "Return what torch.load read.")
    if _raises(load_checked, tampered, published) is None:
        raise Wrong(
            f"load_checked accepted {tampered.name}, whose SHA-256 is not the published one: "
            "tampered weights load without any other complaint.",
            "Hash the file's bytes (hashlib.sha256(path.read_bytes()).hexdigest()), compare with "
            "`sha256`, and raise ValueError when they differ — before loading.",
        )
    own_hash = hashlib.sha256(trapped.read_bytes()).hexdigest()
    error = _raises(load_checked, trapped, own_hash)
    if marker.exists():
        marker.unlink()
        raise Wrong(
            f"The payload in {trapped.name} ran: the file was unpickled with weights_only=False.",
            "A matching hash proves the file is the published one, not that it is harmless: "
            "load with torch.load(path, weights_only=True).",
        )
    if error is None:
        raise Wrong(
            f"load_checked returned something for {trapped.name}, a pickle that calls exec().",
            "Load with torch.load(path, weights_only=True): it refuses the file.",
        )
    return correct(
        f"Correct: the published file loads; {tampered.name} is refused by its hash; "
        f"{trapped.name} (hash as published) is refused by weights_only=True "
        f"({type(error).__name__}) and nothing ran."
    )


register(
    Exercise(
        key="14.1",
        title="Check the hash, then load weights only",
        prompt=(
            "Write `load_checked(path, sha256)` that raises `ValueError` unless the SHA-256 of "
            "the file at `path` equals `sha256` (the hex digest its publisher gave), and "
            "otherwise returns its state_dict — loaded so that nothing in the file can run. "
            "The check calls it on this notebook's files: the published weights, the tampered "
            "copy, and the booby-trapped checkpoint (with its own hash, as if its author had "
            "published it)."
        ),
        checker=_check_14_1,
        context=("weights", "published", "tampered", "trapped", "marker"),
        call='exercises.check("14.1", load_checked, weights=out / "weights.pt", '
        "published=published, tampered=out / \"tampered.pt\", trapped=out / \"trapped.pt\", "
        "marker=marker)",
        solution="import hashlib\n\n"
        "def load_checked(path, sha256):\n"
        "    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()\n"
        "    if digest != sha256.lower():\n"
        "        raise ValueError(f'{path}: SHA-256 {digest[:16]}..., expected {sha256[:16]}...')\n"
        "    return torch.load(path, weights_only=True)  # a matching hash is not harmlessness",
    )
)
