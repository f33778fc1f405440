"""python -m helpers.models.build: which artifacts a profile needs, every failure reported in the
exit status, the same cache entries the notebooks use (a second run, or a notebook, reuses them)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from helpers.models import build
from helpers.qa import finetune


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERENCE_SUITE_CACHE", str(tmp_path))
    return tmp_path


def _artifact(name, profiles=("test", "full"), note="ok", fail=None, calls=None):
    def make():
        if calls is not None:
            calls.append(name)
        if fail:
            raise fail
        return note

    return build.Artifact(name, f"the {name}", profiles, make)


def test_the_registry_names_each_artifact_once_for_known_profiles():
    names = [a.name for a in build.ARTIFACTS]
    assert len(names) == len(set(names))
    assert {"qa-full", "qa-tiny", "smollm2", "gpt2-tokenizer", "bert-base-timing"} <= set(names)
    for artifact in build.ARTIFACTS:
        assert artifact.profiles and set(artifact.profiles) <= set(build.PROFILES), artifact
    # the test profile's QA model is the real fine-tuned one (notebook 06 asserts its quality there)
    assert "test" in next(a for a in build.ARTIFACTS if a.name == "qa-full").profiles


def test_select_follows_the_profile_and_only():
    arts = [_artifact("a", ("test",)), _artifact("b", ("full",)), _artifact("c")]
    assert [a.name for a in build.select("test", artifacts=arts)] == ["a", "c"]
    assert [a.name for a in build.select("full", artifacts=arts)] == ["b", "c"]
    assert [a.name for a in build.select("all", artifacts=arts)] == ["a", "b", "c"]
    assert [a.name for a in build.select("test", ["b"], artifacts=arts)] == ["b"]
    with pytest.raises(ValueError, match=r"unknown artifact\(s\) \['z'\]; known: a, b, c"):
        build.select("all", ["z"], artifacts=arts)
    with pytest.raises(ValueError, match="unknown profile"):
        build.select("nightly", artifacts=arts)


def test_a_failure_is_reported_and_the_others_still_build(capsys):
    calls = []
    arts = [
        _artifact("a", calls=calls),
        _artifact("b", fail=RuntimeError("disk full\nmore"), calls=calls),
        _artifact("c", note="cached", calls=calls),
    ]
    results = build.build(arts, progress=False)
    assert calls == ["a", "b", "c"]
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].note == "RuntimeError: disk full"
    assert all(r.seconds >= 0 for r in results)
    text = build.report(results)
    assert "FAILED: b" in text and "disk full" in text
    assert "Traceback" in capsys.readouterr().out  # the whole error is shown while building


def test_main_exit_status(monkeypatch, capsys):
    monkeypatch.setattr(build, "ARTIFACTS", (_artifact("a"), _artifact("b", ("full",))))
    assert build.main(["--profile", "test", "--no-progress"]) == 0
    assert "1 artifact(s)" in capsys.readouterr().out
    monkeypatch.setattr(build, "ARTIFACTS", (_artifact("a", fail=OSError("no space")),))
    assert build.main(["--no-progress"]) == 1
    assert "FAILED: a" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        build.main(["--only", "nothing"])
    assert bad.value.code == 2
    assert build.main(["--list"]) == 0


def test_the_command_line_runs_as_a_module(cache):
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.models.build", "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "qa-full" in proc.stdout and "test/full" in proc.stdout


def test_a_built_artifact_is_the_notebooks_cache_entry(cache, capsys):
    """The GPT-2 tokenizer: built once by the build step, then found by the catalog's own call."""
    from helpers.models.packaged import gpt2_tokenizer_dir

    (first,) = build.build(build.select(only=["gpt2-tokenizer"]), progress=False)
    (again,) = build.build(build.select(only=["gpt2-tokenizer"]), progress=False)
    assert first.ok and "built once" in first.note
    assert again.ok and again.note.startswith("cached at")
    folder, note = gpt2_tokenizer_dir()
    assert note.startswith("cached at") and folder.parent.parent == cache


MICRO = finetune.TrainSettings(
    name="micro",
    layers=1,
    epochs=1.0,
    train_examples=24,
    validation_examples=12,
    data=(("paragraphs_per_entity", 1), ("validation_paragraphs_per_entity", 1)),
)


def test_the_qa_build_is_the_model_the_catalog_loads(cache, monkeypatch, capsys):
    """The build step and catalog.load("question-answering", ...) share one cache entry (same key),
    and the build also caches the held-out questions the notebooks score the model on."""
    from helpers import catalog

    monkeypatch.setitem(finetune.PRESETS, "tiny", dataclasses.replace(MICRO, name="tiny"))
    (result,) = build.build(build.select(only=["qa-tiny"]), progress=False)
    assert result.ok, result.note
    assert "built once" in result.note and "held-out exact match" in result.note
    loaded = catalog.load("question-answering", "tiny", show_banner=False)
    assert any(note.lower().startswith("cached at") for note in loaded.notes), loaded.notes
    assert len(list(cache.glob("catalog/qa-held-out-*/held_out.json"))) == 1
    regenerated = finetune.qa_dataset.generate(0, **MICRO.data_kwargs()).validation[
        : MICRO.validation_examples
    ]

    def no_generation(*args, **kwargs):
        raise AssertionError(
            "the held-out questions were generated again instead of read from the cache"
        )

    monkeypatch.setattr(finetune.qa_dataset, "generate", no_generation)
    assert finetune.held_out_examples(loaded.metrics) == regenerated


def test_a_missing_model_is_announced_before_it_is_built(cache, monkeypatch):
    shown = []
    monkeypatch.setattr(finetune, "banner", lambda title, body="", kind="info": shown.append(title))
    from helpers.catalog import minilm_dir

    finetune.load_qa_model(minilm_dir(), MICRO, progress=False)
    assert len(shown) == 1 and "not built yet" in shown[0]
    finetune.load_qa_model(minilm_dir(), MICRO, progress=False)  # cached: no banner
    assert len(shown) == 1
    finetune.load_qa_model(
        minilm_dir(), MICRO, seed=1, progress=False, announce=False
    )  # built, silently
    assert len(shown) == 1
