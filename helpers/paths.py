"""Where the suite writes things: one git-ignored output folder, and a model cache inside it.

Both can be moved with environment variables, so a classroom can point every learner at a
shared, pre-filled cache:

- ``INFERENCE_SUITE_OUTPUT``: the output folder (default ``<repo>/outputs``)
- ``INFERENCE_SUITE_CACHE``: downloads and one-time conversions (default ``<output>/cache``)

``<repo>`` is the checkout the notebooks run from (:data:`REPO_ROOT`): the folder above this
package in a checkout or an editable install; for a copy installed into an environment
(``pip install '.[cpu]'``), the checkout around the current folder, where Jupyter runs a notebook.
"""

from __future__ import annotations

import os
from pathlib import Path


def _is_checkout(folder: Path) -> bool:
    return (folder / "notebooks").is_dir() and (folder / "helpers").is_dir()


def _repo_root() -> Path:
    """This package's checkout; for an installed copy, the checkout around the current folder
    (else the current folder itself)."""
    above_package = Path(__file__).resolve().parents[1]
    if _is_checkout(above_package):
        return above_package
    here = Path.cwd().resolve()
    return next((folder for folder in (here, *here.parents) if _is_checkout(folder)), here)


REPO_ROOT = _repo_root()


def output_root() -> Path:
    """The folder under which everything generated is written (created if missing)."""
    root = Path(os.environ.get("INFERENCE_SUITE_OUTPUT", REPO_ROOT / "outputs")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def output_dir(*parts: str) -> Path:
    """A sub-folder of the output folder, e.g. ``output_dir("03_onnx_export")``; created if missing."""
    path = output_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(*parts: str) -> Path:
    """A sub-folder of the model cache, e.g. ``cache_dir("smollm2")``; created if missing."""
    base = os.environ.get("INFERENCE_SUITE_CACHE")
    root = Path(base).expanduser() if base else output_root() / "cache"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(*parts: str) -> Path:
    """A path inside the repository's ``data/`` folder (small files committed with the suite)."""
    return REPO_ROOT.joinpath("data", *parts)
