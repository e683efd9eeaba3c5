"""Background jobs: outcome, progress, cancellation, errors kept in the job (never raised in the caller)."""

from __future__ import annotations

import threading

import pytest

from gtex_models.studies.jobs import CANCELLED, DONE, FAILED, start_job


class Stopped(Exception):
    pass


def test_a_job_runs_in_another_thread_and_keeps_its_result_and_progress():
    seen = {}

    def work(progress, should_stop):
        seen["thread"] = threading.current_thread()
        progress(0.5, "half")
        progress(1.7, "beyond")  # clamped
        return 42

    job = start_job("answer", work)
    assert job.wait(10)
    assert (job.state, job.result, job.error) == (DONE, 42, None)
    assert seen["thread"] is not threading.current_thread()
    assert (job.fraction, job.message) == (1.0, "beyond")
    assert job.seconds >= 0 and not job.running


def test_cancel_is_seen_by_the_work_and_ends_the_job_as_cancelled():
    started = threading.Event()

    def work(progress, should_stop):
        started.set()
        while not should_stop():
            threading.Event().wait(0.01)
        raise Stopped

    job = start_job("loop", work, cancelled_by=(Stopped,))
    assert started.wait(10) and job.running
    job.cancel()
    assert job.wait(10)
    assert job.state == CANCELLED and job.error is None


@pytest.mark.parametrize("error, message", [
    (ValueError("bad cohort: fix it"), "bad cohort: fix it"),  # a user's error: its message as it is
    (KeyError("x"), "KeyError: 'x'"),  # a bug: with its type
])
def test_errors_end_the_job_as_failed_with_a_message(error, message):
    def work(progress, should_stop):
        raise error

    job = start_job("broken", work)
    assert job.wait(10)
    assert job.state == FAILED and job.error == message
