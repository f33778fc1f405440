"""Classroom widgets: a runtime picker and an image-classifier demo, built on the suite's helpers.

- :class:`RuntimePicker` lists the runtimes that **really** run in this kernel's environment
  (:func:`helpers.runners.available_runtimes`, which checks a GPU for CUDA instead of trusting
  the provider list) and says why the others are missing.
- :class:`ClassifierDemo` classifies a sample photo or an uploaded image on every picked runtime
  and shows the top-5 classes with each runtime's latency.

Everything the widgets do is in plain functions (:func:`runtime_options`, :func:`build_runner`,
:func:`classify_image`, :func:`predictions_frame`) and in :meth:`ClassifierDemo.run`, which take
and return ordinary Python objects: they work — and are tested — without a browser. Building the
widgets needs no frontend either (outside a kernel ipywidgets uses a dummy comm); in JupyterLab
they render through ``jupyterlab_widgets``.
"""

from __future__ import annotations

import html
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helpers import images as image_utils
from helpers import runners
from helpers.benchmark import benchmark
from helpers.cache import cached_export

__all__ = [
    "RUNTIMES",
    "ClassifierDemo",
    "RuntimeOption",
    "RuntimePicker",
    "RuntimePrediction",
    "build_runner",
    "classifier_demo",
    "classify_image",
    "export_for_demo",
    "predictions_frame",
    "predictions_html",
    "runtime_options",
    "runtime_picker",
    "usable_runtimes",
]

#: Runtimes the demo can run: key -> (label, key in available_runtimes(), why it may be missing).
#: Every runtime of :func:`helpers.runners.available_runtimes` that runs the module itself or its
#: ONNX file (not the file-based PyTorch formats, which need their own artifacts).
RUNTIMES: dict[str, tuple[str, str, str]] = {
    key: (label, key, f"needs {runners.RUNTIME_NEEDS[key]}")
    for key, label in runners.RUNTIME_LABELS.items()
    if key in ("pytorch", "pytorch-cuda") or key in runners.ONNX_RUNTIMES
}
_INPUT, _OUTPUT = "pixels", "logits"


# --------------------------------------------------------------------------------------------
# What can run here
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RuntimeOption:
    """One runtime of the demo: whether it is usable in this kernel, and why not."""

    key: str
    label: str
    usable: bool
    note: str = ""


def runtime_options(available: Mapping[str, bool] | None = None) -> list[RuntimeOption]:
    """Every demo runtime with its availability here (``available`` defaults to the real check)."""
    available = runners.available_runtimes() if available is None else available
    return [
        RuntimeOption(key, label, bool(available.get(flag)), "" if available.get(flag) else why)
        for key, (label, flag, why) in RUNTIMES.items()
    ]


def usable_runtimes(available: Mapping[str, bool] | None = None) -> list[str]:
    """Keys of the runtimes that really run in this kernel, in display order."""
    return [o.key for o in runtime_options(available) if o.usable]


def _environment_line() -> str:
    from helpers import envreport
    from helpers.hardware import ort_distribution

    return (
        f"environment <b>{html.escape(envreport.environment_name())}</b> "
        f"({html.escape(ort_distribution())})"
    )


class RuntimePicker:
    """A multiple-choice list of the runtimes usable here, and a note on the ones that are not.

    ``picker.value`` is the tuple of chosen keys (see :data:`RUNTIMES`); ``picker.widget`` the
    ipywidgets box (displaying the picker displays it).
    """

    def __init__(
        self,
        default: Sequence[str] | None = None,
        *,
        available: Mapping[str, bool] | None = None,
        description: str = "Runtimes",
    ) -> None:
        import ipywidgets as w

        self.options = runtime_options(available)
        usable = [o for o in self.options if o.usable]
        keys = [o.key for o in usable]
        chosen = [k for k in (default if default is not None else keys) if k in keys] or keys[:1]
        self.selector = w.SelectMultiple(
            options=[(o.label, o.key) for o in usable],
            value=tuple(chosen),
            rows=max(len(usable), 2),
            description=description,
            layout=w.Layout(width="420px"),
            style={"description_width": "80px"},
        )
        missing = [o for o in self.options if not o.usable]
        note = "".join(f"<li>{html.escape(o.label)} — {html.escape(o.note)}</li>" for o in missing)
        self.info = w.HTML(
            f"<div class='suite-runtime-info'>Runs here: {len(usable)} runtime(s); "
            f"{_environment_line()}."
            + (f"<br>Not available in this kernel:<ul>{note}</ul>" if missing else "")
            + "</div>"
        )
        self.widget = w.VBox([self.selector, self.info])

    @property
    def value(self) -> tuple[str, ...]:
        """The chosen runtime keys."""
        return tuple(self.selector.value)

    @value.setter
    def value(self, keys: Sequence[str]) -> None:
        self.selector.value = tuple(keys)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def runtime_picker(default: Sequence[str] | None = None, **kwargs: Any) -> RuntimePicker:
    """Build a :class:`RuntimePicker` (display it to show it)."""
    return RuntimePicker(default, **kwargs)


# --------------------------------------------------------------------------------------------
# The classifier, without widgets
# --------------------------------------------------------------------------------------------
def export_for_demo(model: Any, input_size: int = 224, folder: str | Path | None = None) -> Path:
    """Export ``model`` to ONNX once (dynamic batch, input ``pixels``, output ``logits``).

    Cached with :func:`helpers.cache.cached_export` under the model's weights and the input size
    (in ``cache_dir("exports")``, or ``folder``), so a re-run — or a second demo on the same
    model — reuses it, and changed weights are never served a stale file.
    """
    import torch

    from helpers import export

    def write(path: Path) -> None:
        generator = torch.Generator().manual_seed(0)
        example = torch.randn(2, 3, input_size, input_size, generator=generator)
        export.export_onnx(
            model.eval(),
            (example,),
            path,
            input_names=[_INPUT],
            output_names=[_OUTPUT],
            dynamic_shapes={_INPUT: {0: "batch"}},
        )

    return cached_export(
        model,
        write,
        what="image classifier",
        settings={"input_size": input_size, "inputs": _INPUT, "outputs": _OUTPUT},
        folder=Path(folder) if folder is not None else "exports",
    )


def build_runner(
    key: str,
    model: Any,
    *,
    input_size: int = 224,
    onnx_path: str | Path | None = None,
    threads: int | None = 2,
) -> runners.Runner:
    """A runner for one demo runtime (see :data:`RUNTIMES`) from :func:`helpers.runners.for_runtime`:
    the PyTorch keys run ``model``, the others ``onnx_path`` (see :func:`export_for_demo`)."""
    if key not in RUNTIMES:
        raise ValueError(f"unknown runtime {key!r}; choose from {', '.join(RUNTIMES)}")
    specs = [runners.TensorSpec(_INPUT, ("batch", 3, input_size, input_size), "float32")]
    if key in runners.TORCH_RUNTIMES:
        return runners.for_runtime(key, model, threads, inputs=specs, output_names=[_OUTPUT])
    if onnx_path is None:
        raise ValueError(f"{RUNTIMES[key][0]} runs an ONNX file: pass onnx_path (see export_for_demo)")
    return runners.for_runtime(key, onnx_path, threads)


@dataclass
class RuntimePrediction:
    """Top-k classes of one image on one runtime, with the model latency (median of timed calls)."""

    runtime: str
    name: str
    top: list[tuple[str, float]] = field(default_factory=list)
    latency_ms: float = float("nan")
    runs: int = 0
    device: str = ""
    error: str = ""

    @property
    def top1(self) -> str:
        """The best label ('' if this runtime failed)."""
        return self.top[0][0] if self.top else ""


def classify_image(
    image: Any,
    runner_map: Mapping[str, runners.Runner],
    *,
    labels: Sequence[str] | None = None,
    k: int = 5,
    repeats: int = 3,
    size: int = 224,
    resize: int | None = None,
) -> list[RuntimePrediction]:
    """Classify one image (PIL image, path or bytes) on every runner; top-``k`` and latency each.

    Preprocessing (PIL + NumPy) is done once and shared. Each runner gets one untimed call (its
    answer is the prediction), then ``repeats`` timed calls; ``latency_ms`` is their median —
    model time only, at batch 1. A runner that fails gets ``error`` set instead of stopping the
    others. A bad image raises :class:`helpers.images.ImageError`.
    """
    pil = image_utils.load_image(image) if not hasattr(image, "convert") else image.convert("RGB")
    pixels = image_utils.preprocess_batch([pil], backend="numpy", size=size, resize=resize)
    labels = list(labels) if labels is not None else image_utils.imagenet_labels()
    results = []
    for key, runner in runner_map.items():
        pred = RuntimePrediction(runtime=key, name=getattr(runner, "name", key))
        try:
            info = runner.describe()
            actual = info.get("providers_actual") or []
            pred.device = ", ".join(actual) if actual else str(info.get("device", ""))
            feed = {runner.inputs[0].name: pixels}
            logits = np.asarray(runner(feed)[runner.output_names[0]])
            pred.top = image_utils.top_k(logits, labels, k=k)[0]
            runs = max(int(repeats), 1)
            timed = benchmark(runner, feed, warmup=0, runs=runs, min_runs=runs, progress=False)
            pred.latency_ms, pred.runs = timed.p50, timed.runs
        except Exception as exc:  # noqa: BLE001 - one broken runtime must not hide the others
            pred.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        results.append(pred)
    return results


def predictions_frame(predictions: Sequence[RuntimePrediction]) -> Any:
    """One row per runtime: top-1 label and probability, the top-k list, latency (ms), device."""
    import pandas as pd

    rows = []
    for p in predictions:
        rows.append(
            {
                "runtime": p.name,
                "top1": p.top1,
                "probability": p.top[0][1] if p.top else float("nan"),
                "top_k": ", ".join(f"{label} ({prob:.1%})" for label, prob in p.top),
                "latency_ms": round(p.latency_ms, 2),
                "device": p.device,
                "error": p.error,
            }
        )
    columns = ["runtime", "top1", "probability", "top_k", "latency_ms", "device", "error"]
    return pd.DataFrame(rows, columns=columns)


def predictions_html(predictions: Sequence[RuntimePrediction], *, caption: str = "") -> str:
    """An HTML table of the predictions (what the demo widget shows)."""
    head = (
        "<tr><th>runtime</th><th>top-5 (probability)</th><th>latency (median)</th>"
        "<th>runs on</th></tr>"
    )
    body = []
    for p in predictions:
        if p.error:
            cells = f"<td colspan='3' style='color:#b3261e'>failed: {html.escape(p.error)}</td>"
        else:
            top = "<br>".join(
                f"{'<b>' if i == 0 else ''}{html.escape(label)} ({prob:.1%}){'</b>' if i == 0 else ''}"
                for i, (label, prob) in enumerate(p.top)
            )
            cells = (
                f"<td>{top}</td><td class='suite-latency'>{p.latency_ms:.1f} ms</td>"
                f"<td>{html.escape(p.device)}</td>"
            )
        body.append(f"<tr><td>{html.escape(p.name)}</td>{cells}</tr>")
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    return (
        "<table class='suite-predictions' style='border-collapse:collapse;line-height:1.35' "
        "cellpadding='4'>"
        f"{cap}{head}{''.join(body)}</table>"
    )


# --------------------------------------------------------------------------------------------
# The demo widget
# --------------------------------------------------------------------------------------------
def _uploaded_bytes(value: Any) -> tuple[str, bytes] | None:
    """(name, bytes) of the first file in a FileUpload value (ipywidgets 8 tuple or 7 dict)."""
    if not value:
        return None
    if isinstance(value, Mapping):  # ipywidgets 7: {name: {"metadata": ..., "content": ...}}
        name, item = next(iter(value.items()))
        return str(name), bytes(item["content"])
    item = value[0]
    return str(item.get("name", "upload")), bytes(item["content"])


def _thumbnail_jpeg(pil: Any, size: int = 224) -> bytes:
    thumb = pil.copy()
    thumb.thumbnail((size, size))
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


class ClassifierDemo:
    """Pick a sample photo or upload one; see the top-5 and the latency on each chosen runtime.

    Headless use (tests, scripts): ``demo.run("chelsea")`` or ``demo.run(path_or_bytes)`` returns
    :func:`predictions_frame`'s DataFrame and updates the widgets; ``demo.message`` says in plain
    text what the result area shows (the predictions, or why a file cannot be classified).
    ``demo.widget`` is the box shown in a notebook (displaying the demo displays it).
    """

    def __init__(
        self,
        loaded: Any = None,
        *,
        source: str = "auto",
        runtimes: Sequence[str] | None = None,
        available: Mapping[str, bool] | None = None,
        k: int = 5,
        repeats: int = 3,
        threads: int | None = 2,
        auto_run: bool = True,
    ) -> None:
        import ipywidgets as w

        from helpers import catalog

        self.loaded = loaded if loaded is not None else catalog.load("image-classification", source)
        self.model = self.loaded.model.eval()
        self.labels = self.loaded.labels or image_utils.imagenet_labels()
        self.size = self.loaded.input_size or 224
        self.resize = getattr(self.loaded, "resize", None)
        self.k, self.repeats, self.threads = k, repeats, threads
        self.samples = image_utils.sample_images()
        self._runners: dict[str, runners.Runner] = {}
        self._onnx_path: Path | None = None
        self.current: Any = next(iter(self.samples.values()))
        self.current_name = next(iter(self.samples))
        self.last: list[RuntimePrediction] = []

        self.picker = RuntimePicker(runtimes, available=available)
        self.sample = w.Dropdown(
            options=list(self.samples),
            value=self.current_name,
            description="Sample photo",
            style={"description_width": "initial"},
        )
        wide = w.Layout(width="200px")
        self.upload = w.FileUpload(
            accept="image/*", multiple=False, description="Upload a photo", layout=wide
        )
        self.button = w.Button(
            description="Classify", button_style="primary", icon="play", layout=wide
        )
        self.image = w.Image(format="jpeg", layout=w.Layout(max_width="224px"))
        self.status = w.HTML()
        self.result = w.HTML("<i>no prediction yet</i>")
        self.message = "no prediction yet"
        quality = (
            "real pretrained weights"
            if self.loaded.pretrained and self.loaded.meaningful_outputs
            else "random weights — labels are NOT meaningful (timing and parity still are)"
        )
        header = w.HTML(
            f"<b>Model:</b> {html.escape(self.loaded.name)} (source: {html.escape(self.loaded.source)}; "
            f"{html.escape(quality)})"
        )
        controls = w.VBox([self.sample, self.upload, self.button, self.picker.widget])
        self.widget = w.VBox(
            [header, w.HBox([controls, self.image]), self.status, self.result],
            layout=w.Layout(border="1px solid #ddd", padding="8px"),
        )
        self.widget.add_class("suite-classifier-demo")
        self.sample.observe(self._on_sample, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.picker.selector.observe(lambda _change: self.run(), names="value")
        self.button.on_click(lambda _button: self.run())
        if auto_run:
            self.run()

    # -- runners --------------------------------------------------------------------------
    def runners_for(self, keys: Sequence[str]) -> dict[str, runners.Runner]:
        """Runners for ``keys``, built on first use and kept (ONNX exported once)."""
        out: dict[str, runners.Runner] = {}
        for key in keys:
            if key not in self._runners:
                onnx_path = None
                if key in runners.ONNX_RUNTIMES:
                    if self._onnx_path is None:
                        self.status.value = "<i>exporting the model to ONNX (once)…</i>"
                        self._onnx_path = export_for_demo(self.model, self.size)
                    onnx_path = self._onnx_path
                self._runners[key] = build_runner(
                    key, self.model, input_size=self.size, onnx_path=onnx_path, threads=self.threads
                )
            out[key] = self._runners[key]
        return out

    # -- the function behind the widgets --------------------------------------------------
    def predict(
        self, image: Any = None, runtimes: Sequence[str] | None = None
    ) -> list[RuntimePrediction]:
        """Predictions for ``image`` (a sample name, path, bytes or PIL image; default: current)."""
        if isinstance(image, str) and image in self.samples:
            image = self.samples[image]
        image = self.current if image is None else image
        keys = list(runtimes) if runtimes is not None else list(self.picker.value)
        return classify_image(
            image,
            self.runners_for(keys),
            labels=self.labels,
            k=self.k,
            repeats=self.repeats,
            size=self.size,
            resize=self.resize,
        )

    def run(
        self, image: Any = None, runtimes: Sequence[str] | None = None, *, name: str | None = None
    ) -> Any:
        """Classify ``image`` (default: the current one), update the widgets, return the table.

        ``image``: a sample name (see ``demo.samples``), a path, encoded bytes or a PIL image.
        """
        if isinstance(image, str) and image in self.samples:
            name, image = name or image, self.samples[image]
        if image is not None:
            self.current = image
            if name is None:
                name = Path(image).name if isinstance(image, (str, Path)) else "your image"
            self.current_name = name
        try:
            pil = image_utils.load_image(self.current)
            self.image.value = _thumbnail_jpeg(pil)
            self.status.value = "<i>classifying…</i>"
            start = time.perf_counter()
            self.last = self.predict(pil, runtimes)
        except image_utils.ImageError as exc:
            return self._failed(f"This file cannot be classified: {exc}")
        except Exception as exc:  # noqa: BLE001 - keep the widget alive and say what happened
            return self._failed(f"{type(exc).__name__}: {str(exc)[:300]}")
        elapsed = time.perf_counter() - start
        self.status.value = (
            f"<i>{html.escape(self.current_name)}: {len(self.last)} runtime(s), "
            f"{elapsed:.1f} s including first-call set-up</i>"
        )
        caption = f"{self.current_name} — top-{self.k} per runtime (batch 1)"
        self.result.value = predictions_html(self.last, caption=caption)
        self.message = caption + "".join(
            f"\n{p.name}: {p.error or f'{p.top1} ({p.top[0][1]:.1%}), {p.latency_ms:.1f} ms'}" for p in self.last
        )
        return predictions_frame(self.last)

    def _failed(self, message: str) -> Any:
        """Show ``message`` instead of predictions (the widget stays usable); an empty table."""
        self.last = []
        self.status.value = ""
        self.message = message
        self.result.value = f"<div style='color:#b3261e'>⛔ {html.escape(message)}</div>"
        return predictions_frame([])

    # -- events ---------------------------------------------------------------------------
    def _on_sample(self, change: Mapping[str, Any]) -> None:
        self.run(str(change["new"]))

    def _on_upload(self, change: Mapping[str, Any]) -> None:
        uploaded = _uploaded_bytes(change["new"])
        if uploaded is not None:
            self.run(uploaded[1], name=uploaded[0])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def classifier_demo(loaded: Any = None, **kwargs: Any) -> ClassifierDemo:
    """Build a :class:`ClassifierDemo` (display it to show it)."""
    return ClassifierDemo(loaded, **kwargs)
