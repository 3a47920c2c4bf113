"""How the host's calls reach the tasks: listing them, binding a call's
arguments and turning what a task did into the step's outcome.

Plain Python, so that it can be tested without a component; the component
glue (:mod:`wfhost_task.component`) only converts to and from WIT types.
"""

from __future__ import annotations

import datetime
import decimal
import inspect
import json
import os
import re
import sys
import traceback
import uuid
from dataclasses import dataclass
from typing import Any, Optional

from .app import Request, Task, _Replaced, registry
from .exceptions import Ignore, Reject, Retry, describe


@dataclass
class ParamInfo:
    name: str
    type_name: str
    optional: bool


@dataclass
class TaskInfo:
    name: str
    params: list
    doc: str


@dataclass
class Outcome:
    """What one call came to: ``kind`` is ``value`` or ``replace`` (with
    ``json``), ``retry`` (with ``message``, ``countdown`` and the task's own
    ``max_retries``) or ``fail`` (with ``message``)."""

    kind: str
    json: str = ""
    message: str = ""
    countdown: Optional[float] = None
    max_retries: Optional[int] = None


def local_name(name: str) -> str:
    """A task's name inside its plugin: ``tasks.add`` is task ``add`` of
    plugin ``tasks`` (wfhost splits a name at its last dot)."""
    return name.rsplit(".", 1)[-1]


def tasks_by_local_name() -> dict[str, Task]:
    """The registered tasks by their name inside the plugin. Two tasks
    whose names end alike cannot share a plugin."""
    found: dict[str, Task] = {}
    for full_name, task in registry.items():
        short = local_name(full_name)
        if short in found:
            raise RuntimeError(
                f"tasks {found[short].name!r} and {full_name!r} would both be "
                f"{short!r} in one plugin; rename one of them"
            )
        found[short] = task
    return found


def list_tasks() -> list[TaskInfo]:
    """Every task with its parameters and the first paragraph of its docstring."""
    return [
        TaskInfo(name=short, params=_params(task), doc=_summary(task))
        for short, task in sorted(tasks_by_local_name().items())
    ]


def _params(task: Task) -> list[ParamInfo]:
    """The parameters as Python's signature syntax lists them, with its
    ``/`` and ``*`` markers, so that the host binds calls as Python does."""
    params = []
    parameters = list(task.signature.parameters.values())
    for index, param in enumerate(parameters):
        following = parameters[index + 1] if index + 1 < len(parameters) else None
        if param.kind is param.KEYWORD_ONLY and (
            index == 0 or parameters[index - 1].kind not in (param.KEYWORD_ONLY, param.VAR_POSITIONAL)
        ):
            params.append(ParamInfo(name="*", type_name="", optional=True))
        name = param.name
        if param.kind is param.VAR_POSITIONAL:
            name = f"*{name}"
        elif param.kind is param.VAR_KEYWORD:
            name = f"**{name}"
        type_name = "Any"
        if param.annotation is not param.empty:
            annotation = param.annotation
            type_name = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
        optional = param.default is not param.empty or param.kind in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        )
        params.append(ParamInfo(name=name, type_name=type_name, optional=optional))
        if param.kind is param.POSITIONAL_ONLY and (
            following is None or following.kind is not param.POSITIONAL_ONLY
        ):
            params.append(ParamInfo(name="/", type_name="", optional=True))
    return params


def _summary(task: Task) -> str:
    doc = inspect.getdoc(task.run) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip()


def run(name: str, chain_id: str, step_id: str, attempt: int, tenant: str,
        args_json: str, kwargs_json: str) -> Outcome:
    """Runs task ``name`` once with the host's JSON arguments."""
    try:
        task = tasks_by_local_name().get(name)
    except RuntimeError as err:
        return Outcome("fail", message=str(err))
    if task is None:
        return Outcome("fail", message=f"no task {name!r} in this plugin")
    try:
        args = json.loads(args_json)
        kwargs = json.loads(kwargs_json)
    except ValueError as err:
        return Outcome("fail", message=f"{task.name}: the arguments are not JSON: {err}")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return Outcome("fail", message=f"{task.name}: expected a list of args and an object of kwargs")
    try:
        task.signature.bind(*args, **kwargs)
    except TypeError as err:
        return Outcome("fail", message=f"{name}() {err}")
    request = Request(
        id=f"{chain_id}/{step_id}",
        root_id=chain_id,
        workflow_id=chain_id,
        step_id=step_id,
        retries=max(0, attempt - 1),
        tenant=tenant,
        task=task.name,
        args=args,
        kwargs=kwargs,
        called_directly=False,
    )
    try:
        result = task.run_with(request, tuple(args), kwargs)
    except _Replaced as replaced:
        return _encoded("replace", replaced.sig, task)
    except Retry as retry:
        countdown = retry.when if isinstance(retry.when, (int, float)) else None
        limit = retry.max_retries
        limit = min(limit, 2**32 - 1) if isinstance(limit, int) and limit >= 0 else None
        return Outcome("retry", message=str(retry), countdown=countdown, max_retries=limit)
    except Reject as err:
        return Outcome("fail", message=str(err))
    except Ignore:
        return Outcome(
            "fail",
            message=f"{task.name} raised Ignore, but wfhost records every step: "
            "return a result, or raise to fail",
        )
    except SystemExit as err:
        return Outcome("fail", message=f"{task.name} exited with status {err.code} (SystemExit)")
    except ModuleNotFoundError as err:
        _print_traceback(err)
        return Outcome("fail", message=_lazy_import(task, err))
    except BaseException as err:  # noqa: BLE001 - every failure is the step's
        _print_traceback(err)
        # A `MemoryError` is told as such; the host, which saw the memory
        # it refused, reports the step as `memory_limit`.
        return Outcome("fail", message=describe(err))
    return _encoded("value", result, task)


_SDK_DIR = os.path.dirname(os.path.abspath(__file__))

# componentize-py mounts each directory of modules in the component as
# `/1/`, `/2/`, …: a frame's file is named as its author knows it.
_MOUNTED_FILE = re.compile(r'File "/\d+/')


def _print_traceback(err: BaseException) -> None:
    """The traceback on stderr (which the host keeps with the attempt),
    from the task's own frames on: the SDK's are noise to its author."""
    tb = err.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_SDK_DIR):
        tb = tb.tb_next
    lines = traceback.format_exception(type(err), err, tb or err.__traceback__)
    sys.stderr.write(_MOUNTED_FILE.sub('File "', "".join(lines)))
    sys.stderr.flush()


def _lazy_import(task: Task, err: ModuleNotFoundError) -> str:
    module = err.name or "?"
    return (
        f"{describe(err)}: a component holds only the modules imported when it was "
        f"built; import {module!r} at the top of {task.__module__!r} (not inside the task)"
    )


def _encoded(kind: str, value: Any, task: Task) -> Outcome:
    try:
        text = json.dumps(value, default=_json_default, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        what = "result" if kind == "value" else "replacement"
        return Outcome("fail", message=f"{task.name}: the {what} is not JSON: {err}")
    return Outcome(kind, json=text)


def _json_default(value: Any) -> Any:
    """What Celery's JSON serializer (kombu's) also writes as text."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
