"""Celery's task API: the app, the ``@app.task`` decorator, bound tasks and
their request.

A module written for Celery runs here with one change, its import line::

    from wfhost_task import Celery

    app = Celery("tasks", broker="redis://localhost")

    @app.task(bind=True, autoretry_for=(IOError,), retry_backoff=True)
    def fetch(self, key):
        ...
"""

from __future__ import annotations

import datetime
import inspect
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from . import canvas
from .exceptions import (
    Ignore,
    MaxRetriesExceededError,
    NotSupported,
    Reject,
    Retry,
    TaskError,
)

#: Every task defined so far, by its Celery name (``tasks.add``).
registry: dict[str, "Task"] = {}


@dataclass
class Request:
    """What a bound task sees as ``self.request`` (Celery's ``Context``)."""

    #: The step's id across attempts: ``<workflow id>/<step id>``. It is also
    #: the idempotency key a service can deduplicate retried effects by.
    id: str | None = None
    #: The workflow's id (Celery's root task id).
    root_id: str | None = None
    #: The workflow's id, by wfhost's name for it.
    workflow_id: str | None = None
    #: The step's position in the canvas (``0``, ``2.1``, ``3.body``).
    step_id: str | None = None
    #: How many times the step was retried before this attempt (from 0).
    retries: int = 0
    #: The tenant the workflow belongs to.
    tenant: str | None = None
    #: The task's name.
    task: str | None = None
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    #: True when the task was called as a plain function, outside wfhost.
    called_directly: bool = True
    is_eager: bool = False
    hostname: str = "wfhost"
    delivery_info: dict = field(default_factory=dict)

    @property
    def attempt(self) -> int:
        """The attempt number, from 1."""
        return self.retries + 1


class _Replaced(Ignore):
    """Raised by :meth:`Task.replace` to end the task with a new canvas."""

    def __init__(self, sig: canvas.Signature):
        self.sig = sig
        super().__init__("replaced")


#: Celery task options that steer its worker, meaningless in wfhost but
#: accepted so that a Celery module needs no edit.
_WORKER_OPTIONS = {
    "queue", "routing_key", "exchange", "priority", "serializer", "compression",
    "ignore_result", "store_errors_even_if_ignored", "acks_late", "acks_on_failure_or_timeout",
    "reject_on_worker_lost", "track_started", "rate_limit", "expires", "soft_time_limit",
    "time_limit", "trail", "send_events", "typing", "base", "resultrepr_maxsize",
    "pydantic", "pydantic_strict", "pydantic_context", "pydantic_dump_kwargs", "lazy",
}


class Task:
    """A task: a function with Celery's task attributes and methods.

    Calling it calls the function (as Celery does); ``s()`` and ``si()`` make
    signatures for :meth:`replace`.
    """

    name: str
    #: How many retries :meth:`retry` allows; the host keeps to it where the
    #: step's ``max_retries`` option says nothing. ``None`` leaves it to the
    #: step's option (3 unless the workflow says otherwise).
    max_retries: int | None = None
    #: Seconds :meth:`retry` waits when given no countdown; ``None`` leaves
    #: it to the step's retry policy.
    default_retry_delay: float | None = None
    autoretry_for: tuple = ()
    dont_autoretry_for: tuple = ()
    retry_kwargs: dict = {}
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600
    retry_jitter: bool = True
    throws: tuple = ()

    MaxRetriesExceededError = MaxRetriesExceededError

    def __init__(self, fun: Callable, name: str, bind: bool, options: dict):
        self.run = fun
        self.name = name
        self.bind = bind
        self.__wrapped__ = fun
        self.__doc__ = fun.__doc__
        self.__name__ = fun.__name__
        self.__module__ = fun.__module__
        self.__qualname__ = getattr(fun, "__qualname__", fun.__name__)
        for key, value in options.items():
            setattr(self, key, value)
        self._request_stack: list[Request] = []
        signature = inspect.signature(fun)
        params = list(signature.parameters.values())
        if bind:
            if not params:
                raise TaskError(f"task {name} has bind=True but takes no `self` parameter")
            params = params[1:]
        #: The parameters a caller gives, without a bound task's ``self``.
        self.signature = signature.replace(parameters=params)

    @property
    def request(self) -> Request:
        """The request of the call running now (``self.request``)."""
        if self._request_stack:
            return self._request_stack[-1]
        return Request(task=self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._request_stack:
            return self._call(args, kwargs)
        return self.run_with(Request(task=self.name, args=list(args), kwargs=kwargs), args, kwargs)

    def run_with(self, request: Request, args: tuple, kwargs: dict) -> Any:
        """Calls the task with ``request`` as its ``self.request``, applying
        ``autoretry_for``."""
        self._request_stack.append(request)
        try:
            return self._call(args, kwargs)
        finally:
            self._request_stack.pop()

    def _call(self, args: tuple, kwargs: dict) -> Any:
        call = (lambda: self.run(self, *args, **kwargs)) if self.bind else (
            lambda: self.run(*args, **kwargs)
        )
        if not self.autoretry_for:
            return call()
        try:
            return call()
        except (Retry, Ignore, Reject):
            raise
        except self.dont_autoretry_for or ():
            raise
        except self.autoretry_for as exc:
            retry_kwargs = dict(self.retry_kwargs)
            if self.retry_backoff:
                retry_kwargs["countdown"] = backoff_interval(
                    factor=int(max(1.0, float(self.retry_backoff))),
                    retries=self.request.retries,
                    maximum=self.retry_backoff_max,
                    full_jitter=self.retry_jitter,
                )
            raise self.retry(exc=exc, **retry_kwargs)

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime.datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Asks for the step to run again, as Celery's ``Task.retry``: raises
        :class:`Retry` (or, with ``throw=False``, returns it).

        With the task's ``max_retries`` spent it raises ``exc``, or
        :class:`MaxRetriesExceededError` when there is none. The step's own
        ``max_retries`` option also bounds the retries.
        """
        request = self.request
        if args is not None or kwargs is not None:
            raise NotSupported(
                "retry with new arguments is not supported by wfhost: a retry runs "
                "the same call again; use self.replace(signature) to call anew"
            )
        if request.called_directly:
            # As Celery does outside a worker: nothing would run it again.
            if exc is not None:
                raise exc
            raise Retry("Task can be retried", None)
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise self.MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} kwargs:{request.kwargs}"
            )
        if countdown is None and eta is not None:
            now = datetime.datetime.now(eta.tzinfo)
            countdown = max(0.0, (eta - now).total_seconds())
        if countdown is None:
            countdown = self.default_retry_delay
        retry = Retry(exc=exc, when=countdown, max_retries=limit)
        if throw:
            raise retry
        return retry

    def replace(self, sig: dict) -> None:
        """Replaces the step with ``sig`` (a signature, chain, group or
        chord); the workflow continues after it with its result."""
        raise _Replaced(canvas.signature(sig))

    def s(self, *args: Any, **kwargs: Any) -> canvas.Signature:
        """A signature of this task (it takes the previous result)."""
        return canvas.Signature(self.name, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> canvas.Signature:
        """An immutable signature of this task (it ignores the previous result)."""
        return canvas.Signature(self.name, args, kwargs, immutable=True)

    def signature(self, args: Any = None, kwargs: Any = None, **options: Any) -> canvas.Signature:
        """``task.signature(args, kwargs, **options)``."""
        return canvas.Signature(self.name, args, kwargs, options)

    subtask = signature

    def delay(self, *args: Any, **kwargs: Any):
        raise NotSupported(
            f"{self.name}.delay(): a task cannot send other tasks in wfhost; return "
            f"self.replace({self.name}.s(...)) to continue the workflow with it"
        )

    def apply_async(self, *args: Any, **kwargs: Any):
        self.delay()

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"


def backoff_interval(factor: float, retries: int, maximum: float, full_jitter: bool) -> float:
    """Celery's exponential backoff: ``factor * 2**retries`` capped at
    ``maximum``, drawn uniformly from 0 up to it with ``full_jitter``."""
    countdown = min(maximum, factor * (2**retries))
    if full_jitter:
        countdown = random.randrange(int(countdown) + 1)
    return max(0, countdown)


class _Conf(dict):
    """``app.conf``: kept, so that a Celery module's settings need no edit."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


class Celery:
    """The app of a Celery tasks module. Its broker and backend settings
    are kept but unused: wfhost runs the tasks."""

    def __init__(self, main: str | None = None, *args: Any, **kwargs: Any):
        self.main = main
        self.conf = _Conf(kwargs)

    def task(self, *args: Any, **options: Any):
        """``@app.task`` and ``@app.task(bind=True, name=…, …)``."""
        return _decorator(args, options, default_module=self.main)

    def config_from_object(self, obj: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(obj, dict):
            self.conf.update(obj)

    def autodiscover_tasks(self, *args: Any, **kwargs: Any) -> None:
        """Tasks are found by importing the module that is built."""

    @property
    def tasks(self) -> dict[str, Task]:
        return registry

    def signature(self, *args: Any, **kwargs: Any) -> canvas.Signature:
        return canvas.signature(*args, **kwargs)


def shared_task(*args: Any, **options: Any):
    """``@shared_task``: a task that belongs to no app."""
    return _decorator(args, options, default_module=None)


def task(*args: Any, **options: Any):
    """``@task``: the SDK's own decorator, the same as ``@shared_task``."""
    return _decorator(args, options, default_module=None)


def _decorator(args: tuple, options: dict, default_module: str | None):
    if len(args) == 1 and callable(args[0]) and not options:
        return _define(args[0], {}, default_module)
    if args:
        raise TypeError("@task takes keyword options only, e.g. @app.task(bind=True)")
    return lambda fun: _define(fun, options, default_module)


def _define(fun: Callable, options: dict, default_module: str | None) -> Task:
    options = dict(options)
    bind = bool(options.pop("bind", False))
    module = fun.__module__
    if module == "__main__" and default_module:
        module = default_module
    name = options.pop("name", None) or f"{module}.{fun.__name__}"
    for key in list(options):
        if key in _WORKER_OPTIONS:
            options.pop(key)
    defined = Task(fun, name, bind, options)
    existing = registry.get(name)
    if existing is not None and existing.run is not fun:
        raise TaskError(f"two tasks are named {name!r}")
    registry[name] = defined
    return defined
