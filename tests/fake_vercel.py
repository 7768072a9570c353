"""A fake Vercel API on 127.0.0.1 that follows Vercel's own OpenAPI (3.0) description.

The spec is ``specs/vercel-openapi.json`` in this repository (``vercel/sdk``
``vercel-spec.json``; source and commit in ``specs/README.md``). Every route this fake
serves is listed in ``ROUTES`` as (method, spec path template); one of them, Vercel's
instant rollback (``POST /v9/projects/{projectId}/rollback/{deploymentId}``), is missing from
the spec and is described here in ``EXTRA_OPERATIONS`` the way the official CLI calls it.
Every API request is checked against the spec (plus that one route): unknown paths or
methods, undeclared query parameters or values their schema refuses, missing required
parameters, a ``Content-Type`` the operation does not take, and JSON bodies that its
request schema refuses (nested: a ``files`` item with a key ``UploadedFile`` does not have
counts) are appended to ``FakeVercel.violations``; the request is still handled. Tests
assert that list stays empty. Every API request needs ``Authorization: Bearer <token>``,
and when ``team_id`` is set, ``teamId=<team_id>`` (else 404, as for another team's project).

Outside the API (no auth, not checked against the spec):

* ``/_deployments/<id>/<path>``: a ready deployment's files (its ``url``);
* ``/_alias/<project name>/<path>``: the project's production deployment (its alias);
* ``POST /v1/integrations/deploy/<project id>/<hook id>``: a deploy hook (``add_deploy_hook``).

The HTTP plumbing (threaded server, recorded requests, injected faults) is
``fake_netlify``'s.

Usage::

    fake = FakeVercel().start()
    project = fake.add_project("my-site")
    ...  # point VERCEL_API_URL at fake.api_url, send "Authorization: Bearer test-token"
    fake.reset()   # between tests
    fake.stop()
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
import secrets
import string
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import jsonschema
from fake_netlify import (
    RecordedRequest,
    ServedFake,
    _ApiError,
    _BadRequest,
    _Fault,
    _Handler,
    _literal_segments,
    _media_type,
    _phrase,
    _Server,
    compile_template,
)

__all__ = [
    "EXTRA_OPERATIONS",
    "ROUTES",
    "FakeVercel",
    "check_request",
    "load_spec",
    "spec_operation",
]

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "vercel-openapi.json"
ROLLBACK_ROUTE = "/v9/projects/{projectId}/rollback/{deploymentId}"
_TEAM_PARAMS = [
    {"in": "query", "name": "teamId", "schema": {"type": "string"}},
    {"in": "query", "name": "slug", "schema": {"type": "string"}},
]
#: Routes the spec lacks, described as the official CLI calls them (request-rollback.ts).
EXTRA_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", ROLLBACK_ROUTE): {
        "operationId": "requestRollback (not in the spec; the Vercel CLI's route)",
        "parameters": [
            {"in": "path", "name": "projectId", "required": True, "schema": {"type": "string"}},
            {"in": "path", "name": "deploymentId", "required": True, "schema": {"type": "string"}},
            *_TEAM_PARAMS,
        ],
    }
}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
#: OpenAPI keywords that are documentation, or that JSON Schema draft 4 spells otherwise.
_DROPPED_KEYWORDS = frozenset(
    {"example", "examples", "deprecated", "description", "title", "nullable", "format"}
)

# ---------------------------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------------------------

_spec_lock = threading.Lock()
_spec: dict[str, Any] | None = None
_index: _SpecIndex | None = None


def load_spec() -> dict[str, Any]:
    """The parsed spec, loaded once per process."""
    global _spec
    with _spec_lock:
        if _spec is None:
            if not SPEC_PATH.is_file():
                raise RuntimeError(f"Vercel OpenAPI spec not found at {SPEC_PATH}")
            _spec = json.loads(SPEC_PATH.read_bytes())
        return _spec


def _spec_index() -> _SpecIndex:
    global _index
    spec = load_spec()
    with _spec_lock:
        if _index is None:
            _index = _SpecIndex(spec)
        return _index


class _SpecIndex:
    """Path templates (the spec's and the extra ones) compiled, most literal segments first."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        items: dict[str, dict[str, Any]] = {t: dict(item) for t, item in spec["paths"].items()}
        for (method, template), op in EXTRA_OPERATIONS.items():
            items.setdefault(template, {})[method.lower()] = op
        self.entries = sorted(
            ((t, compile_template(t)[0], item) for t, item in items.items()),
            key=lambda e: -_literal_segments(e[0]),
        )
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}

    def resolve(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.spec
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            node = target
            seen += 1
            if seen > 50:
                raise ValueError("$ref loop")
        return node

    def match(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        return [(t, item) for t, rx, item in self.entries if rx.match(path)]

    def parameters(self, item: dict[str, Any], op: dict[str, Any]) -> list[dict[str, Any]]:
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*item.get("parameters", []), *op.get("parameters", [])]:
            param = self.resolve(raw)
            merged[(param.get("in", ""), param.get("name", "").lower())] = param
        return list(merged.values())

    def json_schema(self, key: tuple[str, str], schema: Any) -> dict[str, Any]:
        """An OpenAPI 3.0 schema as JSON Schema draft 4 (refs inlined, nullable spelled out)."""
        if key not in self._schemas:
            self._schemas[key] = self._convert(schema, 0)
        return self._schemas[key]

    def _convert(self, node: Any, depth: int) -> Any:
        if depth > 40:
            return {}
        node = self.resolve(node)
        if isinstance(node, list):
            return [self._convert(n, depth + 1) for n in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROPPED_KEYWORDS:
                continue
            if key in ("properties", "patternProperties"):
                out[key] = {name: self._convert(s, depth + 1) for name, s in value.items()}
            elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
                out[key] = self._convert(value, depth + 1)
            elif key in ("allOf", "anyOf", "oneOf"):
                out[key] = [self._convert(s, depth + 1) for s in value]
            else:
                out[key] = value
        return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") else out


def spec_operation(method: str, path: str) -> tuple[str | None, dict[str, Any] | None, str]:
    """(template, operation, problem) for a raw path; ``problem`` is "" when it is allowed."""
    matches = _spec_index().match(path)
    if not matches:
        return None, None, "no path template in the spec matches this path"
    for template, item in matches:  # most specific first
        op = item.get(method.lower())
        if op is not None:
            return template, {"_path_item": item, **op}, ""
    allowed = sorted({m.upper() for _, item in matches for m in item if m in HTTP_METHODS})
    templates = ", ".join(t for t, _ in matches)
    return (
        None,
        None,
        f"the spec has no {method.upper()} operation for {templates} "
        f"(it declares {', '.join(allowed) or 'nothing'})",
    )


def _scalar_problem(value: str, schema: dict[str, Any]) -> str | None:
    """Why a query or header value does not fit its (scalar) schema, or None."""
    kind = schema.get("type")
    if "enum" in schema and value not in [str(v).lower() for v in schema["enum"] if v is not None]:
        return f"{value!r} is not one of {schema['enum']}"
    if kind in ("number", "integer"):
        try:
            number = float(value)
        except ValueError:
            return f"{value!r} is not a number"
        if kind == "integer" and not number.is_integer():
            return f"{value!r} is not an integer"
        if "maximum" in schema and number > schema["maximum"]:
            return f"{value} is above the maximum {schema['maximum']}"
    if kind == "boolean" and value not in ("true", "false"):
        return f"{value!r} is not a boolean"
    if kind == "string" and "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"is longer than {schema['maxLength']} characters"
    return None


def check_request(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
) -> list[str]:
    """Every way one API request breaks the spec (or the rollback route), as messages."""
    where = f"{method.upper()} {path}"
    template, op, problem = spec_operation(method, path)
    if op is None or template is None:
        return [f"{where}: {problem}"]
    index = _spec_index()
    op_id = op.get("operationId", "?")
    params = index.parameters(op["_path_item"], op)
    problems: list[str] = []
    given = {"query": dict(query), "header": headers}
    for place in ("query", "header"):
        fold = str.lower if place == "header" else str  # header names are case-insensitive
        declared = {fold(p["name"]): p for p in params if p.get("in") == place}
        for key, param in declared.items():
            if param.get("required") and key not in {fold(k) for k in given[place]}:
                problems.append(f"{where}: required {place} parameter {param['name']!r} missing")
        for name, value in given[place].items():
            param = declared.get(fold(name))
            if param is None:
                if place == "query":
                    problems.append(
                        f"{where}: query parameter {name!r} is not declared by {op_id} "
                        f"({template}); declared: {sorted(declared) or 'none'}"
                    )
                continue
            why = _scalar_problem(value, index.resolve(param.get("schema") or {}))
            if why:
                problems.append(f"{where}: {place} parameter {name!r} {why}")
    problems += _body_problems(where, op, op_id, template, headers, body)
    return problems


def _body_problems(
    where: str,
    op: dict[str, Any],
    op_id: str,
    template: str,
    headers: dict[str, str],
    body: bytes,
) -> list[str]:
    index = _spec_index()
    request_body = index.resolve(op.get("requestBody")) or {}
    content = request_body.get("content") or {}
    if not body:
        if request_body.get("required"):
            return [f"{where}: {op_id} requires a body and none was sent"]
        return []
    media = _media_type(headers.get("content-type"))
    if not content:
        if media == "application/json" and body.strip() in (b"{}", b""):
            return []  # what the CLI sends to routes without a body ("required" by Vercel)
        return [f"{where}: {op_id} takes no body, but the request sends {len(body)} bytes"]
    if media not in content:
        return [f"{where}: Content-Type {media!r} is not one {op_id} takes ({sorted(content)})"]
    if media != "application/json":
        return []
    try:
        data = json.loads(body)
    except ValueError:
        return [f"{where}: body is not valid JSON"]
    schema = index.json_schema((template, op_id), content[media].get("schema") or {})
    errors = list(jsonschema.Draft4Validator(schema).iter_errors(data))
    problems = []
    for error in errors:
        closest = _closest(error)
        at = "/".join(str(p) for p in closest.absolute_path) or "(root)"
        problems.append(f"{where}: body {at}: {closest.message[:300]} ({op_id})")
    return problems


def _closest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For a value no ``oneOf``/``anyOf`` branch accepts, the error of the nearest branch.

    The nearest branch is the one with the fewest errors, the deepest on a tie: a ``files``
    item with an extra key is reported against ``UploadedFile``, not ``InlinedFile``.
    """
    if not error.context:
        return error
    branches: dict[Any, list[jsonschema.ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.schema_path[0], []).append(sub)
    nearest = min(
        branches.values(), key=lambda errs: (len(errs), -max(len(e.absolute_path) for e in errs))
    )
    return _closest(max(nearest, key=lambda e: len(e.absolute_path)))


# ---------------------------------------------------------------------------------------------
# Routes served: (method, spec path template) -> handler method name
# ---------------------------------------------------------------------------------------------

_HANDLERS: dict[tuple[str, str], str] = {
    ("GET", "/v2/user"): "_get_user",
    ("GET", "/v2/teams/{teamId}"): "_get_team",
    ("GET", "/v10/projects"): "_list_projects",
    ("POST", "/v11/projects"): "_create_project",
    ("GET", "/v9/projects/{idOrName}"): "_get_project",
    ("POST", "/v10/projects/{projectId}/promote/{deploymentId}"): "_promote",
    ("POST", ROLLBACK_ROUTE): "_rollback",
    ("GET", "/v10/projects/{idOrName}/env"): "_list_env",
    ("POST", "/v10/projects/{idOrName}/env"): "_create_env",
    ("POST", "/v2/files"): "_upload_file",
    ("POST", "/v13/deployments"): "_create_deployment",
    ("GET", "/v13/deployments/{idOrUrl}"): "_get_deployment",
    ("GET", "/v6/deployments"): "_list_deployments",
    ("GET", "/v6/deployments/{id}/files"): "_list_deployment_files",
    ("GET", "/v3/deployments/{idOrUrl}/events"): "_deployment_events",
}
ROUTES: tuple[tuple[str, str], ...] = tuple(_HANDLERS)
_ROUTE_TABLE = sorted(
    (
        (method, template, *compile_template(template), handler)
        for (method, template), handler in _HANDLERS.items()
    ),
    key=lambda r: -_literal_segments(r[1]),
)
OUTSIDE_PREFIXES = ("/_deployments/", "/_alias/", "/v1/integrations/deploy/")


class _QuietServer(_Server):
    """A client that drops its keep-alive connections (the Vercel CLI does) is no error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _random_id(prefix: str, length: int = 28) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def _error(status: int, code: str, message: str, **extra: Any) -> _ApiError:
    error = _ApiError(status, message)
    error.payload = {"error": {"code": code, "message": message, **extra}}  # type: ignore[attr-defined]
    return error


class _Ctx:
    def __init__(
        self, params: dict[str, str], query: dict[str, str], json_body: Any, body: bytes
    ) -> None:
        self.params, self.query, self.json, self.body = params, query, json_body, body
        self.headers: dict[str, str] = {}


# ---------------------------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------------------------


class FakeVercel(ServedFake):
    """An in-process fake of the Vercel API (see the module docstring)."""

    name = "fake-vercel"

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self._lock = threading.RLock()
        self._clock = 0
        self.user = {
            "id": _random_id("usr_", 24),
            "username": "fake-user",
            "email": "fake-user@example.invalid",
            "name": "Fake User",
        }
        self._reset_state()

    def _reset_state(self) -> None:
        self.projects: dict[str, dict[str, Any]] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, bytes] = {}
        #: Digests in the order their uploads were stored.
        self.uploads: list[str] = []
        #: project id -> its environment variables (values as sent).
        self.env: dict[str, list[dict[str, Any]]] = {}
        self.hooks: dict[str, str] = {}
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        #: GETs of a deployment before it is ready (0: ready when created).
        self.ready_after_polls = 1
        #: The next deployment to finish fails with this message.
        self.fail_next_deploy: str | None = None
        #: GETs of the project before a promote or rollback is done (0: at once).
        self.switch_after_polls = 0
        #: When set, every API request must name this team (teamId).
        self.team_id: str | None = None
        #: Check each API request against the spec as it comes (off: check them later with
        #: ``violations_of``, as the benchmark does to keep the check out of its timings).
        self.check_requests = True
        self._faults: list[_Fault] = []
        self._files: dict[str, dict[str, str]] = {}
        self._polls: dict[str, int] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._pending_switch: dict[str, Any] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def _server_for(self) -> _Server:
        _spec_index()  # fail here, clearly, if the spec is missing
        return _QuietServer(self)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Forget all state and faults; knobs back to their defaults."""
        with self._lock:
            self._reset_state()

    # -- test controls --------------------------------------------------------------------

    def inject(
        self,
        method: str,
        path_pattern: str,
        *,
        status: int | None = None,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        drop: bool = False,
    ) -> None:
        """The next ``times`` matching requests get ``status`` (or are dropped).

        ``method`` "*" matches any method; ``path_pattern`` is searched in the raw path.
        """
        if status is None and not drop:
            raise ValueError("inject() needs a status or drop=True")
        with self._lock:
            self._faults.append(
                _Fault(
                    method.upper(),
                    re.compile(path_pattern),
                    status,
                    times,
                    dict(headers or {}),
                    body,
                    drop,
                )
            )

    @staticmethod
    def retry_after(seconds: float, as_date: bool = False) -> dict[str, str]:
        """A ``Retry-After`` header: whole seconds, or the HTTP date that many seconds on."""
        if as_date:
            from email.utils import formatdate

            return {"Retry-After": formatdate(time.time() + seconds, usegmt=True)}
        return {"Retry-After": str(int(seconds))}

    def add_project(self, name: str = "my-site", **fields: Any) -> dict[str, Any]:
        """Create a project directly (in ``team_id``'s account when set)."""
        if self._server is None:
            raise RuntimeError("start() the fake before add_project(): URLs need its port")
        with self._lock:
            if any(p["name"] == name for p in self.projects.values()):
                raise ValueError(f"a project named {name!r} already exists")
            project = self._new_project(name)
            project.update(fields)
            return project

    def add_deploy_hook(self, project_id: str) -> str:
        """A deploy hook URL for the project (POST to it, no auth, to redeploy production)."""
        with self._lock:
            if project_id not in self.projects:
                raise KeyError(project_id)
            hook_id = _random_id("", 10)
            self.hooks[hook_id] = project_id
            return f"{self.base}/v1/integrations/deploy/{project_id}/{hook_id}"

    def deployment_files(self, deployment_id: str) -> dict[str, str]:
        """The deployment's files: ``{path: sha1}``."""
        with self._lock:
            return dict(self._files[deployment_id])

    def deploy_by_hand(self, project_id: str, changed: dict[str, bytes]) -> str:
        """What ``vercel deploy --prod`` from someone's laptop leaves: a new production
        deployment of the live files with ``changed`` ({"path": bytes}) replaced."""
        with self._lock:
            project = self.projects[project_id]
            production = (project.get("targets") or {}).get("production")
            files = dict(self._files[production["id"]]) if production else {}
            for path, content in changed.items():
                sha = hashlib.sha1(content).hexdigest()
                self.blobs[sha] = content
                files[path] = sha
            deployment = self._new_deployment(project, files, "production", {})
            self._finish(deployment)
            return str(deployment["id"])

    def production(self, project_id: str) -> str | None:
        """The id of the deployment the project's production domains point at."""
        with self._lock:
            target = (self.projects[project_id].get("targets") or {}).get("production")
            return target["id"] if target else None

    @staticmethod
    def violations_of(requests: list[RecordedRequest]) -> list[str]:
        """The spec violations of recorded API requests, checked after the fact."""
        return [
            problem
            for r in requests
            if not r.path.startswith(OUTSIDE_PREFIXES)
            for problem in check_request(r.method, r.path, list(r.query.items()), r.headers, r.body)
        ]

    def api_requests(self) -> list[RecordedRequest]:
        """Every request to the API (not to a deployment's files or a deploy hook)."""
        return [r for r in self.requests if not r.path.startswith(OUTSIDE_PREFIXES)]

    # -- request handling -----------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path = split.path or "/"
        pairs = parse_qsl(split.query, keep_blank_values=True)
        query = dict(pairs)
        headers = {k.lower(): v for k, v in h.headers.items()}
        try:
            body = h.read_body()
        except _BadRequest as exc:
            h.close_connection = True
            h.send_payload(400, {"error": {"code": "bad_request", "message": str(exc)}})
            return
        parsed: Any = None
        if body and "json" in _media_type(headers.get("content-type")):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        rec = RecordedRequest(h.command, path, query, headers, body, parsed)
        is_api = not path.startswith(OUTSIDE_PREFIXES)
        with self._lock:
            self.requests.append(rec)
            if is_api and self.check_requests:
                self.violations.extend(check_request(h.command, path, pairs, headers, body))
            fault = self._take_fault(h.command, path)
        if fault is not None:
            rec.injected = True
            if fault.drop:
                h.drop()
                return
            assert fault.status is not None
            payload = fault.body
            if payload is None:
                payload = {"error": {"code": str(fault.status), "message": _phrase(fault.status)}}
            rec.status, rec.response = fault.status, payload
            h.send_payload(fault.status, payload, headers=fault.headers)
            return
        raw: bytes | None = None
        content_type = "application/json"
        try:
            if is_api:
                status, payload = self._api(h.command, path, query, parsed, body, headers, rec)
            else:
                status, payload, raw, content_type = self._outside(h.command, path)
        except _ApiError as exc:
            status = exc.status
            payload = getattr(exc, "payload", None) or {
                "error": {"code": "error", "message": exc.message}
            }
        except Exception as exc:  # noqa: BLE001 - a bug in the fake: fail the test loudly
            with self._lock:
                self.violations.append(f"FakeVercel internal error on {h.command} {path}: {exc!r}")
            status, payload = 500, {"error": {"code": "internal", "message": repr(exc)}}
        rec.status, rec.response = status, payload
        h.send_payload(status, payload, raw=raw, content_type=content_type)

    def _api(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        parsed: Any,
        body: bytes,
        headers: dict[str, str],
        rec: RecordedRequest,
    ) -> tuple[int, Any]:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or value.strip() != self.token:
            raise _error(403, "forbidden", "Not authorized", invalidToken=True)
        if self.team_id and query.get("teamId") != self.team_id and path != "/v2/user":
            raise _error(404, "not_found", "Not found (no teamId for the project's team)")
        for route_method, template, regex, names, handler in _ROUTE_TABLE:
            if route_method != method:
                continue
            m = regex.match(path)
            if m is None:
                continue
            rec.route = template
            ctx = _Ctx(
                {n: unquote(v) for n, v in zip(names, m.groups(), strict=True)}, query, parsed, body
            )
            ctx.headers = headers
            if body and parsed is None and "json" in _media_type(headers.get("content-type")):
                raise _error(400, "bad_request", "Invalid JSON body")
            with self._lock:
                status, payload = getattr(self, handler)(ctx)
                payload = json.loads(json.dumps(payload)) if payload is not None else None
            return status, payload
        raise _error(404, "not_found", "The requested path was not found")

    def _outside(self, method: str, path: str) -> tuple[int, Any, bytes | None, str]:
        parts = path.split("/")
        if method in ("GET", "HEAD") and len(parts) >= 3 and parts[1] in ("_deployments", "_alias"):
            with self._lock:
                if parts[1] == "_alias":
                    project = next((p for p in self.projects.values() if p["name"] == parts[2]), {})
                    deployment_id = ((project.get("targets") or {}).get("production") or {}).get(
                        "id"
                    )
                else:
                    deployment_id = parts[2]
                deployment = self.deployments.get(deployment_id or "")
                rel = unquote("/".join(parts[3:]))
                if rel == "" or rel.endswith("/"):
                    rel += "index.html"
                content = None
                if deployment is not None and deployment["readyState"] == "READY":
                    sha = self._files[deployment["id"]].get(rel)
                    content = self.blobs.get(sha) if sha else None
            if content is None:
                return 404, None, b"Not Found\n", "text/plain; charset=utf-8"
            kind = mimetypes.guess_type(rel)[0] or "application/octet-stream"
            return 200, None, content, kind
        if method == "POST" and len(parts) == 6 and path.startswith("/v1/integrations/deploy/"):
            with self._lock:
                project_id = self.hooks.get(parts[5])
                if project_id is None or project_id != parts[4]:
                    raise _error(404, "not_found", "Deploy hook not found")
                job = self._run_hook(self.projects[project_id])
            return 201, {"job": job}, None, "application/json"
        raise _error(404, "not_found", "The requested path was not found")

    # -- state helpers (call with the lock held) -------------------------------------------

    def _now(self) -> int:
        """Milliseconds, strictly increasing (so ``until`` pages never tie)."""
        self._clock = max(int(time.time() * 1000), self._clock + 1)
        return self._clock

    def _new_project(self, name: str) -> dict[str, Any]:
        pid = _random_id("prj_")
        now = self._now()
        project: dict[str, Any] = {
            "id": pid,
            "name": name,
            "accountId": self.team_id or self.user["id"],
            "createdAt": now,
            "updatedAt": now,
            "directoryListing": False,
            "nodeVersion": "22.x",
            "framework": None,
            "outputDirectory": None,
            "resourceConfig": {},
            "defaultResourceConfig": {},
            "live": False,
            "link": None,
            "latestDeployments": [],
            "lastAliasRequest": None,
            "targets": {},
        }
        self.projects[pid] = project
        self.env[pid] = []
        return project

    def _project(self, id_or_name: str) -> dict[str, Any]:
        project = self.projects.get(id_or_name) or next(
            (p for p in self.projects.values() if p["name"] == id_or_name), None
        )
        if project is None:
            raise _error(404, "not_found", f"Project not found: {id_or_name}")
        return project

    def _deployment(self, id_or_url: str) -> dict[str, Any]:
        found = self.deployments.get(id_or_url) or next(
            (d for d in self.deployments.values() if d["url"] == id_or_url), None
        )
        if found is None:
            raise _error(404, "not_found", "Deployment not found")
        return found

    def _alias(self, project: dict[str, Any]) -> str:
        return f"{self.base.split('://', 1)[1]}/_alias/{project['name']}"

    def _new_deployment(
        self,
        project: dict[str, Any],
        files: dict[str, str],
        target: str | None,
        meta: dict[str, str],
    ) -> dict[str, Any]:
        did = _random_id("dpl_")
        now = self._now()
        host = self.base.split("://", 1)[1]
        deployment: dict[str, Any] = {
            "id": did,
            "name": project["name"],
            "projectId": project["id"],
            "ownerId": project["accountId"],
            "url": f"{host}/_deployments/{did}",
            "inspectorUrl": f"{self.base}/_inspect/{did}",
            "createdAt": now,
            "buildingAt": now,
            "bootedAt": now,
            "createdIn": "sfo1",
            "readyState": "BUILDING",
            "status": "BUILDING",
            "readySubstate": None,
            "target": target,
            "alias": [],
            "aliasAssigned": None,
            "aliasError": None,
            "errorCode": None,
            "errorMessage": None,
            "type": "LAMBDAS",
            "version": 2,
            "public": False,
            "plan": "hobby",
            "regions": ["iad1"],
            "routes": None,
            "meta": meta,
            "env": [],
            "build": {"env": []},
            "buildSkipped": False,
            "isInConcurrentBuildsQueue": False,
            "isInSystemBuildsQueue": False,
            "creator": {"uid": self.user["id"], "username": self.user["username"]},
            "projectSettings": {
                "framework": project.get("framework"),
                "outputDirectory": project.get("outputDirectory"),
            },
        }
        self.deployments[did] = deployment
        self._files[did] = files
        self._polls[did] = 0
        self._events[did] = []
        self._event(deployment, "stdout", f"Deploying {len(files)} files")
        if self.ready_after_polls <= 0:
            self._finish(deployment)
        return deployment

    def _event(self, deployment: dict[str, Any], kind: str, text: str) -> None:
        events = self._events[deployment["id"]]
        now = self._now()
        events.append(
            {
                "type": kind,
                "created": now,
                "payload": {
                    "deploymentId": deployment["id"],
                    "id": f"evt_{len(events)}",
                    "date": now,
                    "serial": str(len(events)),
                    "text": text,
                },
            }
        )

    def _finish(self, deployment: dict[str, Any]) -> None:
        now = self._now()
        project = self.projects[deployment["projectId"]]
        if self.fail_next_deploy is not None:
            deployment.update(
                readyState="ERROR", status="ERROR", errorCode="BUILD_FAILED",
                errorMessage=self.fail_next_deploy, buildErrorAt=now,
            )  # fmt: skip
            self._event(deployment, "stderr", self.fail_next_deploy)
            self.fail_next_deploy = None
            return
        deployment.update(readyState="READY", status="READY", ready=now)
        self._event(deployment, "stdout", "Build Completed")
        if deployment["target"] != "production":
            deployment["aliasAssigned"] = now  # its automatic (preview) aliases
        elif project.get("_rolled_back"):
            deployment["readySubstate"] = "STAGED"  # Vercel holds it after a rollback
        else:
            self._make_production(project, deployment, None)

    def _make_production(
        self, project: dict[str, Any], deployment: dict[str, Any], kind: str | None
    ) -> None:
        now = self._now()
        before = (project.get("targets") or {}).get("production")
        deployment.update(
            alias=[self._alias(project)], aliasAssigned=now, aliasAssignedAt=now,
            readySubstate="PROMOTED",
        )  # fmt: skip
        project["targets"] = {
            "production": {
                key: deployment.get(key)
                for key in ("id", "alias", "aliasAssigned", "url", "readyState", "createdAt")
            }
            | {"target": "production"}
        }
        project["updatedAt"] = now
        if kind is not None:
            project["lastAliasRequest"] = {
                "fromDeploymentId": before["id"] if before else "",
                "toDeploymentId": deployment["id"],
                "jobStatus": "succeeded",
                "requestedAt": now,
                "type": kind,
            }
            project["_rolled_back"] = kind == "rollback"

    def _advance(self, deployment: dict[str, Any]) -> None:
        if deployment["readyState"] != "BUILDING":
            return
        self._polls[deployment["id"]] += 1
        if self._polls[deployment["id"]] >= self.ready_after_polls:
            self._finish(deployment)

    def _run_hook(self, project: dict[str, Any]) -> dict[str, Any]:
        production = (project.get("targets") or {}).get("production")
        files = dict(self._files[production["id"]]) if production else {}
        self._new_deployment(project, files, "production", {"deployHookId": "hook"})
        return {"id": _random_id("job_", 16), "state": "PENDING", "createdAt": self._now()}

    def _switch(self, c: _Ctx, kind: str) -> tuple[int, Any]:
        project = self._project(c.params["projectId"])
        deployment = self._deployment(c.params["deploymentId"])
        if deployment["projectId"] != project["id"]:
            raise _error(404, "not_found", "Deployment not found in this project")
        if deployment["readyState"] != "READY":
            raise _error(400, "not_ready", f"Deployment is {deployment['readyState']}, not READY")
        if self.switch_after_polls > 0:
            before = (project.get("targets") or {}).get("production")
            project["lastAliasRequest"] = {
                "fromDeploymentId": before["id"] if before else "",
                "toDeploymentId": deployment["id"],
                "jobStatus": "in-progress",
                "requestedAt": self._now(),
                "type": kind,
            }
            self._pending_switch = {"left": self.switch_after_polls, "kind": kind, "to": deployment}
        else:
            self._make_production(project, deployment, kind)
        return 201, None

    # -- API handlers (called with the lock held) ------------------------------------------

    def _get_user(self, c: _Ctx) -> tuple[int, Any]:
        return 200, {"user": {**self.user, "defaultTeamId": self.team_id}}

    def _get_team(self, c: _Ctx) -> tuple[int, Any]:
        if c.params["teamId"] != self.team_id:
            raise _error(404, "not_found", "Team not found")
        return 200, {"id": self.team_id, "slug": "fake-team", "name": "Fake Team"}

    def _list_projects(self, c: _Ctx) -> tuple[int, Any]:
        projects = list(self.projects.values())
        if c.query.get("search"):
            projects = [p for p in projects if c.query["search"] in p["name"]]
        count = len(projects)
        return 200, {
            "projects": projects,
            "pagination": {"count": count, "next": None, "prev": None},
        }

    def _create_project(self, c: _Ctx) -> tuple[int, Any]:
        body = c.json if isinstance(c.json, dict) else {}
        name = body.get("name")
        if (
            not isinstance(name, str)
            or not re.fullmatch(r"[a-z0-9._-]{1,100}", name)
            or ("---" in name)
        ):
            raise _error(400, "bad_request", "Invalid project name")
        if any(p["name"] == name for p in self.projects.values()):
            raise _error(409, "conflict", f"Project {name} already exists")
        project = self._new_project(name)
        for key in ("framework", "outputDirectory", "buildCommand", "installCommand"):
            if key in body:
                project[key] = body[key]
        return 200, project

    def _get_project(self, c: _Ctx) -> tuple[int, Any]:
        project = self._project(c.params["idOrName"])
        pending = self._pending_switch
        if pending and pending["to"]["projectId"] == project["id"]:
            pending["left"] -= 1
            if pending["left"] <= 0:
                self._pending_switch = None
                self._make_production(project, pending["to"], pending["kind"])
        return 200, {k: v for k, v in project.items() if not k.startswith("_")}

    def _promote(self, c: _Ctx) -> tuple[int, Any]:
        return self._switch(c, "promote")

    def _rollback(self, c: _Ctx) -> tuple[int, Any]:
        return self._switch(c, "rollback")

    def _list_env(self, c: _Ctx) -> tuple[int, Any]:
        project = self._project(c.params["idOrName"])
        hidden = [{**e, "value": ""} for e in self.env[project["id"]]]
        return 200, {"envs": hidden}

    def _create_env(self, c: _Ctx) -> tuple[int, Any]:
        project = self._project(c.params["idOrName"])
        items = c.json if isinstance(c.json, list) else [c.json]
        upsert = c.query.get("upsert") == "true"
        created = []
        for item in items:
            if not isinstance(item, dict) or not {"key", "value", "type"} <= set(item):
                raise _error(400, "bad_request", "key, value and type are required")
            targets = set(item.get("target") or [])
            existing = [
                e
                for e in self.env[project["id"]]
                if e["key"] == item["key"] and targets & set(e["target"])
            ]
            if existing and not upsert:
                raise _error(400, "ENV_ALREADY_EXISTS", f"{item['key']} exists for that target")
            for e in existing:
                self.env[project["id"]].remove(e)
            now = self._now()
            entry = {
                "id": _random_id("env_", 16),
                "key": item["key"],
                "value": item["value"],
                "type": item["type"],
                "target": sorted(targets),
                "createdAt": now,
                "updatedAt": now,
            }
            self.env[project["id"]].append(entry)
            created.append({k: v for k, v in entry.items() if k != "value"})
        return 201, {"created": created if len(created) > 1 else created[0], "failed": []}

    def _upload_file(self, c: _Ctx) -> tuple[int, Any]:
        digest = c.headers.get("x-vercel-digest") or c.headers.get("x-now-digest")
        if not digest:
            raise _error(400, "missing_digest", "Missing x-vercel-digest header")
        actual = hashlib.sha1(c.body).hexdigest()
        if digest.lower() != actual:
            raise _error(400, "incorrect_file_digest", "The file digest does not match its body")
        size = c.headers.get("content-length") or c.headers.get("x-now-size")
        if size != str(len(c.body)):
            raise _error(400, "incorrect_file_size", "The file size does not match its body")
        self.blobs[actual] = c.body
        self.uploads.append(actual)
        return 200, {"urls": []}

    def _create_deployment(self, c: _Ctx) -> tuple[int, Any]:
        body = c.json if isinstance(c.json, dict) else {}
        reference = body.get("project") or body.get("name")
        if not reference:
            raise _error(400, "bad_request", "name is required")
        project = self._project(reference)
        files: dict[str, str] = {}
        missing: list[str] = []
        for item in body.get("files") or []:
            name = item.get("file")
            if not isinstance(name, str) or not name or name.startswith("/"):
                raise _error(400, "invalid_file", f"Invalid file name {name!r}")
            if "data" in item:
                encoding = item.get("encoding")
                data = (
                    base64.b64decode(item["data"])
                    if encoding == "base64"
                    else str(item["data"]).encode()
                )
                sha = hashlib.sha1(data).hexdigest()
                self.blobs.setdefault(sha, data)
            else:
                sha = str(item.get("sha") or "").lower()
                if not _SHA1.match(sha):
                    raise _error(400, "invalid_file", f"{name}: sha must be a SHA1 hex digest")
                if sha not in self.blobs and sha not in missing:
                    missing.append(sha)
            files[name] = sha
        if missing:
            raise _error(400, "missing_files", "Missing files", missing=missing)
        settings = body.get("projectSettings") or {}
        for key in ("framework", "outputDirectory"):
            if key in settings:
                project[key] = settings[key]
        target = body.get("target")
        if target not in (None, "production"):
            raise _error(400, "bad_request", f"Unknown target {target!r}")
        deployment = self._new_deployment(project, files, target, dict(body.get("meta") or {}))
        return 200, deployment

    def _get_deployment(self, c: _Ctx) -> tuple[int, Any]:
        deployment = self._deployment(c.params["idOrUrl"])
        self._advance(deployment)
        return 200, deployment

    def _list_deployment_files(self, c: _Ctx) -> tuple[int, Any]:
        """The deployment's file tree: directories with ``children``, files with ``uid``."""
        files = self._files[self._deployment(c.params["id"])["id"]]
        root: dict[str, Any] = {}
        for path, sha in files.items():
            *folders, name = path.split("/")
            node = root
            for folder in folders:
                node = node.setdefault(folder, {})
            node[name] = sha
        return 200, _tree(root)

    def _list_deployments(self, c: _Ctx) -> tuple[int, Any]:
        found = sorted(self.deployments.values(), key=lambda d: -d["createdAt"])
        if c.query.get("projectId"):
            pid = self._project(c.query["projectId"])["id"]
            found = [d for d in found if d["projectId"] == pid]
        for name, test in (
            ("until", lambda d, v: d["createdAt"] < int(v)),
            ("since", lambda d, v: d["createdAt"] > int(v)),
            ("target", lambda d, v: d["target"] == v),
            ("state", lambda d, v: d["readyState"] in v.split(",")),
        ):
            if c.query.get(name):
                found = [d for d in found if test(d, c.query[name])]
        limit = int(float(c.query.get("limit") or 20))
        page, more = found[:limit], len(found) > limit
        items = [
            {
                "uid": d["id"],
                "name": d["name"],
                "projectId": d["projectId"],
                "url": d["url"],
                "created": d["createdAt"],
                "createdAt": d["createdAt"],
                "buildingAt": d["buildingAt"],
                "ready": d.get("ready"),
                "state": d["readyState"],
                "readyState": d["readyState"],
                "readySubstate": d["readySubstate"],
                "target": d["target"],
                "type": d["type"],
                "creator": d["creator"],
                "inspectorUrl": d["inspectorUrl"],
                "meta": d["meta"],
                "aliasAssigned": d["aliasAssigned"],
                "aliasError": d["aliasError"],
                "errorMessage": d["errorMessage"],
            }
            for d in page
        ]
        pagination = {
            "count": len(items),
            "next": page[-1]["createdAt"] if more and page else None,
            "prev": page[0]["createdAt"] if page else None,
        }
        return 200, {"deployments": items, "pagination": pagination}

    def _deployment_events(self, c: _Ctx) -> tuple[int, Any]:
        deployment = self._deployment(c.params["idOrUrl"])
        events = self._events[deployment["id"]]
        limit = int(float(c.query.get("limit") or 100))
        return 200, events if limit < 0 else events[-limit:]


def _tree(node: dict[str, Any]) -> list[dict[str, Any]]:
    """A nested ``{name: sha or {...}}`` as Vercel's FileTree entries."""
    return [
        {"name": name, "type": "directory", "mode": 0o40755, "children": _tree(value)}
        if isinstance(value, dict)
        else {"name": name, "type": "file", "mode": 0o100644, "uid": value}
        for name, value in sorted(node.items())
    ]
