"""Exercises of notebook 05 (INT8 quantization); registered on import."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from helpers.course.exercises.framework import Exercise, Feedback, Wrong, correct, register

_DYNAMIC_OPS = ("DynamicQuantizeLinear", "ConvInteger", "MatMulInteger")
_QOPERATOR_OPS = ("QLinearConv", "QLinearMatMul", "QGemm")


def _operators(path: Path) -> Counter[str]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the learner's to fix
        raise Wrong(
            f"{path.name} is not a readable ONNX model ({type(exc).__name__}).",
            "Answer with the path quantize_static wrote (its second argument).",
        ) from None
    return Counter(node.op_type for node in model.graph.node)


def exact_int8_logits(path: str | os.PathLike[str], pixels: np.ndarray) -> np.ndarray:
    """The logits of a QDQ file computed *exactly*: graph optimisations off, so ONNX Runtime runs
    ``DequantizeLinear`` and the fp32 operators literally instead of this CPU's integer kernels
    (the arithmetic VNNI and AMX do; AVX2 alone may saturate). Eight images per call."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batches = [np.ascontiguousarray(pixels[i : i + 8], np.float32) for i in range(0, len(pixels), 8)]
    return np.concatenate([session.run(None, {name: batch})[0] for batch in batches])


def _check_05_1(answer: Any, fp32_logits: Any, pixels: Any, floor: Any) -> Feedback:
    if not isinstance(answer, str | os.PathLike):
        raise Wrong(
            f"Expected the path of your INT8 .onnx file, got {type(answer).__name__}.",
            "quantize_static returns nothing: answer with the path you passed as its second argument.",
        )
    path = Path(answer)
    if not path.is_file():
        raise Wrong(f"There is no file at {path}.", "Run your quantize_static cell first.")
    ops = _operators(path)
    if any(ops[op] for op in _DYNAMIC_OPS):
        raise Wrong(
            "That file is dynamically quantized (DynamicQuantizeLinear / ConvInteger): no calibration ran.",
            "Use quantize_static with your CalibrationDataReader.",
        )
    if any(ops[op] for op in _QOPERATOR_OPS):
        raise Wrong(
            "That file is in the QOperator format (QLinearConv).",
            "Pass quant_format=QuantFormat.QDQ.",
        )
    if not ops["QuantizeLinear"] or not ops["DequantizeLinear"]:
        raise Wrong(
            f"{path.name} has no QuantizeLinear/DequantizeLinear nodes: it is not an INT8 QDQ file "
            "(the fp32 model?).",
            "Answer with the file quantize_static wrote, not its input.",
        )
    reference = np.asarray(fp32_logits)
    pixels = np.asarray(pixels, dtype=np.float32)
    try:
        logits = exact_int8_logits(path, pixels)
    except Exception as exc:  # noqa: BLE001 - report what the runtime said
        raise Wrong(
            f"ONNX Runtime could not run {path.name}: {str(exc).splitlines()[0][:200]}",
            "Quantize the notebook's fp32_path, whose input is named 'pixels'.",
        ) from None
    if logits.shape != reference.shape:
        raise Wrong(
            f"Your model returns {logits.shape[1:]} per photo, fp32 {reference.shape[1:]}.",
            "Quantize the notebook's fp32_path.",
        )
    agreement = float(np.mean(logits.argmax(-1) == reference.argmax(-1)))
    if agreement < float(floor):
        raise Wrong(
            f"Your INT8 file names fp32's class on {agreement:.1%} of the {len(pixels)} photos, below the "
            f"floor of {float(floor):.1%}.",
            "Calibrate on the real calibration photos (every one of them: get_next returns None only at the "
            "end), with per_channel=True; never on random noise.",
        )
    return correct(
        f"Correct: a QDQ INT8 file with {ops['QuantizeLinear']} QuantizeLinear node(s). In exact INT8 "
        f"arithmetic it keeps fp32's answer on {agreement:.1%} of {len(pixels)} photos (floor "
        f"{float(floor):.1%}). Time it next to fp32 with this CPU's own kernels too."
    )


register(
    Exercise(
        key="05.1",
        title="Write a calibration reader and quantize",
        prompt=(
            "Write your own `CalibrationDataReader` subclass that takes the list of **PIL photos** "
            "`calibration_photos` and hands ONNX Runtime **one photo per `get_next()` call**, preprocessed "
            "there with `images.preprocess_batch([photo], backend=\"numpy\", size=size, resize=resize)` as "
            "`{\"pixels\": array}` (and `None` after the last photo). Then call `quantize_static` on "
            "`fp32_path` with your reader, `quant_format=QuantFormat.QDQ` and `per_channel=True`, writing "
            "`helpers.paths.output_dir(\"05_int8_quantization\") / \"my_int8.onnx\"`. Answer with that path. "
            "The check runs your file on this notebook's evaluation photos in exact INT8 arithmetic and "
            "compares its top-1 answers with fp32's against `floor`."
        ),
        checker=_check_05_1,
        context=("fp32_logits", "pixels", "floor"),
        writes_code=True,
        call='exercises.check("05.1", my_int8_path, fp32_logits=fp32_logits, pixels=eval_pixels, floor=floor)',
        solution='''from helpers.paths import output_dir


class OnePhotoReader(CalibrationDataReader):
    def __init__(self, photos):
        self.photos, self.next_index = photos, 0

    def get_next(self):
        if self.next_index == len(self.photos):
            return None
        photo = self.photos[self.next_index]
        self.next_index += 1
        return {"pixels": images.preprocess_batch([photo], backend="numpy", size=size, resize=resize)}

    def rewind(self):
        self.next_index = 0


my_int8_path = output_dir("05_int8_quantization") / "my_int8.onnx"
quantize_static(fp32_path, my_int8_path, OnePhotoReader(calibration_photos),
                quant_format=QuantFormat.QDQ, per_channel=True)''',
    )
)
