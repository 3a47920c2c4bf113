"""What each task takes and returns, as JSON Schema, read from its
annotations: what the component's ``schemas`` export tells the host, so
that a workflow's arguments are checked before anything runs.

An absent annotation, ``Any``, or a type JSON does not carry (a class,
a dataclass) is left open (``{}``), and so is what a bound task returns
(it may replace itself): the host checks only what a schema states,
never a guess.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from dataclasses import dataclass
from typing import Any

from .app import Task


@dataclass
class TaskSchema:
    name: str
    returns: str
    schema: str


def describe_tasks(tasks: dict[str, Task]) -> list[TaskSchema]:
    """The schemas of ``tasks`` (by their name inside the plugin), in the
    order the plugin lists them, with one schema per listed parameter
    (Python's ``/`` and ``*`` markers included, each open)."""
    return [_describe(short, task) for short, task in sorted(tasks.items())]


def _describe(short: str, task: Task) -> TaskSchema:
    try:
        hints = typing.get_type_hints(task.run)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve is open
        hints = {}
    params = []
    parameters = list(task.signature.parameters.values())
    for index, param in enumerate(parameters):
        if param.kind is param.KEYWORD_ONLY and (
            index == 0 or parameters[index - 1].kind not in (param.KEYWORD_ONLY, param.VAR_POSITIONAL)
        ):
            params.append({})  # the `*` marker
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            params.append({})
        else:
            schema = schema_of(hints[param.name]) if param.name in hints else {}
            if param.default is not param.empty and _is_json(param.default):
                schema = {**schema, "default": param.default}
            params.append(schema)
        following = parameters[index + 1] if index + 1 < len(parameters) else None
        if param.kind is param.POSITIONAL_ONLY and (
            following is None or following.kind is not param.POSITIONAL_ONLY
        ):
            params.append({})  # the `/` marker
    returns = task.signature.return_annotation
    returns_name = ""
    if returns is not inspect.Signature.empty:
        returns_name = returns if isinstance(returns, str) else inspect.formatannotation(returns)
    # A bound task may replace itself (``self.replace``): the step's result
    # is then the replacement's, whatever the task's own annotation says.
    returns_schema = schema_of(hints["return"]) if "return" in hints and not task.bind else {}
    return TaskSchema(
        name=short,
        returns=returns_name,
        schema=json.dumps({"params": params, "returns": returns_schema}),
    )


def schema_of(annotation: Any) -> dict:
    """The JSON Schema of values of ``annotation`` as JSON carries them."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return {}
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is str:
        return {"type": "string"}
    if annotation in (list, tuple, set, frozenset):
        return {"type": "array"}
    if annotation is dict:
        return {"type": "object"}
    if typing.is_typeddict(annotation):
        hints = typing.get_type_hints(annotation)
        return {
            "type": "object",
            "properties": {key: schema_of(value) for key, value in hints.items()},
            "required": sorted(annotation.__required_keys__),
        }
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema_of(arg) for arg in args]}
    if origin is typing.Literal:
        return {"enum": list(args)} if all(_is_json(arg) for arg in args) else {}
    if origin in (list, set, frozenset) or _is_abc(origin, "Sequence", "Set", "Collection"):
        return {"type": "array", "items": schema_of(args[0])} if args else {"type": "array"}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_of(args[0])}
        return {
            "type": "array",
            "prefixItems": [schema_of(arg) for arg in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin is dict or _is_abc(origin, "Mapping"):
        if len(args) == 2:
            return {"type": "object", "additionalProperties": schema_of(args[1])}
        return {"type": "object"}
    return {}


def _is_abc(origin: Any, *names: str) -> bool:
    import collections.abc

    return any(origin is getattr(collections.abc, name) for name in names)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True
