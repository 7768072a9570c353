"""One error type for everything a user can get wrong or a target can refuse.

Every failure that reaches a user carries a stable ``code`` (an agent can branch on it),
a message saying what went wrong, and a ``fix`` saying what to do next. Errors are raised
at the edge of the library and rendered exactly once, by :mod:`devops_tasks.output`.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["DevopsError", "ErrorCode", "describe_problem"]


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
    FILE_EXISTS = "FILE_EXISTS"


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
