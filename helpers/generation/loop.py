"""The decode loop around one exported step, the transformers reference, and the speed bound."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helpers.generation.kv_cache import CacheLayout
from helpers.generation.tokens import (
    ContextLengthError,
    check_prompt,
    encode_prompts,
    greedy,
    position_ids_from_mask,
    sample,
)
from helpers.images import softmax

__all__ = [
    "ContextLengthError",
    "GenerationOutput",
    "Generator",
    "StepFn",
    "hf_generate",
    "next_token_candidates",
    "step_function",
]

StepFn = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


# ---------------------------------------------------------------------------------------------
# Step functions: one forward pass, dict of numpy arrays in and out
# ---------------------------------------------------------------------------------------------


def step_function(target: Any) -> StepFn:
    """Turn an ORT ``InferenceSession``, a ``helpers.runners`` Runner or a callable into a step.

    A step maps ``{input name: array}`` to ``{output name: array}``. For an ORT session the call
    is ``session.run(None, feed)`` directly (no per-step input validation, which matters for a
    loop that runs hundreds of times); a Runner is unwrapped to its session when it exposes one.
    """
    session = getattr(target, "session", None) or getattr(target, "_session", None)
    if session is None and type(target).__name__ == "InferenceSession":
        session = target
    if session is not None and hasattr(session, "get_outputs"):
        names = [o.name for o in session.get_outputs()]
        wanted = {i.name for i in session.get_inputs()}

        def run_session(feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            outs = session.run(None, {k: v for k, v in feed.items() if k in wanted})
            return dict(zip(names, outs, strict=True))

        return run_session
    if hasattr(target, "run") and callable(target.run):
        return target.run
    if callable(target):
        return target
    raise TypeError(f"cannot make a step function from {type(target).__name__}")


def next_token_candidates(
    generator: Generator, tokenizer: Any, prompts: str | Sequence[str], *, k: int = 5
) -> Any:
    """The ``k`` most likely next tokens of each prompt with their probabilities.

    One prefill step of the exported model, then a softmax over the last position's logits:
    no search at all, just the candidates a search (greedy takes rank 1; beam search keeps
    several, see :func:`helpers.generation.beam_search`) or a UI's suggestions start from.
    Returns a pandas DataFrame: prompt, rank, token_id, token, probability.
    """
    import pandas as pd

    if isinstance(prompts, str):
        prompts = [prompts]
    enc = encode_prompts(tokenizer, prompts)
    ids, mask = check_prompt(enc["input_ids"], enc["attention_mask"], 1, generator.layout.max_positions)
    feed = {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": position_ids_from_mask(mask),
        **generator.layout.empty_past(len(prompts)),
    }
    probs = softmax(generator.run(feed)["logits"][:, -1, :])
    rows = []
    for b, prompt in enumerate(prompts):
        top = np.argsort(-probs[b])[:k]
        for rank, tok in enumerate(top, start=1):
            rows.append(
                {
                    "prompt": prompt,
                    "rank": rank,
                    "token_id": int(tok),
                    "token": tokenizer.decode([int(tok)]),
                    "probability": float(probs[b, tok]),
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# The generation loop
# ---------------------------------------------------------------------------------------------


@dataclass
class GenerationOutput:
    """What :meth:`Generator.generate` returns.

    ``sequences``: prompt (left-padded) plus new tokens, ``int64[batch, prompt + new]``;
    ``new_tokens``: only the generated part (rows that stopped early are padded with the pad id);
    ``step_logits``: the last-position logits of every step (only with ``return_logits=True``);
    ``prefill_s`` / ``decode_s``: wall time of the first step and of all the others.
    """

    sequences: np.ndarray
    new_tokens: np.ndarray
    prompt_length: int
    step_logits: list[np.ndarray] = field(default_factory=list)
    prefill_s: float = 0.0
    decode_s: float = 0.0
    stopped_by: str = "max_new_tokens"

    @property
    def steps(self) -> int:
        """Number of forward passes (= new tokens per row)."""
        return int(self.new_tokens.shape[1])

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens (all rows) per second of wall time, prefill included."""
        total = self.prefill_s + self.decode_s
        return self.new_tokens.size / total if total > 0 else float("nan")


class Generator:
    """A hand-written decode loop around one exported step (ORT session, Runner or callable).

    ``Generator(step, layout, eos_token_id=..., pad_token_id=...)``; use
    :meth:`from_onnx` to open an exported file with ONNX Runtime. See the module docstring.
    """

    def __init__(
        self,
        step: Any,
        layout: CacheLayout,
        *,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        name: str = "ORT loop",
    ) -> None:
        self.run = step_function(step)
        self.layout = layout
        if eos_token_id is None:
            eos: tuple[int, ...] = ()
        elif isinstance(eos_token_id, int | np.integer):
            eos = (int(eos_token_id),)
        else:
            eos = tuple(int(t) for t in eos_token_id)
        self.eos_token_ids = eos
        self.pad_token_id = int(pad_token_id if pad_token_id is not None else (eos[0] if eos else 0))
        self.name = name

    @classmethod
    def from_onnx(
        cls,
        onnx_path: str | Path,
        config: Any,
        *,
        threads: int | None = None,
        eos_token_id: int | Sequence[int] | None = None,
        pad_token_id: int | None = None,
        name: str = "ORT loop",
    ) -> Generator:
        """Open an exported model with ``helpers.runners.ort_runner`` (CPU) and wrap it.

        EOS/pad ids default to the config's.
        """
        from helpers.runners import ort_runner

        runner = ort_runner(onnx_path, threads=threads, inter_op_threads=1, name=name)
        if eos_token_id is None:
            eos_token_id = getattr(config, "eos_token_id", None)
        if pad_token_id is None:
            pad_token_id = getattr(config, "pad_token_id", None)
        gen = cls(
            runner,
            CacheLayout.from_config(config),
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            name=name,
        )
        gen.runner = runner  # type: ignore[attr-defined]
        return gen

    # -- the loop ------------------------------------------------------------------------------

    def check_context(
        self, input_ids: np.ndarray, attention_mask: np.ndarray | None, max_new_tokens: int,
        *, truncate_prompt: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Validate a prompt before any compute (:func:`helpers.generation.check_prompt`).

        Raises :class:`EmptyPromptError` for an empty prompt and :class:`ContextLengthError`
        if prompt + new tokens exceed the context window; with ``truncate_prompt=True`` the
        prompt's *oldest* tokens are dropped instead, keeping room for ``max_new_tokens``.
        """
        return check_prompt(
            input_ids, attention_mask, max_new_tokens, self.layout.max_positions,
            truncate_prompt=truncate_prompt,
        )

    @staticmethod
    def choose(
        last: np.ndarray, strategy: str, rng: np.random.Generator,
        *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
    ) -> np.ndarray:
        """The next token of every row from the last position's logits (greedy or sampled)."""
        if strategy == "greedy":
            return greedy(last)
        return sample(last, rng, temperature=temperature, top_k=top_k, top_p=top_p)

    def iter_steps(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray | None = None,
        *,
        max_new_tokens: int = 20,
        strategy: str = "greedy",
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = 0,
        use_cache: bool = True,
        stop_on_eos: bool = True,
        truncate_prompt: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(next_tokens[batch], last_logits[batch, vocab])`` once per generated token.

        The core of :meth:`generate` and :meth:`stream`. With ``use_cache=False`` every step
        re-runs the whole sequence with an empty past (what a graph without a cache would do).
        Rows that produced EOS keep receiving the pad token; the loop ends when every row has
        finished (``stop_on_eos``) or after ``max_new_tokens``.
        """
        if strategy not in ("greedy", "sample"):
            raise ValueError("strategy must be 'greedy' or 'sample'")
        input_ids, attention_mask = self.check_context(
            input_ids, attention_mask, max_new_tokens, truncate_prompt=truncate_prompt
        )
        rng = np.random.default_rng(seed)
        batch = input_ids.shape[0]
        finished = np.zeros(batch, dtype=bool)
        eos = np.array(self.eos_token_ids, dtype=np.int64)

        sequence = input_ids
        mask = attention_mask
        positions = position_ids_from_mask(mask)
        feed: dict[str, np.ndarray] = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "position_ids": positions,
            **self.layout.empty_past(batch),
        }
        for _ in range(max_new_tokens):
            out = self.run(feed)
            last = out["logits"][:, -1, :]
            nxt = self.choose(last, strategy, rng, temperature=temperature, top_k=top_k, top_p=top_p)
            nxt = np.where(finished, self.pad_token_id, nxt)
            yield nxt, last
            if stop_on_eos and eos.size:
                finished |= np.isin(nxt, eos)
                if finished.all():
                    return
            sequence = np.concatenate([sequence, nxt[:, None]], axis=1)
            mask = np.concatenate([mask, np.ones((batch, 1), dtype=np.int64)], axis=1)
            next_pos = positions[:, -1:] + 1
            if use_cache:
                feed = {
                    "input_ids": nxt[:, None],
                    "attention_mask": mask,
                    "position_ids": next_pos,
                    **{p: out[q] for p, q in zip(self.layout.past_names, self.layout.present_names, strict=True)},
                }
                positions = next_pos
            else:
                positions = np.concatenate([positions, next_pos], axis=1)
                feed = {
                    "input_ids": sequence,
                    "attention_mask": mask,
                    "position_ids": positions,
                    **self.layout.empty_past(batch),
                }

    def generate(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray | None = None,
        *,
        max_new_tokens: int = 20,
        return_logits: bool = False,
        **kwargs: Any,
    ) -> GenerationOutput:
        """Run the loop to the end; keyword arguments as in :meth:`iter_steps`."""
        prompt, mask = self.check_context(
            input_ids, attention_mask, max_new_tokens, truncate_prompt=kwargs.pop("truncate_prompt", False)
        )
        tokens: list[np.ndarray] = []
        logits: list[np.ndarray] = []
        t0 = time.perf_counter()
        t_first = None
        stopped = "max_new_tokens"
        it = self.iter_steps(prompt, mask, max_new_tokens=max_new_tokens, **kwargs)
        for nxt, last in it:
            if t_first is None:
                t_first = time.perf_counter()
            tokens.append(nxt)
            if return_logits:
                logits.append(last.copy())
        t_end = time.perf_counter()
        if len(tokens) < max_new_tokens:
            stopped = "eos"
        new = np.stack(tokens, axis=1) if tokens else np.zeros((prompt.shape[0], 0), np.int64)
        return GenerationOutput(
            sequences=np.concatenate([prompt, new], axis=1),
            new_tokens=new,
            prompt_length=int(prompt.shape[1]),
            step_logits=logits,
            prefill_s=(t_first or t_end) - t0,
            decode_s=t_end - (t_first or t_end),
            stopped_by=stopped,
        )

    def generate_text(
        self, tokenizer: Any, prompts: str | Sequence[str], *, max_new_tokens: int = 20, **kwargs: Any
    ) -> list[str]:
        """Prompts in, continuations (new text only, special tokens dropped) out."""
        enc = encode_prompts(tokenizer, prompts)
        out = self.generate(enc["input_ids"], enc["attention_mask"], max_new_tokens=max_new_tokens, **kwargs)
        return [_decode_until_eos(tokenizer, row, self.eos_token_ids) for row in out.new_tokens]

    def stream(
        self, tokenizer: Any, prompt: str, *, max_new_tokens: int = 20, **kwargs: Any
    ) -> Iterator[str]:
        """Yield the continuation of one prompt piece by piece, as soon as each token is known.

        Pieces are the difference between successive decodings of all generated tokens, so
        characters split across byte-level BPE tokens appear only once complete. The prompt is
        checked here, before the first piece is asked for (an empty prompt raises at once).
        """
        enc = encode_prompts(tokenizer, prompt)
        ids, mask = self.check_context(
            enc["input_ids"], enc["attention_mask"], max_new_tokens,
            truncate_prompt=kwargs.pop("truncate_prompt", False),
        )
        return self._stream(tokenizer, ids, mask, max_new_tokens, kwargs)

    def _stream(
        self, tokenizer: Any, ids: np.ndarray, mask: np.ndarray, max_new_tokens: int, kwargs: dict
    ) -> Iterator[str]:
        generated: list[int] = []
        sent = ""
        for nxt, _ in self.iter_steps(ids, mask, max_new_tokens=max_new_tokens, **kwargs):
            tok = int(nxt[0])
            if tok in self.eos_token_ids:
                break
            generated.append(tok)
            text = tokenizer.decode(generated, skip_special_tokens=True)
            if text.endswith("\ufffd"):
                continue  # an incomplete UTF-8 character: wait for the next token
            if len(text) > len(sent):
                yield text[len(sent):]
                sent = text
        text = tokenizer.decode(generated, skip_special_tokens=True)
        if len(text) > len(sent):
            yield text[len(sent):]


def _decode_until_eos(tokenizer: Any, row: np.ndarray, eos: Sequence[int]) -> str:
    ids = [int(t) for t in row]
    for i, t in enumerate(ids):
        if t in eos:
            ids = ids[:i]
            break
    return tokenizer.decode(ids, skip_special_tokens=True)


# ---------------------------------------------------------------------------------------------
# The reference: transformers' own generate
# ---------------------------------------------------------------------------------------------


def hf_generate(
    model: Any,
    input_ids: np.ndarray,
    attention_mask: np.ndarray | None = None,
    *,
    max_new_tokens: int = 20,
    use_cache: bool = True,
    stop_on_eos: bool = True,
    pad_token_id: int | None = None,
    return_logits: bool = False,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Deterministic ``model.generate`` on numpy inputs; returns (new tokens ``[batch, n]``, step logits).

    Greedy with ``num_beams=1``, beam search (``do_sample=False``) otherwise.
    ``stop_on_eos=False`` forces exactly ``max_new_tokens`` (for fair timing: the same work as
    the ONNX loop with ``stop_on_eos=False``). transformers derives position ids from the
    attention mask (``cumsum(mask) - 1``), the rule the ONNX loop copies, so left-padded rows
    get the same positions in both. The prompt is checked first
    (:func:`helpers.generation.check_prompt`): an empty prompt or one that does not fit the
    model's context with ``max_new_tokens`` raises before any compute.
    """
    import torch
    from transformers import GenerationConfig

    ids_np, mask_np = check_prompt(
        input_ids, attention_mask, max_new_tokens, CacheLayout.from_config(model.config).max_positions
    )
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be an integer >= 1, got {num_beams!r}")
    ids, mask = torch.from_numpy(ids_np), torch.from_numpy(mask_np)
    cfg = model.config
    if pad_token_id is None:
        pad_token_id = cfg.pad_token_id if cfg.pad_token_id is not None else cfg.eos_token_id
    if isinstance(pad_token_id, list):
        pad_token_id = pad_token_id[0]
    if num_beams > 1 and not stop_on_eos and not pad_token_id:
        # transformers' beam search fills with `pad_token_id or eos_token_id[0]`: with pad 0 and
        # no EOS it would fail with an IndexError deep inside generate.
        raise ValueError(
            f"beam search without EOS stopping needs a non-zero pad_token_id (got {pad_token_id!r}); "
            "pass pad_token_id=..."
        )
    beams = {"num_beams": num_beams, "length_penalty": length_penalty, "early_stopping": early_stopping}
    gen_cfg = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        use_cache=use_cache,
        pad_token_id=pad_token_id,
        # An empty list (not None, which falls back to the model's EOS) disables stopping without
        # adding the min-length logits processors that min_new_tokens would run every step.
        eos_token_id=cfg.eos_token_id if stop_on_eos else [],
        bos_token_id=getattr(cfg, "bos_token_id", None),
        output_logits=return_logits,
        return_dict_in_generate=True,
        **(beams if num_beams > 1 else {}),
    )
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg)
    new = out.sequences[:, ids.shape[1]:].numpy()
    logits = [t.float().numpy() for t in out.logits] if return_logits and out.logits else []
    return new, logits
