"""Identifiers that end up in paths and URLs: checked before use, never trusted.

An id from a flag, a config file or an API answer may be ``..``, ``a/b`` or empty; placed in
a URL path or a file name it would address something else entirely (``GET /deploys/..`` is
``GET /``). Every such id is one plain token: letters, digits, ``.``, ``-`` and ``_``, not
starting with a dot.
"""

from __future__ import annotations

import re

from .errors import DevopsError, ErrorCode

__all__ = ["DEPLOYMENT_ID", "SAFE_ID", "check_id"]

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}", re.ASCII)
#: ``dep_<epoch-ms>_<hex>``: a deployment's id, which is also its release's name on
#: release-based targets (the only names their engine creates or deletes).
DEPLOYMENT_ID = re.compile(r"dep_[0-9]+_[0-9a-f]+", re.ASCII)


def check_id(value: str, what: str, fix: str) -> str:
    """``value`` if it is one safe token, else INVALID_ARGUMENT naming ``what`` it should be."""
    if not isinstance(value, str) or not SAFE_ID.fullmatch(value):
        raise DevopsError(ErrorCode.INVALID_ARGUMENT, f"{value!r} is not a {what}", fix)
    return value
