"""Autoregressive text generation outside PyTorch: KV-cache export, an ONNX Runtime decode loop.

``transformers``' ``model.generate`` hides three things that every deployment has to rebuild:

1. **The KV cache as plain tensors.** In transformers 5 the cache is a ``DynamicCache`` object,
   which an ONNX graph cannot take. :class:`KVCacheWrapper` wraps a causal LM (GPT-2 or Llama
   style) so that its graph takes ``past_key_values.{i}.key/value`` and returns
   ``present.{i}.key/value`` as flat ``[batch, kv_heads, length, head_dim]`` tensors.
   :func:`export_with_kv_cache` exports it with the dynamo exporter (examples of batch 2 /
   sequence 3 -- batch 1 or sequence 1 examples get specialised away; the attention mask length
   is a fully dynamic dimension because ``past + seq`` cannot be expressed).
2. **The loop.** A *prefill* step runs the whole (left-padded) prompt with a past of length 0;
   each *decode* step feeds one new token per sequence, the attention mask grown by one column,
   the next position, and the presents of the previous step as the new past.
   :class:`Generator` does this in NumPy around any step function (an ORT session, a
   ``helpers.runners`` runner, or the PyTorch wrapper itself).
3. **Choosing the next token.** :func:`greedy`, :func:`sample` (temperature, top-k, top-p with a
   seeded ``numpy.random.Generator``), :func:`next_token_candidates` (a one-step search: the
   top-k next tokens with their probabilities), stopping on EOS or after ``max_new_tokens``, and
   :meth:`Generator.stream`, which yields text pieces as tokens are produced.

Positions follow transformers' rule for left padding: ``cumsum(attention_mask) - 1``, with the
padded slots set to 1. A prompt plus the requested tokens beyond the model's context raises
:class:`ContextLengthError` (or, with ``truncate_prompt=True``, keeps the prompt's last tokens --
a documented truncation).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helpers.images import softmax

__all__ = [
    "ContextLengthError",
    "CacheLayout",
    "KVCacheWrapper",
    "export_with_kv_cache",
    "step_function",
    "encode_prompts",
    "position_ids_from_mask",
    "greedy",
    "filter_logits",
    "sample",
    "next_token_candidates",
    "GenerationOutput",
    "Generator",
    "hf_generate",
    "onnx_weight_bytes",
    "bandwidth_bound_tokens_per_s",
]

StepFn = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


class ContextLengthError(ValueError):
    """The prompt plus the requested new tokens do not fit in the model's context window."""


# ---------------------------------------------------------------------------------------------
# Cache layout and the export wrapper
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheLayout:
    """Shape of a decoder's KV cache and the names the exported graph uses for it.

    Built from a transformers config with :meth:`from_config`; works for GPT-2 (``n_layer``,
    ``n_head``, ``n_positions``) and Llama-style models (``num_key_value_heads`` for grouped-query
    attention, ``head_dim``, ``max_position_embeddings``).
    """

    num_layers: int
    num_kv_heads: int
    head_dim: int
    max_positions: int | None = None
    dtype: str = "float32"

    @classmethod
    def from_config(cls, config: Any) -> CacheLayout:
        """Read layer count, KV heads, head size and context length from a transformers config."""
        layers = int(config.num_hidden_layers)
        heads = int(config.num_attention_heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        max_pos = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )
        return cls(layers, kv_heads, int(head_dim), int(max_pos) if max_pos else None)

    @property
    def past_names(self) -> list[str]:
        """Graph input names: ``past_key_values.{layer}.key`` / ``.value``, layer by layer."""
        return [f"past_key_values.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    @property
    def present_names(self) -> list[str]:
        """Graph output names: ``present.{layer}.key`` / ``.value``, in the same order as the past."""
        return [f"present.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    @property
    def input_names(self) -> list[str]:
        """All graph inputs in positional order."""
        return ["input_ids", "attention_mask", "position_ids", *self.past_names]

    @property
    def output_names(self) -> list[str]:
        """All graph outputs in positional order."""
        return ["logits", *self.present_names]

    def empty_past(self, batch: int, length: int = 0) -> dict[str, np.ndarray]:
        """Zero-filled past tensors (length 0 for the prefill step)."""
        shape = (batch, self.num_kv_heads, length, self.head_dim)
        return {name: np.zeros(shape, dtype=self.dtype) for name in self.past_names}

    def cache_bytes_per_token(self, batch: int = 1) -> int:
        """Bytes the cache grows by for every token (keys and values, all layers)."""
        itemsize = np.dtype(self.dtype).itemsize
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * itemsize * batch


def _torch_module_base() -> type:
    import torch

    return torch.nn.Module


class KVCacheWrapper(_torch_module_base()):  # type: ignore[misc]
    """A causal LM whose forward takes and returns the KV cache as flat tensors.

    ``forward(input_ids, attention_mask, position_ids, past)`` where ``past`` is a list of
    ``2 * num_layers`` tensors ``[batch, kv_heads, past_len, head_dim]`` (key, value, key, ...).
    Returns ``(logits, *presents)`` with the presents ``past_len + seq`` long. Inside, the tensors
    are put into a transformers ``DynamicCache``, which is what transformers 5 models expect.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model.eval()
        self.layout = CacheLayout.from_config(model.config)

    def forward(self, input_ids, attention_mask, position_ids, past):  # noqa: D102
        from transformers import DynamicCache

        n = self.layout.num_layers
        cache = DynamicCache([(past[2 * i], past[2 * i + 1]) for i in range(n)], config=self.model.config)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        )
        presents = []
        for layer in out.past_key_values.layers:
            presents += [layer.keys, layer.values]
        return (out.logits, *presents)


def export_with_kv_cache(
    model: Any,
    path: str | Path,
    *,
    opset: int | None = None,
    example_batch: int = 2,
    example_seq: int = 3,
    example_past: int = 4,
) -> Path:
    """Export a causal LM (GPT-2 or Llama style) to one ONNX file with a flat KV cache.

    Inputs: ``input_ids``/``position_ids`` ``int64[batch, seq]``, ``attention_mask``
    ``int64[batch, total]``, ``past_key_values.{i}.key/value`` ``float32[batch, kv_heads, past,
    head_dim]``. Outputs: ``logits`` ``float32[batch, seq, vocab]`` and ``present.{i}.key/value``.

    The example is batch 2 / sequence 3 / past 4 on purpose: examples of size 1 get specialised
    to constants by ``torch.export``. ``total`` (the mask length) is its own dynamic dimension,
    since ``past + seq`` is not expressible. A past of length 0 works in ONNX Runtime, so the
    same graph serves the prefill step. Written as a single file (no external ``.data``).
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = KVCacheWrapper(model).eval()
    layout = wrapper.layout
    b, s, p = example_batch, example_seq, example_past
    gen = torch.Generator().manual_seed(0)
    vocab = int(model.config.vocab_size)
    input_ids = torch.randint(0, vocab, (b, s), generator=gen)
    attention_mask = torch.ones(b, p + s, dtype=torch.long)
    position_ids = torch.arange(p, p + s).unsqueeze(0).expand(b, s).contiguous()
    param_dtype = next(model.parameters()).dtype
    past = [
        torch.randn(b, layout.num_kv_heads, p, layout.head_dim, generator=gen).to(param_dtype)
        for _ in range(2 * layout.num_layers)
    ]
    dynamic_shapes = (
        {0: "batch", 1: "seq"},
        {0: "batch", 1: "total"},
        {0: "batch", 1: "seq"},
        [{0: "batch", 2: "past"}] * (2 * layout.num_layers),
    )
    kwargs: dict[str, Any] = {}
    if opset is not None:
        kwargs["opset_version"] = opset
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The exporter renames dynamic dims and says so with a UserWarning on every input.
        warnings.filterwarnings("ignore", message=".*dynamic_shapes.*")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx.*")
        torch.onnx.export(
            wrapper,
            (input_ids, attention_mask, position_ids, past),
            str(path),
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            input_names=layout.input_names,
            output_names=layout.output_names,
            external_data=False,
            verbose=False,
            **kwargs,
        )
    import onnx

    onnx.checker.check_model(str(path))
    return path


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


# ---------------------------------------------------------------------------------------------
# Prompts, masks, positions
# ---------------------------------------------------------------------------------------------


def encode_prompts(tokenizer: Any, prompts: str | Sequence[str]) -> dict[str, np.ndarray]:
    """Tokenise a prompt or a batch of prompts, **left**-padded, as int64 numpy arrays.

    Decoder-only models continue from the last position, so padding goes on the left: every
    row's last column is then a real token. GPT-2 has no pad token; its EOS is used as padding
    (masked out, so its value does not matter).
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    previous = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(list(prompts), padding=True, return_tensors="np")
    finally:
        tokenizer.padding_side = previous
    return {
        "input_ids": enc["input_ids"].astype(np.int64),
        "attention_mask": enc["attention_mask"].astype(np.int64),
    }


def position_ids_from_mask(attention_mask: np.ndarray) -> np.ndarray:
    """Positions of each token: ``cumsum(mask) - 1``; padded slots get 1 (transformers' rule)."""
    mask = np.asarray(attention_mask, dtype=np.int64)
    pos = np.cumsum(mask, axis=-1) - 1
    pos[mask == 0] = 1
    return pos


# ---------------------------------------------------------------------------------------------
# Choosing the next token
# ---------------------------------------------------------------------------------------------


def greedy(logits: np.ndarray) -> np.ndarray:
    """The highest-scoring token of each row of ``logits[batch, vocab]``."""
    return np.asarray(logits).argmax(axis=-1).astype(np.int64)


def filter_logits(
    logits: np.ndarray, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> np.ndarray:
    """Apply temperature, then keep the ``top_k`` best tokens, then the smallest set whose
    probabilities add up to ``top_p`` (nucleus); everything else becomes ``-inf``.

    ``top_k=0`` and ``top_p=1.0`` disable those filters. The best token always survives.
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (use greedy decoding for temperature 0)")
    if not 0 < top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")
    x = np.array(logits, dtype=np.float64) / temperature
    if top_k and top_k < x.shape[-1]:
        kth = np.partition(x, -top_k, axis=-1)[..., -top_k, None]
        x = np.where(x < kth, -np.inf, x)
    if top_p < 1.0:
        order = np.argsort(-x, axis=-1)
        sorted_probs = np.take_along_axis(softmax(x), order, axis=-1)
        cumulative = np.cumsum(sorted_probs, axis=-1)
        # Remove a token when the tokens before it already reach top_p.
        remove_sorted = (cumulative - sorted_probs) >= top_p
        remove = np.zeros_like(remove_sorted)
        np.put_along_axis(remove, order, remove_sorted, axis=-1)
        x = np.where(remove, -np.inf, x)
    return x


def sample(
    logits: np.ndarray,
    rng: np.random.Generator,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> np.ndarray:
    """Draw one token per row from the filtered distribution (see :func:`filter_logits`).

    Reproducible: the same ``rng`` seed gives the same tokens.
    """
    probs = softmax(filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p))
    u = rng.random((probs.shape[0], 1))
    cdf = np.cumsum(probs, axis=-1)
    tokens = (cdf < u * cdf[:, -1:]).sum(axis=-1)
    return np.minimum(tokens, probs.shape[-1] - 1).astype(np.int64)


def next_token_candidates(
    generator: Generator, tokenizer: Any, prompts: str | Sequence[str], *, k: int = 5
) -> Any:
    """One-step search: the ``k`` most likely next tokens of each prompt with their probabilities.

    Runs a single prefill step of the exported model (as ONNX Runtime's GPT-2 one-step search
    notebook does) and returns a pandas DataFrame: prompt, rank, token_id, token, probability.
    """
    import pandas as pd

    if isinstance(prompts, str):
        prompts = [prompts]
    enc = encode_prompts(tokenizer, prompts)
    feed = {
        **enc,
        "position_ids": position_ids_from_mask(enc["attention_mask"]),
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

        runner = ort_runner(onnx_path, intra_op_threads=threads, inter_op_threads=1, name=name)
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
        self, input_ids: np.ndarray, attention_mask: np.ndarray, max_new_tokens: int,
        *, truncate_prompt: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raise :class:`ContextLengthError` if prompt + new tokens exceed the context window.

        With ``truncate_prompt=True`` the prompt's *oldest* tokens are dropped instead (the
        documented alternative), keeping room for ``max_new_tokens``.
        """
        limit = self.layout.max_positions
        width = input_ids.shape[1]
        if limit is None or width + max_new_tokens <= limit:
            return input_ids, attention_mask
        if max_new_tokens >= limit:
            raise ContextLengthError(
                f"max_new_tokens={max_new_tokens} alone exceeds the model's context of {limit} "
                "tokens."
            )
        if not truncate_prompt:
            raise ContextLengthError(
                f"prompt of {width} tokens + max_new_tokens={max_new_tokens} = "
                f"{width + max_new_tokens} exceeds the model's context of {limit} tokens. "
                "Shorten the prompt, ask for fewer tokens, or pass truncate_prompt=True to keep "
                f"only the last {limit - max_new_tokens} prompt tokens."
            )
        keep = limit - max_new_tokens
        return input_ids[:, -keep:], attention_mask[:, -keep:]

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
        input_ids = np.asarray(input_ids, dtype=np.int64)
        if input_ids.ndim == 1:
            input_ids = input_ids[None, :]
        if attention_mask is None:
            attention_mask = np.ones_like(input_ids)
        attention_mask = np.asarray(attention_mask, dtype=np.int64)
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
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
            if strategy == "greedy":
                nxt = greedy(last)
            else:
                nxt = sample(last, rng, temperature=temperature, top_k=top_k, top_p=top_p)
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
        input_ids = np.asarray(input_ids, dtype=np.int64)
        if input_ids.ndim == 1:
            input_ids = input_ids[None, :]
        tokens: list[np.ndarray] = []
        logits: list[np.ndarray] = []
        t0 = time.perf_counter()
        t_first = None
        stopped = "max_new_tokens"
        it = self.iter_steps(input_ids, attention_mask, max_new_tokens=max_new_tokens, **kwargs)
        for nxt, last in it:
            if t_first is None:
                t_first = time.perf_counter()
            tokens.append(nxt)
            if return_logits:
                logits.append(last.copy())
        t_end = time.perf_counter()
        if len(tokens) < max_new_tokens:
            stopped = "eos"
        new = np.stack(tokens, axis=1) if tokens else np.zeros((input_ids.shape[0], 0), np.int64)
        limit = self.layout.max_positions
        prompt = input_ids
        if limit is not None and prompt.shape[1] + max_new_tokens > limit:
            prompt = prompt[:, -(limit - max_new_tokens):]  # it was truncated (truncate_prompt)
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
        characters split across byte-level BPE tokens appear only once complete.
        """
        enc = encode_prompts(tokenizer, prompt)
        ids: list[int] = []
        sent = ""
        for nxt, _ in self.iter_steps(
            enc["input_ids"], enc["attention_mask"], max_new_tokens=max_new_tokens, **kwargs
        ):
            tok = int(nxt[0])
            if tok in self.eos_token_ids:
                break
            ids.append(tok)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            if text.endswith("\ufffd"):
                continue  # an incomplete UTF-8 character: wait for the next token
            if len(text) > len(sent):
                yield text[len(sent):]
                sent = text
        text = tokenizer.decode(ids, skip_special_tokens=True)
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
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Greedy ``model.generate`` on numpy inputs; returns (new tokens ``[batch, n]``, step logits).

    ``stop_on_eos=False`` forces exactly ``max_new_tokens`` (for fair timing: the same work as
    the ONNX loop with ``stop_on_eos=False``). transformers
    derives position ids from the attention mask (``cumsum(mask) - 1``), the rule the ONNX loop
    copies, so left-padded rows get the same positions in both.
    """
    import torch
    from transformers import GenerationConfig

    ids = torch.from_numpy(np.asarray(input_ids, dtype=np.int64))
    if ids.ndim == 1:
        ids = ids[None, :]
    mask = (
        torch.ones_like(ids) if attention_mask is None
        else torch.from_numpy(np.asarray(attention_mask, dtype=np.int64))
    )
    cfg = model.config
    if pad_token_id is None:
        pad_token_id = cfg.pad_token_id if cfg.pad_token_id is not None else cfg.eos_token_id
    if isinstance(pad_token_id, list):
        pad_token_id = pad_token_id[0]
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
    )
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg)
    new = out.sequences[:, ids.shape[1]:].numpy()
    logits = [t.float().numpy() for t in out.logits] if return_logits and out.logits else []
    return new, logits


# ---------------------------------------------------------------------------------------------
# Speed: the memory-bandwidth bound (tokens/s are measured with helpers.benchmark.interleaved)
# ---------------------------------------------------------------------------------------------


def onnx_weight_bytes(onnx_path: str | Path) -> int:
    """Bytes of all initializers (weights) in an ONNX file -- what one decode step must read."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=True)
    total = 0
    for init in model.graph.initializer:
        n = int(np.prod(init.dims)) if init.dims else 1
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
        total += n * itemsize
    return total


def bandwidth_bound_tokens_per_s(weight_bytes: int, bandwidth_gb_s: float, batch: int = 1) -> float:
    """Upper bound on decode tokens/s when every step must stream all weights from memory once.

    At batch 1 a decode step is a chain of matrix-*vector* products: each weight is used once,
    so time per token >= weight bytes / memory bandwidth. A batch of ``batch`` rows shares
    that read, hence the bound scales with the batch.
    """
    return batch * bandwidth_gb_s * 1e9 / weight_bytes
