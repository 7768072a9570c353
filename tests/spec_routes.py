"""Checking a fake's requests against a provider's API description, whatever its format.

A description is read into :class:`Operation` values (method, path template, declared query
parameters, request body properties) by :func:`from_swagger` (Swagger 2.0, e.g. Azure's
REST specs) or :func:`from_discovery` (Google's discovery documents); :class:`SpecRoutes`
then finds the operation a request is for and lists every way the request breaks it. The
fakes for Secret Manager and Key Vault use it; path templates are compiled the way
``fake_netlify`` compiles them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fake_netlify import _literal_segments, compile_template

__all__ = ["Operation", "SpecRoutes", "from_discovery", "from_swagger"]

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@dataclass(frozen=True)
class Operation:
    """One operation of a description: what a request to it may carry."""

    method: str
    template: str  # "/secrets/{secret-name}", "/v1/projects/{projectsId}/secrets"
    name: str  # operationId, or the discovery method id
    query: frozenset[str]
    body: frozenset[str] | None  # top-level request properties; None: the operation takes none


class SpecRoutes:
    """Operations matched by path, the most literal template first."""

    def __init__(self, operations: Iterable[Operation], aliases: Mapping[str, str] = {}) -> None:
        self.aliases = dict(aliases)  # query spellings the provider documents elsewhere
        self.operations = sorted(operations, key=lambda op: -_literal_segments(op.template))
        self._compiled = [(op, compile_template(op.template)[0]) for op in self.operations]

    def find(self, method: str, path: str) -> tuple[Operation | None, str]:
        """The operation for ``method path`` (raw path), or None and why there is none."""
        matched = [
            op
            for op, regex in self._compiled
            if (m := regex.match(path)) and not any(":" in value for value in m.groups())
        ]
        if not matched:
            return None, "no path template in the description matches this path"
        for op in matched:
            if op.method == method.upper():
                return op, ""
        allowed = sorted({op.method for op in matched})
        return None, f"the description has no {method.upper()} here (only {', '.join(allowed)})"

    def check(self, method: str, path: str, query: Iterable[str], body: bytes) -> list[str]:
        """Every way one request breaks its operation, as messages (empty: it follows it)."""
        where = f"{method.upper()} {path}"
        op, problem = self.find(method, path)
        if op is None:
            return [f"{where}: {problem}"]
        problems = [
            f"{where}: query parameter {name!r} is not declared by {op.name}"
            for name in sorted(set(query))
            if self.aliases.get(name, name) not in op.query
        ]
        if not body:
            return problems
        if op.body is None:
            return [*problems, f"{where}: {op.name} takes no body, but {len(body)} bytes came"]
        try:
            data = json.loads(body)
        except ValueError:
            return [*problems, f"{where}: the body is not JSON"]
        if not isinstance(data, dict):
            return [*problems, f"{where}: the body is not a JSON object"]
        return problems + [
            f"{where}: body key {key!r} is not a property of {op.name}'s request"
            for key in sorted(set(data) - op.body)
        ]


def _properties(schema: Mapping[str, Any], resolve: Any) -> frozenset[str]:
    return frozenset(resolve(schema).get("properties", {}))


def from_swagger(spec: Mapping[str, Any]) -> list[Operation]:
    """The operations of a Swagger 2.0 description (paths relative to its host)."""

    def resolve(node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    operations = []
    for template, item in spec["paths"].items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = [resolve(p) for p in [*item.get("parameters", []), *op.get("parameters", [])]]
            bodies = [p for p in params if p.get("in") == "body"]
            operations.append(
                Operation(
                    method.upper(),
                    template,
                    op.get("operationId", "?"),
                    frozenset(p["name"] for p in params if p.get("in") == "query"),
                    _properties(bodies[0]["schema"], resolve) if bodies else None,
                )
            )
    return operations


def from_discovery(document: Mapping[str, Any]) -> list[Operation]:
    """The operations of a Google discovery document, at their ``flatPath``s."""
    schemas = document.get("schemas", {})

    def resolve(node: Any) -> Any:
        return schemas[node["$ref"]] if "$ref" in node else node

    common = {n for n, p in document.get("parameters", {}).items() if p["location"] == "query"}
    operations = []

    def walk(resources: Mapping[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                query = {n for n, p in method.get("parameters", {}).items() if p["location"] == "query"}
                request = method.get("request")
                operations.append(
                    Operation(
                        method["httpMethod"],
                        "/" + method.get("flatPath", method["path"]),
                        method["id"],
                        frozenset(common | query),
                        _properties(request, resolve) if request else None,
                    )
                )
            walk(resource.get("resources", {}))

    walk(document["resources"])
    return operations
