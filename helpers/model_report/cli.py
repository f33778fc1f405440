"""``inference-report`` / ``python -m helpers.model_report``: the report from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from helpers.model_report.core import PRECISIONS
from helpers.model_report.inputs import ReportInputError, load_callable, load_input

__all__ = ["build_parser", "main"]


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write comma-separated integers, e.g. 1,8") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes must be >= 1")
    return values


def _words(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(
        prog="inference-report",
        description="Take a PyTorch model (or an ONNX file) to every runtime this environment has: "
                    "parity and quality against PyTorch eager, latency and throughput, %% of the machine's "
                    "limit, and the fastest path that keeps quality, with the code that deploys it.",
        epilog="example: inference-report my_model.py:build --precisions fp32,int8-static --batch-sizes 1,8",
    )
    parser.add_argument("model", help="path/to/module.py:function returning (model, example_inputs), "
                                      "or an .onnx file (then only the ONNX runtimes run)")
    parser.add_argument("--batch-sizes", type=_ints, default=[1], help="comma-separated (default: 1)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for every runtime")
    parser.add_argument("--precisions", type=_words, default=["fp32"],
                        help=f"comma-separated from {', '.join(PRECISIONS)} (default: fp32; bf16 only "
                             "where the CPU has bf16 instructions)")
    parser.add_argument("--runtimes", type=_words, default=None,
                        help="runtime keys to run (default: every available one except aoti)")
    parser.add_argument("--dynamic", action="append", default=None, metavar="INPUT:AXIS[=NAME]",
                        help="a dynamic axis (repeatable; default '*:0', every input's batch axis; "
                             "'none' fixes every shape)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per measurement (default 50)")
    parser.add_argument("--time-budget", type=float, default=2.0,
                        help="seconds of timing per measurement at most (default 2)")
    parser.add_argument("--no-limits", action="store_true",
                        help="skip measuring the machine's peaks (saves ~20 s; %% of limit shows n/a)")
    parser.add_argument("--quality-threshold", type=float, default=0.98,
                        help="a reduced precision keeps quality at this score or above (default 0.98)")
    parser.add_argument("--task", default=None, metavar="MODULE.PY:FUNCTION",
                        help="score(reference_outputs, candidate_outputs) -> float, the task check")
    parser.add_argument("--output", type=Path, default=Path("inference-report"),
                        help="folder for report.md/.html/.json and the plot (default ./inference-report)")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the markdown")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; exit code 0 when every check passed, 1 when a parity or quality check
    failed, 2 for bad input (a one-line error, before any compute)."""
    from helpers.model_report.report import model_report

    args = build_parser().parse_args(argv)
    try:
        bad = [p for p in args.precisions if p not in PRECISIONS]
        if bad:
            raise ReportInputError(f"unknown precision(s) {', '.join(bad)}; choose from {', '.join(PRECISIONS)}")
        task = load_callable(args.task) if args.task else None
        item = load_input(args.model, dynamic=args.dynamic or ["*:0"])
    except ReportInputError as error:
        print(f"inference-report: error: {error}", file=sys.stderr)
        return 2
    report = model_report(item, precisions=args.precisions, batch_sizes=args.batch_sizes, threads=args.threads,
                          runtimes=args.runtimes, runs=args.runs, time_budget=args.time_budget,
                          limits=not args.no_limits, quality_threshold=args.quality_threshold, task=task,
                          output=args.output, progress=not args.quiet)
    print(report.to_json() if args.json else report.markdown())
    print(f"\nwritten: {', '.join(report.files.values())}", file=sys.stderr)
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
