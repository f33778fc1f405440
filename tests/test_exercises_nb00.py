"""Exercise 00.1 (open a session with an explicit providers list, then check it) accepts the
right answer and rejects each way of getting it wrong, on whatever providers this kernel has."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from helpers import envreport
from helpers.course.exercises import framework


@pytest.fixture(scope="module")
def report() -> envreport.EnvReport:
    return envreport.report()


@pytest.fixture()
def probe(tmp_path) -> str:
    return envreport.write_probe_model(tmp_path / "probe.onnx")


def open_checked(path, wanted):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, sess_options=options, providers=wanted)
    if session.get_providers()[0] != wanted[0]:
        raise RuntimeError(f"asked for {wanted}, got {session.get_providers()}")
    return session


def test_registered_with_its_call() -> None:
    assert framework.all_keys("00") == ["00.1"]
    assert framework.get("00.1").call.startswith('exercises.check("00.1", open_session')


def test_the_solution_passes(report, probe) -> None:
    feedback = framework.evaluate("00.1", open_checked, path=probe, report=report)
    assert feedback.ok, feedback.text()
    assert "raised RuntimeError" in feedback.message


def test_a_function_that_never_checks_is_caught(report, probe) -> None:
    def unchecked(path, wanted):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        return ort.InferenceSession(path, sess_options=options, providers=wanted)

    feedback = framework.evaluate("00.1", unchecked, path=probe, report=report)
    assert not feedback.ok and "did not notice" in feedback.message
    assert "get_providers()[0]" in feedback.hint


def test_threads_and_exception_type_are_checked(report, probe) -> None:
    def default_threads(path, wanted):
        session = ort.InferenceSession(path, providers=wanted)
        if session.get_providers()[0] != wanted[0]:
            raise RuntimeError("dropped")
        return session

    def wrong_exception(path, wanted):
        session = open_checked(path, wanted) if wanted[0] in ort.get_available_providers() else None
        if session is None:
            raise ValueError("not available")
        return session

    feedback = framework.evaluate("00.1", default_threads, path=probe, report=report)
    assert not feedback.ok and "intra_op_num_threads" in feedback.message
    feedback = framework.evaluate("00.1", wrong_exception, path=probe, report=report)
    assert not feedback.ok and "not RuntimeError" in feedback.message


def test_raising_for_a_provider_that_runs_is_wrong(report, probe) -> None:
    def always_raises(path, wanted):
        raise RuntimeError("no")

    feedback = framework.evaluate("00.1", always_raises, path=probe, report=report)
    assert not feedback.ok and "which this kernel can run" in feedback.message
    assert not framework.evaluate("00.1", "a session", path=probe, report=report).ok
    assert not framework.evaluate("00.1", None, path=probe, report=report).answered
