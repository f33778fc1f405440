"""The capstone: take any PyTorch model (or ONNX file) to every runtime this environment has.

- :func:`model_report` — export once per artefact (cached by content), run every available runtime
  of the registry (:mod:`helpers.runners`), check parity against PyTorch eager and quality for
  reduced precisions, time each batch size, compare with the machine's limit and recommend the
  fastest path that keeps quality, with the runtime code that deploys it; returns a
  :class:`ModelReport` (markdown, HTML inline in Jupyter, JSON, a plot).
- :func:`load_input` — ``path/to/module.py:function`` or an ``.onnx`` file, checked before any
  compute (:class:`ReportInputError`, one line).
- the command: ``inference-report`` / ``python -m helpers.model_report`` (:mod:`.cli`).
"""

from helpers.model_report.core import PRECISIONS, SLOW_RUNTIMES, Row
from helpers.model_report.explain import explain
from helpers.model_report.inputs import ModelInput, ReportInputError, from_model, load_input
from helpers.model_report.report import SCHEMA_VERSION, ModelReport, deploy_code, model_report

__all__ = [
    "PRECISIONS",
    "SCHEMA_VERSION",
    "SLOW_RUNTIMES",
    "ModelInput",
    "ModelReport",
    "ReportInputError",
    "Row",
    "deploy_code",
    "explain",
    "from_model",
    "load_input",
    "model_report",
]
