"""The shape of every task's ``--json`` answer: one JSON Schema file per task, shipped here.

A task's file is named as the task is typed (``deploy.json``, ``config.set.json``,
``secrets.rotate-key.json``). Each says what the answer holds on success and, through
``failure.json``, what every failure holds. Parts several tasks share live in files of their
own (:data:`SHARED`), referenced by file name; :func:`bundled` inlines them, so that
``devops schema TASK`` prints one schema that needs no other file.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

from ..errors import DevopsError, ErrorCode

__all__ = ["SHARED", "bundled", "load", "task_names"]

#: Files that describe a part of answers, not a task.
SHARED = ("failure", "record", "entry", "remote")
_SUFFIX = ".json"


def _files() -> dict[str, Any]:
    return {
        item.name[: -len(_SUFFIX)]: item
        for item in resources.files(__package__).iterdir()
        if item.name.endswith(_SUFFIX)
    }


def task_names() -> list[str]:
    """Every task that has a schema, as it is typed."""
    return sorted(name for name in _files() if name not in SHARED)


def load(name: str) -> dict[str, Any]:
    """One schema file as written (``name`` without ``.json``); NOT_FOUND if there is none."""
    item = _files().get(name)
    if item is None:
        raise DevopsError(
            ErrorCode.NOT_FOUND,
            f"No task {name!r} has an answer schema",
            "Name a task as `devops --list` shows it, e.g. `devops schema deploy`.",
        )
    data: dict[str, Any] = json.loads(item.read_text(encoding="utf-8"))
    return data


def bundled(task: str) -> dict[str, Any]:
    """The task's schema with every shared file it names inlined under ``$defs``."""
    schema = copy.deepcopy(load(task))
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    pending = _refer_inside(schema)
    while pending:
        name = pending.pop()
        if name not in defs:
            part = {k: v for k, v in load(name).items() if k not in ("$schema", "$id")}
            defs[name] = part
            pending |= _refer_inside(part)
    return schema


def _refer_inside(node: Any) -> set[str]:
    """Point ``"$ref": "failure.json"`` at ``#/$defs/failure``; the names so pointed."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.endswith(_SUFFIX):
            name = ref[: -len(_SUFFIX)]
            node["$ref"] = f"#/$defs/{name}"
            found.add(name)
        for value in node.values():
            found |= _refer_inside(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refer_inside(value)
    return found
