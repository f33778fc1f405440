"""Every one-time build the notebooks need, made ahead of the lessons.

Run it once after set-up (``make run`` and ``make test`` do)::

    python -m helpers.models.build                  # everything, both profiles
    python -m helpers.models.build --profile test   # what the test profile needs
    python -m helpers.models.build --only qa-full smollm2
    python -m helpers.models.build --list

Each artifact is built by the *same call* a notebook makes (the catalog's loaders,
:func:`helpers.qa.finetune.load_qa_model`, :func:`helpers.qa.speed.timing_files`), so it lands in
the same content-checked cache entry (:mod:`helpers.cache`) and the notebook then only verifies
it. A second run is quick: every entry is verified, nothing is rebuilt. A notebook that finds an
artifact missing still builds it itself, with a banner saying so.

The exit status is 0 when every artifact is ready, 1 when any build failed (the others are still
built; the table at the end says which failed and why), 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ARTIFACTS", "PROFILES", "Artifact", "BuildResult", "build", "main", "select", "write_json"]

PROFILES = ("test", "full")


@dataclass(frozen=True)
class Artifact:
    """One thing built once: its name, what it is, which profiles need it, and how to build it.

    ``make`` builds it (or verifies the cached copy) and returns a short note on what it found.
    """

    name: str
    what: str
    profiles: tuple[str, ...]
    make: Callable[[], str]


@dataclass(frozen=True)
class BuildResult:
    """What happened to one artifact: ready or failed, how long it took, and a note or error."""

    name: str
    what: str
    ok: bool
    seconds: float
    note: str


# --------------------------------------------------------------------------------------------
# The builders: each is the call a notebook makes
# --------------------------------------------------------------------------------------------
def _qa_model(preset: str) -> Callable[[], str]:
    def make() -> str:
        from helpers.catalog import SEED, minilm_dir
        from helpers.qa import finetune

        fine = finetune.load_qa_model(minilm_dir(), preset, seed=SEED, announce=False)
        finetune.held_out_examples(fine.metrics)  # the questions the notebooks score it on
        val = fine.metrics["validation"]
        return (
            f"{fine.note}; held-out exact match {val['exact_match']:.1f} %, "
            f"F1 {val['f1']:.1f} % on {val['total']} questions"
        )

    return make


def _smollm2() -> str:
    from helpers.models.packaged import smollm2_folder

    return smollm2_folder()[1]


def _gpt2_tokenizer() -> str:
    from helpers.models.packaged import gpt2_tokenizer_dir

    return gpt2_tokenizer_dir()[1]


def _tiny_models() -> str:
    from helpers import catalog

    names = []
    for task in ("image-classification", "text-generation", "sentence-embedding"):
        names.append(catalog.load(task, "tiny", show_banner=False).name)
    return "ready: " + ", ".join(names)


def _bert_timing(size: str) -> Callable[[], str]:
    def make() -> str:
        from helpers.qa import speed

        files = speed.timing_files(speed.bert_qa_for_timing(size), name=speed.timing_name(size))
        fused = ", ".join(f"{n} {op}" for op, n in files.fusion.operators.items())
        where = files.fp32.parent.parent
        return f"export, ORT-fused graph ({fused}) and dynamic INT8 ready in {where}"

    return make


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact(
        "qa-full",
        "MiniLM-L6 fine-tuned for extractive QA (all 6 layers)",
        ("test", "full"),
        _qa_model("full"),
    ),
    Artifact(
        "qa-tiny",
        "MiniLM-L6 QA, first 2 layers briefly fine-tuned",
        ("test",),
        _qa_model("tiny"),
    ),
    Artifact(
        "smollm2",
        "SmolLM2-135M-Instruct GGUF converted to a transformers folder",
        ("test", "full"),
        _smollm2,
    ),
    Artifact("gpt2-tokenizer", "GPT-2 BPE tokenizer folder", ("test", "full"), _gpt2_tokenizer),
    Artifact(
        "tiny-models",
        "tiny random image, GPT-2 and BERT models",
        ("test",),
        _tiny_models,
    ),
    Artifact(
        "bert-base-timing",
        "BERT-base QA (random weights) exported, ORT-fused and INT8",
        ("full",),
        _bert_timing("base"),
    ),
    Artifact(
        "bert-small-timing",
        "small BERT QA (random weights) exported, ORT-fused and INT8",
        ("test",),
        _bert_timing("small"),
    ),
)


# --------------------------------------------------------------------------------------------
# Selecting and building
# --------------------------------------------------------------------------------------------
def select(
    profile: str = "all",
    only: Sequence[str] = (),
    artifacts: Sequence[Artifact] | None = None,
) -> list[Artifact]:
    """The artifacts ``profile`` needs (``"all"``: every one), narrowed to ``only`` when given.

    ``artifacts`` defaults to :data:`ARTIFACTS`.

    Raises:
        ValueError: an unknown profile or artifact name (the message lists the known ones).
    """
    artifacts = ARTIFACTS if artifacts is None else artifacts
    if profile not in (*PROFILES, "all"):
        raise ValueError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}, all")
    known = [a.name for a in artifacts]
    unknown = [n for n in only if n not in known]
    if unknown:
        raise ValueError(f"unknown artifact(s) {unknown}; known: {', '.join(known)}")
    chosen = [a for a in artifacts if profile == "all" or profile in a.profiles]
    if only:
        chosen = [a for a in artifacts if a.name in only]
    return chosen


def build(artifacts: Sequence[Artifact], *, progress: bool = True) -> list[BuildResult]:
    """Build (or verify) each artifact in turn; a failure is recorded and the next one built."""
    from helpers.display import progress as progress_bar

    results = []
    bar = progress_bar(
        total=len(artifacts), desc="One-time builds", unit="build", disable=not progress
    )
    for artifact in artifacts:
        bar.set_postfix_str(artifact.name)
        _say(bar, f"[build] {artifact.name}: {artifact.what} ...")
        start = time.perf_counter()
        try:
            note, ok = artifact.make(), True
        except Exception as exc:  # reported in the table, and in the exit status
            lines = [line for line in str(exc).splitlines() if line.strip()]
            note, ok = f"{type(exc).__name__}: {lines[0] if lines else ''}", False
            _say(bar, "".join(traceback.format_exception(exc)).rstrip())
        seconds = time.perf_counter() - start
        results.append(BuildResult(artifact.name, artifact.what, ok, seconds, note))
        _say(
            bar,
            f"[build] {artifact.name}: {'ready' if ok else 'FAILED'} in {seconds:.1f} s — {note}",
        )
        bar.update()
    bar.close()
    return results


def _say(bar: object, text: str) -> None:
    write = getattr(bar, "write", None)
    (write or print)(text)


def report(results: Sequence[BuildResult]) -> str:
    """A plain-text table of the results, with the total time."""
    width = max((len(r.name) for r in results), default=4)
    lines = [f"{'artifact':<{width}}  status  seconds  note"]
    for r in results:
        lines.append(
            f"{r.name:<{width}}  {'ready ' if r.ok else 'FAILED'}  {r.seconds:7.1f}  {r.note}"
        )
    total = sum(r.seconds for r in results)
    failed = [r.name for r in results if not r.ok]
    lines.append(
        f"{len(results)} artifact(s) in {total:.1f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else "; all ready")
    )
    return "\n".join(lines)


def write_json(results: Sequence[BuildResult], path: Path) -> Path:
    """``{"steps": [{name, what, status, seconds, note}, ...]}`` at ``path`` (parents created)."""
    steps = [
        {
            "name": f"build {r.name}",
            "what": r.what,
            "status": "ready" if r.ok else "FAILED",
            "seconds": round(r.seconds, 1),
            "note": r.note,
        }
        for r in results
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"steps": steps}, indent=1))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.models.build",
        description="Build every one-time artifact the notebooks need (quick when cached).",
    )
    parser.add_argument(
        "--profile",
        default="all",
        choices=[*PROFILES, "all"],
        help="build what this notebook profile needs (default: all)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=(),
        metavar="NAME",
        help="build only these artifacts (see --list)",
    )
    parser.add_argument("--list", action="store_true", help="list the artifacts and exit")
    parser.add_argument("--no-progress", action="store_true", help="no overall progress bar")
    parser.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON (the series summary reads it)"
    )
    args = parser.parse_args(argv)
    if args.list:
        for a in ARTIFACTS:
            print(f"{a.name:<18} {'/'.join(a.profiles):<9} {a.what}")
        return 0
    try:
        chosen = select(args.profile, args.only)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    results = build(chosen, progress=not args.no_progress)
    print(report(results), flush=True)
    if args.json:
        write_json(results, Path(args.json))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
