"""Health checks: is the thing we just deployed answering as it should?

One retry loop (:func:`check`) serves every kind of probe: an HTTP GET from this machine
(:func:`check_http`) and, through :class:`HostGate`, a URL per host or a command run on each
host of a fleet as a rollout switches it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HealthResult", "HostGate", "check", "check_http"]


#: A probe says whether the target is healthy, and what it saw.
Probe = Callable[[], tuple[bool, str]]


@dataclass(frozen=True)
class HealthResult:
    healthy: bool
    #: What was checked: a URL, or ``host: command``.
    url: str
    attempts: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "url": self.url,
            "attempts": self.attempts,
            "detail": self.detail,
        }


def check(
    probe: Probe,
    target: str,
    settings: Mapping[str, Any],
    sleep: Callable[[float], None] = time.sleep,
) -> HealthResult:
    """Run ``probe`` until it passes or ``retries`` (after the first try) run out.

    ``settings`` is the ``deployment.health_check`` section: ``retries`` and ``interval``
    seconds between tries.
    """
    attempts = int(settings.get("retries", 3)) + 1
    detail = ""
    for attempt in range(1, attempts + 1):
        healthy, detail = probe()
        if healthy:
            return HealthResult(True, target, attempt, detail)
        if attempt < attempts:
            sleep(float(settings.get("interval", 2)))
    return HealthResult(False, target, attempts, detail)


def check_http(
    url: str,
    settings: Mapping[str, Any],
    sleep: Callable[[float], None] = time.sleep,
) -> HealthResult:
    """GET ``url`` until it answers ``expect_status`` (and ``expect_text``), or retries run out.

    ``settings`` is the ``deployment.health_check`` section: ``expect_status``,
    ``expect_text``, ``timeout`` per request, ``retries`` after the first try and ``interval``
    seconds between tries.
    """
    import requests  # noqa: PLC0415 - only deploys with a health check pay for it

    expect_status = int(settings.get("expect_status", 200))
    expect_text = settings.get("expect_text")

    def get() -> tuple[bool, str]:
        try:
            response = requests.get(url, timeout=float(settings.get("timeout", 10)))
        except requests.RequestException as exc:
            return False, f"request failed: {type(exc).__name__}"
        if response.status_code != expect_status:
            return False, f"HTTP {response.status_code}, expected {expect_status}"
        if expect_text and expect_text not in response.text:
            return False, f"HTTP {response.status_code} but the body lacks {expect_text!r}"
        return True, f"HTTP {response.status_code}"

    return check(get, url, settings, sleep)


class HostGate:
    """The checks a rollout runs on each host it switches, from ``deployment.health_check``.

    ``url`` counts here only when it holds ``{host}`` (each host's own URL); a URL without it
    is the whole site's, checked once the deploy is done. ``remote`` is a command run on the
    host, passed by exit status 0.
    """

    def __init__(
        self, settings: Mapping[str, Any], sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        enabled = bool(settings.get("enabled"))
        url = settings.get("url") or ""
        self.url: str | None = url if enabled and "{host}" in url else None
        self.command: str | None = settings.get("remote") if enabled else None

    def check(
        self, host: str, run: Callable[[str], tuple[bool, str]], *, live: bool = True
    ) -> list[HealthResult]:
        """Every check of ``host``; ``run`` runs a command there and says if it succeeded.

        Not ``live`` (a release prepared, not yet switched): the command only, since the
        host's URL still serves what is live.
        """
        results = []
        if self.url and live:
            name = f"[{host}]" if ":" in host else host
            results.append(check_http(self.url.replace("{host}", name), self.settings, self.sleep))
        if self.command:
            command = self.command
            results.append(
                check(lambda: run(command), f"{host}: {command}", self.settings, self.sleep)
            )
        return results
