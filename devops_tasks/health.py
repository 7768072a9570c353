"""HTTP health checks: is the thing we just deployed answering as it should?"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HealthResult", "check_http"]


@dataclass(frozen=True)
class HealthResult:
    healthy: bool
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
    attempts = int(settings.get("retries", 3)) + 1
    detail = ""
    for attempt in range(1, attempts + 1):
        try:
            response = requests.get(url, timeout=float(settings.get("timeout", 10)))
        except requests.RequestException as exc:
            detail = f"request failed: {type(exc).__name__}"
        else:
            if response.status_code != expect_status:
                detail = f"HTTP {response.status_code}, expected {expect_status}"
            elif expect_text and expect_text not in response.text:
                detail = f"HTTP {response.status_code} but the body lacks {expect_text!r}"
            else:
                return HealthResult(True, url, attempt, f"HTTP {response.status_code}")
        if attempt < attempts:
            sleep(float(settings.get("interval", 2)))
    return HealthResult(False, url, attempts, detail)
