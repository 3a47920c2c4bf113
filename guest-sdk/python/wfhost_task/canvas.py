"""Celery's canvas (``celery.signature``, ``chain``, ``group``, ``chord``),
for :meth:`Task.replace`.

Each is a ``dict`` in exactly the form ``json.dumps`` gives for Celery's own
signatures, which wfhost reads as it reads Celery's JSON in a chain file::

    {"task": "tasks.add", "args": [2], "kwargs": {}, "options": {},
     "subtask_type": null, "immutable": false, "chord_size": null}
"""

from __future__ import annotations

from typing import Any, Iterable

from .exceptions import NotSupported


class Signature(dict):
    """One task call: its name, arguments and options (``celery.Signature``).

    Mutable signatures get the previous step's result prepended to their
    arguments; ``immutable=True`` ones (``task.si(...)``) do not.
    """

    def __init__(
        self,
        task: Any = None,
        args: Iterable | None = None,
        kwargs: dict | None = None,
        options: dict | None = None,
        subtask_type: str | None = None,
        immutable: bool = False,
        **more_options: Any,
    ):
        if isinstance(task, dict):
            # A signature given as Celery's dict (one that went through JSON).
            super().__init__(task)
            self.setdefault("args", [])
            self.setdefault("kwargs", {})
            self.setdefault("options", {})
            self.setdefault("subtask_type", None)
            self.setdefault("immutable", False)
            self.setdefault("chord_size", None)
            return
        name = getattr(task, "name", task)
        if not isinstance(name, str):
            raise TypeError(f"a signature names its task by a string, not {type(name).__name__}")
        super().__init__(
            task=name,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options={**(options or {}), **more_options},
            subtask_type=subtask_type,
            immutable=bool(immutable),
            chord_size=None,
        )

    task = property(lambda self: self["task"], doc="The task's name.")
    args = property(lambda self: self["args"], doc="The positional arguments.")
    kwargs = property(lambda self: self["kwargs"], doc="The keyword arguments.")
    options = property(lambda self: self["options"], doc="The step options.")
    immutable = property(lambda self: self["immutable"], doc="Whether the previous result is ignored.")
    subtask_type = property(lambda self: self["subtask_type"], doc="`chain`, `group`, `chord` or None.")

    def clone(self, args: Iterable | None = None, kwargs: dict | None = None, **options: Any):
        """A copy with ``args`` prepended to its arguments and ``kwargs`` and
        ``options`` merged into its own, as Celery's partial signatures do."""
        copy = type(self).__new__(type(self))
        dict.__init__(copy, self)
        copy["args"] = list(args or ()) + list(self["args"])
        copy["kwargs"] = {**self["kwargs"], **(kwargs or {})}
        copy["options"] = {**self["options"], **options}
        return copy

    def set(self, immutable: bool | None = None, **options: Any) -> "Signature":
        """Sets step options (``countdown``, ``max_retries``, ``time_limit``,
        ``fuel``, ``memory_mb``, …) and returns the signature."""
        if immutable is not None:
            self.set_immutable(immutable)
        self["options"].update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        """Makes the signature ignore (or take) the previous step's result."""
        self["immutable"] = bool(immutable)

    def link(self, callback: dict) -> dict:
        """Runs ``callback`` with this step's result when it succeeds."""
        self["options"].setdefault("link", []).append(signature(callback))
        return callback

    def link_error(self, errback: dict) -> dict:
        """Runs ``errback`` with the error record when this step fails."""
        self["options"].setdefault("link_error", []).append(signature(errback))
        return errback

    def on_error(self, errback: dict) -> "Signature":
        """:meth:`link_error`, returning the signature (for chaining calls)."""
        self.link_error(errback)
        return self

    def __or__(self, other: Any) -> "chain":
        if not isinstance(other, dict):
            return NotImplemented
        return chain(*_chained(self), *_chained(signature(other)))

    def delay(self, *args: Any, **kwargs: Any):
        raise NotSupported(
            "a task cannot send other tasks in wfhost; return "
            "self.replace(signature) to continue the workflow with it"
        )

    apply_async = delay

    def __repr__(self) -> str:
        call = ", ".join(
            [repr(arg) for arg in self["args"]]
            + [f"{key}={value!r}" for key, value in self["kwargs"].items()]
        )
        return f"{self['task']}({call}){'!' if self['immutable'] else ''}"


def _chained(sig: Signature) -> list:
    """The steps `sig` adds to a chain: a chain's own steps, else itself."""
    if sig["subtask_type"] == "chain":
        return list(sig["kwargs"]["tasks"])
    return [sig]


def _members(tasks: tuple) -> list:
    """Celery's ``chain(a, b)`` and ``chain([a, b])`` alike."""
    if len(tasks) == 1 and not isinstance(tasks[0], dict):
        tasks = tuple(tasks[0])
    return [signature(task) for task in tasks]


class _Steps(Signature):
    """A canvas of a list of steps: Celery's ``chain`` and ``group``."""

    _kind = ""

    def __init__(self, *tasks: Any, **options: Any):
        if len(tasks) == 1 and isinstance(tasks[0], dict) and tasks[0].get("subtask_type"):
            Signature.__init__(self, tasks[0])
            return
        super().__init__(
            f"celery.{self._kind}",
            kwargs={"tasks": _members(tasks)},
            options=options,
            subtask_type=self._kind,
        )

    tasks = property(lambda self: self["kwargs"]["tasks"], doc="The steps.")


class chain(_Steps):
    """Steps run one after the other, each result passed to the next."""

    _kind = "chain"


class group(_Steps):
    """Members run side by side; the result is the list of theirs, in order."""

    _kind = "group"


class chord(Signature):
    """A group whose list of results is passed to ``body``."""

    def __init__(self, header: Any, body: Any = None, **options: Any):
        if isinstance(header, dict) and header.get("subtask_type") == "chord":
            Signature.__init__(self, header)
            return
        if body is None:
            raise NotSupported("a chord needs its body: chord(header, body)")
        members = header.tasks if isinstance(header, group) else _members((header,))
        super().__init__(
            "celery.chord",
            kwargs={"header": list(members), "body": signature(body), "kwargs": {}},
            options=options,
            subtask_type="chord",
        )

    header = property(lambda self: self["kwargs"]["header"], doc="The members.")
    body = property(lambda self: self["kwargs"]["body"], doc="What gets their results.")


_KINDS = {"chain": chain, "group": group, "chord": chord}


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """``celery.signature``: a signature from a task name, a task, or a
    signature's dict (kept as the right kind of canvas)."""
    if isinstance(varies, dict):
        if isinstance(varies, Signature):
            return varies
        return _KINDS.get(varies.get("subtask_type"), Signature)(varies)
    return Signature(varies, *args, **kwargs)


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _seconds(duration: Any, what: str) -> float:
    """A duration as seconds: a number, a ``datetime.timedelta``, or a string
    of numbers with units (``"90s"``, ``"15m"``, ``"1h30m"``, ``"7d"``)."""
    import re
    from datetime import timedelta

    if isinstance(duration, timedelta):
        return duration.total_seconds()
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        return float(duration)
    if isinstance(duration, str):
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration.strip())
        if parts and "".join(n + u for n, u in parts) == duration.strip():
            return sum(float(n) * _UNITS[u] for n, u in parts)
    raise ValueError(
        f"{what}: {duration!r} is not a duration (seconds, a timedelta, or a string such as '90s', '15m', '7d')"
    )


def sleep(duration: Any) -> Signature:
    """A durable sleep: a step that passes its input on once ``duration`` has
    passed, holding nothing while it waits and surviving a restart."""
    return Signature("wfhost.sleep", kwargs={"seconds": _seconds(duration, "sleep")})


def wait(name: str, timeout: Any = None) -> Signature:
    """A step whose result is the payload of the signal ``name`` sent to the
    workflow (``wfhost signal ID NAME JSON``); with a ``timeout``, it fails
    with kind ``timed_out`` when none came by then."""
    kwargs: dict = {"signal": name}
    if timeout is not None:
        kwargs["timeout"] = _seconds(timeout, "wait's timeout")
    return Signature("wfhost.wait", kwargs=kwargs)
