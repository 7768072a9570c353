"""The one place that knows which strings are secret, so no output path can leak them.

Anything that loads a secret value registers it here; every renderer, record writer and
log line passes its text through :func:`redact` before it leaves the process.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["MASK", "RedactingStream", "Revealed", "redact", "redact_data", "register_secret"]

MASK = "••••••••"
# Very short values would mask ordinary words and numbers; they are still never printed
# on purpose, but only values at least this long are scrubbed from free text.
_MIN_LENGTH = 4

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember ``value`` as secret for the rest of this process."""
    if len(value) >= _MIN_LENGTH:
        with _lock:
            _secrets.add(value)


class Revealed(str):
    """Text a person explicitly asked to see (``secrets.get --show``, ``secrets.export``)."""

    __slots__ = ()


def redact(text: str) -> str:
    """``text`` with every registered secret value replaced by a mask, longest first."""
    if not _secrets or isinstance(text, Revealed):
        return text
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_data(data: Any) -> Any:
    """A copy of JSON-like ``data`` with every string (keys too) passed through :func:`redact`."""
    if isinstance(data, str):
        return redact(data)  # a Revealed value passes through unchanged
    if isinstance(data, dict):
        return {redact_data(k): redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(v) for v in data]
    return data


class RedactingStream:
    """A text stream that masks secrets in whole lines before passing them on.

    Used for the output of commands we run with secrets in their environment: buffering to
    the end of a line means a value split across two reads is still recognised.
    """

    def __init__(self, target: Any) -> None:
        self._target = target
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        complete, newline, self._pending = self._pending.rpartition("\n")
        if newline:
            self._target.write(redact(complete + newline))
            self._target.flush()
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._target.write(redact(self._pending))
            self._pending = ""
        self._target.flush()
