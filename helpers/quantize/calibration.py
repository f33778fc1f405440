"""Calibration data for static quantization, validated before ONNX Runtime sees it.

:class:`ArrayCalibrationReader` holds in-memory batches of *real* preprocessed inputs and speaks
ONNX Runtime's ``CalibrationDataReader`` protocol (``get_next`` / ``rewind``);
:class:`QuantizationError` is the one error every quantization helper raises for bad input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ArrayCalibrationReader", "QuantizationError", "check_model_file", "input_names"]


class QuantizationError(ValueError):
    """Quantization cannot start: missing model file, empty or malformed calibration set, ..."""


def check_model_file(onnx_in: str | Path) -> Path:
    """``onnx_in`` as a :class:`~pathlib.Path`, or :class:`QuantizationError` when it is no file."""
    path = Path(onnx_in)
    if not path.is_file():
        raise QuantizationError(
            f"ONNX model not found: {path}. Export the fp32 model first "
            "(helpers.export.export_onnx) and pass the path of the .onnx file."
        )
    return path


def input_names(onnx_path: Path) -> list[str]:
    """The graph inputs a feed must provide (initializers listed as inputs excluded)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


class ArrayCalibrationReader:
    """An ONNX Runtime ``CalibrationDataReader`` over in-memory batches.

    ``batches`` is any iterable of ``{input name: np.ndarray}`` dicts (for an image classifier:
    preprocessed float32 ``[N, 3, H, W]`` arrays of *real* photos, never random noise, because the
    activation ranges measured here become the INT8 scales). The batches are materialised once,
    validated against the model's inputs, and can be replayed with :meth:`rewind`.
    """

    def __init__(
        self, batches: Iterable[Mapping[str, np.ndarray]], input_names: Sequence[str] | None = None
    ) -> None:
        if isinstance(batches, Mapping):
            raise QuantizationError(
                "calibration must be an iterable of {input name: array} dicts, got a single dict; "
                "wrap it in a list: [batch]"
            )
        self._batches: list[dict[str, np.ndarray]] = []
        for i, batch in enumerate(batches):
            if not isinstance(batch, Mapping):
                raise QuantizationError(
                    f"calibration item {i} is a {type(batch).__name__}, expected a dict "
                    "{input name: np.ndarray}"
                )
            arrays = {str(k): np.ascontiguousarray(v) for k, v in batch.items()}
            if input_names is not None:
                missing = set(input_names) - set(arrays)
                extra = set(arrays) - set(input_names)
                if missing or extra:
                    raise QuantizationError(
                        f"calibration item {i} has inputs {sorted(arrays)}, the model expects "
                        f"{list(input_names)}"
                        + (f" (missing {sorted(missing)})" if missing else "")
                        + (f" (unknown {sorted(extra)})" if extra else "")
                    )
            for name, arr in arrays.items():
                if arr.size == 0:
                    raise QuantizationError(f"calibration item {i}: input {name!r} is empty")
                if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                    raise QuantizationError(
                        f"calibration item {i}: input {name!r} contains NaN or infinity"
                    )
            self._batches.append(arrays)
        if not self._batches:
            raise QuantizationError(
                "the calibration set is empty: static quantization needs a few representative "
                "inputs (e.g. 50-100 preprocessed real images) to measure activation ranges"
            )
        self._iter: Iterator[dict[str, np.ndarray]] = iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def batches(self) -> list[dict[str, np.ndarray]]:
        """The validated batches, in order (a copy of the list; the arrays are shared)."""
        return list(self._batches)

    @property
    def num_samples(self) -> int:
        """Total number of samples (sum of the batch dimension of the first input)."""
        return sum(int(next(iter(b.values())).shape[0]) for b in self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """Next batch, or ``None`` when exhausted (the protocol ONNX Runtime's calibrator uses)."""
        return next(self._iter, None)

    def rewind(self) -> None:
        """Start again from the first batch."""
        self._iter = iter(self._batches)


def as_ort_reader(calibration: Any, names: Sequence[str]) -> Any:
    """An ORT ``CalibrationDataReader`` from batches, an :class:`ArrayCalibrationReader` or one."""
    from onnxruntime.quantization import CalibrationDataReader

    if isinstance(calibration, ArrayCalibrationReader):
        calibration.rewind()
        return _wrap(calibration)
    if isinstance(calibration, CalibrationDataReader):
        return calibration
    if calibration is None:
        raise QuantizationError(
            "static quantization needs a calibration set: an iterable of {input name: array} dicts"
        )
    return _wrap(ArrayCalibrationReader(calibration, names))


def _wrap(reader: ArrayCalibrationReader) -> Any:
    """Adapt to the ``CalibrationDataReader`` base class (ORT checks ``isinstance``)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return reader.get_next()

        def rewind(self) -> None:
            reader.rewind()

    return _Reader()


def calibration_arrays(calibration: Any, onnx_path: Path) -> ArrayCalibrationReader:
    """``calibration`` as a validated :class:`ArrayCalibrationReader` (for hashing, NNCF)."""
    if isinstance(calibration, ArrayCalibrationReader):
        return calibration
    return ArrayCalibrationReader(calibration, input_names(onnx_path))
