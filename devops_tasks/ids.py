"""Identifiers that end up in paths and URLs: checked before use, never trusted.

An id from a flag, a config file or an API answer may be ``..``, ``a/b`` or empty; placed in
a URL path or a file name it would address something else entirely (``GET /deploys/..`` is
``GET /``). Every such id is one plain token: letters, digits, ``.``, ``-`` and ``_``, not
starting with a dot.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import DevopsError, ErrorCode

__all__ = ["DEPLOYMENT_ID", "ENVIRONMENT", "SAFE_ID", "check_environment", "check_id"]

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}", re.ASCII)
#: ``dep_<epoch-ms>_<hex>``: a deployment's id, which is also its release's name on
#: release-based targets (the only names their engine creates or deletes).
DEPLOYMENT_ID = re.compile(r"dep_[0-9]+_[0-9a-f]+", re.ASCII)
#: An environment name: part of paths, lock names and secret scopes (the config schema's
#: ``environmentName`` says the same; a test keeps the two equal).
ENVIRONMENT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}", re.ASCII)


def check_id(value: str, what: str, fix: str) -> str:
    """``value`` if it is one safe token, else INVALID_ARGUMENT naming ``what`` it should be."""
    if not isinstance(value, str) or not SAFE_ID.fullmatch(value):
        raise DevopsError(ErrorCode.INVALID_ARGUMENT, f"{value!r} is not a {what}", fix)
    return value


def check_environment(name: Any, source: str = "--env") -> str:
    """``name`` if it can name an environment; INVALID_ARGUMENT about ``source`` otherwise.

    An environment name becomes part of paths and lock names (``.devops/local/<env>``), so
    ``../x`` must be refused before anything uses it.
    """
    if not isinstance(name, str) or not ENVIRONMENT.fullmatch(name):
        raise DevopsError(
            ErrorCode.INVALID_ARGUMENT,
            f"{source} {name!r} is not an environment name",
            "Name an environment with lower-case letters, digits, - and _ (at most 63, "
            "starting with a letter or digit), e.g. --env staging.",
        )
    return name
