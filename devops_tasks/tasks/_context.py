"""From an invoke ``Context`` and a task's flags to the library objects a task calls."""

from __future__ import annotations

import json
from typing import Any

from ..config import ConfigStore, Settings
from ..deployer import Deployer
from ..output import Output
from ..project import Project, find_project
from ._command import option

__all__ = ["deployer_for", "project_for", "settings_for", "store_settings"]


def project_for(c: Any) -> Project:
    return find_project(option(c, "project_dir"))


def settings_for(c: Any, env: str | None, platform: str | None = None) -> Settings:
    """Effective settings of ``--env`` (or ``devops.env``); ``platform`` forces a target."""
    return ConfigStore(project_for(c)).settings(option(c, "env", env)).targeting(platform)


def store_settings(project: Project, environment: str, updates: dict[str, Any]) -> None:
    """Save settings a target created (a site id...) for ``environment``.

    They go in the base settings when ``environment`` is the default one, else under
    ``environments.<environment>``.
    """
    store = ConfigStore(project)
    default = store.settings(None, store.read(), use_environ=False).environment
    scope = None if environment == default else environment
    for key, value in updates.items():
        store.set(key, json.dumps(value), scope)


def deployer_for(c: Any, out: Output, env: str | None, platform: str | None = None) -> Deployer:
    return Deployer(project_for(c), settings_for(c, env, platform), c, out)
