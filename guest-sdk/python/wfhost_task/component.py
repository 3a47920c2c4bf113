"""The component's export of the ``wfhost:task`` world: the host's calls,
converted from and to WIT types. Imported only inside a component, where
componentize-py provides ``wit_world``.
"""

from __future__ import annotations

import logging

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import schemas
from wit_world.imports import host, types

from . import runner, schema

_LEVELS = [
    (logging.ERROR, host.Level.ERROR),
    (logging.WARNING, host.Level.WARN),
    (logging.INFO, host.Level.INFO),
    (logging.DEBUG, host.Level.DEBUG),
]


class HostLogHandler(logging.Handler):
    """Sends Python's log records to the host, which keeps them with the
    step's attempt."""

    def emit(self, record: logging.LogRecord) -> None:
        level = next((wit for floor, wit in _LEVELS if record.levelno >= floor), host.Level.TRACE)
        try:
            host.log(level, self.format(record))
        except Exception:  # noqa: BLE001 - logging must never fail a task
            self.handleError(record)


def install_logging() -> None:
    """Routes the root logger to the host at level INFO (as a Celery
    worker run with ``-l info`` would)."""
    root = logging.getLogger()
    if not any(isinstance(handler, HostLogHandler) for handler in root.handlers):
        handler = HostLogHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root.addHandler(handler)
    if root.level == logging.WARNING:
        root.setLevel(logging.INFO)


class Tasks(exports.Tasks):
    """The ``tasks`` interface: what the host calls."""

    def list_tasks(self) -> list:
        return [
            types.TaskInfo(
                name=info.name,
                params=[
                    types.Param(name=p.name, type_name=p.type_name, optional=p.optional)
                    for p in info.params
                ],
                doc=info.doc,
            )
            for info in runner.list_tasks()
        ]

    def run(self, name: str, ctx: types.Context, args: str, kwargs: str):
        outcome = runner.run(
            name, ctx.chain_id, ctx.step_id, ctx.attempt, ctx.tenant, args, kwargs
        )
        if outcome.kind == "value":
            return types.Outcome_Value(outcome.json)
        if outcome.kind == "replace":
            return types.Outcome_Replace(outcome.json)
        if outcome.kind == "retry":
            raise Err(
                types.TaskError_Retry(
                    types.RetryRequest(outcome.message, outcome.countdown, outcome.max_retries)
                )
            )
        raise Err(types.TaskError_Fail(outcome.message))


class Schemas(exports.Schemas):
    """The ``schemas`` interface: each task's types, from its annotations."""

    def describe(self) -> list:
        return [
            schemas.TaskSchema(name=found.name, returns=found.returns, schema=found.schema)
            for found in schema.describe_tasks(runner.tasks_by_local_name())
        ]


install_logging()
