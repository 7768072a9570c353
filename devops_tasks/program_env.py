"""The environment variables of the ``devops`` program: one grammar for all of them.

``DEVOPS_<NAME>``, one underscore, is one of the program's own settings (the ``devops.*``
settings a ``devops.yaml`` holds) or a key source of the secrets store (``DEVOPS_MASTER_KEY``);
``DEVOPS__<KEY>__<SUBKEY>``, two underscores for each dot, is a value of the project's
``.devops/config.json`` (:mod:`devops_tasks.config.store`). Invoke's own spelling of the first
kind, ``DEVOPS_DEVOPS_<NAME>``, still works, with a warning on stderr, and loses to the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import DevopsError, ErrorCode

__all__ = ["LEGACY_PREFIX", "VARIABLES", "deprecated_variables", "program_settings"]

#: Each setting of ``devops.*`` -> the variable that sets it, and whether it is a switch.
VARIABLES = {
    "env": ("DEVOPS_ENV", False),
    "json": ("DEVOPS_JSON", True),
    "debug": ("DEVOPS_DEBUG", True),
    "project_dir": ("DEVOPS_PROJECT_DIR", False),
}
#: How invoke names them (its config prefix, then the ``devops`` section): deprecated.
LEGACY_PREFIX = "DEVOPS_DEVOPS_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def program_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``devops.*`` settings the environment sets, typed; CONFIG_INVALID for a switch
    that is neither on nor off (``DEVOPS_JSON=maybe``)."""
    settings: dict[str, Any] = {}
    for setting, (variable, switch) in VARIABLES.items():
        if variable not in environ:
            continue
        value = environ[variable]
        if not switch:
            settings[setting] = value
        elif value.strip().lower() in _TRUE + _FALSE:
            settings[setting] = value.strip().lower() in _TRUE
        else:
            raise DevopsError(
                ErrorCode.CONFIG_INVALID,
                f"{variable} must be on (1, true, yes) or off (0, false, no, or empty)",
                f"Set {variable}=1 or {variable}=0, or unset it.",
            )
    return settings


def deprecated_variables(environ: Mapping[str, str]) -> list[str]:
    """Each ``DEVOPS_DEVOPS_*`` variable set, with the warning that says what replaces it."""
    warnings = []
    for name in sorted(n for n in environ if n.startswith(LEGACY_PREFIX)):
        setting = name[len(LEGACY_PREFIX) :].lower()
        new = VARIABLES.get(setting, (None, False))[0]
        instead = f"use {new}" if new else "it sets no setting of devops"
        warnings.append(f"{name} is deprecated: {instead} (one underscore after DEVOPS)")
    return warnings
