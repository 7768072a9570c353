"""What a child process inherits: this environment, never the keys that unlock the secrets.

A module of its own, without Invoke, so that finding the project (which asks git) loads
nothing heavy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["child_environment"]

#: Never handed to a child process: the keys that unlock every secret.
_KEY_VARIABLES = (
    "DEVOPS_MASTER_KEY",
    "DEVOPS_MASTER_PASSPHRASE",
    "DEVOPS_MASTER_KEY_FILE",
    "DEVOPS_NEW_MASTER_KEY",
    "DEVOPS_NEW_MASTER_PASSPHRASE",
    "DEVOPS_NEW_MASTER_KEY_FILE",
)


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment minus the master key variables, plus ``extra``."""
    inherited = {k: v for k, v in os.environ.items() if k not in _KEY_VARIABLES}
    return {**inherited, **(extra or {})}
