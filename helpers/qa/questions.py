"""The questions a QA model is scored on: hand-written ones and the held-out generated ones.

- :func:`hand_written_questions` reads ``data/qa_questions.json`` (questions about countries,
  written by hand, each answer located in its context);
- :func:`held_out_examples` gives the generated questions a fine-tuned model was scored on —
  about countries and chemical elements it never saw in training — cached as a small JSON file,
  since generating the data set takes seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpers.cache import cached_build
from helpers.paths import data_dir
from helpers.qa import dataset as qa_dataset
from helpers.qa import facts as qa_facts

__all__ = ["HAND_WRITTEN_FILE", "hand_written_questions", "held_out_examples"]

HAND_WRITTEN_FILE = "qa_questions.json"
_HELD_OUT_FILE = "held_out.json"
#: Sub-folder of the model cache (``helpers.paths.cache_dir``), shared with the catalog's models.
CACHE_FOLDER = "catalog"


def hand_written_questions(path: Path | None = None) -> list[qa_dataset.SquadExample]:
    """The hand-written questions of ``data/qa_questions.json`` as SQuAD examples.

    Each answer is located in its context (the file holds text, not offsets), so a typo in the
    file raises ``ValueError`` instead of scoring silently as wrong.
    """
    raw = json.loads((path or data_dir(HAND_WRITTEN_FILE)).read_text(encoding="utf-8"))
    examples: list[qa_dataset.SquadExample] = []
    for i, item in enumerate(raw["questions"]):
        context = raw["contexts"][item["context"]]
        texts = list(item.get("answers", []))
        starts = []
        for text in texts:
            start = context.find(text)
            if start < 0:
                raise ValueError(
                    f"{HAND_WRITTEN_FILE} question {i}: {text!r} is not in its context"
                )
            starts.append(start)
        examples.append(
            qa_dataset.SquadExample(
                id=f"hand-{i}",
                context=context,
                question=item["question"],
                answers={"text": texts, "answer_start": starts},
                topic=item.get("topic", "hand-written"),
                entity=item["context"],
                attribute="hand-written",
            )
        )
    return examples


def held_out_examples(
    metrics: Mapping[str, Any] | None = None, *, limit: int | None = None
) -> list[qa_dataset.SquadExample]:
    """The held-out questions a fine-tuned model was scored on — about countries and elements it
    never saw in training — regenerated from its ``metrics`` (seed, data settings, cap; ``None``:
    those of ``helpers.qa.finetune.FULL`` with seed 0). ``limit`` keeps that many, evenly spread over the set
    (countries and elements alike).

    Generating the data set takes seconds, so the held-out part is cached (a small JSON file
    under the model cache, keyed by the data version, fact-package versions, seed and settings).
    """
    if metrics is None:  # the full preset's (helpers.qa.finetune.FULL): seed 0, default data
        seed, data, cap = 0, {}, None
    else:
        settings = metrics["settings"]
        seed, data, cap = metrics["seed"], dict(settings["data"]), settings["validation_examples"]
    payload = {
        "data": qa_dataset.DATA_VERSION,
        "fact_packages": qa_facts.fact_package_versions(),
        "seed": seed,
        "settings": data,
        "cap": cap,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def build(tmp: Path) -> None:
        rows = qa_dataset.generate(seed, **data).validation[:cap]
        (tmp / _HELD_OUT_FILE).write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")

    folder, _ = cached_build(
        f"qa-held-out-{digest[:16]}", build, what="held-out QA questions", folder=CACHE_FOLDER
    )
    rows = json.loads((folder / _HELD_OUT_FILE).read_text(encoding="utf-8"))
    if limit and 0 < limit < len(rows):
        step = len(rows) / limit
        rows = [rows[int(i * step)] for i in range(limit)]
    return rows
