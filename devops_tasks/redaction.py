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

import functools
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
        "root",
        "current",
        "config",
        "output",
        "lock",
        "key_source",
        "retired_key_file",
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


def _values() -> tuple[str, ...]:
    with _lock:
        return tuple(_secrets)


def _spans(text: str, values: tuple[str, ...]) -> list[tuple[int, int]]:
    """Every stretch of ``text`` that some value covers, overlapping ones merged.

    Merging matters when two secrets overlap (``abcdef12`` and ``ef12XYZW`` printed as
    ``abcdef12XYZW``): masking only one of them would show a piece of the other.
    """
    found = []
    for value in values:
        start = text.find(value)
        while start != -1:
            found.append((start, start + len(value)))
            start = text.find(value, start + 1)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    pieces, position = [], 0
    for start, end in spans:
        pieces += [text[position:start], MASK]
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def redact(text: str) -> str:
    """``text`` with every registered secret value replaced by :data:`MASK`."""
    if isinstance(text, Revealed):
        return text
    values = _values()
    return _masked(text, _spans(text, values)) if values else text


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


#: Below this, a partial match is found by comparing candidates (fast in C); above it, by
#: a prefix automaton, which stays linear however repetitive the text and the value are.
_SHORT_PARTIAL = 1024


def _longest_partial(text: str, value: str) -> int:
    """The length of the longest end of ``text`` that is a proper start of ``value``."""
    size = min(len(value) - 1, len(text))
    if size <= 0:
        return 0
    tail = text[-size:]
    if size <= _SHORT_PARTIAL:
        begin = tail.find(value[0])
        while begin != -1:
            if value.startswith(tail[begin:]):
                return size - begin
            begin = tail.find(value[0], begin + 1)
        return 0
    borders, matched = _borders(value), 0
    for char in tail:
        while matched and (matched == len(value) or char != value[matched]):
            matched = borders[matched - 1]
        if char == value[matched]:
            matched += 1
    return borders[matched - 1] if matched == len(value) else matched


@functools.lru_cache(maxsize=32)
def _borders(value: str) -> tuple[int, ...]:
    """KMP's failure function: for each prefix of ``value``, its longest proper border."""
    borders, matched = [0] * len(value), 0
    for position in range(1, len(value)):
        while matched and value[position] != value[matched]:
            matched = borders[matched - 1]
        if value[position] == value[matched]:
            matched += 1
        borders[position] = matched
    return tuple(borders)


def _safe_prefix(text: str, final: bool) -> tuple[str, str]:
    """Split ``text`` into (what can be written now, masked; what must wait for more).

    Held back is only the shortest end that could still grow into a secret: a value
    arriving split across reads (or lines) is masked as a whole once the rest comes.
    """
    values = _values()
    if not values:
        return text, ""
    spans = _spans(text, values)
    partial = 0 if final else max(_longest_partial(text, value) for value in values)
    hold = len(text) - partial
    for start, end in spans:
        if start < hold < end:  # a whole secret overlapping what may still grow: wait
            hold = start
            break
    return _masked(text[:hold], [span for span in spans if span[1] <= hold]), text[hold:]


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
