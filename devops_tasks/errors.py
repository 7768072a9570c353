"""One error type for everything a user can get wrong or a target can refuse.

Every failure that reaches a user carries a stable ``code`` (an agent can branch on it),
a message saying what went wrong, and a ``fix`` saying what to do next. Errors are raised
at the edge of the library and rendered exactly once, by :mod:`devops_tasks.output`.
"""

from __future__ import annotations

import enum
import errno
import os
import re
from typing import Any

__all__ = ["DevopsError", "ErrorCode", "describe_problem", "os_failure", "printable"]


class ErrorCode(str, enum.Enum):
    """The stable, documented error codes. Never rename one; add new ones at the end."""

    CONFIG_MISSING = "CONFIG_MISSING"
    CONFIG_INVALID = "CONFIG_INVALID"
    CONFIG_EXISTS = "CONFIG_EXISTS"
    CREDENTIALS_MISSING = "CREDENTIALS_MISSING"
    CREDENTIALS_INVALID = "CREDENTIALS_INVALID"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    LOCKED = "LOCKED"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    BUILD_FAILED = "BUILD_FAILED"
    CHECK_FAILED = "CHECK_FAILED"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    HEALTH_CHECK_FAILED = "HEALTH_CHECK_FAILED"
    ROLLBACK_UNAVAILABLE = "ROLLBACK_UNAVAILABLE"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    INTERRUPTED = "INTERRUPTED"
    MASTER_KEY_MISSING = "MASTER_KEY_MISSING"
    MASTER_KEY_INVALID = "MASTER_KEY_INVALID"
    MASTER_KEY_WRONG = "MASTER_KEY_WRONG"
    SECRETS_CORRUPT = "SECRETS_CORRUPT"
    SECRETS_TAMPERED = "SECRETS_TAMPERED"
    SECRET_MOVED = "SECRET_MOVED"
    SECRET_ENTRY_MISSING = "SECRET_ENTRY_MISSING"
    SECRETS_VERSION_UNSUPPORTED = "SECRETS_VERSION_UNSUPPORTED"
    VALUE_TOO_LARGE = "VALUE_TOO_LARGE"
    COMMAND_FAILED = "COMMAND_FAILED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    FILESYSTEM_ERROR = "FILESYSTEM_ERROR"
    FILE_EXISTS = "FILE_EXISTS"
    HOST_KEY_UNKNOWN = "HOST_KEY_UNKNOWN"
    HOST_KEY_CHANGED = "HOST_KEY_CHANGED"
    HOST_UNREACHABLE = "HOST_UNREACHABLE"
    DRIFT_DETECTED = "DRIFT_DETECTED"
    DRIFT_UNKNOWN = "DRIFT_UNKNOWN"


class DevopsError(Exception):
    """A failure with a stable code, a message and a fix; safe to show to a user as is."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        fix: str,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fix = fix
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The failure as the JSON contract's fields (``success`` is added by the renderer)."""
        return {
            "error": self.message,
            "code": self.code.value,
            "fix": self.fix,
            **self.details,
        }


def describe_problem(problem: Any) -> str:
    """One line for one entry of an error's ``problems``: a config path or a finding."""
    if "path" in problem:
        text = f"{problem['path'] or '(top level)'}: {problem.get('message')}"
    else:
        text = str(problem.get("message"))
    if problem.get("allowed") is not None:
        text += f" (allowed: {', '.join(map(str, problem['allowed']))})"
    if problem.get("fix"):
        text += f" — {problem['fix']}"
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")
_LONGEST_PATH_SHOWN = 200


def printable(text: str) -> str:
    """``text`` as valid Unicode: a byte a file name could not decode shows as ``\\xff``.

    ``os.fsdecode`` keeps such bytes as lone surrogates, which no UTF-8 output can carry.
    Text with none comes back as the very same object (a ``Revealed`` value stays one).
    """
    return _SURROGATE.sub(_escape_surrogate, text) if _SURROGATE.search(text) else text


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _shown_path(path: str | bytes | os.PathLike[Any]) -> str:
    """A path for a message: printable, and cut in the middle when it is absurdly long."""
    text = printable(os.fsdecode(path))
    if len(text) <= _LONGEST_PATH_SHOWN:
        return text
    half = _LONGEST_PATH_SHOWN // 2
    return f"{text[:half]}…{text[-half:]}"


_NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS}
_FILESYSTEM_FIXES = {
    errno.ENOSPC: "Free some space on the file system that holds {path}, then run it again.",
    errno.EDQUOT: "Free some space (or raise your quota) where {path} lives, then run it again.",
    errno.ENAMETOOLONG: "Move the project to a shorter path, or shorten the names in it.",
    errno.ELOOP: "{path} is a loop of symbolic links: fix or remove the link.",
    errno.ENOTDIR: "{path}, or a directory above it, is not a directory (a file, or a broken "
    "link): move it away or fix the link.",
    errno.EEXIST: "{path} is in the way (a file, or a broken link, where a directory belongs): "
    "move it away or fix the link.",
    errno.ENOENT: "{path} does not exist: check the path (a directory may have been removed "
    "while the command ran).",
}


def os_failure(exc: OSError) -> DevopsError | None:
    """What the environment refused (permissions, a full disk, a path too long), as an error.

    ``None`` for an OSError that names no file and no file-system condition (a network
    error, say): that one is not the file system's fault and needs its own handling.
    """
    code_name = errno.errorcode.get(exc.errno or 0)
    path = _shown_path(exc.filename) if exc.filename is not None else None
    where = f": {path}" if path else ""
    details = {"path": path, "errno": code_name}
    message = f"{exc.strerror or type(exc).__name__}{where}"
    if exc.errno in _NOT_ALLOWED:
        return DevopsError(
            ErrorCode.PERMISSION_DENIED,
            message,
            f"Check that this user may read and write {path or 'the file'} and that its file "
            "system is not mounted read-only, then run the command again.",
            **details,
        )
    if path is None and exc.errno not in _FILESYSTEM_FIXES:
        return None
    fix = _FILESYSTEM_FIXES.get(
        exc.errno or 0, "Check {path} and the file system it is on, then run it again."
    )
    return DevopsError(
        ErrorCode.FILESYSTEM_ERROR, message, fix.format(path=path or "the project"), **details
    )
