"""The report itself: :func:`model_report` runs the pipeline; :class:`ModelReport` holds the rows and
renders markdown, HTML (inline in Jupyter), JSON for CI and a latency/quality plot, and recommends the
fastest path that keeps quality with the raw runtime code that deploys it."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from helpers.model_report.core import _LIMIT_NAMES, Row, Settings, collect
from helpers.model_report.inputs import ModelInput, from_model

__all__ = ["SCHEMA_VERSION", "ModelReport", "deploy_code", "model_report"]

SCHEMA_VERSION = 1


def deploy_code(row: Row, item: ModelInput, threads: int | None) -> str:
    """The few lines of the runtime's own API that run ``row``'s artefact."""
    feeds = "{" + ", ".join(f'"{n}": {n}' for n in item.inputs) + "}"
    n = threads or 4  # the report passes the threads it measured with
    from helpers.runners import runtime_spec

    provider = runtime_spec(row.runtime).execution_provider  # ONNX Runtime's specs name their EP
    if provider:
        return ("import onnxruntime as ort\n\n"
                "options = ort.SessionOptions()\n"
                f"options.intra_op_num_threads = {n}\n"
                "options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL\n"
                f'session = ort.InferenceSession("{row.artifact}", options, providers=["{provider}"])\n'
                f"outputs = session.run(None, {feeds})  # numpy arrays in, numpy arrays out")
    if row.runtime == "openvino":
        hint = "bf16" if row.precision == "bf16" else "f32"
        return ("import openvino as ov\n\n"
                "core = ov.Core()\n"
                f'compiled = core.compile_model("{row.artifact}", "CPU",\n'
                f'                              {{"INFERENCE_NUM_THREADS": {n},\n'
                f'                               "INFERENCE_PRECISION_HINT": "{hint}"}})\n'
                f"outputs = compiled({feeds})  # results by output port")
    args = ", ".join(item.inputs)
    call = f"model(**{feeds})" if item.call_style == "kwargs" else f"model({args})"
    if row.runtime == "torch.export":
        return ("import torch\n\n"
                "program = torch.export.export(model, example_args)  # once; torch.export.save(program, 'model.pt2')\n"
                "model = program.module()\n"
                f"torch.set_num_threads({n})\n"
                f"with torch.inference_mode():\n    outputs = {call}")
    if row.runtime == "torchscript":
        return ("import torch\n\n"
                "model = torch.jit.trace(model, example_args)  # legacy: prefer torch.export\n"
                f"torch.set_num_threads({n})\n"
                f"with torch.inference_mode():\n    outputs = {call}")
    return (f"import torch\n\ntorch.set_num_threads({n})\nmodel.eval()\n"
            f"with torch.inference_mode():\n    outputs = {call}")


@dataclass(repr=False)
class ModelReport:
    """Everything the report found (see :func:`model_report`)."""

    model: str
    source: str
    settings: dict[str, Any]
    machine: dict[str, Any]
    rows: list[Row]
    facts: dict[str, Any]
    flops: dict[int, int] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)
    recommendation: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every row that ran kept parity (fp32) or quality (reduced precisions)."""
        return all(row.passed for row in self.rows)

    @property
    def ran(self) -> list[str]:
        """Runtime keys with at least one successful row."""
        return sorted({row.runtime for row in self.rows if row.status == "ok"})

    def pct_of_limit(self, row: Row, batch: int) -> float | None:
        """% of the machine's peak in the precision ``row`` computes, at ``batch``; None where
        FLOPs or the peak are unknown."""
        from helpers.benchmark.limits import bounding_precision

        p50 = row.latency.get(batch, {}).get("p50")
        flops = self.flops.get(batch)
        peak = self.peaks.get(bounding_precision(_LIMIT_NAMES[row.precision]))
        if not p50 or not flops or not peak:
            return None
        return 100.0 * flops / (p50 / 1000.0) / (peak * 1e9)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: schema version, model, machine, settings, rows, recommendation, passed."""
        rows = []
        for row in self.rows:
            data = asdict(row)
            data["latency"] = {str(b): {**v, "pct_of_limit": self.pct_of_limit(row, b)} for b, v in row.latency.items()}
            data["passed"] = row.passed
            rows.append(data)
        return {"schema": SCHEMA_VERSION, "model": self.model, "source": self.source, "machine": self.machine,
                "settings": self.settings, "flops": {str(b): f for b, f in self.flops.items()},
                "peaks_gflops": self.peaks, "rows": rows, "artifacts": self.facts.get("artifacts", []),
                "reference": self.facts.get("reference"), "recommendation": self.recommendation,
                "passed": self.passed}

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=2, default=str)

    def tables(self) -> tuple[Any, Any]:
        """(quality table, speed table) as pandas DataFrames."""
        import pandas as pd

        ran = [r for r in self.rows if r.status != "skipped"]
        quality = pd.DataFrame([{
            "runtime": r.label, "precision": r.precision, "status": r.status,
            "max abs diff": None if r.max_abs is None else f"{r.max_abs:.2e}",
            "parity": {True: "ok", False: "FAIL", None: "-"}[r.parity_ok],
            "quality": "-" if r.quality is None else f"{r.quality:.3f} ({r.quality_metric})",
            "size MiB": r.size_mib, "note": r.error,
        } for r in ran])
        speed_rows = []
        for r in self.rows:
            for b, v in r.latency.items():
                if v.get("p50") is None:
                    continue
                pct = self.pct_of_limit(r, b)
                speed_rows.append({
                    "runtime": r.label, "precision": r.precision, "batch": b,
                    "p50 ms": round(float(v["p50"] or 0), 3), "p90 ms": round(float(v["p90"] or 0), 3),
                    "p99 ms": round(float(v["p99"] or 0), 3), "items/s": round(float(v["items_per_s"] or 0), 1),
                    "% of limit": "n/a" if pct is None else f"{pct:.1f}"})
        return quality, pd.DataFrame(speed_rows)

    def failures(self) -> list[dict[str, str]]:
        """Each failed step once: what, the runtime's own error, a plain explanation, the usual fix,
        and which runtimes it stopped (a failed export stops every runtime that needs its file)."""
        found = []
        failed_rows = [r for r in self.rows if r.status == "failed" and r.explanation]
        for a in self.facts.get("artifacts", []):
            if a.get("status") == "failed":
                stopped = [f"{r.label} {r.precision}" for r in failed_rows if r.error == a["error"]]
                found.append({"step": a["artifact"], "error": a["error"], "explanation": a["explanation"],
                              "fix": a["fix"], "stopped": ", ".join(stopped)})
        reported = {f["error"] for f in found}
        found += [{"step": f"{r.label} {r.precision}", "error": r.error, "explanation": r.explanation,
                   "fix": r.fix, "stopped": f"{r.label} {r.precision}"}
                  for r in failed_rows if r.error not in reported]
        return found

    def markdown(self) -> str:
        """The report as markdown (tables, failures, recommendation with code, plot link)."""
        quality, speed = self.tables()
        rec = self.recommendation
        lines = [f"# Inference report: {self.model}", "",
                 f"Machine: {self.machine.get('cpu')}, {self.machine.get('threads')} threads. "
                 f"Reference: {self.facts.get('reference')}. Parity: each runtime's default tolerance "
                 f"for its precision (helpers.parity); quality: kept when ≥ {self.settings['quality_threshold']}.",
                 "", "## Parity and quality", "", quality.to_markdown(index=False), "",
                 "## Speed", "", speed.to_markdown(index=False) if len(speed) else "(nothing ran)", ""]
        skipped = sorted({f"{r.label} ({r.error})" for r in self.rows if r.status == "skipped"})
        if skipped:
            lines[-6:-6] = ["Not run: " + "; ".join(skipped) + ".", ""]
        if not self.flops:
            lines += ["% of limit: n/a (FLOPs are countable for a PyTorch model; limits measured unless "
                      "--no-limits).", ""]
        fails = self.failures()
        if fails:
            lines += ["## What failed, and the usual fix", ""]
            lines += [f"- **{f['step']}** (stopped {f['stopped'] or 'nothing else'}): `{f['error']}` — "
                      f"{f['explanation']}. Fix: {f['fix']}." for f in fails]
            lines.append("")
        lines += ["## Recommendation", ""]
        if rec:
            lines += [rec["sentence"], "", "```python", rec["code"], "```", ""]
        else:
            lines += ["No path kept parity and quality: deploy PyTorch eager and investigate the failures.", ""]
        if "plot" in self.files:
            lines += [f"![latency and quality]({Path(self.files['plot']).name})", ""]
        lines.append(f"Overall: {'PASSED' if self.passed else 'FAILED'} (parity and quality checks).")
        return "\n".join(lines)

    def html(self) -> str:
        """A small HTML page: the two tables, the failures, the recommendation."""
        import html

        quality, speed = self.tables()
        rec = self.recommendation
        parts = [f"<h3>Inference report: {html.escape(self.model)}</h3>",
                 f"<p>Machine: {html.escape(str(self.machine.get('cpu')))}. Reference: "
                 f"{html.escape(str(self.facts.get('reference')))}.</p>",
                 quality.to_html(index=False), speed.to_html(index=False) if len(speed) else ""]
        for f in self.failures():
            parts.append(f"<p><b>{html.escape(f['step'])}</b>: <code>{html.escape(f['error'])}</code> — "
                         f"{html.escape(f['explanation'])}. Fix: {html.escape(f['fix'])}.</p>")
        if rec:
            parts.append(f"<p>{html.escape(rec['sentence'])}</p><pre>{html.escape(rec['code'])}</pre>")
        parts.append(f"<p>Overall: <b>{'PASSED' if self.passed else 'FAILED'}</b></p>")
        return "\n".join(parts)

    def __repr__(self) -> str:
        """One line a console can show: the model, what ran, the verdict and the recommendation."""
        rec = self.recommendation
        best = f"{rec['runtime']} {rec['precision']}" if rec else "none"
        return (f"<ModelReport {self.model!r}: {len(self.rows)} runtime x precision rows, "
                f"{len(self.ran)} runtimes ran, {len(self.failures())} failed steps, "
                f"{'PASSED' if self.passed else 'FAILED'}, recommended: {best}>")

    def _repr_html_(self) -> str:
        return self.html()

    def plot(self, ax: Any = None) -> Any:
        """p50 latency at the first batch size against parity error, one point per row that ran."""
        if ax is None:  # a figure outside pyplot: Jupyter shows it once, where it is displayed
            from matplotlib.figure import Figure

            ax = Figure(figsize=(6, 3.5)).subplots()
        batch = self.settings["batch_sizes"][0]
        for r in self.rows:
            p50 = r.latency.get(batch, {}).get("p50")
            if r.status == "ok" and p50 and r.max_abs is not None:
                ax.scatter(p50, max(r.max_abs, 1e-9), marker="o" if r.passed else "x")
                ax.annotate(f"{r.runtime} {r.precision}", (p50, max(r.max_abs, 1e-9)), fontsize=7)
        ax.set_xlabel(f"p50 latency, batch {batch} (ms)")
        ax.set_ylabel("max abs diff vs reference")
        ax.set_yscale("log")
        ax.set_title(f"{self.model}: speed and quality")
        return ax

    def save(self, folder: str | Path) -> dict[str, str]:
        """Write report.md, report.html, report.json and latency_quality.png into ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        ax = self.plot()
        ax.figure.tight_layout()
        ax.figure.savefig(out / "latency_quality.png", dpi=100)
        self.files = {"plot": str(out / "latency_quality.png"), "markdown": str(out / "report.md"),
                      "html": str(out / "report.html"), "json": str(out / "report.json")}
        (out / "report.md").write_text(self.markdown())
        (out / "report.html").write_text(self.html())
        (out / "report.json").write_text(self.to_json())
        return self.files


def _recommend(report: ModelReport, item: ModelInput, threads: int | None) -> dict[str, Any]:
    batch = report.settings["batch_sizes"][0]
    kept = [r for r in report.rows if r.status == "ok" and r.passed and r.latency.get(batch, {}).get("p50")]
    if not kept:
        return {}
    best = min(kept, key=lambda r: float(r.latency[batch]["p50"] or 0))
    base = next((r for r in kept if r.runtime == "pytorch" and r.precision == "fp32"), None)
    p50 = float(best.latency[batch]["p50"] or 0)
    speedup = f", {float(base.latency[batch]['p50'] or 0) / p50:.2f}x PyTorch eager" if base else ""
    quality = f"quality {best.quality:.3f} ({best.quality_metric})" if best.quality is not None else \
        f"max abs diff {best.max_abs:.1e}"
    sentence = (f"Deploy **{best.label}** at **{best.precision}**: p50 {p50:.3f} ms at batch {batch}{speedup}, "
                f"{quality}; fastest of the paths that kept parity (fp32) or quality ≥ "
                f"{report.settings['quality_threshold']} (reduced precisions).")
    return {"runtime": best.runtime, "precision": best.precision, "p50_ms": p50, "sentence": sentence,
            "code": deploy_code(best, item, threads or report.machine.get("threads"))}


def _machine(threads: int | None) -> dict[str, Any]:
    from helpers.hardware import cpu_info
    from helpers.runners.base import default_threads

    return {"cpu": cpu_info().get("model") or platform.processor(), "threads": threads or default_threads(),
            "python": platform.python_version()}


def model_report(model: Any, example_inputs: Any = None, *, name: str | None = None,
                 precisions: Sequence[str] = ("fp32",), batch_sizes: Sequence[int] = (1,),
                 threads: int | None = None, runtimes: Sequence[str] | None = None,
                 dynamic: Sequence[str] = ("*:0",), runs: int = 50, time_budget: float = 2.0,
                 limits: bool = True, quality_threshold: float = 0.98, task: Any = None,
                 eval_inputs: Sequence[Any] | None = None,
                 output: str | Path | None = None, progress: bool = True) -> ModelReport:
    """Take a model to every runtime here and report parity, quality, speed and a recommendation.

    ``model`` is an ``nn.Module`` (with ``example_inputs``: a tensor, a tuple of tensors or a dict of
    named tensors) or a prepared :class:`~helpers.model_report.inputs.ModelInput` (from
    :func:`~helpers.model_report.inputs.load_input`, e.g. for an ONNX file). ``dynamic``: axes
    kept dynamic (``"input:axis[=name]"``, ``"*:0"`` = every input's batch axis, ``"none"``).
    ``runtimes``: keys to run (None: every available one but :data:`SLOW_RUNTIMES`). ``limits``:
    measure the machine's GEMM peaks (tens of seconds) for "% of limit". ``task``: optional
    ``score(reference_outputs, candidate_outputs) -> float``. ``eval_inputs``: input sets in the
    example's form (tensors, tuples or dicts; e.g. batches of real photos) for parity, quality and
    INT8 calibration instead of generated ones. ``output``: folder for the files.
    """
    from helpers.display import progress as progress_bar

    item = model if isinstance(model, ModelInput) else from_model(model, example_inputs, name=name or
                                                                  type(model).__name__, dynamic=dynamic)
    unknown = [p for p in precisions if p not in ("fp32", "int8-dynamic", "int8-static", "bf16")]
    if unknown:
        raise ValueError(f"unknown precision(s) {unknown}; choose from fp32, int8-dynamic, int8-static, bf16")
    if eval_inputs is not None:
        eval_inputs = [item.named(v, f"eval_inputs[{i}]") for i, v in enumerate(eval_inputs)]
    settings = Settings(precisions=list(precisions), batch_sizes=list(batch_sizes), threads=threads,
                        runtimes=runtimes, runs=runs, time_budget=time_budget, limits=limits,
                        quality_threshold=quality_threshold, task=task, progress=progress,
                        eval_inputs=eval_inputs)
    bar = progress_bar(total=None, desc="model report", unit="run", disable=not progress)
    try:
        rows, facts = collect(item, settings, bar=bar)
    finally:
        bar.close()
    report = ModelReport(item.name, item.source or item.name,
                         {f.name: getattr(settings, f.name) for f in fields(settings)
                          if f.name not in ("task", "output", "eval_inputs")},
                         _machine(threads), rows, facts)
    report.settings["task"] = getattr(task, "__name__", None)
    if item.module is not None:
        from helpers.benchmark import count_flops
        from helpers.model_report.core import batched

        for b in batch_sizes:
            try:
                report.flops[b] = count_flops(item.module, item.torch_inputs(batched(item, b)))
            except Exception:  # a model the counter cannot run: "% of limit" stays n/a
                break
    if limits and report.flops:
        from helpers.benchmark import measure_limits

        wanted = sorted({_LIMIT_NAMES[p] for p in precisions} | {"float32"})
        measured = measure_limits(threads, precisions=wanted, bandwidth=False, seconds=0.2)
        report.peaks = {k: p.value for k, p in measured.probes.items()}
    report.recommendation = _recommend(report, item, threads)
    if output is not None:
        report.save(output)
    return report
