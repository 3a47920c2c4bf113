"""The exceptions of Celery's task API (``celery.exceptions``), with the
meaning wfhost gives them.

A task raises them, usually through :meth:`Task.retry` and
:meth:`Task.replace`; the SDK turns them into the step's outcome.
"""

from __future__ import annotations


class Retry(Exception):
    """The task asks to be run again: raised by :meth:`Task.retry`.

    ``when`` is the countdown in seconds, or ``None`` to let the step's retry
    policy (``default_retry_delay``, backoff) decide; ``max_retries`` is the
    task's own limit of retries, which the host keeps to where the step's
    options set none.
    """

    def __init__(self, message=None, exc=None, when=None, max_retries=None, **_ignored):
        self.message = message
        self.exc = exc
        self.when = when
        self.max_retries = max_retries
        super().__init__(message, exc, when)

    def humanize(self) -> str:
        if isinstance(self.when, (int, float)):
            return f"in {self.when}s"
        return "by the step's retry policy"

    def __str__(self) -> str:
        if self.message:
            return self.message
        if self.exc is not None:
            return f"Retry {self.humanize()}: {describe(self.exc)}"
        return f"Retry {self.humanize()}"


class Ignore(Exception):
    """Celery's signal that the worker should not record the task's state.

    In wfhost every step has a record, so an ``Ignore`` a task raises itself
    fails the step (saying so); :meth:`Task.replace` uses a subclass of it,
    as Celery does.
    """


class Reject(Exception):
    """The task refuses its message (Celery's ``Reject``): the step fails
    with the reason. ``requeue`` has no meaning in wfhost."""

    def __init__(self, reason=None, requeue=False):
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)

    def __str__(self) -> str:
        return f"rejected: {self.reason}" if self.reason is not None else "rejected"


class MaxRetriesExceededError(Exception):
    """:meth:`Task.retry` was called with the task's own ``max_retries``
    spent and no exception to raise instead."""


class TaskError(Exception):
    """A misuse of the task API (Celery's ``TaskError``)."""


class NotSupported(TaskError):
    """Part of Celery's API that wfhost does not offer, with what to do
    instead."""


def describe(exc: BaseException) -> str:
    """An exception as the last line of a Python traceback gives it:
    ``ValueError: bad input``, ``shop.errors.OutOfStock: sku 12``."""
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    text = str(exc)
    return f"{name}: {text}" if text else name
