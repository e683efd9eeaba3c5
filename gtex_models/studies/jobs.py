"""Long work (building a study) in a background thread, with progress, cancellation and its outcome.

The app starts a :class:`Job` and keeps browsing; a page polls :attr:`Job.fraction`,
:attr:`Job.message` and :attr:`Job.state`. The work function receives the job's
``progress(fraction, message)`` callback and its ``should_stop()`` check, and is expected to stop
(raising one of ``cancelled_by``) soon after ``should_stop()`` turns True.

Example
-------
>>> job = start_job("count", lambda progress, should_stop: 42)
>>> job.wait(5)
True
>>> job.state, job.result
('done', 42)
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from gtex_models.common.progress import ProgressCallback

RUNNING, DONE, CANCELLED, FAILED = "running", "done", "cancelled", "failed"
USER_ERRORS = (ValueError, OSError)  # bad input or a full disk: the message is for the user
Work = Callable[[ProgressCallback, Callable[[], bool]], Any]
_log = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """One piece of work running in a background thread.

    Attributes
    ----------
    title : what the work is, for the user.
    fraction, message : the last progress report.
    state : ``running``, then ``done``, ``cancelled`` or ``failed``.
    result : the work's return value once ``done``.
    error : what went wrong once ``failed`` (``ValueError``/``OSError`` messages as they are; other errors
        with their type, as they are bugs).
    """

    title: str
    fraction: float = 0.0
    message: str = "starting"
    state: str = RUNNING
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def progress(self, fraction: float, message: str) -> None:
        """The work's progress callback."""
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        self.message = message

    def cancel(self) -> None:
        """Ask the work to stop (it stops at its next ``should_stop()`` check)."""
        self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def seconds(self) -> float:
        """Seconds since the start (until the end once finished)."""
        return (self.finished or time.monotonic()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the work to finish; True if it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running


def start_job(title: str, work: Work, cancelled_by: tuple[type[BaseException], ...] = ()) -> Job:
    """Run ``work(progress, should_stop)`` in a daemon thread; returns its :class:`Job` at once.

    An exception of ``cancelled_by`` ends the job as ``cancelled``; any other as ``failed``, with its
    message (never raised into the caller's thread).
    """
    job = Job(title)

    def run() -> None:
        try:
            job.result = work(job.progress, job.should_stop)
            job.state = DONE
        except cancelled_by:
            job.state = CANCELLED
        except USER_ERRORS as error:
            job.error, job.state = str(error), FAILED
        except Exception as error:  # a bug: keep the app alive, say what it was, log the traceback
            _log.exception("job %r failed", title)
            job.error, job.state = f"{type(error).__name__}: {error}", FAILED
        finally:
            job.finished = time.monotonic()

    job._thread = threading.Thread(target=run, name=f"job: {title}", daemon=True)
    job._thread.start()
    return job
