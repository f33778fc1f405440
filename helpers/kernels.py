"""The suite's Jupyter kernels: their names, and the kernelspec committed notebooks carry.

Each environment registers one kernel, ``inference-<env>`` (:func:`kernel_name`), shown as
``Python X.Y (inference: <env>)`` (:func:`display_name`). Committed notebooks carry the standard
``python3`` kernelspec (:data:`STANDARD_KERNELSPEC`), so any Jupyter front end opens them on
its default kernel; ``make run`` (papermill ``-k``) and ``make test`` (nbval
``--nbval-kernel-name``) name the environment's kernel explicitly.

Standard library only: ``scripts/suite.py`` loads this file by its path, before any environment
(and so before ``helpers``) is installed, so the kernel names are defined here once.

Run it as a script to give every notebook the standard kernelspec again (after editing a
notebook in a front end that wrote its own kernel into the file)::

    python3 helpers/kernels.py            # every notebooks/*.ipynb
    python3 helpers/kernels.py a.ipynb    # just these
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = [
    "KERNEL_PREFIX",
    "STANDARD_KERNELSPEC",
    "display_name",
    "kernel_name",
    "kernelspec_of",
    "standardise_kernelspec",
]

#: Every environment's kernel is named ``KERNEL_PREFIX + env``, e.g. ``inference-cpu``.
KERNEL_PREFIX = "inference-"

#: The kernelspec of every committed notebook: ipykernel's own default, which every Jupyter
#: front end (JupyterLab, VS Code, Colab, nbclient) resolves to the Python it runs with.
STANDARD_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def kernel_name(env: str) -> str:
    """The Jupyter kernel name of an environment: ``inference-cpu``, ``inference-gpu``, ..."""
    return f"{KERNEL_PREFIX}{env}"


def display_name(env: str, version: tuple[int, ...]) -> str:
    """``Python 3.12 (inference: cpu)`` for an environment whose interpreter is ``version``."""
    return f"Python {version[0]}.{version[1]} (inference: {env})"


def kernelspec_of(path: str | Path) -> dict | None:
    """The ``metadata.kernelspec`` of a notebook file (None when it has none)."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    return notebook.get("metadata", {}).get("kernelspec")


def standardise_kernelspec(path: str | Path) -> bool:
    """Give a notebook file :data:`STANDARD_KERNELSPEC`; True when the file changed.

    Only the kernelspec changes: the key order and the one-space indentation that Jupyter and
    nbformat write are kept, so the diff is the kernelspec lines alone.
    """
    path = Path(path)
    notebook = json.loads(path.read_text(encoding="utf-8"))
    metadata = notebook.setdefault("metadata", {})
    if metadata.get("kernelspec") == STANDARD_KERNELSPEC:
        return False
    metadata["kernelspec"] = dict(STANDARD_KERNELSPEC)
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parents[1]
    paths = [Path(a) for a in argv] or sorted((root / "notebooks").glob("*.ipynb"))
    changed = [p for p in paths if standardise_kernelspec(p)]
    for path in changed:
        print(f"kernelspec set to {STANDARD_KERNELSPEC['name']!r}: {path}")
    print(f"{len(changed)} of {len(paths)} notebook(s) changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
