"""Reading a ``.env`` file for ``secrets.import``: literally, within a size bound, and strictly.

python-dotenv's parser defines the syntax (``export``, comments, quoting, multi-line quoted
values). Its ``dotenv_values`` is not used: it expands ``${VAR}`` from this process's
environment (so ``LEAK=${DEVOPS_MASTER_KEY}`` would store the master key) and skips a line it
cannot parse with only a log warning. Here nothing is expanded, and a line that is neither
blank, a comment nor ``NAME=value`` is an error naming its line number. Errors never quote
the file: a malformed line may well hold a secret.
"""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path

from dotenv.parser import Binding, parse_stream

from ..errors import DevopsError, ErrorCode
from .base import check_name

__all__ = ["MAX_BYTES", "read_env_file"]

#: A .env file is a few kilobytes; anything larger is refused rather than read into memory.
MAX_BYTES = 1 << 20
_NEWLINE = re.compile(r"\r\n|\n|\r")
_SYNTAX_FIX = (
    "Write one NAME=value per line (quote a value with spaces or # in it; close every quote); "
    "comments start with #."
)


def read_env_file(path: Path) -> dict[str, str]:
    """Every ``NAME=value`` of the file at ``path``, each value exactly as dotenv quoting defines.

    Unquoted values are trimmed and end at `` #``; single-quoted values are literal but for
    ``\\'`` and ``\\\\``; double-quoted values decode ``\\n``, ``\\t``, ``\\r``, ``\\"``, ``\\'``,
    ``\\\\``, ``\\a``, ``\\b``, ``\\f`` and ``\\v`` (dotenv's set; ``\\0`` or ``\\x41``
    stay as written). ``$VAR`` and ``${VAR}`` are text. A repeated name keeps its last value.
    """
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(_read_text(path))):
        if binding.key is None and not binding.error:
            continue  # a comment or blank lines
        line = _line_of(binding)
        if binding.error or binding.key is None:
            raise _line_error(path, line, "cannot be parsed as NAME=value", _SYNTAX_FIX)
        if binding.value is None:
            raise _line_error(path, line, "has a name but no =", "Write NAME= for an empty value.")
        try:
            check_name(binding.key)
        except DevopsError as invalid:
            raise _line_error(
                path, line, "does not start with a valid secret name", invalid.fix
            ) from None
        values[binding.key] = binding.value
    return values


def _line_of(binding: Binding) -> int:
    """The line the statement starts on (dotenv counts from the end of the one before it)."""
    text = binding.original.string
    leading = text[: len(text) - len(text.lstrip())]
    return binding.original.line + len(_NEWLINE.findall(leading))


def _line_error(path: Path, line: int, problem: str, fix: str) -> DevopsError:
    return DevopsError(
        ErrorCode.INVALID_ARGUMENT,
        f"Line {line} of {path} {problem}; nothing was imported",
        fix,
        line=line,
    )


def _read_text(path: Path) -> str:
    """The file's text: a regular file of at most :data:`MAX_BYTES` bytes of UTF-8.

    It is opened without blocking and checked after opening, so a FIFO, a device such as
    /dev/zero or a directory is refused without waiting or reading.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DevopsError(
            ErrorCode.NOT_FOUND, f"No file {path}", "Check the path of the .env file."
        ) from None
    except OSError as exc:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"Cannot read {path}: {exc.strerror}",
            "Check that the .env file is readable by you.",
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DevopsError(
                ErrorCode.INVALID_ARGUMENT,
                f"{path} is not a regular file",
                "Import from a .env file on disk (not a pipe, device or directory).",
            )
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"{path} is larger than {MAX_BYTES // 1024} KiB",
            "Split it, or store large values one at a time with `devops secrets.set NAME`.",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"{path} is not UTF-8 text (invalid byte at offset {exc.start})",
            "Save the .env file as UTF-8.",
        ) from None
