"""The Netlify APIs a benchmark deploys to: the project's own fake, or any other server.

``netlify_vs_cli.py`` times both clients on each server it is given, one after the other:

- :class:`ProjectFake` — ``tests/fake_netlify.py``, served from threads of the benchmark's
  process (it sees every request, and checks each against Netlify's OpenAPI description);
- :class:`HttpNetlify` — any server that speaks Netlify's API, reached only through that API:
  ``tests/independent_netlify.mjs`` (a Node server written from the OpenAPI description and
  netlify-cli's client, apart from the project's fake), or one a reviewer runs
  (``--server URL``). Whether a deploy went live is asked of the API itself. Request counts come
  from its ``/__stats`` where it has one, else they are not known.

A server hands out marks (:meth:`mark`) so that a deploy's requests are told apart from the
ones before it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from fake_netlify import API_PREFIX, FakeNetlify

UPLOAD_ROUTE = "/deploys/{deploy_id}/files/{path}"


class ServerError(Exception):
    """The server refused what the benchmark itself asked of it (a site, a look at a deploy),
    or could not be started (``status`` 0)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Seen:
    """What a server saw of one deploy (None where the server cannot tell)."""

    requests: int | None = None
    uploads: int | None = None
    by_kind: Counter[str] = field(default_factory=Counter)
    violations: int | None = None
    server_cpu: float | None = None  # seconds of the server's CPU while it ran
    log: list[str] = field(default_factory=list)  # the requests, for a failure's report


class NetlifyServer(Protocol):
    """A Netlify API both clients are pointed at."""

    label: str  # what the report calls it
    base: str  # scheme://host:port
    api_url: str  # base + /api/v1
    token: str

    def reset(self) -> None:
        """Forget earlier sites and files where the server can (a first deploy is whole)."""

    def add_site(self, name: str) -> dict[str, Any]:
        """A new site, as the API describes it."""

    def mark(self) -> Any:
        """A point in the server's records, for :meth:`seen_since`."""

    def seen_since(self, mark: Any) -> Seen:
        """The requests since ``mark``."""

    def went_live(self, deploy_id: str, site_id: str, expected: set[str]) -> str | None:
        """None when the deploy is ready, published, and serves every ``expected`` path;
        else what is wrong."""


def _kind(path: str, route: str | None) -> str:
    if route == UPLOAD_ROUTE:
        return "upload"
    if path.startswith(API_PREFIX):
        return "api"
    if path.startswith("/telemetry"):
        return "telemetry"
    return "other"


class ProjectFake:
    """``tests/fake_netlify.py`` in this process: every request recorded and spec-checked."""

    label = "project's fake"

    def __init__(self, token: str) -> None:
        self.fake = FakeNetlify(token=token).start()
        self.base, self.api_url, self.token = self.fake.base, self.fake.api_url, token

    def stop(self) -> None:
        self.fake.stop()

    def reset(self) -> None:
        self.fake.reset()

    def add_site(self, name: str) -> dict[str, Any]:
        return self.fake.add_site(name)

    def mark(self) -> tuple[int, int, int, float]:
        fake = self.fake
        return len(fake.requests), len(fake.uploads), len(fake.violations), time.process_time()

    def seen_since(self, mark: tuple[int, int, int, float]) -> Seen:
        first_request, first_upload, first_violation, cpu = mark
        requests = self.fake.requests[first_request:]
        log = []
        for r in requests:
            if r.route == UPLOAD_ROUTE:
                continue
            query = "&".join(f"{k}={v}" for k, v in r.query.items())
            message = ""
            if r.status is not None and r.status >= 400 and isinstance(r.response, dict):
                message = f"  {r.response.get('message', '')}"
            log.append(f"{r.status} {r.method} {r.path}{'?' + query if query else ''}{message}")
        return Seen(
            requests=len(requests),
            uploads=len(self.fake.uploads) - first_upload,
            by_kind=Counter(_kind(r.path, r.route) for r in requests),
            violations=len(self.fake.violations) - first_violation,
            server_cpu=time.process_time() - cpu,  # the fake's threads are this process's
            log=log,
        )

    def went_live(self, deploy_id: str, site_id: str, expected: set[str]) -> str | None:
        deploy = self.fake.deploys.get(deploy_id)
        if deploy is None:
            return f"the fake has no deploy {deploy_id}"
        if deploy["state"] != "ready":
            return f"deploy {deploy_id} is {deploy['state']}, not ready"
        published = self.fake.sites[site_id].get("published_deploy") or {}
        if published.get("id") != deploy_id:
            return f"deploy {deploy_id} is not the site's published deploy"
        return _compare(deploy_id, expected, set(self.fake.deploy_files(deploy_id)))


def _compare(deploy_id: str, expected: set[str], served: set[str]) -> str | None:
    """None when every path of the site is served (a client may add files of its own:
    netlify-cli does)."""
    missing = expected - served
    if missing:
        example = sorted(missing)[:3]
        return f"deploy {deploy_id} lacks {len(missing)} of the site's files, e.g. {example}"
    return None


class HttpNetlify:
    """A Netlify API reached over HTTP only, as the clients reach it."""

    def __init__(self, base: str, token: str, label: str, pid: int | None = None) -> None:
        self.base = base.rstrip("/")
        if self.base.endswith(API_PREFIX):
            self.base = self.base[: -len(API_PREFIX)]
        self.api_url, self.token, self.label = self.base + API_PREFIX, token, label
        self.pid = pid  # the server's process, when it runs on this machine: its CPU is read

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.api_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            said = exc.read()[:200].decode(errors="replace")
            message = f"{method} {self.api_url}{path}: HTTP {exc.code} {said}"
            raise ServerError(message, exc.code) from None

    def _control(self, method: str, path: str) -> Any:
        """The server's own benchmark endpoint (``/__stats``, ``/__reset``), if it has one."""
        request = urllib.request.Request(self.base + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read() or b"null")
        except (urllib.error.URLError, ValueError, OSError):
            return None

    def reset(self) -> None:
        self._control("POST", "/__reset")

    def add_site(self, name: str) -> dict[str, Any]:
        site: dict[str, Any] = self._call("POST", "/sites", {"name": name})
        return site

    def mark(self) -> tuple[dict[str, int] | None, float | None]:
        stats = self._control("GET", "/__stats")
        by_route = stats.get("by_route") if isinstance(stats, dict) else None
        return by_route, self._cpu()

    def seen_since(self, mark: tuple[dict[str, int] | None, float | None]) -> Seen:
        before, cpu = mark
        now, cpu_now = self.mark()
        seen = Seen(server_cpu=None if cpu is None or cpu_now is None else cpu_now - cpu)
        if before is None or now is None:
            return seen
        counts = Counter({route: n - before.get(route, 0) for route, n in now.items()})
        counts = +counts  # routes with no request since the mark drop out
        seen.requests = sum(counts.values())
        seen.uploads = counts.get(f"PUT {UPLOAD_ROUTE}", 0)
        for route, n in counts.items():
            seen.by_kind["upload" if route.endswith(" " + UPLOAD_ROUTE) else "api"] += n
        seen.log = [f"{n} x {route}" for route, n in sorted(counts.items())]
        return seen

    def _cpu(self) -> float | None:
        if self.pid is None:
            return None
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return None

    def went_live(self, deploy_id: str, site_id: str, expected: set[str]) -> str | None:
        try:
            deploy = self._call("GET", f"/deploys/{quote(deploy_id)}")
            if deploy.get("state") != "ready":
                return f"deploy {deploy_id} is {deploy.get('state')}, not ready"
            site = self._call("GET", f"/sites/{quote(site_id)}")
            if (site.get("published_deploy") or {}).get("id") != deploy_id:
                return f"deploy {deploy_id} is not the site's published deploy"
        except (ServerError, OSError, ValueError, KeyError, TypeError) as exc:
            return f"could not ask the API whether deploy {deploy_id} went live: {exc}"
        try:
            served = {f["path"] for f in self._call("GET", f"/sites/{quote(site_id)}/files")}
        except ServerError as exc:
            if exc.status == 404:  # no listSiteFiles there: ready and published is all it says
                return None
            return f"could not list the files deploy {deploy_id} serves: {exc}"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"could not list the files deploy {deploy_id} serves: {exc}"
        return _compare(deploy_id, expected, served)


@contextlib.contextmanager
def serving(which: str, token: str) -> Iterator[NetlifyServer]:
    """``project`` (the project's fake), ``independent`` (the Node fake, started here), or the
    URL of a Netlify API that is already running (whose ``token`` the clients then send)."""
    if which == "project":
        fake = ProjectFake(token)
        try:
            yield fake
        finally:
            fake.stop()
    elif which == "independent":
        import independent_netlify

        try:
            running = independent_netlify.start(token)
        except RuntimeError as exc:  # no node, or it would not start
            raise ServerError(f"the independent fake: {exc}", 0) from None
        with running:
            yield HttpNetlify(running.base, token, "independent fake", running.process.pid)
    else:
        yield HttpNetlify(which, token, f"API at {which}")
