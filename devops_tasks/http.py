"""One way to talk HTTP to providers: a requests session with timeouts and a retry policy.

Every call has a timeout. Rate limits (429) are retried after the time the server asks for,
from ``Retry-After`` (seconds or an HTTP date) or ``X-RateLimit-Reset`` (epoch seconds),
never sooner than a floor nor later than a cap. Server errors (500, 502, 503, 504) and
dropped connections are retried with exponential backoff and jitter. Client errors (400,
401, 403, 404, 422, ...) are never retried: sending the same request again cannot help.

The policy has two ways in: :func:`session`, a requests session, and :class:`Origin`, one
host's urllib3 pool with the same policy, timeouts and environment settings, at a fraction
of the CPU per request (thousands of uploads) and of the start-up. :func:`watching` lets a
caller hear of each retry as it happens (to send less at once).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlencode, urlsplit

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.retry import Retry

from . import __version__

if TYPE_CHECKING:
    from types import TracebackType

    import requests
    from urllib3.connectionpool import ConnectionPool
    from urllib3.response import BaseHTTPResponse

__all__ = [
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "Answer",
    "Origin",
    "RetryPolicy",
    "Unreachable",
    "session",
    "watching",
]

USER_AGENT = f"devops-tasks/{__version__} (+https://pypi.org/project/devops-tasks/)"
#: (connect, read) seconds for every request that does not say otherwise.
DEFAULT_TIMEOUT = (10.0, 120.0)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

#: Per thread: who hears of each retry (see :func:`watching`).
_listeners = threading.local()


@contextlib.contextmanager
def watching(listener: Callable[[float | None], object]) -> Iterator[None]:
    """Inside the block, each retry this thread's requests make first calls ``listener(wait)``.

    ``wait`` is the pause the server asked for (``Retry-After``, ``X-RateLimit-Reset``; for a
    429 at least the policy's floor), or None when it asked none (a 5xx, a dropped
    connection). Requests are retried exactly as without a listener.
    """
    outer = getattr(_listeners, "listener", None)
    _listeners.listener = listener
    try:
        yield
    finally:
        _listeners.listener = outer


class RetryPolicy(Retry):
    """urllib3's ``Retry``, taught ``X-RateLimit-Reset`` and bounded waits for 429."""

    def __init__(
        self, *args: Any, rate_limit_floor: float = 1.0, rate_limit_cap: float = 60.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.rate_limit_floor = rate_limit_floor
        self.rate_limit_cap = rate_limit_cap

    def new(self, **kwargs: Any) -> RetryPolicy:
        kwargs.setdefault("rate_limit_floor", self.rate_limit_floor)
        kwargs.setdefault("rate_limit_cap", self.rate_limit_cap)
        return super().new(**kwargs)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> RetryPolicy:
        """The next policy, as urllib3's; a thread that is :func:`watching` hears of the retry."""
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        listener = getattr(_listeners, "listener", None)
        if listener is not None:
            listener(self.get_retry_after(response) if response is not None else None)
        return new

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """Seconds to wait: the longest the server asks for, kept within [floor, cap] for 429."""
        asked = [
            w
            for w in (
                _retry_after(response.headers.get("Retry-After")),
                _reset_in(response.headers.get("X-RateLimit-Reset")),
            )
            if w is not None
        ]
        if response.status == 429:
            return min(max(max(asked, default=0.0), self.rate_limit_floor), self.rate_limit_cap)
        return min(max(asked), self.rate_limit_cap) if asked else None


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds, or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    parsed = email.utils.parsedate_tz(value)
    return max(email.utils.mktime_tz(parsed) - time.time(), 0.0) if parsed else None


def _reset_in(value: str | None) -> float | None:
    """``X-RateLimit-Reset`` (epoch seconds) as seconds from now."""
    try:
        return max(float(value) - time.time(), 0.0) if value is not None else None
    except ValueError:
        return None


def default_policy(**overrides: Any) -> RetryPolicy:
    """The retry policy every provider uses unless it has a reason not to."""
    options: dict[str, Any] = {
        "total": 10,
        "connect": 5,
        "read": 5,
        "status": 8,
        "other": 0,
        "status_forcelist": RETRY_STATUSES,
        "allowed_methods": None,  # retry any method: a 429/5xx or reset means "not done"
        "backoff_factor": 0.5,
        "backoff_max": 30.0,
        "backoff_jitter": 0.5,
        "respect_retry_after_header": True,
        "raise_on_status": False,
    }
    options.update(overrides)
    return RetryPolicy(**options)


def session(
    policy: RetryPolicy | None = None,
    pool_size: int = 32,
    headers: dict[str, str] | None = None,
    base_url: str | None = None,
) -> requests.Session:
    """A session that retries by ``policy`` and times out every request by default.

    With ``base_url`` (a session for one API host), the proxy and CA-bundle settings of the
    environment are read once for that host instead of on every request: thousands of
    uploads otherwise spend a fifth of a millisecond each re-reading them.
    """
    import requests  # noqa: PLC0415 - ~60 ms; only commands that use the network pay it
    from requests.adapters import HTTPAdapter  # noqa: PLC0415

    class _TimeoutSession(requests.Session):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
            return super().request(method, url, *args, **kwargs)

    http = _TimeoutSession()
    adapter = HTTPAdapter(
        max_retries=policy or default_policy(), pool_connections=4, pool_maxsize=pool_size
    )
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    http.headers["User-Agent"] = USER_AGENT
    http.headers.update(headers or {})
    if base_url is not None:
        http.proxies = requests.utils.get_environ_proxies(base_url)
        http.verify = _ca_bundle() or True
        http.trust_env = False
    return http


def _ca_bundle() -> str | None:
    """The CA bundle the environment names for requests (and curl), if any."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


def _environ_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``, ...)."""
    import urllib.request  # noqa: PLC0415

    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all") or None


class Unreachable(Exception):
    """No answer at all, even after the retries (refused, reset, timed out); ``reason`` names it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Answer(NamedTuple):
    """A whole HTTP answer: status, headers (any case) and the body, read."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not."""
        return json.loads(self.content)


#: Bodies up to this size leave in the same write as the request's head (see :class:`_OneWrite`).
ONE_WRITE_MAX = 64 * 1024


class _OneWrite(HTTPConnection):
    """A connection that sends a request's head and a small body in one write.

    urllib3 writes the head, then the body: two system calls and two TCP segments (the
    connection has ``TCP_NODELAY``), and two reads for the server, for each of thousands of
    uploads of a few kilobytes. Here the body waits for the head and leaves with it.
    """

    _body: bytes | None = None

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        if (
            isinstance(body, bytes)
            and 0 < len(body) <= ONE_WRITE_MAX
            and not options.get("chunked")
            and not any(name.lower() == "content-length" for name in headers or ())
        ):
            self._body, body = body, None
            headers = {**(headers or {}), "Content-Length": str(len(self._body))}
        try:
            super().request(method, url, body, headers, **options)
        finally:
            self._body = None  # sent with the head, or never (the request failed before)

    def send(self, data: Any) -> None:
        if self._body is not None:
            data, self._body = data + self._body, None
        super().send(data)


class _OneWriteTLS(_OneWrite, HTTPSConnection):
    """:class:`_OneWrite` over TLS (one record, one write)."""


class Origin:
    """Requests to one API host through urllib3 alone: its pool, the policy, the headers.

    ``requests`` spends about as much CPU on each request as everything below it together
    (merging a session's settings and cookies, parsing and re-quoting the URL, looking the
    connection pool up, wrapping the answer), and takes longer to import than urllib3. An
    Origin works all of that out once, for the host of ``base_url``, as :func:`session`
    would (the proxy and CA bundle the environment names, :func:`default_policy`, the
    timeouts, ``User-Agent``), and hands each request straight to the host's connection
    pool: keep-alive connections, one per worker up to ``pool_size``.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        policy: RetryPolicy | None = None,
        pool_size: int = 32,
    ) -> None:
        import urllib3  # noqa: PLC0415

        parts = urllib3.util.parse_url(base_url)
        options: dict[str, Any] = {
            "maxsize": pool_size,
            "retries": policy or default_policy(),
            "timeout": urllib3.Timeout(connect=DEFAULT_TIMEOUT[0], read=DEFAULT_TIMEOUT[1]),
        }
        if parts.scheme == "https":
            import certifi  # noqa: PLC0415 - what requests verifies with by default

            options["ca_certs"] = _ca_bundle() or certifi.where()
        proxy = _environ_proxy(base_url)
        if proxy is None:
            self._pool = urllib3.connection_from_url(base_url, **options)
            self._prefix = ""
        else:
            auth = urllib3.util.parse_url(proxy).auth
            manager = urllib3.ProxyManager(
                proxy,
                proxy_headers=urllib3.make_headers(proxy_basic_auth=unquote(auth or "")),
                **options,
            )
            self._pool = manager.connection_from_url(base_url)
            # Through an HTTP proxy, a plain-HTTP request names the whole URL.
            self._prefix = f"http://{parts.netloc}" if parts.scheme == "http" else ""
        self._pool.ConnectionCls = _OneWriteTLS if parts.scheme == "https" else _OneWrite
        self.policy: RetryPolicy = options["retries"]
        # Less to write and parse per request than requests sends: HTTP/1.1 keeps
        # connections open and accepts any type by default, so nothing says so.
        self.headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
        self.headers.update(headers or {})
        self._errors: tuple[type[Exception], ...] = (urllib3.exceptions.HTTPError, OSError)

    def headers_with(self, extra: Mapping[str, str | None]) -> dict[str, str]:
        """The origin's headers with ``extra``; a None value leaves that header out."""
        return {k: v for k, v in {**self.headers, **extra}.items() if v is not None}

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str | None] | None = None,
    ) -> Answer:
        """:meth:`send` of ``path`` (from the host's root, or a whole URL on this host) with
        ``params`` added to its query, and ``json_body`` (as JSON) or ``body`` as its body;
        ``headers`` as for :meth:`headers_with`."""
        if "://" in path:
            parts = urlsplit(path)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        if params:
            path += ("&" if "?" in path else "?") + urlencode(params)
        extra = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, allow_nan=False).encode()
            extra["Content-Type"] = "application/json"
        return self.send(method, path, body, self.headers_with(extra))

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """``method path`` (from the host's root, with its query) and the whole answer.

        ``headers`` are all the request's headers (see :meth:`headers_with`); by default the
        origin's. Raises :class:`Unreachable` when no answer came, even after the retries.
        """
        try:
            response = self._pool.urlopen(
                method,
                self._prefix + path,
                body=body,
                headers=headers or self.headers,
                redirect=False,
                assert_same_host=False,
            )
        except self._errors as exc:
            cause = getattr(exc, "reason", None) or exc
            raise Unreachable(type(cause).__name__) from None
        return Answer(response.status, response.headers, response.data)
