"""The registry of deploy targets: the only place that maps a platform name to its code.

Modules are imported only when their platform is used, so a target's SDK (boto3, the
Google and Azure clients, paramiko) never slows down commands that do not need it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import DevopsError, ErrorCode
from .base import DeployOutcome, Finding, Platform

if TYPE_CHECKING:
    from ..config import Settings
    from ..project import Project

__all__ = ["AVAILABLE", "DeployOutcome", "Finding", "Platform", "create", "platform_class"]

#: name -> "module:Class", in the order ``devops --list`` shows them.
AVAILABLE: dict[str, str] = {
    "local": "devops_tasks.platforms.local:LocalPlatform",
    "ssh": "devops_tasks.platforms.ssh:SshPlatform",
    "netlify": "devops_tasks.platforms.netlify:NetlifyPlatform",
    "aws": "devops_tasks.platforms.aws:AwsPlatform",
    "gcp": "devops_tasks.platforms.gcp:GcpPlatform",
    "azure": "devops_tasks.platforms.azure:AzurePlatform",
    "vercel": "devops_tasks.platforms.vercel:VercelPlatform",
}


def create(project: Project, settings: Settings, context: Any = None) -> Platform:
    """The platform named by ``settings``, ready to use."""
    return platform_class(settings.platform)(project, settings, context)


def platform_class(name: str) -> type[Platform]:
    """The class of platform ``name`` (its module is imported now, not before)."""
    if name not in AVAILABLE:
        raise _not_available(name)
    module_name, class_name = AVAILABLE[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # a module the platform itself needs: a real failure
            raise
        raise _not_available(name) from None
    cls: type[Platform] = getattr(module, class_name)
    return cls


def _not_available(name: str) -> DevopsError:
    return DevopsError(
        ErrorCode.NOT_SUPPORTED,
        f"Platform {name!r} is not available in this version of devops-tasks",
        f"Use one of: {', '.join(AVAILABLE)} (set `platform` in .devops/config.json), "
        "or upgrade devops-tasks.",
    )
