"""ONNX Runtime GenAI side by side: its model builder on a local folder, its generation loop.

``onnxruntime-genai`` packages what this package builds by hand -- an ONNX graph with a KV cache
(its own: ``GroupQueryAttention`` with one buffer shared by past and present), weight-only
quantization, and the search loop in C++. Its **model builder** converts a Hugging Face folder
(``python -m onnxruntime_genai.models.builder -i <folder> -o <out> -p int4|fp32 -e cpu``) for the
architectures it knows (Llama, Mistral, Phi, Qwen, Gemma, SmolLM...; not GPT-2). Nothing is
downloaded with ``-i``: the builder reads the local weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from helpers.generation.tokens import check_prompt

__all__ = ["GenAIBuildError", "GenAIGenerator", "build_genai_model", "genai_available", "tiny_llama"]


class GenAIBuildError(RuntimeError):
    """The model builder failed; the message carries the end of its output."""


def genai_available() -> bool:
    """True when ``onnxruntime_genai`` can be imported."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime_genai") is not None


def tiny_llama(vocab_size: int, *, seed: int = 0, eos_token_id: int | None = None) -> Any:
    """A 2-layer Llama (hidden 64, 4 query / 2 KV heads) with seeded random weights.

    The smallest model of an architecture the GenAI builder supports, for tests and the test
    profile; ``vocab_size`` matches the tokenizer saved next to it (the builder needs one).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    from helpers.models.hub import quiet_transformers
    from helpers.models.tiny import seeded

    eos = vocab_size - 1 if eos_token_id is None else eos_token_id
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, initializer_range=0.2,
        tie_word_embeddings=False,
    )
    with seeded(seed), quiet_transformers():
        return LlamaForCausalLM(config).eval()


def _tail(text: str, lines: int = 12) -> str:
    kept = [line for line in text.replace("\r", "\n").splitlines() if line.strip() and "it/s]" not in line]
    return "\n".join(kept[-lines:])


def build_genai_model(
    hf_folder: str | Path,
    out_folder: str | Path,
    *,
    precision: str = "int4",
    execution_provider: str = "cpu",
    timeout_s: float = 1800,
) -> Path:
    """Run the model builder on a local transformers folder; returns ``out_folder``.

    ``precision``: ``int4`` (``MatMulNBits`` weights, block 32) or ``fp32`` on the CPU. The
    builder runs in a subprocess (it prints progress bars and sets global state); a failure is
    a :class:`GenAIBuildError` with its last lines, e.g. for an architecture it does not support.
    """
    hf_folder, out = Path(hf_folder), Path(out_folder)
    if not (hf_folder / "config.json").is_file():
        raise GenAIBuildError(f"{hf_folder} is not a transformers folder (no config.json)")
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_folder), "-o", str(out),
        "-p", precision, "-e", execution_provider, "-c", str(out / "builder-cache"),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as err:
        raise GenAIBuildError(f"the model builder did not finish within {timeout_s:.0f} s") from err
    if done.returncode != 0 or not (out / "genai_config.json").is_file():
        raise GenAIBuildError(
            f"the model builder failed (exit code {done.returncode}) on {hf_folder.name}:\n"
            f"{_tail(done.stdout + done.stderr)}"
        )
    for leftover in (out / "builder-cache").glob("*"):
        if leftover.is_file():
            leftover.unlink()
    return out


class GenAIGenerator:
    """Greedy generation with ``onnxruntime_genai`` (``Model``, ``GeneratorParams``, ``Generator``).

    ``GenAIGenerator(folder, threads=2)``; :meth:`generate` takes token ids (so the same
    tokenizer output feeds every path) and returns the new tokens, one row per prompt.
    """

    def __init__(self, folder: str | Path, *, threads: int | None = None, name: str = "ORT GenAI") -> None:
        import onnxruntime_genai as og

        self.folder = Path(folder)
        self.config = json.loads((self.folder / "genai_config.json").read_text())
        og_config = og.Config(str(self.folder))
        if threads:
            options = {"intra_op_num_threads": int(threads), "inter_op_num_threads": 1}
            og_config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
        self.model = og.Model(og_config)
        self.name = name
        self.context = int(self.config["model"].get("context_length") or 0) or None
        eos = self.config["model"].get("eos_token_id")
        self.eos_token_ids = tuple(eos) if isinstance(eos, list) else ((eos,) if eos is not None else ())

    def describe(self) -> dict[str, Any]:
        """What runs: the folder, the weight format of its MatMuls, the search settings used."""
        import onnx

        graph = onnx.load(str(self.folder / self.config["model"]["decoder"]["filename"]), load_external_data=False)
        ops = [n.op_type for n in graph.graph.node]
        return {"folder": self.folder.name, "MatMulNBits nodes": ops.count("MatMulNBits"),
                "MatMul nodes": ops.count("MatMul"), "GroupQueryAttention nodes": ops.count("GroupQueryAttention"),
                "search": "greedy (do_sample=False)"}

    def generate(
        self, input_ids: np.ndarray, *, max_new_tokens: int = 20, stop_on_eos: bool = True
    ) -> np.ndarray:
        """Greedy continuation of each prompt row (no padding: rows are run one by one).

        ``stop_on_eos=False`` sets GenAI's ``min_length`` to the full length, which masks EOS
        out (like transformers' ``min_new_tokens``): the same work on every call, for timing.
        Rows that stop early are padded with the EOS id.
        """
        import onnxruntime_genai as og

        ids, _ = check_prompt(input_ids, None, max_new_tokens, self.context)
        rows = []
        for row in ids:
            params = og.GeneratorParams(self.model)
            total = len(row) + max_new_tokens
            params.set_search_options(do_sample=False, max_length=total, min_length=0 if stop_on_eos else total)
            generator = og.Generator(self.model, params)
            generator.append_tokens(row[None, :].astype(np.int32))
            new: list[int] = []
            while not generator.is_done() and len(new) < max_new_tokens:
                generator.generate_next_token()
                new.append(int(generator.get_next_tokens()[0]))
            rows.append(new)
        width = max(len(r) for r in rows)
        pad = self.eos_token_ids[0] if self.eos_token_ids else 0
        return np.array([r + [pad] * (width - len(r)) for r in rows], dtype=np.int64)

    def teacher_forced_logits(self, token_ids: Any) -> np.ndarray:
        """Logits ``[n, vocab]`` of every position of ``token_ids``, fed one token at a time.

        GenAI's own loop with the text's tokens appended in place of its choices
        (``append_tokens`` then ``get_logits`` per token): the decode regime, as
        :func:`helpers.generation.teacher_forced_logits` computes it for an ONNX Runtime graph.
        """
        import onnxruntime_genai as og

        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if ids.size < 2:
            raise ValueError("teacher forcing needs at least 2 tokens")
        if self.context is not None and ids.size > self.context:
            raise ValueError(f"{ids.size} tokens exceed the model's context of {self.context}")
        params = og.GeneratorParams(self.model)
        params.set_search_options(do_sample=False, max_length=int(ids.size) + 1)
        generator = og.Generator(self.model, params)
        rows = []
        for token in ids:
            generator.append_tokens(np.array([[token]], dtype=np.int32))
            logits = np.asarray(generator.get_logits(), dtype=np.float32)
            rows.append(logits.reshape(-1, logits.shape[-1])[-1])
        return np.stack(rows)
