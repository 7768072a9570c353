"""Fakes that follow a provider's API description, whatever the description's format.

A description is read into :class:`Operation` values (method, path template, declared query
parameters, request body properties) by :func:`from_swagger` (Swagger 2.0, e.g. Azure's
REST specs) or :func:`from_discovery` (Google's discovery documents); :class:`SpecRoutes`
then finds the operation a request is for and lists every way the request breaks it.
:class:`DescribedFake` is a fake server built on that: every request is recorded and checked
(problems go to ``violations``), faults can be injected, and a subclass answers the
operations it serves, named in its ``HANDLERS``. The fakes for Secret Manager and Key Vault
are such fakes; the HTTP plumbing and path templates are ``fake_netlify``'s.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from fake_netlify import (
    ServedFake,
    _BadRequest,
    _Fault,
    _Handler,
    _literal_segments,
    _Server,
    _SpecIndex,
    compile_template,
)

__all__ = [
    "ApiError",
    "Call",
    "DescribedFake",
    "Operation",
    "SpecRoutes",
    "from_discovery",
    "from_swagger",
]

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
#: In ``Operation.body``: the request schema takes any key.
ANY_KEY = "*"


@dataclass(frozen=True)
class Operation:
    """One operation of a description: what a request to it may carry."""

    method: str
    template: str  # "/secrets/{secret-name}", "/v1/projects/{projectsId}/secrets"
    name: str  # operationId, or the discovery method id
    query: frozenset[str]
    body: frozenset[str] | None  # top-level request properties (ANY_KEY: any); None: no body


class SpecRoutes:
    """Operations matched by path, the most literal template first."""

    def __init__(
        self,
        operations: Iterable[Operation],
        aliases: Mapping[str, str] = {},
        optional: Iterable[str] = (),
    ) -> None:
        """``aliases``: query spellings the provider documents elsewhere; ``optional``: path
        parameters the description says may be left empty."""
        self.aliases = dict(aliases)
        self.operations = sorted(operations, key=lambda op: -_literal_segments(op.template))
        self._compiled = [(op, *_compile(op.template, set(optional))) for op in self.operations]

    def find(self, method: str, path: str) -> tuple[Operation | None, dict[str, str], str]:
        """The operation for ``method path`` (raw path) and its path parameters (decoded),
        or None and why there is none. No parameter holds a ":" (Google's custom verbs)."""
        matched = []
        for op, regex, names in self._compiled:
            m = regex.match(path)
            if m and not any(":" in value for value in m.groups()):
                matched.append((op, dict(zip(names, map(unquote, m.groups()), strict=True))))
        if not matched:
            return None, {}, "no path template in the description matches this path"
        for op, params in matched:
            if op.method == method.upper():
                return op, params, ""
        allowed = ", ".join(sorted({op.method for op, _ in matched}))
        return None, {}, f"the description has no {method.upper()} here (only {allowed})"

    def check(self, method: str, path: str, query: Iterable[str], body: bytes) -> list[str]:
        """Every way one request breaks its operation, as messages (empty: it follows it)."""
        where = f"{method.upper()} {path}"
        op, _params, problem = self.find(method, path)
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
        if ANY_KEY in op.body:
            return problems
        return problems + [
            f"{where}: body key {key!r} is not a property of {op.name}'s request"
            for key in sorted(set(data) - op.body)
        ]


def _compile(template: str, optional: set[str]) -> tuple[re.Pattern[str], list[str]]:
    """``compile_template``'s pattern, where an ``optional`` parameter may also be empty."""
    regex, names = compile_template(template)
    pieces = regex.pattern.split("([^/]+)")
    if len(pieces) != len(names) + 1:  # a greedy parameter: leave the pattern as it is
        return regex, names
    pattern = pieces[0]
    for name, piece in zip(names, pieces[1:], strict=True):
        pattern += ("([^/]*)" if name in optional else "([^/]+)") + piece
    return re.compile(pattern), names


def from_swagger(spec: Mapping[str, Any], next_link: Iterable[str] = ()) -> list[Operation]:
    """The operations of a Swagger 2.0 description (paths relative to its host), read with
    ``fake_netlify``'s index of such descriptions.

    A pageable operation (``x-ms-pageable``) is continued at the opaque ``nextLink`` the
    service returns; ``next_link`` names the query parameters such links carry.
    """
    index = _SpecIndex(spec)
    operations = []
    for template, item in spec["paths"].items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = index.parameters(item, op)
            bodies = [p for p in params if p.get("in") == "body"]
            body = None
            if bodies:
                body = frozenset(index.properties(bodies[0].get("schema", {})) or {ANY_KEY})
            query = {p["name"] for p in params if p.get("in") == "query"}
            operations.append(
                Operation(
                    method.upper(),
                    template,
                    op.get("operationId", "?"),
                    frozenset(query | (set(next_link) if "x-ms-pageable" in op else set())),
                    body,
                )
            )
    return operations


def from_discovery(document: Mapping[str, Any]) -> list[Operation]:
    """The operations of a Google discovery document, at their ``flatPath``s."""
    schemas = document.get("schemas", {})

    def resolve(node: Any) -> Any:
        return schemas[node["$ref"]] if "$ref" in node else node

    def in_query(parameters: Mapping[str, Any]) -> set[str]:
        return {name for name, p in parameters.items() if p["location"] == "query"}

    common = in_query(document.get("parameters", {}))
    operations = []

    def walk(resources: Mapping[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                query = in_query(method.get("parameters", {}))
                request = method.get("request")
                operations.append(
                    Operation(
                        method["httpMethod"],
                        "/" + method.get("flatPath", method["path"]),
                        method["id"],
                        frozenset(common | query),
                        frozenset(resolve(request).get("properties", {})) if request else None,
                    )
                )
            walk(resource.get("resources", {}))

    walk(document["resources"])
    return operations


# ---------------------------------------------------------------------------------------------
# A fake server that follows a description
# ---------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer: ``status`` and the provider's JSON error body."""

    def __init__(self, status: int, payload: Any, headers: Mapping[str, str] = {}) -> None:
        super().__init__(status)
        self.status, self.payload, self.headers = status, payload, dict(headers)


@dataclass
class Call:
    """One request as the fake received it, and what it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any = None
    operation: str | None = None  # the description's name for it
    params: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    injected: bool = False


class DescribedFake(ServedFake):
    """A fake whose every request under the description is checked against it.

    A subclass sets ``routes`` (a :class:`SpecRoutes`) and ``HANDLERS`` (operation name ->
    method name); a handler takes the :class:`Call` and returns ``(status, payload)``, or
    raises :class:`ApiError`. ``described(call)`` says which requests the description covers
    (others go to ``outside``).
    """

    routes: ClassVar[SpecRoutes]
    HANDLERS: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.requests: list[Call] = []
        self.violations: list[str] = []
        self._faults: list[_Fault] = []

    def _server_for(self) -> _Server:
        return _Server(self)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Forget the requests, problems and faults (subclasses forget their state too)."""
        with self._lock:
            self.requests.clear()
            self.violations.clear()
            self._faults.clear()

    def inject(
        self, method: str, path_pattern: str, status: int, *, times: int = 1, message: str = ""
    ) -> None:
        """The next ``times`` requests matching get ``status`` and the provider's error body
        (saying ``message``)."""
        body = {"message": message or "injected fault"}
        with self._lock:
            self._faults.append(
                _Fault(method.upper(), re.compile(path_pattern), status, times, {}, body, False)
            )

    def described(self, call: Call) -> bool:
        return True

    def authorize(self, call: Call) -> None:
        """Raise :class:`ApiError` unless ``call`` may use the API (after it is checked)."""

    def error(self, status: int, message: str) -> ApiError:
        """The provider's error answer (subclasses shape the body)."""
        raise NotImplementedError

    def outside(self, call: Call) -> tuple[int, Any]:
        raise self.error(404, "not found")

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        pairs = parse_qsl(split.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in h.headers.items()}
        try:
            body = h.read_body()
        except _BadRequest as exc:
            h.close_connection = True
            h.send_payload(400, {"error": str(exc)})
            return
        call = Call(h.command, split.path or "/", dict(pairs), headers, body)
        with contextlib.suppress(ValueError):
            call.json = json.loads(body) if body else None
        with self._lock:
            self.requests.append(call)
            fault = self._take_fault(call.method, call.path)
        extra: dict[str, str] = {}
        try:
            if fault is not None:
                call.injected = True
                raise self.error(fault.status or 500, (fault.body or {})["message"])
            if self.described(call):
                status, payload = self._operation(call, [name for name, _ in pairs])
            else:
                status, payload = self.outside(call)
        except ApiError as refused:
            status, payload, extra = refused.status, refused.payload, refused.headers
        call.status = status
        h.send_payload(status, payload, headers=extra)

    def _operation(self, call: Call, query_names: list[str]) -> tuple[int, Any]:
        problems = self.routes.check(call.method, call.path, query_names, call.body)
        op, params, _problem = self.routes.find(call.method, call.path)
        with self._lock:
            self.violations.extend(problems)
        self.authorize(call)
        if op is None or op.name not in self.HANDLERS:
            raise self.error(404, f"{call.method} {call.path} is not served here")
        call.operation, call.params = op.name, params
        with self._lock:
            return getattr(self, self.HANDLERS[op.name])(call)
