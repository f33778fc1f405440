"""Extractive question answering: spans around any runtime, and an offline QA model that answers.

- :mod:`.answer`        tokenise with offsets, sliding windows, pick spans, map back to the text
                        (its API is re-exported here: ``qa.answer_questions``)
- :mod:`.squad_metrics` SQuAD exact match and token F1
- :mod:`.facts`         facts that ship on PyPI (countries, cities, chemical elements) as records
- :mod:`.paragraphs`    paragraphs stating those facts, with the answer span of each question
- :mod:`.dataset`       a small SQuAD-format QA data set generated from them, split by entity
- :mod:`.questions`     the questions a model is scored on: hand-written and held-out (cached)
- :mod:`.finetune`      MiniLM-L6 fine-tuned on those facts: a QA model that answers offline
- :mod:`.speed`         QA at BERT-base size: fused ORT graphs, bf16, INT8 runners for timing
"""

from helpers.qa.answer import *  # noqa: F403
from helpers.qa.answer import __all__ as __all__
