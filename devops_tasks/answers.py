"""What a provider's HTTP answer means to a user, and where a provider's token may go.

Apart from :mod:`devops_tasks.http` (and its urllib3), so that code which only judges answers
or URLs (a deploy's GitHub report when it is switched off) loads nothing of the HTTP stack.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple
from urllib.parse import urlsplit

from .errors import DevopsError, ErrorCode

__all__ = ["StatusFixes", "status_error", "token_may_go_to"]


class StatusFixes(NamedTuple):
    """What a user can do about each kind of refusal from one provider."""

    #: 401: the token itself.
    token: str
    #: 403: the token's scope.
    scope: str
    #: 404: which setting names the missing thing.
    missing: str
    #: 429 and 5xx, still failing after the retries: what was left as it was.
    unavailable: str
    #: Any other 4xx.
    refused: str


def status_error(
    provider: str, status: int, what: str, said: str, fixes: StatusFixes
) -> DevopsError:
    """The error for ``provider`` answering HTTP ``status`` to ``what``.

    ``said`` is what the provider's answer said, already formatted (`` (…)`` or empty).
    """
    if status == 401:
        return DevopsError(
            ErrorCode.CREDENTIALS_INVALID,
            f"{provider} rejected the token for {what}{said}",
            fixes.token,
        )
    if status == 403:
        return DevopsError(
            ErrorCode.CREDENTIALS_INVALID,
            f"The {provider} token may not access {what}{said}",
            fixes.scope,
        )
    if status == 404:
        return DevopsError(ErrorCode.NOT_FOUND, f"{provider} has no {what}{said}", fixes.missing)
    if status == 429 or status >= 500:
        return DevopsError(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"{provider} kept answering HTTP {status} for {what}, even after retries{said}",
            fixes.unavailable,
            http_status=status,
        )
    return DevopsError(
        ErrorCode.DEPLOY_FAILED,
        f"{provider} refused {what}: HTTP {status}{said}",
        fixes.refused,
        http_status=status,
    )


def token_may_go_to(url: str, official: str) -> bool:
    """Whether a config file may send a provider's token to ``url``.

    Only to the provider's own API (``official``'s scheme and host) or to this machine (a test
    server, a proxy the user runs): a committed config file must not be a way to send a CI
    token elsewhere. An environment variable, set by whoever runs the command, may name any.
    """
    if urlsplit(url)[:2] == urlsplit(official)[:2]:
        return True
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
