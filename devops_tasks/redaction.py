"""The one place that knows which strings are secret, so no output path can leak them.

Anything that loads a secret value registers it here. Free text on its way out — child
process output, error messages, tracebacks, step logs, URLs — passes through :func:`redact`
(or a :class:`RedactingStream`). What the program writes itself is never rewritten: the keys
of every JSON object, and the values of :data:`PRODUCT_FIELDS` (``success``, ``code``,
``status``, ``environment``, ids, names...), so a secret that happens to equal
``production`` cannot turn an answer into ``{"••••••••": true}``.

Values shorter than :data:`MIN_LENGTH` characters are never searched for (they would mask
ordinary words and numbers); each line of a multi-line value is searched for on its own
too, when it is at least :data:`MIN_LINE_LENGTH` long, so a PEM key printed line by line
is masked line by line.
"""

from __future__ import annotations

import re
import threading
from typing import Any

__all__ = [
    "MASK",
    "MIN_LENGTH",
    "MIN_LINE_LENGTH",
    "PRODUCT_FIELDS",
    "RedactingStream",
    "Revealed",
    "redact",
    "redact_data",
    "redact_tail",
    "register_secret",
]

MASK = "••••••••"
MIN_LENGTH = 4
MIN_LINE_LENGTH = 8

#: Fields whose values devops-tasks writes itself (its vocabulary, ids, names, times, counts):
#: they are never masked, wherever they appear in an answer or a record.
PRODUCT_FIELDS = frozenset(
    {
        "success",
        "code",
        "status",
        "action",
        "environment",
        "environments",
        "platform",
        "id",
        "release",
        "live_release",
        "deployment",
        "in_progress",
        "rollback_of",
        "restored",
        "rolled_back_to",
        "platform_deploy_id",
        "timestamp",
        "time",
        "updated",
        "step",
        "name",
        "scope",
        "imported",
        "key",
        "path",
        "key_id",
        "old_key_id",
        "format",
        "masked",
        "allowed",
        "config_updated",
        "gitignore_added",
    }
)

_lock = threading.Lock()
_secrets: set[str] = set()
# (the registry it was built from, its size then), the regex, the longest value's length.
# Holding the set itself (not its id) means a new registry can never be taken for the old.
_compiled: tuple[tuple[set[str], int] | None, re.Pattern[str] | None, int] = (None, None, 0)


def register_secret(value: str) -> None:
    """Remember ``value`` (and each long enough line of it) as secret for this process."""
    # Surrounding whitespace is not secret, and masking a trailing newline would join lines.
    candidates = {value.strip()} if len(value.strip()) >= MIN_LENGTH else set()
    if "\n" in value:
        lines = (line.strip() for line in value.splitlines())
        candidates.update(line for line in lines if len(line) >= MIN_LINE_LENGTH)
    if candidates:
        with _lock:
            _secrets.update(candidates)


class Revealed(str):
    """Text a person explicitly asked to see (``secrets.get --show``, ``secrets.export``)."""

    __slots__ = ()


def _pattern() -> tuple[re.Pattern[str] | None, int]:
    """One regex for every registered value (longest first), and the longest length."""
    global _compiled
    with _lock:
        built_from = _compiled[0]
        if built_from is None or built_from[0] is not _secrets or built_from[1] != len(_secrets):
            values = sorted(_secrets, key=len, reverse=True)
            pattern = re.compile("|".join(map(re.escape, values))) if values else None
            _compiled = ((_secrets, len(_secrets)), pattern, len(values[0]) if values else 0)
        return _compiled[1], _compiled[2]


def redact(text: str) -> str:
    """``text`` with every registered secret value replaced by :data:`MASK`."""
    if isinstance(text, Revealed):
        return text
    pattern, _ = _pattern()
    return text if pattern is None else pattern.sub(MASK, text)


def redact_data(data: Any, field: str | None = None) -> Any:
    """A copy of JSON-like ``data`` with its free text masked; keys and product fields kept."""
    if isinstance(data, str):
        return data if field in PRODUCT_FIELDS else redact(data)
    if isinstance(data, dict):
        return {key: redact_data(value, key) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(value, field) for value in data]
    return data


def redact_tail(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text`` after masking, never starting inside a mask."""
    masked = redact(text)
    cut = max(len(masked) - limit, 0)
    overlap = masked.find(MASK, max(cut - len(MASK) + 1, 0))
    if 0 <= overlap < cut:
        cut = overlap + len(MASK)
    return masked[cut:]


def _safe_prefix(text: str, final: bool) -> tuple[str, str]:
    """Split ``text`` into (what can be written now, masked; what must wait for more).

    Held back is only the shortest tail that could still grow into a secret: a value
    arriving split across reads (or lines) is masked as a whole once the rest comes.
    """
    pattern, longest = _pattern()
    if pattern is None:
        return text, ""
    with _lock:
        values = tuple(_secrets)

    def first_partial(start: int) -> int:
        """Where the first tail of ``text`` (from ``start``) that may grow into a secret begins."""
        if final:
            return len(text)
        for begin in range(max(start, len(text) - longest + 1), len(text)):
            tail = text[begin:]
            if any(len(v) > len(tail) and v.startswith(tail) for v in values):
                return begin
        return len(text)

    hold, pieces, position = first_partial(0), [], 0
    for match in pattern.finditer(text):
        if match.start() >= hold:
            break
        pieces += [text[position : match.start()], MASK]
        position = match.end()
        if position > hold:  # a whole secret ran past what looked like a partial one
            hold = first_partial(position)
    pieces.append(text[position:hold])
    return "".join(pieces), text[hold:]


class RedactingStream:
    """A text stream that masks secrets before passing text on, however the text arrives.

    Used for the output of commands we run: a value split across two reads, or printed
    line by line, is still recognised. ``flush`` keeps back what may be the start of a
    secret; :meth:`close` writes the rest once the command has finished.
    """

    def __init__(self, target: Any) -> None:
        self._target = target
        self._pending = ""

    def write(self, text: str) -> int:
        ready, self._pending = _safe_prefix(self._pending + text, final=False)
        if ready:
            self._target.write(ready)
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        ready, self._pending = _safe_prefix(self._pending, final=True)
        self._target.write(ready)
        self._target.flush()
