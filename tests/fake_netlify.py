"""A fake Netlify API on 127.0.0.1 that follows Netlify's own OpenAPI (Swagger 2.0) spec.

The spec is ``specs/netlify-openapi.yml`` in this repository (``netlify/open-api``
``swagger.yml``; source and commit in ``specs/README.md``). Every route under ``/api/v1``
that this fake serves is listed in ``ROUTES`` as (method, spec path template), and every
request under ``/api/v1`` is checked against the spec: unknown paths/methods, undeclared
query parameters, JSON body keys that are not properties of the operation's body schema,
and a ``Content-Type`` the operation does not consume are appended to
``FakeNetlify.violations`` (the request is still handled). Tests assert that list stays empty.

Outside ``/api/v1`` (no auth):

* ``/live/<site_id>/<path>``: the site's published deploy (``site.url``/``ssl_url``);
* ``/preview/<deploy_id>/<path>``: a ready deploy's own files (``deploy_url``);
* ``POST /build_hooks/<hook_id>``: a build hook URL (see ``add_build_hook``);
* ``GET /site/<id>/integrations/safe`` and
  ``GET /team/<slug>/integrations/installations/meta/<id>``: ``[]`` (netlify-cli);
* ``/telemetry/...``: any method, 200 ``{}``.

Usage::

    fake = FakeNetlify().start()
    site = fake.add_site("my-site")
    ...  # point NETLIFY_API_URL at fake.api_url, send "Authorization: Bearer test-token"
    fake.reset()   # between tests
    fake.stop()
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import mimetypes
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

__all__ = [
    "API_PREFIX",
    "ROUTES",
    "FakeNetlify",
    "RecordedRequest",
    "check_request",
    "load_spec",
    "spec_operation",
]

API_PREFIX = "/api/v1"
#: The spec lives in the repository (``specs/``), so a plain clone can run the tests.
SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "netlify-openapi.yml"

# Path parameters whose value may contain "/" (file paths). Every other parameter is one segment.
GREEDY_PARAMS = frozenset({"path", "file_path"})
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")

# ---------------------------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------------------------

_spec_lock = threading.Lock()
_spec: dict[str, Any] | None = None
_index: _SpecIndex | None = None


def load_spec() -> dict[str, Any]:
    """The parsed spec, loaded once per process (C loader when available)."""
    global _spec
    with _spec_lock:
        if _spec is None:
            if not SPEC_PATH.is_file():
                raise RuntimeError(f"Netlify OpenAPI spec not found at {SPEC_PATH}")
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            with SPEC_PATH.open("rb") as fh:
                _spec = yaml.load(fh, Loader=loader)
        return _spec


def _spec_index() -> _SpecIndex:
    global _index
    spec = load_spec()
    with _spec_lock:
        if _index is None:
            _index = _SpecIndex(spec)
        return _index


def compile_template(template: str) -> tuple[re.Pattern[str], list[str]]:
    """A regex matching a raw (still percent-encoded) path against a path template."""
    names: list[str] = []
    out = ["^"]
    pos = 0
    for m in re.finditer(r"\{([^}/]+)\}", template):
        out.append(re.escape(template[pos : m.start()]))
        name = m.group(1)
        names.append(name)
        out.append("(.+)" if name in GREEDY_PARAMS else "([^/]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    out.append("$")
    return re.compile("".join(out)), names


def _literal_segments(template: str) -> int:
    return sum(1 for seg in template.split("/") if seg and "{" not in seg)


def _head(path: str) -> str:
    """A path's first segment ("/deploys/x/files/y" -> "deploys")."""
    return path.split("/", 2)[1] if path.startswith("/") else ""


class _SpecIndex:
    """Spec path templates compiled for matching, most literal segments first.

    A template whose first segment is literal only matches paths that start with it, so each
    path is matched against the templates of its first segment (and those that start with a
    parameter) only: a tenth of the spec, thousands of times per deploy.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        entries = []
        for template, item in spec["paths"].items():
            regex, _ = compile_template(template)
            entries.append((_literal_segments(template), template, regex, item))
        entries.sort(key=lambda e: -e[0])
        self.entries = entries
        heads = {_head(e[1]) for e in entries if "{" not in _head(e[1])}
        self.by_head = {
            head: [e for e in entries if _head(e[1]) == head or "{" in _head(e[1])]
            for head in heads
        }
        self.unknown_head = [e for e in entries if "{" in _head(e[1])]

    def resolve(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"unsupported $ref {ref!r}")
            target: Any = self.spec
            for part in ref[2:].split("/"):
                target = target[part]
            node = target
            seen += 1
            if seen > 50:
                raise ValueError(f"$ref loop at {ref!r}")
        return node

    def match(self, api_path: str) -> list[tuple[str, dict[str, Any]]]:
        entries = self.by_head.get(_head(api_path), self.unknown_head)
        return [(t, item) for _, t, rx, item in entries if rx.match(api_path)]

    def parameters(self, path_item: dict[str, Any], op: dict[str, Any]) -> list[dict[str, Any]]:
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*path_item.get("parameters", []), *op.get("parameters", [])]:
            param = self.resolve(raw)
            merged[(param.get("in", ""), param.get("name", ""))] = param
        return list(merged.values())

    def properties(self, schema: Any) -> set[str] | None:
        """Top-level property names of an object schema; None when any key is allowed."""
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            return None
        names: set[str] = set()
        free = False
        for part in schema.get("allOf", []):
            sub = self.properties(part)
            if sub is None:
                free = True
            else:
                names |= sub
        names |= set(schema.get("properties", {}) or {})
        if schema.get("additionalProperties") not in (None, False):
            free = True
        if not names and not schema.get("allOf"):
            free = True  # {type: object} with no properties at all: free-form
        return None if free else names


def spec_operation(method: str, api_path: str) -> tuple[str | None, dict[str, Any] | None, str]:
    """(template, operation, problem) for a raw path relative to the basePath.

    ``problem`` is "" when the spec has this path with this method.
    """
    index = _spec_index()
    matches = index.match(api_path)
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
        (
            f"the spec has no {method.upper()} operation for {templates} "
            f"(it declares {', '.join(allowed) or 'nothing'})"
        ),
    )


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_request(
    method: str,
    api_path: str,
    query_names: list[str] | set[str],
    content_type: str | None,
    body: bytes,
) -> list[str]:
    """Every way one request (path relative to /api/v1, raw) breaks the spec, as messages."""
    where = f"{method.upper()} {API_PREFIX}{api_path}"
    template, op, problem = spec_operation(method, api_path)
    if op is None or template is None:
        return [f"{where}: {problem}"]
    index = _spec_index()
    op_id = op.get("operationId", "?")
    params = index.parameters(op["_path_item"], op)
    problems: list[str] = []

    declared_query = {p["name"] for p in params if p.get("in") == "query"}
    for name in sorted(set(query_names)):
        if name not in declared_query:
            problems.append(
                f"{where}: query parameter {name!r} is not declared by {op_id} ({template}); "
                f"declared: {sorted(declared_query) or 'none'}"
            )

    if not body:
        return problems
    media = _media_type(content_type)
    consumes = [c.lower() for c in (op.get("consumes") or index.spec.get("consumes") or [])]
    if not media:
        problems.append(
            f"{where}: request has a body but no Content-Type; {op_id} consumes {consumes}"
        )
    elif consumes and media not in consumes:
        problems.append(f"{where}: Content-Type {media!r} is not one {op_id} consumes ({consumes})")
    if media != "application/json" and not media.endswith("+json"):
        return problems
    try:
        data = json.loads(body)
    except ValueError:
        problems.append(f"{where}: body is not valid JSON")
        return problems
    body_params = [p for p in params if p.get("in") == "body"]
    if not body_params:
        if data not in ({}, [], None):
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            problems.append(
                f"{where}: {op_id} declares no body parameter (inputs: "
                f"{sorted(p['name'] for p in params if p.get('in') != 'path')}), "
                f"but the request sends a JSON body {keys}"
            )
        return problems
    schema = index.resolve(body_params[0].get("schema", {}))
    ref = body_params[0].get("schema", {}).get("$ref", "")
    schema_name = ref.rsplit("/", 1)[-1] if ref else f"the {op_id} body schema"
    objects: list[Any]
    if isinstance(data, dict):
        objects = [data]
    elif isinstance(data, list) and schema.get("type") == "array":
        schema = index.resolve(schema.get("items", {}))
        schema_name += " items"
        objects = [item for item in data if isinstance(item, dict)]
    else:
        problems.append(
            f"{where}: JSON body is a {type(data).__name__}, {op_id} expects "
            f"{schema.get('type', 'object')}"
        )
        return problems
    allowed = index.properties(schema)
    if allowed is None:
        return problems
    for obj in objects:
        for key in obj:
            if key not in allowed:
                problems.append(
                    f"{where}: body key {key!r} is not a property of {schema_name} "
                    f"({op_id}); allowed: {sorted(allowed)}"
                )
    return problems


# ---------------------------------------------------------------------------------------------
# Routes served under /api/v1: (method, spec path template) -> handler method name
# ---------------------------------------------------------------------------------------------

_HANDLERS: dict[tuple[str, str], str] = {
    ("GET", "/sites"): "_list_sites",
    ("POST", "/sites"): "_create_site",
    ("GET", "/sites/{site_id}"): "_get_site",
    ("GET", "/sites/{site_id}/files"): "_list_site_files",
    ("GET", "/sites/{site_id}/deploys"): "_list_site_deploys",
    ("POST", "/sites/{site_id}/deploys"): "_create_site_deploy",
    ("GET", "/sites/{site_id}/deploys/{deploy_id}"): "_get_site_deploy",
    ("PUT", "/sites/{site_id}/deploys/{deploy_id}"): "_update_site_deploy",
    ("POST", "/sites/{site_id}/deploys/{deploy_id}/restore"): "_restore_site_deploy",
    ("GET", "/deploys/{deploy_id}"): "_get_deploy",
    ("POST", "/deploys/{deploy_id}/cancel"): "_cancel_deploy",
    ("PUT", "/deploys/{deploy_id}/files/{path}"): "_upload_deploy_file",
    ("GET", "/sites/{site_id}/builds"): "_list_site_builds",
    ("POST", "/sites/{site_id}/builds"): "_create_site_build",
    ("GET", "/builds/{build_id}"): "_get_build",
    ("GET", "/sites/{site_id}/build_hooks"): "_list_build_hooks",
    ("POST", "/sites/{site_id}/build_hooks"): "_create_build_hook",
    ("GET", "/accounts"): "_list_accounts",
    ("GET", "/accounts/{account_id}/env"): "_get_env_vars",
    ("GET", "/user"): "_get_user",
}

ROUTES: tuple[tuple[str, str], ...] = tuple(_HANDLERS)

_ROUTE_TABLE = sorted(
    (
        (method, template, *compile_template(template), handler)
        for (method, template), handler in _HANDLERS.items()
    ),
    key=lambda r: -_literal_segments(r[1]),
)


# ---------------------------------------------------------------------------------------------
# Records and errors
# ---------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the fake received it (and, once answered, what it answered)."""

    method: str
    path: str  # raw path, without the query
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any = None  # parsed JSON body, or None
    route: str | None = None  # the ROUTES template that served it (api routes only)
    status: int | None = None  # None: no response (dropped, or still running)
    response: Any = None  # parsed JSON response body, or None
    injected: bool = False  # answered (or dropped) by an inject() fault
    time: float = field(default_factory=time.time)


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None
    times: int
    headers: dict[str, str]
    body: dict[str, Any] | None
    drop: bool


@dataclass
class _Ctx:
    method: str
    params: dict[str, str]
    query: dict[str, str]
    json: Any
    body: bytes
    headers: dict[str, str]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _object_id() -> str:
    """Netlify deploy/build/hook ids look like 24 hex digits (Mongo ObjectIds)."""
    return uuid.uuid4().hex[:24]


def _file_key(path: str) -> str:
    """Canonical key of a deploy file: one leading slash ("index.html" -> "/index.html")."""
    return "/" + path.lstrip("/")


def _mime(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


# ---------------------------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, fake: FakeNetlify) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _BadRequest(Exception):
    pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeNetlify/1.0"
    timeout = 120  # idle keep-alive connections; stop() closes them at once anyway
    server: _Server

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _any(self) -> None:
        try:
            self.server.fake._handle(self)
        except (TimeoutError, ConnectionError, BrokenPipeError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("connection closed inside a chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError as exc:
                    raise _BadRequest(f"bad chunk size line {line[:40]!r}") from exc
                if size == 0:
                    while True:  # trailers, then the blank line
                        trailer = self.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    return b"".join(chunks)
                data = self.rfile.read(size)
                if len(data) != size:
                    raise ConnectionError("connection closed inside a chunk")
                chunks.append(data)
                self.rfile.readline(3)  # the CRLF after the chunk
        raw = self.headers.get("Content-Length")
        if not raw:
            return b""
        try:
            length = int(raw)
        except ValueError as exc:
            raise _BadRequest(f"bad Content-Length {raw!r}") from exc
        data = self.rfile.read(length) if length > 0 else b""
        if len(data) != length:
            raise ConnectionError("connection closed inside the body")
        return data

    def send_payload(
        self,
        status: int,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        if raw is None:
            raw = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if raw or payload is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # end_headers(), with the body in the same write: one send and one segment per answer
        self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
        if self.command != "HEAD" and raw:
            self._headers_buffer.append(raw)  # type: ignore[attr-defined]
        self.flush_headers()

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------------------------------------
# The fake
# ---------------------------------------------------------------------------------------------


class ServedFake:
    """What every fake API server shares: serving on a port of 127.0.0.1, on a thread.

    A subclass sets ``name`` and ``api_prefix``, and makes the server in :meth:`_server_for`.
    """

    name = "fake"
    api_prefix = ""
    base = ""
    api_url = ""
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def _server_for(self) -> _Server:
        raise NotImplementedError

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = self._server_for()
        port = server.server_address[1]
        self.base = f"http://127.0.0.1:{port}"
        self.api_url = self.base + self.api_prefix
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-{port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        with server.connections_lock:
            connections = list(server.connections)
        for conn in connections:  # idle keep-alive connections: end their threads now
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    _faults: list[_Fault]

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        """The first injected fault for this request, used up by one (or its last) time."""
        for fault in self._faults:
            if fault.method in ("*", method) and fault.pattern.search(path):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeNetlify(ServedFake):
    """An in-process fake of the Netlify API (see the module docstring)."""

    name = "fake-netlify"
    api_prefix = API_PREFIX

    def _server_for(self) -> _Server:
        load_spec()  # fail here, clearly, if the spec is missing
        _spec_index()
        return _Server(self)

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self._lock = threading.RLock()

        self.sites: dict[str, dict[str, Any]] = {}
        self.deploys: dict[str, dict[str, Any]] = {}
        self.builds: dict[str, dict[str, Any]] = {}
        self.build_hooks: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, bytes] = {}
        self.uploads: list[tuple[str, str, str]] = []
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.ready_after_polls: int = 1
        self.fail_next_deploy: str | None = None
        self._faults: list[_Fault] = []
        self._deploy_files: dict[str, dict[str, str]] = {}
        self._deploy_meta: dict[str, dict[str, Any]] = {}
        # digest -> the deploys that list it while the fake lacks it (each deploy's own set
        # is its meta's "lacks"): an upload settles them at once, no manifest is re-read.
        self._waiting: dict[str, set[str]] = {}
        self._build_meta: dict[str, dict[str, Any]] = {}

        created = _now()
        self.user: dict[str, Any] = {
            "id": _object_id(),
            "uid": _object_id(),
            "full_name": "Fake User",
            "avatar_url": None,
            "email": "fake-user@example.invalid",
            "affiliate_id": "",
            "site_count": 0,
            "created_at": created,
            "last_login": created,
            "login_providers": ["email"],
            "onboarding_progress": {"slides": "done"},
        }
        self.account: dict[str, Any] = {
            "id": _object_id(),
            "name": "Fake Team",
            "slug": "fake-team",
            "type": "team",
            "capabilities": {
                "sites": {"included": 500, "used": 0},
                "collaborators": {"included": 1, "used": 1},
            },
            "billing_name": "Fake Team",
            "billing_email": "fake-user@example.invalid",
            "billing_details": "",
            "billing_period": "monthly",
            "payment_method_id": None,
            "type_name": "Starter",
            "type_id": "starter",
            "owner_ids": [self.user["id"]],
            "roles_allowed": ["Owner"],
            "created_at": created,
            "updated_at": created,
        }

    # -- lifecycle ------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all state and faults; knobs back to defaults (ready_after_polls=1, ...)."""
        with self._lock:
            for store in (
                self.sites,
                self.deploys,
                self.builds,
                self.build_hooks,
                self.blobs,
                self._deploy_files,
                self._deploy_meta,
                self._waiting,
                self._build_meta,
            ):
                store.clear()
            for seq in (self.uploads, self.requests, self.violations, self._faults):
                seq.clear()
            self.ready_after_polls = 1
            self.fail_next_deploy = None
            self.user["site_count"] = 0
            self.account["capabilities"]["sites"]["used"] = 0

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

        ``method`` "*" matches any method. ``path_pattern`` is searched (re.search) in the raw
        path without the query, e.g. ``r"/deploys/[^/]+/files/"``.
        """
        if status is None and not drop:
            raise ValueError("inject() needs a status or drop=True")
        if times < 1:
            raise ValueError("times must be >= 1")
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
    def rate_limit_headers(seconds: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "500",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(time.time() + seconds)),
            "Retry-After": str(int(seconds)),
        }

    def add_site(self, name: str = "my-site", **fields: Any) -> dict[str, Any]:
        """Create a site directly; ``fields`` must be properties of the spec's ``site``."""
        if self._server is None:
            raise RuntimeError("start() the fake before add_site(): site URLs need its port")
        allowed = _spec_index().properties({"$ref": "#/definitions/site"}) or set()
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise ValueError(f"not properties of the spec's site definition: {unknown}")
        with self._lock:
            if any(s["name"] == name for s in self.sites.values()):
                raise ValueError(f"a site named {name!r} already exists")
            site = self._new_site(name)
            site.update(fields)
            return site

    def add_build_hook(self, site_id: str, title: str = "hook", branch: str | None = None) -> str:
        """Create a build hook on a site; returns its URL (POST to it, no auth, to build)."""
        with self._lock:
            if site_id not in self.sites:
                raise KeyError(f"no site {site_id!r}")
            return self._new_hook(site_id, title, branch)["url"]

    def deploy_files(self, deploy_id: str) -> dict[str, str]:
        """The deploy's file manifest: {"/path": sha1} (keys always start with "/")."""
        with self._lock:
            return dict(self._deploy_files[deploy_id])

    def deploy_by_hand(self, site_id: str, changed: dict[str, bytes]) -> str:
        """What a deploy made outside devops-tasks (the UI's drag and drop) leaves: a new
        published deploy of the live files with ``changed`` ({"path": bytes}) replaced."""
        with self._lock:
            site = self.sites[site_id]
            deploy = self._new_deploy(site, draft=False, branch=None, title="by hand")
            published = site.get("published_deploy")
            files = dict(self._deploy_files[published["id"]]) if published else {}
            for path, content in changed.items():
                sha = hashlib.sha1(content).hexdigest()
                self._store(sha, content)
                files[_file_key(path)] = sha
            self._deploy_files[deploy["id"]] = files
            self._finish(deploy)
            return str(deploy["id"])

    # -- request handling -----------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path = split.path or "/"
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        query_names = [k for k, _ in parse_qsl(split.query, keep_blank_values=True)]
        headers = {k.lower(): v for k, v in h.headers.items()}
        try:
            body = h.read_body()
        except _BadRequest as exc:
            h.close_connection = True
            h.send_payload(400, {"code": 400, "message": str(exc)})
            return
        parsed: Any = None
        if body and "json" in _media_type(headers.get("content-type")):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        rec = RecordedRequest(h.command, path, query, headers, body, parsed)
        is_api = path == API_PREFIX or path.startswith(API_PREFIX + "/")
        with self._lock:
            self.requests.append(rec)
            if is_api:
                self.violations.extend(
                    check_request(
                        h.command,
                        path[len(API_PREFIX) :],
                        query_names,
                        headers.get("content-type"),
                        body,
                    )
                )
            fault = self._take_fault(h.command, path)
        if fault is not None:
            rec.injected = True
            if fault.drop:
                h.drop()
                return
            assert fault.status is not None
            payload = fault.body
            if payload is None and fault.status not in (204, 304):
                payload = {"code": fault.status, "message": _phrase(fault.status)}
            rec.status, rec.response = fault.status, payload
            h.send_payload(fault.status, payload, headers=fault.headers)
            return

        status: int
        payload: Any
        extra: dict[str, str] = {}
        raw: bytes | None = None
        content_type = "application/json"
        try:
            if is_api:
                status, payload, extra = self._api(
                    h.command, path[len(API_PREFIX) :], query, parsed, body, headers, rec
                )
            else:
                status, payload, raw, content_type = self._outside(h.command, path, query)
        except _ApiError as exc:
            status, payload = exc.status, {"code": exc.status, "message": exc.message}
        except Exception as exc:  # noqa: BLE001 - a bug in the fake: fail the test loudly
            with self._lock:
                self.violations.append(f"FakeNetlify internal error on {h.command} {path}: {exc!r}")
            status, payload = 500, {"code": 500, "message": f"FakeNetlify bug: {exc!r}"}
        rec.status, rec.response = status, payload
        h.send_payload(status, payload, raw=raw, content_type=content_type, headers=extra)

    def _api(
        self,
        method: str,
        api_path: str,
        query: dict[str, str],
        parsed: Any,
        body: bytes,
        headers: dict[str, str],
        rec: RecordedRequest,
    ) -> tuple[int, Any, dict[str, str]]:
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or value.strip() != self.token:
            raise _ApiError(401, "Access Denied")
        for route_method, template, regex, names, handler in _ROUTE_TABLE:
            if route_method != method:
                continue
            m = regex.match(api_path)
            if m is None:
                continue
            rec.route = template
            params = {n: unquote(v) for n, v in zip(names, m.groups(), strict=False)}
            ctx = _Ctx(method, params, query, parsed, body, headers)
            if body and parsed is None and "json" in _media_type(headers.get("content-type")):
                raise _ApiError(400, "request body is not valid JSON")
            with self._lock:
                result = getattr(self, handler)(ctx)
                status, payload = result[0], result[1]
                extra = result[2] if len(result) > 2 else {}
                # Copy while holding the lock: payloads reference live state.
                payload = json.loads(json.dumps(payload)) if payload is not None else None
            return status, payload, extra
        raise _ApiError(404, "Not Found")

    def _outside(
        self, method: str, path: str, query: dict[str, str]
    ) -> tuple[int, Any, bytes | None, str]:
        parts = path.split("/")
        if path.startswith("/telemetry"):
            return 200, {}, None, "application/json"
        if method in ("GET", "HEAD"):
            if len(parts) >= 3 and parts[1] == "live":
                return self._serve_content("live", parts[2], "/".join(parts[3:]))
            if len(parts) >= 3 and parts[1] == "preview":
                return self._serve_content("preview", parts[2], "/".join(parts[3:]))
            if re.fullmatch(r"/site/[^/]+/integrations/safe", path) or re.fullmatch(
                r"/team/[^/]+/integrations/installations/meta/[^/]+", path
            ):
                return 200, [], None, "application/json"
        if method == "POST" and len(parts) == 3 and parts[1] == "build_hooks":
            with self._lock:
                hook = self.build_hooks.get(parts[2])
                if hook is None:
                    raise _ApiError(404, "Not Found")
                branch = query.get("trigger_branch") or hook.get("branch")
                self._new_build(
                    hook["site_id"],
                    branch=branch,
                    title=query.get("trigger_title") or f"Build hook: {hook['title']}",
                )
            return 200, None, b"", "text/plain"
        raise _ApiError(404, "Not Found")

    def _serve_content(
        self, kind: str, ident: str, rest: str
    ) -> tuple[int, Any, bytes | None, str]:
        rel = unquote(rest)
        if rel == "" or rel.endswith("/"):
            rel += "index.html"
        key = _file_key(rel)
        with self._lock:
            if kind == "live":
                site = self.sites.get(ident)
                deploy = site.get("published_deploy") if site else None
            else:
                deploy = self.deploys.get(ident)
            content = None
            if deploy is not None and deploy.get("state") == "ready":
                sha = self._deploy_files.get(deploy["id"], {}).get(key)
                content = self.blobs.get(sha) if sha else None
        if content is None:
            return 404, None, b"Not Found\n", "text/plain; charset=utf-8"
        return 200, None, content, _mime(key)

    # -- state helpers (call with the lock held) -------------------------------------------

    def _new_site(self, name: str) -> dict[str, Any]:
        sid = str(uuid.uuid4())
        now = _now()
        live = f"{self.base}/live/{sid}"
        site: dict[str, Any] = {
            "id": sid,
            "state": "current",
            "plan": "nf_team_dev",
            "name": name,
            "custom_domain": None,
            "domain_aliases": [],
            "branch_deploy_custom_domain": None,
            "deploy_preview_custom_domain": None,
            "password": None,
            "notification_email": None,
            "url": live,
            "ssl_url": live,
            "admin_url": f"{self.base}/app/sites/{name}",
            "screenshot_url": None,
            "created_at": now,
            "updated_at": now,
            "user_id": self.user["id"],
            "ssl": False,
            "force_ssl": False,
            "managed_dns": True,
            "deploy_url": live,
            "published_deploy": None,
            "account_id": self.account["id"],
            "account_name": self.account["name"],
            "account_slug": self.account["slug"],
            "git_provider": None,
            "deploy_hook": None,
            "capabilities": {},
            "processing_settings": {"html": {"pretty_urls": True}},
            "build_settings": {
                "cmd": "",
                "dir": "",
                "functions_dir": "",
                "env": {},
                "repo_branch": "main",
                "allowed_branches": ["main"],
                "stop_builds": False,
            },
            "build_image": "noble",
            "functions_region": "us-east-2",
            "prevent_non_git_prod_deploys": False,
        }
        self.sites[sid] = site
        self.user["site_count"] = len(self.sites)
        self.account["capabilities"]["sites"]["used"] = len(self.sites)
        return site

    def _site(self, site_id: str) -> dict[str, Any]:
        site = self.sites.get(site_id)
        if site is None:  # by id only: netlify-cli then falls back to GET /sites?name=...
            raise _ApiError(404, "Not Found")
        return site

    def _deploy(self, deploy_id: str, site: dict[str, Any] | None = None) -> dict[str, Any]:
        deploy = self.deploys.get(deploy_id)
        if deploy is None or (site is not None and deploy["site_id"] != site["id"]):
            raise _ApiError(404, "Not Found")
        return deploy

    def _new_deploy(
        self,
        site: dict[str, Any],
        *,
        draft: bool,
        branch: str | None,
        title: str | None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        did = _object_id()
        now = _now()
        preview = f"{self.base}/preview/{did}"
        main_branch = (site.get("build_settings") or {}).get("repo_branch") or "main"
        if draft:
            context = "deploy-preview"
        elif branch and branch != main_branch:
            context = "branch-deploy"
        else:
            context = "production"
        deploy: dict[str, Any] = {
            "id": did,
            "site_id": site["id"],
            "user_id": self.user["id"],
            "build_id": None,
            "state": "new",
            "name": site["name"],
            "url": site["url"],
            "ssl_url": site["ssl_url"],
            "admin_url": site["admin_url"],
            "deploy_url": preview,
            "deploy_ssl_url": preview,
            "screenshot_url": None,
            "review_id": None,
            "draft": draft,
            "required": [],
            "required_functions": [],
            "error_message": None,
            "branch": branch,
            "commit_ref": None,
            "commit_url": None,
            "skipped": False,
            "created_at": now,
            "updated_at": now,
            "published_at": None,
            "title": title,
            "context": context,
            "locked": False,
            "review_url": None,
            "framework": None,
        }
        deploy.update(extra or {})
        self.deploys[did] = deploy
        self._deploy_files[did] = {}
        self._deploy_meta[did] = {"polls": 0, "preparing": False, "lacks": set()}
        return deploy

    def _set_files(self, deploy: dict[str, Any], body: dict[str, Any]) -> None:
        files = body.get("files")
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and _SHA1.match(v) for k, v in files.items()
        ):
            raise _ApiError(422, "files must map each path to the SHA1 hex digest of its content")
        manifest = {_file_key(k): v.lower() for k, v in files.items()}
        did = deploy["id"]
        meta = self._deploy_meta[did]
        self._deploy_files[did] = manifest
        for sha in meta["lacks"]:  # a second map replaces the first
            self._waiting[sha].discard(did)
        required = self._missing(manifest)
        meta["lacks"] = set(required)
        for sha in required:
            self._waiting.setdefault(sha, set()).add(did)
        deploy["updated_at"] = _now()
        if body.get("async"):
            deploy["state"] = "preparing"
            deploy["required"] = []
            meta["preparing"] = True
        else:
            deploy["required"] = required
            deploy["state"] = "uploading" if required else "processing"
            self._advance(deploy, poll=False)

    def _missing(self, manifest: dict[str, str]) -> list[str]:
        """The manifest's digests not uploaded yet, each once, in manifest order."""
        return list(dict.fromkeys(s for s in manifest.values() if s not in self.blobs))

    def _store(self, sha: str, content: bytes) -> None:
        """Keep a content; the deploys that lacked only it can go on."""
        self.blobs[sha] = content
        for did in self._waiting.pop(sha, ()):
            self._deploy_meta[did]["lacks"].discard(sha)

    def _advance(self, deploy: dict[str, Any], *, poll: bool) -> None:
        """Move a deploy along on a GET of it (poll=True) or after an upload."""
        did = deploy["id"]
        meta = self._deploy_meta[did]
        if deploy["state"] in ("new", "ready", "error", "building"):
            return
        if meta["preparing"]:
            if poll:  # the first GET of an async deploy reveals the diff
                meta["preparing"] = False
                deploy["required"] = self._missing(self._deploy_files[did])
                deploy["state"] = "prepared"
                deploy["updated_at"] = _now()
            return
        if meta["lacks"]:
            return
        if deploy["state"] != "processing":
            deploy["state"] = "processing"
            deploy["updated_at"] = _now()
        if poll:
            meta["polls"] += 1
        if meta["polls"] >= self.ready_after_polls:
            self._finish(deploy)

    def _finish(self, deploy: dict[str, Any]) -> None:
        now = _now()
        deploy["updated_at"] = now
        if self.fail_next_deploy is not None:
            deploy["state"] = "error"
            deploy["error_message"] = self.fail_next_deploy
            self.fail_next_deploy = None
            return
        deploy["state"] = "ready"
        if deploy["context"] == "production":
            self._publish(deploy)

    def _publish(self, deploy: dict[str, Any]) -> None:
        now = _now()
        site = self.sites[deploy["site_id"]]
        deploy["published_at"] = now
        deploy["updated_at"] = now
        site["published_deploy"] = deploy
        site["deploy_url"] = deploy["deploy_url"]
        site["updated_at"] = now

    def _new_hook(self, site_id: str, title: str, branch: str | None) -> dict[str, Any]:
        hid = _object_id()
        hook = {
            "id": hid,
            "title": title,
            "branch": branch,
            "url": f"{self.base}/build_hooks/{hid}",
            "site_id": site_id,
            "created_at": _now(),
        }
        self.build_hooks[hid] = hook
        return hook

    def _new_build(self, site_id: str, *, branch: str | None, title: str | None) -> dict[str, Any]:
        site = self.sites[site_id]
        published = site.get("published_deploy")
        deploy = self._new_deploy(site, draft=False, branch=branch, title=title)
        deploy["state"] = "building"
        if published is not None:  # a rebuild of what is live (there is no repository)
            self._deploy_files[deploy["id"]] = dict(self._deploy_files[published["id"]])
        bid = _object_id()
        deploy["build_id"] = bid
        build = {
            "id": bid,
            "deploy_id": deploy["id"],
            "sha": None,
            "done": False,
            "error": None,
            "created_at": _now(),
        }
        self.builds[bid] = build
        self._build_meta[bid] = {"site_id": site_id, "gets": 0}
        return build

    @staticmethod
    def _page(items: list[Any], query: dict[str, str]) -> list[Any]:
        try:
            page = int(query.get("page") or 1)
            per_page = int(query.get("per_page") or 100)
        except ValueError as exc:
            raise _ApiError(400, "page and per_page must be integers") from exc
        if page < 1 or per_page < 1:
            raise _ApiError(400, "page and per_page must be positive")
        return items[(page - 1) * per_page : page * per_page]

    # -- /api/v1 handlers (called with the lock held) ---------------------------------------

    def _list_sites(self, c: _Ctx) -> tuple[int, Any]:
        sites = list(self.sites.values())
        name = c.query.get("name")
        if name:
            needle = name.casefold()
            sites = [s for s in sites if needle in s["name"].casefold() or name == s["id"]]
        return 200, self._page(sites, c.query)

    def _create_site(self, c: _Ctx) -> tuple[int, Any]:
        body = c.json if isinstance(c.json, dict) else {}
        name = body.get("name")
        if name is None:
            name = f"fake-site-{uuid.uuid4().hex[:8]}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise _ApiError(422, "name must be lower-case letters, digits and hyphens")
        if any(s["name"] == name for s in self.sites.values()):
            raise _ApiError(422, f"name {name!r} is already taken")
        site = self._new_site(name)
        for key in (
            "custom_domain",
            "password",
            "notification_email",
            "force_ssl",
            "processing_settings",
        ):
            if key in body:
                site[key] = body[key]
        return 201, site

    def _get_site(self, c: _Ctx) -> tuple[int, Any]:
        return 200, self._site(c.params["site_id"])

    def _list_site_deploys(self, c: _Ctx) -> tuple[int, Any]:
        site = self._site(c.params["site_id"])
        deploys = [d for d in reversed(list(self.deploys.values())) if d["site_id"] == site["id"]]
        if c.query.get("state"):
            deploys = [d for d in deploys if d["state"] == c.query["state"]]
        if c.query.get("branch"):
            deploys = [d for d in deploys if d["branch"] == c.query["branch"]]
        if c.query.get("production") == "true":
            deploys = [d for d in deploys if d["context"] == "production"]
        if c.query.get("deploy-previews") == "true":
            deploys = [d for d in deploys if d["context"] == "deploy-preview"]
        if c.query.get("latest-published") == "true":
            published = site.get("published_deploy")
            deploys = [d for d in deploys if published is not None and d is published]
        return 200, self._page(deploys, c.query)

    def _list_site_files(self, c: _Ctx) -> tuple[int, Any]:
        """The files of the site's published deploy, each with its SHA1 (listSiteFiles)."""
        published = self._site(c.params["site_id"]).get("published_deploy")
        files = self._deploy_files.get(published["id"], {}) if published else {}
        return 200, [
            {
                "id": path,
                "path": path,
                "sha": sha,
                "mime_type": _mime(path),
                "size": len(self.blobs.get(sha, b"")),
            }
            for path, sha in sorted(files.items())
        ]

    def _create_site_deploy(self, c: _Ctx) -> tuple[int, Any]:
        site = self._site(c.params["site_id"])
        body = c.json if isinstance(c.json, dict) else {}
        if c.body and not isinstance(c.json, dict):
            raise _ApiError(422, "the body must be a JSON object (deployFiles)")
        draft = bool(body.get("draft", False))
        branch = body.get("branch") or None
        # The spec takes `title` as a query parameter; a body `title` is a recorded violation.
        title = c.query.get("title") or body.get("title")
        deploy = self._new_deploy(
            site,
            draft=draft,
            branch=branch,
            title=title,
            extra={"framework": body.get("framework")},
        )
        if "files" in body:
            self._set_files(deploy, body)
        return 200, deploy

    def _get_site_deploy(self, c: _Ctx) -> tuple[int, Any]:
        deploy = self._deploy(c.params["deploy_id"], self._site(c.params["site_id"]))
        self._advance(deploy, poll=True)
        return 200, deploy

    def _update_site_deploy(self, c: _Ctx) -> tuple[int, Any]:
        deploy = self._deploy(c.params["deploy_id"], self._site(c.params["site_id"]))
        body = c.json if isinstance(c.json, dict) else {}
        if deploy["state"] not in ("new", "preparing", "prepared", "uploading"):
            raise _ApiError(
                422, f"deploy {deploy['id']} is {deploy['state']}; it can no longer be updated"
            )
        # draft/branch (so the context) are fixed when the deploy is created: netlify-cli
        # creates a draft with {"draft": true}, then PUTs the files with "draft": false.
        if body.get("framework"):
            deploy["framework"] = body["framework"]
        if c.query.get("commit_ref"):
            deploy["commit_ref"] = c.query["commit_ref"]
        if "files" in body:
            self._set_files(deploy, body)
        return 200, deploy

    def _get_deploy(self, c: _Ctx) -> tuple[int, Any]:
        deploy = self._deploy(c.params["deploy_id"])
        self._advance(deploy, poll=True)
        return 200, deploy

    def _restore_site_deploy(self, c: _Ctx) -> tuple[int, Any]:
        deploy = self._deploy(c.params["deploy_id"], self._site(c.params["site_id"]))
        if deploy["state"] != "ready":
            raise _ApiError(
                422,
                f"deploy {deploy['id']} is {deploy['state']}, not ready; "
                "only ready deploys can be published",
            )
        self._publish(deploy)
        return 201, deploy

    def _cancel_deploy(self, c: _Ctx) -> tuple[int, Any]:
        deploy = self._deploy(c.params["deploy_id"])
        if deploy["state"] in ("ready", "error"):
            raise _ApiError(422, f"deploy {deploy['id']} is already {deploy['state']}")
        deploy["state"] = "error"
        deploy["error_message"] = "Canceled"
        deploy["updated_at"] = _now()
        return 201, deploy

    def _upload_deploy_file(self, c: _Ctx) -> tuple[int, Any]:
        deploy = self._deploy(c.params["deploy_id"])
        key = _file_key(c.params["path"])
        sha = hashlib.sha1(c.body).hexdigest()
        expected = self._deploy_files[deploy["id"]].get(key)
        if expected is None:
            raise _ApiError(422, f"{key} is not a file of deploy {deploy['id']}")
        if expected != sha:
            raise _ApiError(
                422,
                f"SHA1 of the uploaded body for {key} is {sha}, but the deploy lists {expected}",
            )
        if "size" in c.query and c.query["size"] != str(len(c.body)):
            raise _ApiError(422, f"size={c.query['size']} but the body has {len(c.body)} bytes")
        if deploy["state"] in ("ready", "error"):
            raise _ApiError(
                422, f"deploy {deploy['id']} is {deploy['state']}; it no longer accepts files"
            )
        self._store(sha, c.body)
        self.uploads.append((deploy["id"], key, sha))
        self._advance(deploy, poll=False)
        return 200, {
            "id": key,
            "path": key,
            "sha": sha,
            "mime_type": _mime(key),
            "size": len(c.body),
        }

    def _list_site_builds(self, c: _Ctx) -> tuple[int, Any]:
        site = self._site(c.params["site_id"])
        builds = [
            b
            for bid, b in reversed(list(self.builds.items()))
            if self._build_meta[bid]["site_id"] == site["id"]
        ]
        return 200, self._page(builds, c.query)

    def _create_site_build(self, c: _Ctx) -> tuple[int, Any]:
        site = self._site(c.params["site_id"])
        # The spec's inputs are query parameters (and a multipart `zip`); a JSON body is
        # recorded as a violation but still honoured.
        body = c.json if isinstance(c.json, dict) else {}
        branch = c.query.get("branch") or body.get("branch") or None
        title = c.query.get("title") or body.get("title")
        return 200, self._new_build(site["id"], branch=branch, title=title)

    def _get_build(self, c: _Ctx) -> tuple[int, Any]:
        build = self.builds.get(c.params["build_id"])
        if build is None:
            raise _ApiError(404, "Not Found")
        meta = self._build_meta[build["id"]]
        meta["gets"] += 1
        if not build["done"] and meta["gets"] >= 1:
            build["done"] = True
            deploy = self.deploys.get(build["deploy_id"])
            if deploy is not None and deploy["state"] == "building":
                deploy["state"] = "processing"
                self._finish(deploy)
                if deploy["state"] == "error":
                    build["error"] = deploy["error_message"]
        return 200, build

    def _list_build_hooks(self, c: _Ctx) -> tuple[int, Any]:
        site = self._site(c.params["site_id"])
        return 200, [h for h in self.build_hooks.values() if h["site_id"] == site["id"]]

    def _create_build_hook(self, c: _Ctx) -> tuple[int, Any]:
        site = self._site(c.params["site_id"])
        body = c.json if isinstance(c.json, dict) else {}
        return 201, self._new_hook(
            site["id"], body.get("title") or "hook", body.get("branch") or None
        )

    def _list_accounts(self, c: _Ctx) -> tuple[int, Any]:
        return 200, [self.account]

    def _get_env_vars(self, c: _Ctx) -> tuple[int, Any]:
        # netlify-cli passes the account *slug* as account_id.
        if c.params["account_id"] not in (self.account["id"], self.account["slug"]):
            raise _ApiError(404, "Not Found")
        if c.query.get("site_id"):
            self._site(c.query["site_id"])
        return 200, []

    def _get_user(self, c: _Ctx) -> tuple[int, Any]:
        return 200, self.user


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
