"""Write wfhost tasks in Python, as for Celery.

A Celery tasks module runs on wfhost with one change, its import line::

    from wfhost_task import Celery

and builds into a sandboxed WebAssembly component with
``wfhost build-py tasks -o tasks.wasm`` (or ``python -m wfhost_task build``).
Rust and Python tasks mix in one workflow.
"""

from .app import Celery, Request, Task, shared_task, task
from .canvas import Signature, chain, chord, group, signature, sleep, wait
from .exceptions import (
    Ignore,
    MaxRetriesExceededError,
    NotSupported,
    Reject,
    Retry,
    TaskError,
)

subtask = signature

__all__ = [
    "Celery",
    "Ignore",
    "MaxRetriesExceededError",
    "NotSupported",
    "Reject",
    "Request",
    "Retry",
    "Signature",
    "Task",
    "TaskError",
    "chain",
    "chord",
    "group",
    "shared_task",
    "signature",
    "sleep",
    "subtask",
    "task",
    "wait",
]
