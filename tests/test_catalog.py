"""helpers.catalog: real offline models give sensible answers; canonical paths work from a local
cache (no network needed); fallbacks are explained; the cache rebuilds corrupt entries."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import threading
import warnings

import numpy as np
import pytest
import torch
from fakes import torch_step

from helpers import cache, catalog, images
from helpers.catalog import CatalogError
from helpers.models import embeddings, hub

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, tmp_path_factory):
    """Never touch the network, and never pick up a real torch hub / HF cache by accident."""
    monkeypatch.setenv("INFERENCE_SUITE_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home_empty")))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_cache_empty")))
    monkeypatch.delenv("INFERENCE_SUITE_CANONICAL_DIR", raising=False)
    hub._PROBES.clear()


@pytest.fixture(scope="module")
def photos():
    return {k: images.load_image(p) for k, p in images.sample_images().items()}


@pytest.fixture(scope="module")
def quick_qa_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("quick_qa_cache")


@pytest.fixture
def quick_offline_qa(monkeypatch, quick_qa_cache):
    """The offline QA source with a one-layer preset, cached in a temporary folder: the catalog's
    code path in seconds (the full preset trains for minutes; notebook 06 checks its answers)."""
    from helpers.qa import finetune as qa_finetune

    quick = qa_finetune.TrainSettings(
        name="catalog-test",
        layers=1,
        train_examples=48,
        validation_examples=16,
        data=(("paragraphs_per_entity", 1), ("validation_paragraphs_per_entity", 1)),
    )
    monkeypatch.setitem(qa_finetune.PRESETS, "full", quick)
    monkeypatch.setattr(qa_finetune, "CACHE_FOLDER", quick_qa_cache)
    return quick


def _classify(lm, pics):
    batch = torch.stack([lm.preprocess(p) for p in pics])
    with torch.inference_mode():
        logits = lm.model(batch)
    return images.top_k(logits, lm.labels, k=3)


# ------------------------------------------------------------------------------------------
# Names and the table
# ------------------------------------------------------------------------------------------
def test_bad_names_list_the_choices():
    with pytest.raises(CatalogError, match="unknown task 'translation'.*image-classification"):
        catalog.load("translation")
    with pytest.raises(CatalogError, match="unknown source 'cloud'.*canonical, offline, tiny"):
        catalog.load("image-classification", "cloud")
    with pytest.raises(CatalogError, match="unknown variant 'huge'.*large, small"):
        catalog.load("question-answering", variant="huge")
    with pytest.raises(CatalogError, match="unknown variant 'small'.*default"):
        catalog.load("text-generation", "tiny", variant="small")


def test_explicit_canonical_offline_is_a_clear_error():
    with pytest.raises(CatalogError, match="canonical model .* not available.*offline mode"):
        catalog.load("text-generation", "canonical", show_banner=False)


# ------------------------------------------------------------------------------------------
# Image classification
# ------------------------------------------------------------------------------------------
def test_efficientnet_lite0_recognises_cat_and_coffee(photos, capsys):
    lm = catalog.load("image-classification")  # auto: no canonical offline -> EfficientNet
    shown = capsys.readouterr().out
    assert "EfficientNet-Lite0" in shown and "auto → offline" in shown and "canonical" in shown
    assert lm.source == "offline" and lm.pretrained and lm.meaningful_outputs
    assert lm.input_size == 224 and len(lm.labels) == 1000 and not lm.model.training
    cat, coffee = _classify(lm, [photos["chelsea"], photos["coffee"]])
    assert {"Egyptian cat", "tabby", "tiger cat"} & {lab for lab, _ in cat}, cat
    assert {"espresso", "cup", "coffee mug"} & {lab for lab, _ in coffee}, coffee


def test_tiny_image_model_is_cached_and_deterministic(photos):
    a = catalog.load("image-classification", "tiny", show_banner=False)
    b = catalog.load("image-classification", "tiny", show_banner=False)
    assert a.source == "tiny" and not a.pretrained and not a.meaningful_outputs
    assert a.path == b.path and a.path.is_file()
    x = torch.stack([a.preprocess(p) for p in photos.values()])
    with torch.inference_mode():
        ya, yb = a.model(x), b.model(x)
    assert ya.shape == (3, 1000) and torch.equal(ya, yb)
    assert len(set(ya.argmax(1).tolist())) > 1, "outputs should depend on the input"
    top2 = ya.topk(2, dim=1).values
    assert float((top2[:, 0] - top2[:, 1]).min()) > 1e-4, "top-1 must not be a rounding tie"


def _fake_resnet50_checkpoint(folder):
    import torchvision

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    model = torchvision.models.resnet50(weights=None)
    path = folder / "resnet50-11ad3fa6.pth"
    torch.save(model.state_dict(), path)
    return path, model


def _accept_hash_of(path, monkeypatch):
    """Make the catalog expect this file's SHA-256 prefix (as if torchvision had published it)."""
    monkeypatch.setattr(catalog, "_RESNET50_SHA256", hashlib.sha256(path.read_bytes()).hexdigest()[:8])


def test_canonical_resnet50_from_torch_hub_cache(tmp_path, monkeypatch, photos):
    path, reference = _fake_resnet50_checkpoint(tmp_path / "hub" / "checkpoints")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _accept_hash_of(path, monkeypatch)
    lm = catalog.load("image-classification", show_banner=False)
    assert lm.source == "canonical" and lm.name == "torchvision resnet50 IMAGENET1K_V2"
    assert "torch hub cache" in lm.reason and lm.path == path
    assert torch.equal(lm.model.fc.weight, reference.fc.weight)  # loaded through the weights API
    assert lm.preprocess.resize_size == [232] and lm.resize == 232  # the weights' own transforms

    # A corrupt checkpoint is never half-used: explicit -> clear error; auto -> explained fallback.
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CatalogError, match="SHA-256 starts with.*delete it"):
        catalog.load("image-classification", "canonical", show_banner=False)
    with pytest.warns(catalog.CatalogWarning, match="not using the canonical model"):
        lm = catalog.load("image-classification", show_banner=False)
    assert lm.source == "offline" and "canonical" in lm.reason and "failed to load" in lm.reason
    _accept_hash_of(path, monkeypatch)  # a truncated file with a matching prefix: torch refuses it
    with pytest.raises(CatalogError, match="could not be loaded.*nothing in it ran.*Delete it"):
        catalog.load("image-classification", "canonical", show_banner=False)


def test_canonical_dir_override_for_resnet50(tmp_path, monkeypatch):
    path, _ = _fake_resnet50_checkpoint(tmp_path)
    _accept_hash_of(path, monkeypatch)
    monkeypatch.setenv("INFERENCE_SUITE_CANONICAL_DIR", str(tmp_path))
    lm = catalog.load("image-classification", "canonical", show_banner=False)
    assert lm.source == "canonical" and "INFERENCE_SUITE_CANONICAL_DIR" in lm.reason


class _Payload:
    """Unpickled, it creates a marker file: the probe's planted 'command'."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def _plant_booby_trapped_checkpoint(folder, marker):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "resnet50-11ad3fa6.pth"  # torchvision's name for ResNet-50 IMAGENET1K_V2
    torch.save({"fc.weight": _Payload(marker), "fc.bias": torch.zeros(1000)}, path)
    return path


@pytest.mark.parametrize("where", ["canonical dir", "torch hub cache"])
def test_planted_resnet50_pickle_never_runs(tmp_path, monkeypatch, where):
    marker = tmp_path / "payload_ran"
    if where == "canonical dir":
        path = _plant_booby_trapped_checkpoint(tmp_path / "classroom", marker)
        monkeypatch.setenv("INFERENCE_SUITE_CANONICAL_DIR", str(path.parent))
    else:
        path = _plant_booby_trapped_checkpoint(tmp_path / "hub" / "checkpoints", marker)
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    # explicit canonical: the hash prefix does not match -> a clear error, nothing unpickled
    try:
        catalog.load("image-classification", "canonical", show_banner=False)
    except Exception as exc:  # checked after the marker
        error = exc
    else:
        error = None
    assert not marker.exists(), "the planted pickle ran during catalog.load"
    assert isinstance(error, CatalogError), repr(error)
    assert "SHA-256 starts with" in str(error) and "11ad3fa6" in str(error) and str(path) in str(error)

    # auto: falls back, and says plainly which file it did not use and why
    with pytest.warns(catalog.CatalogWarning, match="not using the canonical model.*SHA-256"):
        lm = catalog.load("image-classification", show_banner=False)
    assert not marker.exists()
    assert lm.source == "offline" and lm.problems and str(path) in lm.problems[0]
    assert "SHA-256" in lm.problems[0]

    # even a file whose 8-digit prefix matched (32 bits can be forged) is read with
    # weights_only=True: refused, nothing runs
    monkeypatch.setattr(catalog, "_RESNET50_SHA256", hashlib.sha256(path.read_bytes()).hexdigest()[:8])
    with pytest.raises(CatalogError, match=r"nothing in it ran") as info:
        catalog.load("image-classification", "canonical", show_banner=False)
    assert "Unsupported global" in str(info.value) and "exec" in str(info.value)
    assert not marker.exists()


def test_auto_banner_names_the_refused_file(tmp_path, monkeypatch, capsys):
    path = _plant_booby_trapped_checkpoint(tmp_path, tmp_path / "payload_ran")
    monkeypatch.setenv("INFERENCE_SUITE_CANONICAL_DIR", str(tmp_path))
    with pytest.warns(catalog.CatalogWarning):
        catalog.load("image-classification")
    shown = capsys.readouterr().out
    assert "NOT USED" in shown and str(path) in shown and "Source: offline" in shown


# ------------------------------------------------------------------------------------------
# Canonical transformers models from a local folder or a (fake) Hugging Face cache
# ------------------------------------------------------------------------------------------
def test_canonical_gpt2_and_small_qa_from_local_folder(tmp_path, monkeypatch, request):
    tiny_gpt2 = catalog.load("text-generation", "tiny", show_banner=False)
    shutil.copytree(tiny_gpt2.path, tmp_path / "openai-community--gpt2")
    tiny_qa = catalog.load("question-answering", "tiny", show_banner=False)
    shutil.copytree(tiny_qa.path, tmp_path / "distilbert-base-cased-distilled-squad")
    monkeypatch.setenv("INFERENCE_SUITE_CANONICAL_DIR", str(tmp_path))

    gen = catalog.load("text-generation", show_banner=False)
    assert gen.source == "canonical" and gen.name == "openai-community/gpt2" and gen.pretrained
    assert gen.path == tmp_path / "openai-community--gpt2"
    assert gen.tokenizer("Hello world")["input_ids"] == [15496, 995]

    qa = catalog.load("question-answering", variant="small", show_banner=False)
    assert qa.source == "canonical" and qa.name.endswith("distilbert-base-cased-distilled-squad")
    request.getfixturevalue("quick_offline_qa")
    # the large variant is not in the folder: auto explains and falls back
    large = catalog.load("question-answering", show_banner=False)
    assert large.source == "offline" and "bert-large-uncased" in large.reason


def test_canonical_from_fake_hf_cache(tmp_path, monkeypatch):
    tiny = catalog.load("sentence-embedding", "tiny", show_banner=False)
    repo = tmp_path / "models--sentence-transformers--all-MiniLM-L6-v2"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny.path, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    lm = catalog.load("sentence-embedding", show_banner=False)
    assert lm.source == "canonical" and "Hugging Face cache" in lm.reason
    assert lm.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert lm.model.config.hidden_size == 64  # really the folder we planted

    # a cache filled under the legacy id ("gpt2") counts too
    tiny_gpt2 = catalog.load("text-generation", "tiny", show_banner=False)
    legacy = tmp_path / "models--gpt2"
    shutil.copytree(tiny_gpt2.path, legacy / "snapshots" / commit)
    (legacy / "refs").mkdir()
    (legacy / "refs" / "main").write_text(commit)
    gen = catalog.load("text-generation", show_banner=False)
    assert gen.source == "canonical" and "as gpt2" in gen.reason
    assert gen.name == "openai-community/gpt2" and gen.path.parent.parent == legacy


def test_pickle_only_transformers_folder_is_not_loaded(tmp_path, monkeypatch):
    """A folder with only pytorch_model.bin (a pickle) is reported, not loaded."""
    tiny = catalog.load("text-generation", "tiny", show_banner=False)
    folder = tmp_path / "openai-community--gpt2"
    shutil.copytree(tiny.path, folder)
    (folder / "model.safetensors").unlink()
    torch.save(tiny.model.state_dict(), folder / "pytorch_model.bin")
    monkeypatch.setenv("INFERENCE_SUITE_CANONICAL_DIR", str(tmp_path))
    lm = catalog.load("text-generation", show_banner=False)
    assert lm.source != "canonical"
    assert "pytorch_model.bin, a pickle" in lm.reason and str(folder) in lm.reason
    with pytest.raises(CatalogError, match="safetensors only"):
        catalog.load("text-generation", "canonical", show_banner=False)


def test_probe_url_local_server_and_closed_port(monkeypatch):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ok, detail = hub.probe_url(f"http://127.0.0.1:{server.server_port}/x", timeout=2)
        assert ok and detail == "HTTP 200"
        # with the network allowed, a reachable hub makes the canonical model "downloadable"
        monkeypatch.delenv("INFERENCE_SUITE_OFFLINE")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        ok, how = catalog._canonical_availability("text-generation", "default")
        assert ok and "downloading from 127.0.0.1" in how
        monkeypatch.setenv("INFERENCE_SUITE_OFFLINE", "1")
        ok, how = catalog._canonical_availability("text-generation", "default")
        assert not ok and "offline mode" in how
    finally:
        server.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    ok, detail = hub.probe_url(f"http://127.0.0.1:{closed}/x", timeout=2)
    assert not ok and "refused" in detail.lower()
    assert not hub.network_allowed()  # INFERENCE_SUITE_OFFLINE=1 from the fixture
    monkeypatch.delenv("INFERENCE_SUITE_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not hub.network_allowed()


# ------------------------------------------------------------------------------------------
# The cache
# ------------------------------------------------------------------------------------------
def test_cached_model_edited_with_size_and_mtime_kept_is_rebuilt(tmp_path, monkeypatch):
    """config.json 2 -> 1 layers (same size, mtime put back) once loaded silently with other
    outputs; now the first load in a process checks every hash and rebuilds with a warning."""
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path))
    first = catalog.load("sentence-embedding", "tiny", show_banner=False)
    ids = first.tokenizer("a cached model", return_tensors="pt")
    with torch.inference_mode():
        reference = first.model(**ids).last_hidden_state
    config = first.path / "config.json"
    stat = config.stat()
    text = config.read_text()
    assert '"num_hidden_layers": 2' in text
    config.write_text(text.replace('"num_hidden_layers": 2', '"num_hidden_layers": 1'))
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert config.stat().st_size == stat.st_size and config.stat().st_mtime_ns == stat.st_mtime_ns
    getattr(cache, "_HASHES", {}).clear()  # as in a new process: nothing remembered

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = catalog.load("sentence-embedding", "tiny", show_banner=False)
    assert again.model.config.num_hidden_layers == 2, "the edited config was loaded silently"
    with torch.inference_mode():
        assert torch.equal(again.model(**ids).last_hidden_state, reference)
    assert "rebuilt" in " ".join(again.notes)
    assert [w for w in caught if w.category is cache.CacheWarning
            and "config.json does not match its checksum" in str(w.message)]


def test_cache_detects_and_rebuilds_corrupt_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path))
    first = catalog.load("image-classification", "tiny", show_banner=False)
    folder = first.path.parent
    assert (folder / ".manifest.json").is_file()
    assert "built once" in " ".join(first.notes)
    assert "cached at" in " ".join(
        catalog.load("image-classification", "tiny", show_banner=False).notes
    )
    reference = first.model.classifier[-1].weight.clone()

    # truncated file -> size mismatch
    data = first.path.read_bytes()
    first.path.write_bytes(data[: len(data) // 2])
    assert not cache.verify(folder)[0]
    with pytest.warns(cache.CacheWarning, match="truncated"):
        again = catalog.load("image-classification", "tiny", show_banner=False)
    assert "rebuilt" in " ".join(again.notes) and "truncated" in " ".join(again.notes)
    assert torch.equal(again.model.classifier[-1].weight, reference)  # seeded: same weights


# ------------------------------------------------------------------------------------------
# Text: fine-tuned QA, embeddings, tokenizers, tiny models
# ------------------------------------------------------------------------------------------
def test_offline_qa_is_the_fine_tuned_minilm_and_says_what_it_can_answer(
    capfd, quick_offline_qa, quick_qa_cache
):
    from helpers.qa import finetune as qa_finetune

    lm = catalog.load("question-answering", show_banner=False)  # auto: no canonical offline
    out, err = capfd.readouterr()
    assert "LOAD REPORT" not in out + err and "newly initialized" not in (out + err).lower()
    assert lm.source == "offline" and lm.pretrained and lm.meaningful_outputs
    assert lm.supports_no_answer and "fine-tuned for QA" in lm.name
    assert lm.metrics["settings"]["name"] == quick_offline_qa.name
    assert set(lm.metrics["validation"]) >= {"exact_match", "f1", "total"}
    notes = " ".join(lm.notes)
    assert qa_finetune.DOMAIN in lm.notes and "chemical elements" in notes
    assert f"exact match {lm.metrics['validation']['exact_match']:.1f}%" in notes
    again = catalog.load("question-answering", "offline", show_banner=False)
    assert "cached at" in " ".join(again.notes).lower() and again.path == lm.path
    assert lm.path.parent == quick_qa_cache
    assert torch.equal(lm.model.qa_outputs.weight, again.model.qa_outputs.weight)
    enc = lm.tokenizer("Who wrote it?", "Alice wrote the book.", return_tensors="pt")
    with torch.inference_mode():
        out = lm.model(**enc)
    assert out.start_logits.shape == enc["input_ids"].shape
    lm.banner()
    shown = capfd.readouterr().out
    assert "fine-tuned for extractive QA" in shown and "NOT meaningful" not in shown


def test_tiny_qa_is_briefly_fine_tuned_or_random_without_the_fact_packages(capfd, monkeypatch):
    from helpers.qa import finetune as qa_finetune
    from helpers.qa.facts import QAFactsError

    tiny = catalog.load("question-answering", "tiny", show_banner=False)
    assert tiny.source == "tiny" and tiny.pretrained and not tiny.meaningful_outputs
    assert tiny.supports_no_answer and tiny.model.config.num_hidden_layers == 2
    assert tiny.metrics["settings"]["name"] == "tiny"
    tiny.banner()
    assert "briefly fine-tuned" in capfd.readouterr().out

    def no_facts(*args, **kwargs):
        raise QAFactsError("package 'countryinfo' is not installed")

    monkeypatch.setattr(qa_finetune, "load_qa_model", no_facts)
    random_tiny = catalog.load("question-answering", "tiny", show_banner=False)
    assert random_tiny.name.startswith("tiny-bert-qa (random")
    assert not random_tiny.pretrained and not random_tiny.supports_no_answer
    assert "countryinfo" in random_tiny.reason and "random tiny BERT" in random_tiny.reason


def test_minilm_ranks_paraphrase_above_unrelated():
    lm = catalog.load("sentence-embedding", show_banner=False)
    assert lm.source == "offline" and lm.meaningful_outputs
    emb = embeddings.sentence_embeddings(
        lm,
        [
            "A man is playing a guitar.",
            "Someone is playing an instrument.",
            "Stock prices fell sharply today.",
        ],
    )
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.3


def test_gpt2_tokenizer_exact():
    tok = catalog.load("text-generation", "tiny", show_banner=False).tokenizer
    assert len(tok) == 50257
    assert tok("Hello world")["input_ids"] == [15496, 995]
    text = "Inference at 3× speed — naïve café 🚀!"
    assert tok.decode(tok(text)["input_ids"]) == text


def test_wordpiece_tokenizer():
    tok = catalog.load("question-answering", "tiny", show_banner=False).tokenizer
    assert tok.vocab_size == 30522
    assert tok("Hello world")["input_ids"] == [101, 7592, 2088, 102]


def test_tiny_text_models():
    gpt2 = catalog.load("text-generation", "tiny", show_banner=False)
    assert gpt2.model.config.n_layer == 2 and gpt2.model.config.n_embd == 64
    assert gpt2.tokenizer("Hello world")["input_ids"] == [15496, 995]
    ids = gpt2.tokenizer("Hello world", return_tensors="pt")
    with torch.inference_mode():
        assert gpt2.model(**ids).logits.shape == (1, 2, 50257)
    qa = catalog.load("question-answering", "tiny", show_banner=False)
    assert qa.model.config.num_hidden_layers == 2 and qa.model.config.hidden_size == 384
    assert qa.tokenizer.vocab_size == 30522
    enc = qa.tokenizer("Who?", "Alice met Bob.", return_tensors="pt")
    with torch.inference_mode():
        out = qa.model(**enc)
    assert out.end_logits.shape == enc["input_ids"].shape


# ------------------------------------------------------------------------------------------
# SmolLM2 (one-time GGUF conversion, ~30 s-2 min; cached afterwards)
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def smollm2():
    return catalog.load("text-generation", "offline", show_banner=False)


@pytest.mark.slow
def test_smollm2_greedy_matches_generate(smollm2):
    from helpers import generation

    lm = smollm2
    assert lm.source == "offline" and lm.pretrained and lm.model.config.model_type == "llama"
    assert (lm.path / ".manifest.json").is_file()
    enc = generation.encode_prompts(lm.tokenizer, "The capital of France is")
    ref, _ = generation.hf_generate(
        lm.model, enc["input_ids"], enc["attention_mask"], max_new_tokens=8
    )
    loop = generation.Generator(
        torch_step(lm.model),
        generation.CacheLayout.from_config(lm.model.config),
        eos_token_id=lm.model.config.eos_token_id,
    )
    ours = loop.generate(enc["input_ids"], enc["attention_mask"], max_new_tokens=8)
    np.testing.assert_array_equal(ours.new_tokens, ref)
    text = lm.tokenizer.decode(ref[0])
    assert "Paris" in text, text


@pytest.mark.slow
def test_smollm2_reload_is_fast(smollm2):
    import time

    start = time.perf_counter()
    again = catalog.load("text-generation", "offline", show_banner=False)
    assert time.perf_counter() - start < 15  # no re-conversion (generous: shared, loaded machine)
    assert "cached at" in " ".join(again.notes)
