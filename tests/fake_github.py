"""A fake GitHub REST API on 127.0.0.1: deployments and their statuses, as GitHub describes them.

The description is ``specs/github-deployments.json``, the part of GitHub's own OpenAPI
description (``github/rest-api-description``; source and commit in ``specs/README.md``) that
devops-tasks calls. Every route served is in ``ROUTES`` as (method, spec path template), and
every request is checked against the description: an unknown path or method, a path
parameter its schema refuses, a body that is not JSON or that the operation's request
schema refuses. What breaks it is appended to ``FakeGitHub.violations`` (the request is still
answered); tests assert that list stays empty. Every request needs
``Authorization: Bearer <token>`` (else 401, as GitHub answers a bad token).

What the fake does as GitHub does: ids count up per fake; a deployment's ``ref`` must be a
commit the repository has when ``commits`` is set (else 422); a ``success`` status with
``auto_inactive`` (the default) adds an ``inactive`` status to the earlier deployments of the
same environment whose last state was ``success``, unless they are transient or production.

Usage::

    fake = FakeGitHub().start()
    fake.add_repository("octo/site")
    ...  # point GITHUB_API_URL at fake.api_url, send "Authorization: Bearer <fake.token>"
    fake.states(deployment_id)  # ["in_progress", "success"]
    fake.reset()   # between tests
    fake.stop()
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
from fake_netlify import (
    RecordedRequest,
    ServedFake,
    _Fault,
    _Handler,
    _media_type,
    _Server,
    compile_template,
)

__all__ = ["ROUTES", "SPEC_PATH", "FakeGitHub", "check_request", "load_spec"]

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "github-deployments.json"
DEPLOYMENTS = "/repos/{owner}/{repo}/deployments"
STATUSES = "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"
ROUTES: tuple[tuple[str, str], ...] = (("POST", DEPLOYMENTS), ("POST", STATUSES))
_DOCS = "https://docs.github.com/rest"
STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")


def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_bytes())
    return spec


_SPEC = load_spec()


def _resolve(node: Any) -> Any:
    """``node``, or what its local ``$ref`` points at."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = _SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: ``nullable`` spelled out, ``$ref`` inlined."""
    node = _resolve(node)
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") else out


def _operation(method: str, path: str) -> tuple[str | None, dict[str, Any] | None]:
    for template, item in _SPEC["paths"].items():
        if compile_template(template)[0].match(path):
            return template, item.get(method.lower())
    return None, None


def check_request(method: str, path: str, headers: dict[str, str], body: bytes) -> list[str]:
    """Every way one request breaks GitHub's description, as messages."""
    where = f"{method} {path}"
    template, operation = _operation(method, path)
    if template is None:
        return [f"{where}: no path template in the spec matches"]
    if operation is None:
        return [f"{where}: the spec has no {method} operation for {template}"]
    problems = []
    regex, names = compile_template(template)
    match = regex.match(path)
    assert match is not None
    values = dict(zip(names, match.groups(), strict=True))
    for parameter in (_resolve(p) for p in operation.get("parameters", [])):
        if parameter["in"] != "path":
            continue
        if parameter["schema"].get("type") == "integer" and not values[parameter["name"]].isdigit():
            problems.append(f"{where}: path parameter {parameter['name']} is not an integer")
    content = operation.get("requestBody", {}).get("content", {})
    if not body:
        if operation.get("requestBody", {}).get("required"):
            problems.append(f"{where}: {operation['operationId']} requires a body")
        return problems
    media = _media_type(headers.get("content-type"))
    if media not in content:
        return [*problems, f"{where}: Content-Type {media!r} is not one of {sorted(content)}"]
    try:
        data = json.loads(body)
    except ValueError:
        return [*problems, f"{where}: the body is not JSON"]
    schema = _json_schema(content[media]["schema"])
    for error in jsonschema.Draft4Validator(schema).iter_errors(data):
        at = "/".join(str(p) for p in error.absolute_path) or "(root)"
        problems.append(f"{where}: body {at}: {error.message} ({operation['operationId']})")
    return problems


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class FakeGitHub(ServedFake):
    """An in-process fake of GitHub's deployments API (see the module docstring)."""

    name = "fake-github"

    def __init__(self, token: str = "ghp_fake0github0token0for0tests") -> None:
        self.token = token
        self._lock = threading.RLock()
        self.reset()

    def _server_for(self) -> _Server:
        return _Server(self)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Forget every repository, deployment, request and fault."""
        with self._lock:
            self.repositories: dict[str, set[str] | None] = {}
            self.deployments: dict[int, dict[str, Any]] = {}
            self.statuses: dict[int, list[dict[str, Any]]] = {}
            self.requests: list[RecordedRequest] = []
            self.violations: list[str] = []
            #: Seconds the answer to a status of each state waits (a slow GitHub).
            self.slow_states: dict[str, float] = {}
            self._faults: list[_Fault] = []
            self._ids = 0

    # -- test controls --------------------------------------------------------------------

    def add_repository(self, full_name: str, commits: set[str] | None = None) -> None:
        """A repository the token may write deployments to; ``commits``: the refs it knows."""
        with self._lock:
            self.repositories[full_name] = commits

    def inject(self, path_pattern: str, *, status: int | None = None, times: int = 1) -> None:
        """The next ``times`` requests whose path matches get ``status`` (None: dropped)."""
        fault = _Fault("*", re.compile(path_pattern), status, times, {}, None, status is None)
        with self._lock:
            self._faults.append(fault)

    def states(self, deployment_id: int) -> list[str]:
        """The states posted for a deployment, oldest first."""
        with self._lock:
            return [status["state"] for status in self.statuses.get(deployment_id, [])]

    # -- requests -------------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path = split.path
        headers = {k.lower(): v for k, v in h.headers.items()}
        body = h.read_body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = RecordedRequest(
            h.command, path, dict(parse_qsl(split.query)), headers, body, parsed
        )
        with self._lock:
            self.requests.append(record)
            self.violations.extend(check_request(h.command, path, headers, body))
            fault = self._take_fault(h.command, path)
            delay = self.slow_states.get(str((parsed or {}).get("state")), 0.0)
        time.sleep(delay)
        if fault is not None:
            record.injected = True
            if fault.drop:
                h.drop()
                return
            assert fault.status is not None
            record.status = fault.status
            h.send_payload(fault.status, {"message": "Server Error", "documentation_url": _DOCS})
            return
        try:
            status, payload = self._answer(h.command, path, headers, parsed)
        except _ApiError as error:
            status, payload = error.status, {"message": error.message, "documentation_url": _DOCS}
        record.status, record.response = status, payload
        h.send_payload(status, payload)

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token != self.token:
            raise _ApiError(401, "Bad credentials")
        for route_method, template in ROUTES:
            match = compile_template(template)[0].match(path)
            if route_method == method and match:
                owner, repo, *rest = match.groups()
                full_name = f"{owner}/{repo}"
                if full_name not in self.repositories:
                    raise _ApiError(404, "Not Found")
                if not isinstance(body, dict):
                    raise _ApiError(400, "Problems parsing JSON")
                with self._lock:
                    if template == DEPLOYMENTS:
                        return 201, self._create_deployment(full_name, body)
                    return 201, self._create_status(full_name, int(rest[0]), body)
        raise _ApiError(404, "Not Found")

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _create_deployment(self, full_name: str, body: dict[str, Any]) -> dict[str, Any]:
        known = self.repositories[full_name]
        ref = body.get("ref")
        if not ref or (known is not None and ref not in known):
            raise _ApiError(422, f"No ref found for: {ref}")
        deployment_id = self._next_id()
        environment = body.get("environment", "production")
        url = f"{self.api_url}/repos/{full_name}/deployments/{deployment_id}"
        now = _now()
        deployment = {
            "url": url,
            "id": deployment_id,
            "node_id": f"DE_{deployment_id}",
            "sha": ref,
            "ref": ref,
            "task": body.get("task", "deploy"),
            "payload": body.get("payload", {}),
            "original_environment": environment,
            "environment": environment,
            "description": body.get("description", ""),
            "creator": None,
            "created_at": now,
            "updated_at": now,
            "statuses_url": f"{url}/statuses",
            "repository_url": f"{self.api_url}/repos/{full_name}",
            "transient_environment": body.get("transient_environment", False),
            "production_environment": body.get(
                "production_environment", environment == "production"
            ),
        }
        self.deployments[deployment_id] = deployment
        self.statuses[deployment_id] = []
        return deployment

    def _create_status(
        self, full_name: str, deployment_id: int, body: dict[str, Any]
    ) -> dict[str, Any]:
        deployment = self.deployments.get(deployment_id)
        if deployment is None or not deployment["repository_url"].endswith(f"/repos/{full_name}"):
            raise _ApiError(404, "Not Found")
        state = body.get("state")
        if state not in STATES:
            raise _ApiError(422, f"Invalid state: {state}")
        status = self._add_status(deployment, state, body)
        if state == "success" and body.get("auto_inactive", True):
            for other in self.deployments.values():
                if (
                    other["id"] < deployment_id
                    and other["environment"] == deployment["environment"]
                    and not other["transient_environment"]
                    and not other["production_environment"]
                    and self.states(other["id"])[-1:] == ["success"]
                ):
                    self._add_status(other, "inactive", {})
        return status

    def _add_status(
        self, deployment: dict[str, Any], state: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        status_id = self._next_id()
        now = _now()
        log_url = body.get("log_url", body.get("target_url", ""))
        status = {
            "url": f"{deployment['statuses_url']}/{status_id}",
            "id": status_id,
            "node_id": f"DES_{status_id}",
            "state": state,
            "creator": None,
            "description": body.get("description", ""),
            "environment": body.get("environment", deployment["environment"]),
            "target_url": log_url,
            "created_at": now,
            "updated_at": now,
            "deployment_url": deployment["url"],
            "repository_url": deployment["repository_url"],
            "environment_url": body.get("environment_url", ""),
            "log_url": log_url,
        }
        self.statuses[deployment["id"]].append(status)
        return status


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
