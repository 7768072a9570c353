"""One way to talk HTTP to providers: a requests session with timeouts and a retry policy.

Every call has a timeout. Rate limits (429) are retried after the time the server asks for,
from ``Retry-After`` (seconds or an HTTP date) or ``X-RateLimit-Reset`` (epoch seconds),
never sooner than a floor nor later than a cap. Server errors (500, 502, 503, 504) and
dropped connections are retried with exponential backoff and jitter. Client errors (400,
401, 403, 404, 422, ...) are never retried: sending the same request again cannot help.
"""

from __future__ import annotations

import email.utils
import os
import time
from typing import TYPE_CHECKING, Any

from urllib3.util.retry import Retry

from . import __version__

if TYPE_CHECKING:
    import requests
    from urllib3.response import BaseHTTPResponse

__all__ = [
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "RetryPolicy",
    "session",
]

USER_AGENT = f"devops-tasks/{__version__} (+https://pypi.org/project/devops-tasks/)"
#: (connect, read) seconds for every request that does not say otherwise.
DEFAULT_TIMEOUT = (10.0, 120.0)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


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
        http.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        http.trust_env = False
    return http
